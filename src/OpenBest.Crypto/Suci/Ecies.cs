using System.Buffers.Binary;
using System.Security.Cryptography;

namespace OpenBest.Crypto.Suci;

/// <summary>
/// The ECIES parts common to SUCI profiles A and B (TS 33.501 Annex C.3.4): ANSI X9.63 KDF with
/// SHA-256 (SharedInfo1 = the ephemeral public key as transmitted), key data split into
/// EK (16) ‖ ICB (16) ‖ MK (32), AES-128-CTR with the ICB as initial counter block, and
/// HMAC-SHA-256(MK, ciphertext) truncated to 8 octets.
/// </summary>
internal static class Ecies
{
    public const int MacSize = 8;

    /// <summary>ANSI-X9.63-KDF(Z, SharedInfo, 64) = SHA-256(Z ‖ 00000001 ‖ SI) ‖ SHA-256(Z ‖ 00000002 ‖ SI).</summary>
    public static void X963Kdf(ReadOnlySpan<byte> z, ReadOnlySpan<byte> sharedInfo, Span<byte> output64)
    {
        var input = new byte[z.Length + 4 + sharedInfo.Length];
        z.CopyTo(input);
        sharedInfo.CopyTo(input.AsSpan(z.Length + 4));
        for (uint counter = 1; counter <= 2; counter++)
        {
            BinaryPrimitives.WriteUInt32BigEndian(input.AsSpan(z.Length), counter);
            SHA256.HashData(input, output64.Slice((int)(counter - 1) * 32, 32));
        }

        CryptographicOperations.ZeroMemory(input);
    }

    /// <summary>Encrypts: returns EphPub ‖ AES-CTR(EK, ICB, plaintext) ‖ MAC.</summary>
    public static byte[] Seal(ReadOnlySpan<byte> z, ReadOnlySpan<byte> ephemeralPublicKey, ReadOnlySpan<byte> plaintext)
    {
        Span<byte> keys = stackalloc byte[64];
        try
        {
            X963Kdf(z, ephemeralPublicKey, keys);
            var output = new byte[ephemeralPublicKey.Length + plaintext.Length + MacSize];
            ephemeralPublicKey.CopyTo(output);
            var ciphertext = output.AsSpan(ephemeralPublicKey.Length, plaintext.Length);
            AesCtr(keys[..16], keys[16..32], plaintext, ciphertext);
            Span<byte> mac = stackalloc byte[32];
            HMACSHA256.HashData(keys[32..], ciphertext, mac);
            mac[..MacSize].CopyTo(output.AsSpan(ephemeralPublicKey.Length + plaintext.Length));
            return output;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(keys);
        }
    }

    /// <summary>Verifies the MAC first (fixed time), then decrypts. Returns null when the MAC does not verify.</summary>
    public static byte[]? Open(ReadOnlySpan<byte> z, ReadOnlySpan<byte> ephemeralPublicKey, ReadOnlySpan<byte> ciphertext, ReadOnlySpan<byte> mac)
    {
        Span<byte> keys = stackalloc byte[64];
        Span<byte> expected = stackalloc byte[32];
        try
        {
            X963Kdf(z, ephemeralPublicKey, keys);
            HMACSHA256.HashData(keys[32..], ciphertext, expected);
            if (mac.Length != MacSize || !CryptographicOperations.FixedTimeEquals(expected[..MacSize], mac))
            {
                return null;
            }

            var plaintext = new byte[ciphertext.Length];
            AesCtr(keys[..16], keys[16..32], ciphertext, plaintext);
            return plaintext;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(keys);
        }
    }

    // NIST SP 800-38A CTR mode; the counter increments on its rightmost 32 bits (B.1, m = 32).
    private static void AesCtr(ReadOnlySpan<byte> key, ReadOnlySpan<byte> icb, ReadOnlySpan<byte> input, Span<byte> output)
    {
        using var aes = new Aes128(key);
        Span<byte> counter = stackalloc byte[16];
        Span<byte> keystream = stackalloc byte[16];
        icb.CopyTo(counter);
        for (var offset = 0; offset < input.Length; offset += 16)
        {
            aes.EncryptBlock(counter, keystream);
            var n = Math.Min(16, input.Length - offset);
            for (var i = 0; i < n; i++)
            {
                output[offset + i] = (byte)(input[offset + i] ^ keystream[i]);
            }

            BinaryPrimitives.WriteUInt32BigEndian(counter[12..], BinaryPrimitives.ReadUInt32BigEndian(counter[12..]) + 1);
        }

        CryptographicOperations.ZeroMemory(keystream);
    }
}
