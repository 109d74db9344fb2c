using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using System.Security.Cryptography;

namespace OpenBest.Crypto.Aead;

/// <summary>
/// AEAD_CHACHA20_POLY1305 (RFC 8439 section 2.8) with a 12-octet nonce and a 16-octet tag, in portable C#:
/// the Poly1305 key is the first 32 octets of ChaCha20 block 0, the payload is encrypted from block 1, and
/// the tag is Poly1305 over AD ‖ pad16 ‖ ciphertext ‖ pad16 ‖ len(AD) ‖ len(ciphertext).
/// </summary>
/// <remarks>
/// <para>
/// The platform's <c>ChaCha20Poly1305</c> calls into the system library (OpenSSL 3 on Linux) each time, for a fixed
/// cost several times that of sealing a short message here, and some platforms lack it altogether; this
/// implementation runs everywhere.
/// Cross-checked against RFC 8439 and the platform implementation in the tests.
/// </para>
/// <para>Decryption checks the tag before it decrypts: a message that fails never reaches the plaintext span.</para>
/// </remarks>
internal sealed class ChaCha20Poly1305Algorithm : AeadAlgorithm
{
    private const int Tag = 16;

    public override string Name => "ChaCha20-Poly1305";

    public override int KeySize => ChaCha20.KeySize;

    public override int NonceSize => ChaCha20.NonceSize;

    public override bool IsSupported => true;

    public override bool IsTagSizeSupported(int size) => size == Tag;

    private protected override AeadKey CreateKeyCore(ReadOnlySpan<byte> key) => new Key(this, key);

    private sealed class Key : AeadKey
    {
        // The 256-bit key as rows 1 and 2 of the ChaCha20 state, pinned; zeroed on dispose.
        private static readonly Vector128<uint>[] Disposed = new Vector128<uint>[2];
        private Vector128<uint>[] _key;
        private bool _disposed;

        public Key(AeadAlgorithm algorithm, ReadOnlySpan<byte> key)
            : base(algorithm)
        {
            _key = PinnedArrays<Vector128<uint>>.Rent(2);
            ChaCha20.LoadKey(key, _key);
        }

        // The key is kept as it came: no second copy for sealing at rest.
        internal override bool ExportsItself => true;

        internal override void ExportCore(Span<byte> destination)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            ChaCha20.StoreKey(_key, destination);
        }

        internal override void EncryptCore(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> plaintext, Span<byte> ciphertext, Span<byte> tag, ReadOnlySpan<byte> associatedData)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var key0 = _key[0];
            var key1 = _key[1];
            var row3 = ChaCha20.Row3(0, nonce);
            Span<byte> keystream = stackalloc byte[ChaCha20.PairSize];
            var poly = default(Poly1305);
            try
            {
                // Blocks 0 and 1: the one-time Poly1305 key, and the keystream for the first 64 octets.
                ChaCha20.Pair(key0, key1, row3, keystream);
                poly = new Poly1305(keystream[..Poly1305.KeySize]);
                poly.UpdatePadded(associatedData);
                var first = Math.Min(plaintext.Length, ChaCha20.BlockSize);
                ChaCha20.Xor(plaintext[..first], keystream.Slice(ChaCha20.BlockSize, first), ciphertext);
                if (plaintext.Length > first)
                {
                    ChaCha20.Xor(key0, key1, ChaCha20.WithCounter(row3, 2), plaintext[first..], ciphertext[first..], keystream);
                }

                poly.UpdatePadded(ciphertext);
                poly.UpdateLengths(associatedData.Length, ciphertext.Length);
                poly.Finish(tag);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(keystream);
                poly.Clear();
            }
        }

        internal override bool DecryptCore(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> ciphertext, ReadOnlySpan<byte> tag, Span<byte> plaintext, ReadOnlySpan<byte> associatedData)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var key0 = _key[0];
            var key1 = _key[1];
            var row3 = ChaCha20.Row3(0, nonce);
            Span<byte> keystream = stackalloc byte[ChaCha20.PairSize];
            Span<byte> expected = stackalloc byte[Tag];
            var poly = default(Poly1305);
            try
            {
                ChaCha20.Pair(key0, key1, row3, keystream);
                poly = new Poly1305(keystream[..Poly1305.KeySize]);
                poly.UpdatePadded(associatedData);
                poly.UpdatePadded(ciphertext);
                poly.UpdateLengths(associatedData.Length, ciphertext.Length);
                poly.Finish(expected);
                if (!CryptographicOperations.FixedTimeEquals(expected, tag))
                {
                    return false;
                }

                var first = Math.Min(ciphertext.Length, ChaCha20.BlockSize);
                ChaCha20.Xor(ciphertext[..first], keystream.Slice(ChaCha20.BlockSize, first), plaintext);
                if (ciphertext.Length > first)
                {
                    ChaCha20.Xor(key0, key1, ChaCha20.WithCounter(row3, 2), ciphertext[first..], plaintext[first..], keystream);
                }

                return true;
            }
            finally
            {
                CryptographicOperations.ZeroMemory(keystream);
                CryptographicOperations.ZeroMemory(expected);
                poly.Clear();
            }
        }

        protected override void Dispose(bool disposing)
        {
            _disposed = true;
            var key = _key;
            _key = Disposed; // a late call never reaches the recycled array of another key
            PinnedArrays<Vector128<uint>>.Return(key);
        }
    }
}

/// <summary>
/// The ChaCha20 stream cipher of RFC 8439 section 2.4 (32-bit block counter, 96-bit nonce), two blocks at a
/// time: each row of the 4×4 state is one vector, and the diagonal round rotates rows 1–3 into columns. On
/// <see cref="Vector128{T}"/> the two blocks' instruction streams are interleaved so that they overlap; with
/// AVX2 each row holds both blocks, one per 128-bit lane.
/// </summary>
/// <remarks>
/// <para>
/// Only additions, XORs and rotations of 32-bit words: no branch and no table lookup on the key or the data.
/// The two blocks' dependency chains bound the time, so the rotations are kept short: by 16 and 8 bits one byte
/// shuffle, by 12 and 7 bits AVX-512's VPROLD where the processor has it (two shifts and an OR elsewhere).
/// </para>
/// <para>Assumes a little-endian platform, as every platform .NET runs on is.</para>
/// </remarks>
internal static class ChaCha20
{
    /// <summary>The key size in octets.</summary>
    internal const int KeySize = 32;

    /// <summary>The nonce size in octets.</summary>
    internal const int NonceSize = 12;

    /// <summary>The block size in octets.</summary>
    internal const int BlockSize = 64;

    /// <summary>The octets <see cref="Pair"/> writes.</summary>
    internal const int PairSize = 2 * BlockSize;

    /// <summary>Loads a 32-octet key into state rows 1 and 2.</summary>
    internal static void LoadKey(ReadOnlySpan<byte> key, Span<Vector128<uint>> rows)
    {
        rows[0] = Vector128.Create(key[..16]).AsUInt32();
        rows[1] = Vector128.Create(key.Slice(16, 16)).AsUInt32();
    }

    /// <summary>Writes state rows 1 and 2 back out as the 32-octet key.</summary>
    internal static void StoreKey(ReadOnlySpan<Vector128<uint>> rows, Span<byte> key)
    {
        rows[0].AsByte().CopyTo(key);
        rows[1].AsByte().CopyTo(key[16..]);
    }

    /// <summary>State row 3: the block counter and the three nonce words.</summary>
    internal static Vector128<uint> Row3(uint counter, ReadOnlySpan<byte> nonce) =>
        Vector128.Create(
            counter,
            BinaryPrimitives.ReadUInt32LittleEndian(nonce),
            BinaryPrimitives.ReadUInt32LittleEndian(nonce[4..]),
            BinaryPrimitives.ReadUInt32LittleEndian(nonce[8..]));

    /// <summary>Row 3 with its block counter replaced.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector128<uint> WithCounter(Vector128<uint> row3, uint counter) => row3.WithElement(0, counter);

    /// <summary>The ChaCha20 block function (RFC 8439 section 2.3): 64 octets of keystream for one counter.</summary>
    internal static void Block(ReadOnlySpan<byte> key, uint counter, ReadOnlySpan<byte> nonce, Span<byte> output)
    {
        Span<Vector128<uint>> rows = stackalloc Vector128<uint>[2];
        Span<byte> pair = stackalloc byte[PairSize];
        LoadKey(key, rows);
        Pair(rows[0], rows[1], Row3(counter, nonce), pair);
        pair[..BlockSize].CopyTo(output);
        CryptographicOperations.ZeroMemory(pair);
        CryptographicOperations.ZeroMemory(MemoryMarshal.AsBytes(rows));
    }

    /// <summary>ChaCha20 encryption (RFC 8439 section 2.4): output = input ⊕ the keystream from block <paramref name="counter"/>.</summary>
    internal static void Xor(ReadOnlySpan<byte> key, uint counter, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> input, Span<byte> output)
    {
        Span<Vector128<uint>> rows = stackalloc Vector128<uint>[2];
        Span<byte> scratch = stackalloc byte[PairSize];
        LoadKey(key, rows);
        Xor(rows[0], rows[1], Row3(counter, nonce), input, output, scratch);
        CryptographicOperations.ZeroMemory(scratch);
        CryptographicOperations.ZeroMemory(MemoryMarshal.AsBytes(rows));
    }

    /// <summary>
    /// output = input ⊕ the keystream from the counter in <paramref name="row3"/>, two blocks at a time through
    /// <paramref name="scratch"/> (128 octets, left holding keystream: the caller zeroes it).
    /// </summary>
    internal static void Xor(Vector128<uint> key0, Vector128<uint> key1, Vector128<uint> row3, ReadOnlySpan<byte> input, Span<byte> output, Span<byte> scratch)
    {
        while (!input.IsEmpty)
        {
            Pair(key0, key1, row3, scratch);
            var n = Math.Min(input.Length, PairSize);
            Xor(input[..n], scratch[..n], output);
            input = input[n..];
            output = output[n..];
            row3 += Vector128.Create(2u, 0, 0, 0);
        }
    }

    /// <summary>output = input ⊕ keystream over input's length.</summary>
    internal static void Xor(ReadOnlySpan<byte> input, ReadOnlySpan<byte> keystream, Span<byte> output)
    {
        ref var src = ref MemoryMarshal.GetReference(input);
        ref var ks = ref MemoryMarshal.GetReference(keystream);
        ref var dst = ref MemoryMarshal.GetReference(output);
        if (keystream.Length < input.Length || output.Length < input.Length)
        {
            ThrowTooShort();
        }

        nuint offset = 0;
        var length = (nuint)input.Length;
        while (length - offset >= 16)
        {
            (Vector128.LoadUnsafe(ref src, offset) ^ Vector128.LoadUnsafe(ref ks, offset)).StoreUnsafe(ref dst, offset);
            offset += 16;
        }

        for (; offset < length; offset++)
        {
            Unsafe.Add(ref dst, offset) = (byte)(Unsafe.Add(ref src, offset) ^ Unsafe.Add(ref ks, offset));
        }
    }

    /// <summary>Writes two blocks of keystream, for the counter in <paramref name="row3"/> and the next, into 128 octets.</summary>
    internal static void Pair(Vector128<uint> key0, Vector128<uint> key1, Vector128<uint> row3, Span<byte> output)
    {
        if (output.Length < PairSize)
        {
            ThrowTooShort();
        }

        if (Avx2.IsSupported)
        {
            Pair256(key0, key1, row3, output);
            return;
        }

        // "expand 32-byte k"
        var sigma = Vector128.Create(0x61707865u, 0x3320646eu, 0x79622d32u, 0x6b206574u);
        var row3Next = row3 + Vector128.Create(1u, 0, 0, 0);
        var a0 = sigma;
        var b0 = key0;
        var c0 = key1;
        var d0 = row3;
        var a1 = sigma;
        var b1 = key0;
        var c1 = key1;
        var d1 = row3Next;
        for (var i = 0; i < 10; i++)
        {
            // Column round: the quarter round on each column, all four at once.
            a0 += b0; a1 += b1; d0 = Rotate16(d0 ^ a0); d1 = Rotate16(d1 ^ a1);
            c0 += d0; c1 += d1; b0 = Rotate(b0 ^ c0, 12); b1 = Rotate(b1 ^ c1, 12);
            a0 += b0; a1 += b1; d0 = Rotate8(d0 ^ a0); d1 = Rotate8(d1 ^ a1);
            c0 += d0; c1 += d1; b0 = Rotate(b0 ^ c0, 7); b1 = Rotate(b1 ^ c1, 7);

            // Diagonal round: rotate rows 1, 2, 3 left by 1, 2, 3 words so the diagonals become columns.
            b0 = Vector128.Shuffle(b0, Vector128.Create(1u, 2u, 3u, 0u));
            c0 = Vector128.Shuffle(c0, Vector128.Create(2u, 3u, 0u, 1u));
            d0 = Vector128.Shuffle(d0, Vector128.Create(3u, 0u, 1u, 2u));
            b1 = Vector128.Shuffle(b1, Vector128.Create(1u, 2u, 3u, 0u));
            c1 = Vector128.Shuffle(c1, Vector128.Create(2u, 3u, 0u, 1u));
            d1 = Vector128.Shuffle(d1, Vector128.Create(3u, 0u, 1u, 2u));
            a0 += b0; a1 += b1; d0 = Rotate16(d0 ^ a0); d1 = Rotate16(d1 ^ a1);
            c0 += d0; c1 += d1; b0 = Rotate(b0 ^ c0, 12); b1 = Rotate(b1 ^ c1, 12);
            a0 += b0; a1 += b1; d0 = Rotate8(d0 ^ a0); d1 = Rotate8(d1 ^ a1);
            c0 += d0; c1 += d1; b0 = Rotate(b0 ^ c0, 7); b1 = Rotate(b1 ^ c1, 7);
            b0 = Vector128.Shuffle(b0, Vector128.Create(3u, 0u, 1u, 2u));
            c0 = Vector128.Shuffle(c0, Vector128.Create(2u, 3u, 0u, 1u));
            d0 = Vector128.Shuffle(d0, Vector128.Create(1u, 2u, 3u, 0u));
            b1 = Vector128.Shuffle(b1, Vector128.Create(3u, 0u, 1u, 2u));
            c1 = Vector128.Shuffle(c1, Vector128.Create(2u, 3u, 0u, 1u));
            d1 = Vector128.Shuffle(d1, Vector128.Create(1u, 2u, 3u, 0u));
        }

        ref var dst = ref MemoryMarshal.GetReference(output);
        (a0 + sigma).AsByte().StoreUnsafe(ref dst, 0);
        (b0 + key0).AsByte().StoreUnsafe(ref dst, 16);
        (c0 + key1).AsByte().StoreUnsafe(ref dst, 32);
        (d0 + row3).AsByte().StoreUnsafe(ref dst, 48);
        (a1 + sigma).AsByte().StoreUnsafe(ref dst, 64);
        (b1 + key0).AsByte().StoreUnsafe(ref dst, 80);
        (c1 + key1).AsByte().StoreUnsafe(ref dst, 96);
        (d1 + row3Next).AsByte().StoreUnsafe(ref dst, 112);
    }

    // With AVX2, the two blocks side by side in the two 128-bit lanes of each row: half the instructions of the
    // Vector128 path for the same dependency chain (VPSHUFB and VPSHUFD work within each lane).
    private static void Pair256(Vector128<uint> key0, Vector128<uint> key1, Vector128<uint> row3, Span<byte> output)
    {
        var sigma = Vector256.Create(0x61707865u, 0x3320646eu, 0x79622d32u, 0x6b206574u, 0x61707865u, 0x3320646eu, 0x79622d32u, 0x6b206574u);
        var k0 = Vector256.Create(key0, key0);
        var k1 = Vector256.Create(key1, key1);
        var r3 = Vector256.Create(row3, row3 + Vector128.Create(1u, 0, 0, 0));
        var rot16 = Vector256.Create((byte)2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
        var rot8 = Vector256.Create((byte)3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14, 3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14);
        var a = sigma;
        var b = k0;
        var c = k1;
        var d = r3;
        for (var i = 0; i < 10; i++)
        {
            a += b; d = Avx2.Shuffle((d ^ a).AsByte(), rot16).AsUInt32();
            c += d; b = Rotate(b ^ c, 12);
            a += b; d = Avx2.Shuffle((d ^ a).AsByte(), rot8).AsUInt32();
            c += d; b = Rotate(b ^ c, 7);

            // Words (1, 2, 3, 0), (2, 3, 0, 1), (3, 0, 1, 2) in each lane: the diagonals become columns.
            b = Avx2.Shuffle(b, 0x39);
            c = Avx2.Shuffle(c, 0x4E);
            d = Avx2.Shuffle(d, 0x93);
            a += b; d = Avx2.Shuffle((d ^ a).AsByte(), rot16).AsUInt32();
            c += d; b = Rotate(b ^ c, 12);
            a += b; d = Avx2.Shuffle((d ^ a).AsByte(), rot8).AsUInt32();
            c += d; b = Rotate(b ^ c, 7);
            b = Avx2.Shuffle(b, 0x93);
            c = Avx2.Shuffle(c, 0x4E);
            d = Avx2.Shuffle(d, 0x39);
        }

        a += sigma;
        b += k0;
        c += k1;
        d += r3;
        ref var dst = ref MemoryMarshal.GetReference(output);
        a.GetLower().AsByte().StoreUnsafe(ref dst, 0);
        b.GetLower().AsByte().StoreUnsafe(ref dst, 16);
        c.GetLower().AsByte().StoreUnsafe(ref dst, 32);
        d.GetLower().AsByte().StoreUnsafe(ref dst, 48);
        a.GetUpper().AsByte().StoreUnsafe(ref dst, 64);
        b.GetUpper().AsByte().StoreUnsafe(ref dst, 80);
        c.GetUpper().AsByte().StoreUnsafe(ref dst, 96);
        d.GetUpper().AsByte().StoreUnsafe(ref dst, 112);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<uint> Rotate(Vector256<uint> x, [ConstantExpected(Min = 1, Max = 31)] byte n) =>
        Avx512F.VL.IsSupported ? Avx512F.VL.RotateLeft(x, n) : (x << n) | (x >>> (32 - n));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<uint> Rotate(Vector128<uint> x, [ConstantExpected(Min = 1, Max = 31)] byte n) =>
        Avx512F.VL.IsSupported ? Avx512F.VL.RotateLeft(x, n) : (x << n) | (x >>> (32 - n));

    // Rotations by 16 and 8 bits move whole octets: one byte shuffle.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<uint> Rotate16(Vector128<uint> x) =>
        Vector128.Shuffle(x.AsByte(), Vector128.Create((byte)2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13)).AsUInt32();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<uint> Rotate8(Vector128<uint> x) =>
        Vector128.Shuffle(x.AsByte(), Vector128.Create((byte)3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14)).AsUInt32();

    [DoesNotReturn]
    private static void ThrowTooShort() => throw new ArgumentException("A span is too short for the keystream.");
}

/// <summary>
/// The Poly1305 one-time authenticator (RFC 8439 section 2.5) in radix 2^64: the accumulator h in two 64-bit
/// limbs and a small third, r clamped, and s.
/// </summary>
/// <remarks>
/// <para>
/// Because the clamp leaves r1 a multiple of 4, h1·r1·2^128 ≡ h1·(r1 + r1/4) (mod 2^130 − 5), so each block costs
/// four 64×64 → 128 multiplications and two small ones; after each block h is reduced only partially (the bits
/// above 2^130 folded back times 5, h2 ≤ 4). The final reduction subtracts p = 2^130 − 5 once, by mask.
/// </para>
/// <para>Constant time: carries are computed with bit operations, never with comparisons or branches.</para>
/// </remarks>
internal struct Poly1305
{
    /// <summary>The one-time key size in octets (r ‖ s).</summary>
    internal const int KeySize = 32;

    /// <summary>The tag size in octets.</summary>
    internal const int TagSize = 16;

    private ulong _r0;
    private ulong _r1;
    private ulong _s1; // r1 + r1 / 4
    private ulong _pad0;
    private ulong _pad1;
    private ulong _h0;
    private ulong _h1;
    private ulong _h2;

    /// <summary>Starts an authenticator with the 32-octet one-time key r ‖ s.</summary>
    internal Poly1305(ReadOnlySpan<byte> key)
    {
        _r0 = BinaryPrimitives.ReadUInt64LittleEndian(key) & 0x0ffffffc0fffffffUL;
        _r1 = BinaryPrimitives.ReadUInt64LittleEndian(key[8..]) & 0x0ffffffc0ffffffcUL;
        _s1 = _r1 + (_r1 >> 2);
        _pad0 = BinaryPrimitives.ReadUInt64LittleEndian(key[16..]);
        _pad1 = BinaryPrimitives.ReadUInt64LittleEndian(key[24..]);
    }

    /// <summary>The whole MAC of <paramref name="message"/> under <paramref name="key"/> (RFC 8439 section 2.5).</summary>
    internal static void Mac(ReadOnlySpan<byte> key, ReadOnlySpan<byte> message, Span<byte> tag)
    {
        var poly = new Poly1305(key);
        var whole = message.Length & ~15;
        poly.Blocks(message[..whole]);
        if (whole < message.Length)
        {
            // The last partial block gets a 1 octet after it instead of the 2^128 bit.
            var tail = message[whole..];
            LoadPartial(tail, out var m0, out var m1);
            if (tail.Length < 8)
            {
                m0 |= 1UL << (8 * tail.Length);
            }
            else
            {
                m1 |= 1UL << (8 * (tail.Length - 8));
            }

            poly.Block(m0, m1, 0);
        }

        poly.Finish(tag);
        poly.Clear();
    }

    /// <summary>Authenticates <paramref name="data"/> zero-padded to a multiple of 16 octets (RFC 8439 section 2.8).</summary>
    internal void UpdatePadded(ReadOnlySpan<byte> data)
    {
        var whole = data.Length & ~15;
        Blocks(data[..whole]);
        if (whole < data.Length)
        {
            LoadPartial(data[whole..], out var m0, out var m1);
            Block(m0, m1, 1);
        }
    }

    /// <summary>Authenticates the closing block of the AEAD: the two lengths as 64-bit little-endian numbers.</summary>
    internal void UpdateLengths(int adLength, int textLength) => Block((ulong)adLength, (ulong)textLength, 1);

    /// <summary>Authenticates whole 16-octet blocks.</summary>
    internal void Blocks(ReadOnlySpan<byte> data)
    {
        ref var src = ref MemoryMarshal.GetReference(data);
        nuint offset = 0;
        var length = (nuint)(data.Length & ~15);
        for (; offset < length; offset += 16)
        {
            Block(
                Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref src, offset)),
                Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref src, offset + 8)),
                1);
        }
    }

    /// <summary>Writes the tag: (h mod p + s) mod 2^128.</summary>
    internal readonly void Finish(Span<byte> tag)
    {
        // g = h + 5 − 2^130; take g when h + 5 reaches 2^130 (h ≥ p), else h. h < 2p, so once is enough.
        ulong carry = 0;
        var g0 = Add(_h0, 5, ref carry);
        var g1 = Add(_h1, 0, ref carry);
        var g2 = _h2 + carry;
        var mask = 0UL - (g2 >> 2);
        var h0 = (_h0 & ~mask) | (g0 & mask);
        var h1 = (_h1 & ~mask) | (g1 & mask);

        carry = 0;
        h0 = Add(h0, _pad0, ref carry);
        h1 = Add(h1, _pad1, ref carry);
        BinaryPrimitives.WriteUInt64LittleEndian(tag, h0);
        BinaryPrimitives.WriteUInt64LittleEndian(tag[8..], h1);
    }

    /// <summary>Zeroes the key and the accumulator.</summary>
    internal void Clear() => this = default;

    // h = (h + m + hibit·2^128) · r, partially reduced mod 2^130 − 5.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private void Block(ulong m0, ulong m1, ulong hibit)
    {
        ulong carry = 0;
        var h0 = Add(_h0, m0, ref carry);
        var h1 = Add(_h1, m1, ref carry);
        var h2 = _h2 + hibit + carry; // ≤ 6

        // d0 = h0·r0 + h1·s1, d1 = h0·r1 + h1·r0 + h2·s1, d2 = h2·r0 (h0, h1 < 2^64; r0, r1 < 2^60; s1 < 2^61).
        var d0Hi = Math.BigMul(h0, _r0, out var d0Lo);
        var tHi = Math.BigMul(h1, _s1, out var tLo);
        carry = 0;
        d0Lo = Add(d0Lo, tLo, ref carry);
        d0Hi += tHi + carry;

        var d1Hi = Math.BigMul(h0, _r1, out var d1Lo);
        tHi = Math.BigMul(h1, _r0, out tLo);
        carry = 0;
        d1Lo = Add(d1Lo, tLo, ref carry);
        d1Hi += tHi + carry;
        carry = 0;
        d1Lo = Add(d1Lo, h2 * _s1, ref carry);
        d1Hi += carry;
        carry = 0;
        d1Lo = Add(d1Lo, d0Hi, ref carry);
        d1Hi += carry;

        var d2 = (h2 * _r0) + d1Hi; // < 2^63 + 2^62

        // Fold the bits from 2^130 up back in times 5: c = 4·(d2 >> 2) + (d2 >> 2).
        var c = (d2 & ~3UL) + (d2 >> 2);
        carry = 0;
        _h0 = Add(d0Lo, c, ref carry);
        _h1 = Add(d1Lo, 0, ref carry);
        _h2 = (d2 & 3) + carry;
    }

    // 1..15 octets as a zero-padded little-endian block, in registers rather than in a scratch buffer to be wiped.
    private static void LoadPartial(ReadOnlySpan<byte> tail, out ulong m0, out ulong m1)
    {
        m0 = 0;
        m1 = 0;
        var i = tail.Length;
        while (i > 8)
        {
            m1 = (m1 << 8) | tail[--i];
        }

        while (i > 0)
        {
            m0 = (m0 << 8) | tail[--i];
        }
    }

    // a + b + carry, with carry set to the carry out (Hacker's Delight 2-16), without a comparison.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Add(ulong a, ulong b, ref ulong carry)
    {
        var sum = a + b + carry;
        carry = ((a & b) | ((a | b) & ~sum)) >> 63;
        return sum;
    }
}
