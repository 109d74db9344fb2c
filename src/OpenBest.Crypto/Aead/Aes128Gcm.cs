using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using System.Security.Cryptography;
using BclAesGcm = System.Security.Cryptography.AesGcm;

namespace OpenBest.Crypto.Aead;

/// <summary>
/// AES-128-GCM (NIST SP 800-38D) with a 12-octet IV and a 16-octet tag: J0 = IV ‖ 0^31 ‖ 1, CTR mode
/// from inc32(J0), and GHASH over the associated data, the ciphertext and their lengths.
/// </summary>
/// <remarks>
/// <para>
/// On x86 with AES-NI, PCLMULQDQ and SSSE3 the mode runs here, over <see cref="Aes128"/>'s round keys and a
/// carry-less-multiply GHASH (<see cref="Ghash"/>) with H, H², H³ and H⁴ precomputed, four blocks per
/// reduction. The platform's <c>AesGcm</c> calls into the system library (OpenSSL 3 on Linux) each time, for a
/// fixed cost several times that of sealing a short message here. Elsewhere (ARM, or x86 without those instructions) the platform's
/// <c>AesGcm</c> does the work. Cross-checked against the platform implementation and the McGrew–Viega
/// vectors in the tests.
/// </para>
/// <para>Decryption checks the tag before it decrypts: a message that fails never reaches the plaintext span.</para>
/// </remarks>
internal sealed class Aes128GcmAlgorithm : AeadAlgorithm
{
    private const int Tag = 16;

    public override string Name => "AES-128-GCM";

    public override int KeySize => 16;

    public override int NonceSize => 12;

    /// <summary>Whether keys run on the managed AES-NI + PCLMULQDQ path rather than the platform's AES-GCM.</summary>
    internal static bool IsHardwareAccelerated => Aes128.IsHardwareAccelerated && Ghash.IsSupported;

    public override bool IsSupported => IsHardwareAccelerated || BclAesGcm.IsSupported;

    public override bool IsTagSizeSupported(int size) => size == Tag;

    private protected override AeadKey CreateKeyCore(ReadOnlySpan<byte> key) =>
        IsHardwareAccelerated ? new Key(this, key) : new PlatformAesGcmKey(this, key, Tag);

    private sealed class Key : AeadKey
    {
        private readonly Aes128 _aes;

        // H, H², H³, H⁴ in GHASH's byte-reflected form, pinned so no moved copy is left behind; zeroed on dispose.
        private static readonly Vector128<ulong>[] Disposed = new Vector128<ulong>[4];
        private Vector128<ulong>[] _h;

        public Key(AeadAlgorithm algorithm, ReadOnlySpan<byte> key)
            : base(algorithm)
        {
            _aes = new Aes128(key);
            _h = PinnedArrays<Vector128<ulong>>.Rent(4);
            var h = Ghash.Reflect(_aes.EncryptVector(Vector128<byte>.Zero));
            var h2 = Ghash.Multiply(h, h);
            var h3 = Ghash.Multiply(h2, h);
            _h[0] = h;
            _h[1] = h2;
            _h[2] = h3;
            _h[3] = Ghash.Multiply(h3, h);
        }

        // The first round key of AES-128 is the key itself: no copy is kept for sealing at rest.
        internal override bool ExportsItself => true;

        internal override void ExportCore(Span<byte> destination) => _aes.ExportKey(destination);

        internal override void EncryptCore(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> plaintext, Span<byte> ciphertext, Span<byte> tag, ReadOnlySpan<byte> associatedData)
        {
            _aes.ThrowIfDisposed();
            var j0 = InitialCounter(nonce);
            var x = Ghash.Update(Vector128<ulong>.Zero, associatedData, _h);
            x = Ctr(j0, plaintext, ciphertext, x, hashOutput: true);
            StoreTag(j0, x, associatedData.Length, plaintext.Length, tag);
        }

        internal override bool DecryptCore(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> ciphertext, ReadOnlySpan<byte> tag, Span<byte> plaintext, ReadOnlySpan<byte> associatedData)
        {
            _aes.ThrowIfDisposed();
            var j0 = InitialCounter(nonce);
            var x = Ghash.Update(Vector128<ulong>.Zero, associatedData, _h);
            x = Ghash.Update(x, ciphertext, _h);
            Span<byte> expected = stackalloc byte[Tag];
            StoreTag(j0, x, associatedData.Length, ciphertext.Length, expected);
            var ok = CryptographicOperations.FixedTimeEquals(expected, tag);
            CryptographicOperations.ZeroMemory(expected);
            if (!ok)
            {
                return false;
            }

            Ctr(j0, ciphertext, plaintext, default, hashOutput: false);
            return true;
        }

        protected override void Dispose(bool disposing)
        {
            _aes.Dispose();
            var h = _h;
            _h = Disposed; // a late call never reaches the recycled array of another key
            PinnedArrays<Vector128<ulong>>.Return(h);
        }

        // J0 = IV ‖ 0^31 ‖ 1 (SP 800-38D 7.1, step 2, for a 96-bit IV).
        private static Vector128<uint> InitialCounter(ReadOnlySpan<byte> nonce) =>
            Vector128.Create(
                BinaryPrimitives.ReadUInt64LittleEndian(nonce),
                BinaryPrimitives.ReadUInt32LittleEndian(nonce[8..]) | (0x01000000UL << 32)).AsUInt32();

        // inc32: the last word of the counter block is a 32-bit big-endian counter.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector128<byte> Counter(Vector128<uint> j0, uint i) =>
            j0.WithElement(3, BinaryPrimitives.ReverseEndianness(i)).AsByte();

        // T = E_K(J0) ⊕ GHASH(A ‖ 0 ‖ C ‖ 0 ‖ [len(A)]64 ‖ [len(C)]64).
        private void StoreTag(Vector128<uint> j0, Vector128<ulong> x, int adLength, int textLength, Span<byte> destination)
        {
            if (destination.Length < Tag)
            {
                ThrowTooShort();
            }

            x = Ghash.Lengths(x, adLength, textLength, _h[0]);
            var t = Ghash.Reflect(x.AsByte()).AsByte() ^ _aes.EncryptVector(j0.AsByte());
            t.StoreUnsafe(ref MemoryMarshal.GetReference(destination));
        }

        // output = input ⊕ E_K(inc32(J0)) ‖ E_K(inc32²(J0)) ‖ …; when hashOutput, folds the output into the GHASH state x.
        private Vector128<ulong> Ctr(Vector128<uint> j0, ReadOnlySpan<byte> input, Span<byte> output, Vector128<ulong> x, bool hashOutput)
        {
            if (output.Length < input.Length)
            {
                ThrowTooShort();
            }

            var h = _h;
            uint i = 2;
            ref var src = ref MemoryMarshal.GetReference(input);
            ref var dst = ref MemoryMarshal.GetReference(output);
            nuint offset = 0;
            var length = (nuint)input.Length;
            while (length - offset >= 64)
            {
                var k0 = _aes.EncryptVector(Counter(j0, i));
                var k1 = _aes.EncryptVector(Counter(j0, i + 1));
                var k2 = _aes.EncryptVector(Counter(j0, i + 2));
                var k3 = _aes.EncryptVector(Counter(j0, i + 3));
                i += 4;
                var c0 = Vector128.LoadUnsafe(ref src, offset) ^ k0;
                var c1 = Vector128.LoadUnsafe(ref src, offset + 16) ^ k1;
                var c2 = Vector128.LoadUnsafe(ref src, offset + 32) ^ k2;
                var c3 = Vector128.LoadUnsafe(ref src, offset + 48) ^ k3;
                c0.StoreUnsafe(ref dst, offset);
                c1.StoreUnsafe(ref dst, offset + 16);
                c2.StoreUnsafe(ref dst, offset + 32);
                c3.StoreUnsafe(ref dst, offset + 48);
                if (hashOutput)
                {
                    x = Ghash.Four(x, c0, c1, c2, c3, h);
                }

                offset += 64;
            }

            while (length - offset >= 16)
            {
                var c = Vector128.LoadUnsafe(ref src, offset) ^ _aes.EncryptVector(Counter(j0, i++));
                c.StoreUnsafe(ref dst, offset);
                if (hashOutput)
                {
                    x = Ghash.One(x, c, h[0]);
                }

                offset += 16;
            }

            if (offset < length)
            {
                // The last partial block in registers: no scratch buffer holds plaintext or keystream.
                var tail = input[(int)offset..];
                var c = (Ghash.LoadPartial(tail) ^ _aes.EncryptVector(Counter(j0, i))) & Ghash.PartialMask(tail.Length);
                Ghash.StorePartial(c, output.Slice((int)offset, tail.Length));
                if (hashOutput)
                {
                    x = Ghash.One(x, c, h[0]);
                }
            }

            return x;
        }

        [System.Diagnostics.CodeAnalysis.DoesNotReturn]
        private static void ThrowTooShort() => throw new ArgumentException("An output span is too short.");
    }
}

/// <summary>
/// GHASH (NIST SP 800-38D 6.4) with PCLMULQDQ, after Gueron and Kounavis, "Intel Carry-Less Multiplication
/// Instruction and its Usage for Computing the GCM Mode" (algorithms 1 and 5).
/// </summary>
/// <remarks>
/// Blocks and H are held byte-reflected (octet order reversed, <see cref="Reflect"/>); the carry-less product
/// of two such values is then the bit-reflected product shifted right by one, which the reduction shifts
/// back before folding by x^128 + x^7 + x^2 + x + 1. Products are linear until the reduction, so four
/// blocks multiplied by H⁴, H³, H², H are summed and reduced once.
/// </remarks>
internal static class Ghash
{
    /// <summary>Whether the instructions GHASH needs are present.</summary>
    internal static bool IsSupported => Pclmulqdq.IsSupported && Ssse3.IsSupported && Sse2.IsSupported;

    /// <summary>Reverses the order of the 16 octets.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector128<ulong> Reflect(Vector128<byte> block) =>
        Ssse3.Shuffle(block, Vector128.Create((byte)15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)).AsUInt64();

    /// <summary>a · b in GF(2^128), both byte-reflected.</summary>
    internal static Vector128<ulong> Multiply(Vector128<ulong> a, Vector128<ulong> b)
    {
        var lo = Vector128<ulong>.Zero;
        var mid = Vector128<ulong>.Zero;
        var hi = Vector128<ulong>.Zero;
        MultiplyAdd(a, b, ref lo, ref mid, ref hi);
        return Reduce(lo, mid, hi);
    }

    /// <summary>X ← (X ⊕ block) · H for one block in natural octet order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector128<ulong> One(Vector128<ulong> x, Vector128<byte> block, Vector128<ulong> h) =>
        Multiply(x ^ Reflect(block), h);

    /// <summary>X ← (((X ⊕ b0) · H ⊕ b1) · H ⊕ b2) · H ⊕ b3) · H, as one sum of products by H⁴..H and one reduction.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector128<ulong> Four(Vector128<ulong> x, Vector128<byte> b0, Vector128<byte> b1, Vector128<byte> b2, Vector128<byte> b3, Vector128<ulong>[] h)
    {
        var lo = Vector128<ulong>.Zero;
        var mid = Vector128<ulong>.Zero;
        var hi = Vector128<ulong>.Zero;
        MultiplyAdd(x ^ Reflect(b0), h[3], ref lo, ref mid, ref hi);
        MultiplyAdd(Reflect(b1), h[2], ref lo, ref mid, ref hi);
        MultiplyAdd(Reflect(b2), h[1], ref lo, ref mid, ref hi);
        MultiplyAdd(Reflect(b3), h[0], ref lo, ref mid, ref hi);
        return Reduce(lo, mid, hi);
    }

    /// <summary>Folds <paramref name="data"/> into X, the last partial block padded with zeros.</summary>
    internal static Vector128<ulong> Update(Vector128<ulong> x, ReadOnlySpan<byte> data, Vector128<ulong>[] h)
    {
        ref var src = ref MemoryMarshal.GetReference(data);
        nuint offset = 0;
        var length = (nuint)data.Length;
        while (length - offset >= 64)
        {
            x = Four(
                x,
                Vector128.LoadUnsafe(ref src, offset),
                Vector128.LoadUnsafe(ref src, offset + 16),
                Vector128.LoadUnsafe(ref src, offset + 32),
                Vector128.LoadUnsafe(ref src, offset + 48),
                h);
            offset += 64;
        }

        while (length - offset >= 16)
        {
            x = One(x, Vector128.LoadUnsafe(ref src, offset), h[0]);
            offset += 16;
        }

        if (offset < length)
        {
            x = One(x, LoadPartial(data[(int)offset..]), h[0]);
        }

        return x;
    }

    /// <summary>1..15 octets as a block padded with zeros, built in registers.</summary>
    internal static Vector128<byte> LoadPartial(ReadOnlySpan<byte> tail)
    {
        ulong lo = 0;
        ulong hi = 0;
        var i = tail.Length;
        while (i > 8)
        {
            hi = (hi << 8) | tail[--i];
        }

        while (i > 0)
        {
            lo = (lo << 8) | tail[--i];
        }

        return Vector128.Create(lo, hi).AsByte();
    }

    /// <summary>Ones in the first <paramref name="length"/> (1..15) octets, zeros after.</summary>
    internal static Vector128<byte> PartialMask(int length) =>
        Vector128.Create(
            length >= 8 ? ulong.MaxValue : (1UL << (8 * length)) - 1,
            length > 8 ? (1UL << (8 * (length - 8))) - 1 : 0).AsByte();

    /// <summary>Writes the first destination.Length (1..15) octets of <paramref name="block"/>.</summary>
    internal static void StorePartial(Vector128<byte> block, Span<byte> destination)
    {
        var lo = block.AsUInt64().GetElement(0);
        var hi = block.AsUInt64().GetElement(1);
        for (var i = 0; i < destination.Length; i++)
        {
            destination[i] = (byte)(i < 8 ? lo >> (8 * i) : hi >> (8 * (i - 8)));
        }
    }

    /// <summary>Folds the length block [len(A)]64 ‖ [len(C)]64 (in bits) into X.</summary>
    internal static Vector128<ulong> Lengths(Vector128<ulong> x, int adLength, int textLength, Vector128<ulong> h) =>
        Multiply(x ^ Vector128.Create((ulong)textLength * 8, (ulong)adLength * 8), h);

    // (lo, mid, hi) += a · b unreduced: lo = a0·b0, hi = a1·b1, mid = a0·b1 ⊕ a1·b0.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void MultiplyAdd(Vector128<ulong> a, Vector128<ulong> b, ref Vector128<ulong> lo, ref Vector128<ulong> mid, ref Vector128<ulong> hi)
    {
        lo ^= Pclmulqdq.CarrylessMultiply(a, b, 0x00);
        hi ^= Pclmulqdq.CarrylessMultiply(a, b, 0x11);
        mid ^= Pclmulqdq.CarrylessMultiply(a, b, 0x01) ^ Pclmulqdq.CarrylessMultiply(a, b, 0x10);
    }

    // The 256-bit product hi:lo (with mid across the middle) shifted left by one and reduced modulo
    // x^128 + x^7 + x^2 + x + 1 in the reflected representation (algorithm 5 of the Intel paper).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<ulong> Reduce(Vector128<ulong> lo, Vector128<ulong> mid, Vector128<ulong> hi)
    {
        var low = (lo ^ Sse2.ShiftLeftLogical128BitLane(mid, 8)).AsUInt32();
        var high = (hi ^ Sse2.ShiftRightLogical128BitLane(mid, 8)).AsUInt32();

        // Shift the 256-bit high:low left by one bit.
        var carryLow = Sse2.ShiftRightLogical(low, 31);
        var carryHigh = Sse2.ShiftRightLogical(high, 31);
        low = Sse2.ShiftLeftLogical(low, 1);
        high = Sse2.ShiftLeftLogical(high, 1);
        var across = Sse2.ShiftRightLogical128BitLane(carryLow, 12);
        carryHigh = Sse2.ShiftLeftLogical128BitLane(carryHigh, 4);
        carryLow = Sse2.ShiftLeftLogical128BitLane(carryLow, 4);
        low |= carryLow;
        high |= carryHigh | across;

        // First phase of the reduction.
        var t = Sse2.ShiftLeftLogical(low, 31) ^ Sse2.ShiftLeftLogical(low, 30) ^ Sse2.ShiftLeftLogical(low, 25);
        var t2 = Sse2.ShiftRightLogical128BitLane(t, 4);
        low ^= Sse2.ShiftLeftLogical128BitLane(t, 12);

        // Second phase.
        var u = Sse2.ShiftRightLogical(low, 1) ^ Sse2.ShiftRightLogical(low, 2) ^ Sse2.ShiftRightLogical(low, 7) ^ t2;
        low ^= u;
        return (high ^ low).AsUInt64();
    }
}
