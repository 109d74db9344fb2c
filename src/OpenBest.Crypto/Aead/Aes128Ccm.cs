using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Security.Cryptography;

namespace OpenBest.Crypto.Aead;

/// <summary>
/// AES-128-CCM (NIST SP 800-38C, RFC 3610) with a 13-octet nonce (so L = 2: messages up to 65535
/// octets) over <see cref="Aes128"/>: CBC-MAC over B0, the encoded associated data and the payload,
/// then CTR mode with A_i = (L − 1) ‖ nonce ‖ i.
/// </summary>
/// <remarks>
/// The platform's <c>AesCcm</c> would do, but it allocates and re-initialises a cipher context on every
/// call; EMSDP seals every message with CCM, so this implementation keeps the expanded key and
/// allocates nothing. Cross-checked against the platform implementation and RFC 3610 in the tests.
/// </remarks>
internal sealed class Aes128CcmAlgorithm : AeadAlgorithm
{
    internal const int Nonce = 13;
    private const int L = 15 - Nonce;

    public override string Name => "AES-128-CCM";

    public override int KeySize => 16;

    public override int NonceSize => Nonce;

    public override bool IsSupported => true;

    public override bool IsTagSizeSupported(int size) => size is >= 4 and <= 16 && size % 2 == 0;

    private protected override AeadKey CreateKeyCore(ReadOnlySpan<byte> key) => new Key(this, key);

    private sealed class Key(AeadAlgorithm algorithm, ReadOnlySpan<byte> key) : AeadKey(algorithm)
    {
        private readonly Aes128 _aes = new(key);

        // The first round key of AES-128 is the key itself: no copy is kept for sealing at rest.
        internal override bool ExportsItself => true;

        internal override void ExportCore(Span<byte> destination) => _aes.ExportKey(destination);

        internal override void EncryptCore(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> plaintext, Span<byte> ciphertext, Span<byte> tag, ReadOnlySpan<byte> associatedData)
        {
            _aes.ThrowIfDisposed();
            CheckLengths(plaintext.Length, associatedData.Length);
            var mac = CbcMac(nonce, associatedData, plaintext, tag.Length);
            var s0 = Ctr(nonce, plaintext, ciphertext);
            StoreTruncated(mac ^ s0, tag);
        }

        internal override bool DecryptCore(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> ciphertext, ReadOnlySpan<byte> tag, Span<byte> plaintext, ReadOnlySpan<byte> associatedData)
        {
            _aes.ThrowIfDisposed();
            CheckLengths(ciphertext.Length, associatedData.Length);
            var s0 = Ctr(nonce, ciphertext, plaintext);
            var mac = CbcMac(nonce, associatedData, plaintext, tag.Length);
            Span<byte> expected = stackalloc byte[16];
            StoreTruncated(mac ^ s0, expected);
            var ok = CryptographicOperations.FixedTimeEquals(expected[..tag.Length], tag);
            CryptographicOperations.ZeroMemory(expected);
            return ok;
        }

        protected override void Dispose(bool disposing) => _aes.Dispose();

        private static void CheckLengths(int payload, int associatedData)
        {
            if (payload > 0xFFFF)
            {
                throw new ArgumentException("AES-CCM with a 13-octet nonce seals at most 65535 octets.");
            }

            if (associatedData > 0xFEFF)
            {
                throw new ArgumentException("Associated data longer than 65279 octets is not supported.");
            }
        }

        // T = CBC-MAC of B0 ‖ encode(AD) ‖ payload, each part zero-padded to whole blocks.
        private Vector128<byte> CbcMac(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> ad, ReadOnlySpan<byte> payload, int tagLength)
        {
            Span<byte> block = stackalloc byte[16];
            block[0] = (byte)((ad.IsEmpty ? 0 : 0x40) | (((tagLength - 2) / 2) << 3) | (L - 1));
            nonce.CopyTo(block[1..]);
            BinaryPrimitives.WriteUInt16BigEndian(block[14..], (ushort)payload.Length);
            var x = Encrypt(Load(block));

            if (!ad.IsEmpty)
            {
                // First block: the 2-octet length, then up to 14 octets of AD.
                block.Clear();
                BinaryPrimitives.WriteUInt16BigEndian(block, (ushort)ad.Length);
                var first = Math.Min(14, ad.Length);
                ad[..first].CopyTo(block[2..]);
                x = Encrypt(x ^ Load(block));
                x = MacBlocks(x, ad[first..], block);
            }

            return MacBlocks(x, payload, block);
        }

        private Vector128<byte> MacBlocks(Vector128<byte> x, ReadOnlySpan<byte> data, Span<byte> scratch)
        {
            while (data.Length >= 16)
            {
                x = Encrypt(x ^ Load(data));
                data = data[16..];
            }

            if (!data.IsEmpty)
            {
                scratch.Clear();
                data.CopyTo(scratch);
                x = Encrypt(x ^ Load(scratch));
            }

            return x;
        }

        // output = input ⊕ S1 ‖ S2 ‖ …; returns S0 for the tag.
        private Vector128<byte> Ctr(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> input, Span<byte> output)
        {
            Span<byte> counter = stackalloc byte[16];
            Span<byte> scratch = stackalloc byte[16];
            counter[0] = L - 1;
            nonce.CopyTo(counter[1..]);
            var s0 = Encrypt(Load(counter));
            ushort i = 1;
            while (!input.IsEmpty)
            {
                BinaryPrimitives.WriteUInt16BigEndian(counter[14..], i++);
                var keystream = Encrypt(Load(counter));
                if (input.Length >= 16)
                {
                    (Load(input) ^ keystream).StoreUnsafe(ref MemoryMarshal.GetReference(output));
                    input = input[16..];
                    output = output[16..];
                }
                else
                {
                    scratch.Clear();
                    input.CopyTo(scratch);
                    (Load(scratch) ^ keystream).StoreUnsafe(ref MemoryMarshal.GetReference(scratch));
                    scratch[..input.Length].CopyTo(output);
                    CryptographicOperations.ZeroMemory(scratch);
                    break;
                }
            }

            return s0;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private Vector128<byte> Encrypt(Vector128<byte> block)
        {
            if (_aes.HasVectorPath)
            {
                return _aes.EncryptVector(block);
            }

            Span<byte> buffer = stackalloc byte[16];
            block.StoreUnsafe(ref MemoryMarshal.GetReference(buffer));
            _aes.EncryptBlock(buffer, buffer);
            return Load(buffer);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector128<byte> Load(ReadOnlySpan<byte> sixteen) => Vector128.LoadUnsafe(ref MemoryMarshal.GetReference(sixteen));

        private static void StoreTruncated(Vector128<byte> value, Span<byte> destination)
        {
            Span<byte> full = stackalloc byte[16];
            value.StoreUnsafe(ref MemoryMarshal.GetReference(full));
            full[..destination.Length].CopyTo(destination);
        }
    }
}
