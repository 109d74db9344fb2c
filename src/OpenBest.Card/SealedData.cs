using System.Buffers.Binary;
using System.Security.Cryptography;

namespace OpenBest.Card;

/// <summary>Who sealed a packet: the device's card (Encrypt Device Data) or an application server (Encrypt Server Data).</summary>
public enum SealDirection : byte
{
    /// <summary>Device → server: nonce prefix 'D'.</summary>
    DeviceToServer = (byte)'D',

    /// <summary>Server → device: nonce prefix 'S'; also key installation.</summary>
    ServerToDevice = (byte)'S',
}

/// <summary>
/// The OBF secure-element packet (seed 003 appendix 2.2.2, 2.2.3; format in docs/protocol.md "OBF secure element"):
/// <c>version 01 ‖ key index (1) ‖ counter (8, big-endian) ‖ AES-256-GCM ciphertext ‖ tag (16)</c>, with nonce
/// <c>direction ‖ 00 00 00 ‖ counter</c> and associated data <c>header (10) ‖ EF_ICCID (10)</c>. The tag is the TRUST data:
/// only a holder of the key index's key can produce it; the counter, strictly increasing per key index and direction,
/// lets the receiver refuse replays; the ICCID binds the packet to one card.
/// </summary>
public static class SealedData
{
    /// <summary>The format version.</summary>
    public const byte Version = 1;

    /// <summary>Octets before the ciphertext.</summary>
    public const int HeaderLength = 10;

    /// <summary>Octets of the tag.</summary>
    public const int TagLength = 16;

    /// <summary>Octets a packet adds to its plaintext.</summary>
    public const int Overhead = HeaderLength + TagLength;

    /// <summary>Seals <paramref name="plaintext"/> under <paramref name="key"/> (32 octets).</summary>
    public static byte[] Seal(ReadOnlySpan<byte> key, SealDirection direction, byte keyIndex, ulong counter, ReadOnlySpan<byte> iccid, ReadOnlySpan<byte> plaintext)
    {
        var packet = new byte[Overhead + plaintext.Length];
        packet[0] = Version;
        packet[1] = keyIndex;
        BinaryPrimitives.WriteUInt64BigEndian(packet.AsSpan(2), counter);
        Span<byte> nonce = stackalloc byte[12];
        Nonce(direction, counter, nonce);
        using var aes = new AesGcm(key, TagLength);
        aes.Encrypt(nonce, plaintext, packet.AsSpan(HeaderLength, plaintext.Length), packet.AsSpan(HeaderLength + plaintext.Length), Aad(packet, iccid));
        return packet;
    }

    /// <summary>Reads the header; false when the packet is too short or of another version (never throws).</summary>
    public static bool TryHeader(ReadOnlySpan<byte> packet, out byte keyIndex, out ulong counter)
    {
        keyIndex = 0;
        counter = 0;
        if (packet.Length < Overhead || packet[0] != Version)
        {
            return false;
        }

        keyIndex = packet[1];
        counter = BinaryPrimitives.ReadUInt64BigEndian(packet[2..]);
        return true;
    }

    /// <summary>
    /// Opens <paramref name="packet"/> into <paramref name="plaintext"/> (packet length − <see cref="Overhead"/> octets).
    /// False when the header or tag is wrong; the caller checks the counter for replays before trusting it.
    /// </summary>
    public static bool TryOpen(ReadOnlySpan<byte> key, SealDirection direction, ReadOnlySpan<byte> iccid, ReadOnlySpan<byte> packet, Span<byte> plaintext)
    {
        if (!TryHeader(packet, out _, out var counter) || plaintext.Length != packet.Length - Overhead)
        {
            return false;
        }

        Span<byte> nonce = stackalloc byte[12];
        Nonce(direction, counter, nonce);
        using var aes = new AesGcm(key, TagLength);
        try
        {
            aes.Decrypt(nonce, packet.Slice(HeaderLength, plaintext.Length), packet[^TagLength..], plaintext, Aad(packet, iccid));
            return true;
        }
        catch (AuthenticationTagMismatchException)
        {
            CryptographicOperations.ZeroMemory(plaintext);
            return false;
        }
    }

    private static void Nonce(SealDirection direction, ulong counter, Span<byte> nonce)
    {
        nonce.Clear();
        nonce[0] = (byte)direction;
        BinaryPrimitives.WriteUInt64BigEndian(nonce[4..], counter);
    }

    private static byte[] Aad(ReadOnlySpan<byte> packet, ReadOnlySpan<byte> iccid)
    {
        var aad = new byte[HeaderLength + iccid.Length];
        packet[..HeaderLength].CopyTo(aad);
        iccid.CopyTo(aad.AsSpan(HeaderLength));
        return aad;
    }
}

/// <summary>
/// The signed record by which the current authentication server hands a card to a new one (Verify-and-Store): <c>version
/// 01 ‖ sequence (8) ‖ L ‖ endpoint (UTF-8) ‖ L ‖ ICCID (ASCII digits) ‖ public key (65, uncompressed P-256) ‖
/// signature (64, r ‖ s, ECDSA P-256 SHA-256 over everything before it)</c>.
/// </summary>
public static class ServerKeyRecord
{
    /// <summary>The record version.</summary>
    public const byte Version = 1;

    /// <summary>
    /// Builds and signs a record with <paramref name="signer"/> (the current server's key). The signature is deterministic
    /// (RFC 6979, HMAC-SHA-256 nonces): the same record always has the same bytes, and no random nonce can leak the key.
    /// </summary>
    public static byte[] Create(ECDsa signer, ulong sequence, string endpoint, string iccid, ReadOnlySpan<byte> newPublicKey)
    {
        ArgumentNullException.ThrowIfNull(signer);
        var body = Body(sequence, endpoint, iccid, newPublicKey);
        var d = signer.ExportParameters(true).D!;
        try
        {
            var domain = new Org.BouncyCastle.Crypto.Parameters.ECDomainParameters(Org.BouncyCastle.Asn1.X9.ECNamedCurveTable.GetByName("P-256"));
            var ecdsa = new Org.BouncyCastle.Crypto.Signers.ECDsaSigner(new Org.BouncyCastle.Crypto.Signers.HMacDsaKCalculator(new Org.BouncyCastle.Crypto.Digests.Sha256Digest()));
            ecdsa.Init(true, new Org.BouncyCastle.Crypto.Parameters.ECPrivateKeyParameters(new Org.BouncyCastle.Math.BigInteger(1, d), domain));
            var rs = ecdsa.GenerateSignature(SHA256.HashData(body));
            var signature = new byte[64];
            rs[0].ToByteArrayUnsigned().CopyTo(signature, 32 - rs[0].ToByteArrayUnsigned().Length);
            rs[1].ToByteArrayUnsigned().CopyTo(signature, 64 - rs[1].ToByteArrayUnsigned().Length);
            return [.. body, .. signature];
        }
        finally
        {
            CryptographicOperations.ZeroMemory(d);
        }
    }

    /// <summary>Parses a record (never throws); the signature is not checked here.</summary>
    public static bool TryParse(ReadOnlySpan<byte> record, out ulong sequence, out string endpoint, out string iccid, out byte[] publicKey, out int signedLength)
    {
        sequence = 0;
        endpoint = iccid = string.Empty;
        publicKey = [];
        signedLength = 0;
        if (record.Length < 11 || record[0] != Version)
        {
            return false;
        }

        sequence = BinaryPrimitives.ReadUInt64BigEndian(record[1..]);
        var at = 9;
        var endpointLength = record[at++];
        if (record.Length < at + endpointLength + 1)
        {
            return false;
        }

        endpoint = System.Text.Encoding.UTF8.GetString(record.Slice(at, endpointLength));
        at += endpointLength;
        var iccidLength = record[at++];
        if (record.Length != at + iccidLength + 65 + 64 || record[at + iccidLength] != 0x04)
        {
            return false;
        }

        iccid = System.Text.Encoding.ASCII.GetString(record.Slice(at, iccidLength));
        at += iccidLength;
        publicKey = record.Slice(at, 65).ToArray();
        signedLength = at + 65;
        return true;
    }

    /// <summary>Whether <paramref name="record"/>'s signature verifies under <paramref name="currentPublicKey"/> (65 octets).</summary>
    public static bool Verify(ReadOnlySpan<byte> currentPublicKey, ReadOnlySpan<byte> record)
    {
        if (currentPublicKey.Length != 65 || currentPublicKey[0] != 0x04 || !TryParse(record, out _, out _, out _, out _, out var signed))
        {
            return false;
        }

        try
        {
            using var key = ECDsa.Create(new ECParameters
            {
                Curve = ECCurve.NamedCurves.nistP256,
                Q = new ECPoint { X = currentPublicKey.Slice(1, 32).ToArray(), Y = currentPublicKey.Slice(33, 32).ToArray() },
            });
            return key.VerifyData(record[..signed], record[signed..], HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        }
        catch (CryptographicException)
        {
            return false; // not a point on the curve
        }
    }

    /// <summary>The uncompressed public point (65 octets) of <paramref name="key"/>.</summary>
    public static byte[] PublicKey(ECDsa key)
    {
        ArgumentNullException.ThrowIfNull(key);
        var q = key.ExportParameters(false).Q;
        return [0x04, .. q.X!, .. q.Y!];
    }

    private static byte[] Body(ulong sequence, string endpoint, string iccid, ReadOnlySpan<byte> newPublicKey)
    {
        var endpointOctets = System.Text.Encoding.UTF8.GetBytes(endpoint);
        var iccidOctets = System.Text.Encoding.ASCII.GetBytes(iccid);
        if (endpointOctets.Length > 255 || iccidOctets.Length > 255 || newPublicKey.Length != 65 || newPublicKey[0] != 0x04)
        {
            throw new ArgumentException("The endpoint and ICCID are at most 255 octets and the public key is an uncompressed P-256 point.");
        }

        var body = new byte[9 + 1 + endpointOctets.Length + 1 + iccidOctets.Length + 65];
        body[0] = Version;
        BinaryPrimitives.WriteUInt64BigEndian(body.AsSpan(1), sequence);
        var at = 9;
        body[at++] = (byte)endpointOctets.Length;
        endpointOctets.CopyTo(body, at);
        at += endpointOctets.Length;
        body[at++] = (byte)iccidOctets.Length;
        iccidOctets.CopyTo(body, at);
        at += iccidOctets.Length;
        newPublicKey.CopyTo(body.AsSpan(at));
        return body;
    }
}
