using System.Buffers.Binary;
using System.Security.Cryptography;

namespace OpenBest.Crypto;

/// <summary>
/// The AES key wrap algorithm (RFC 3394, NIST SP 800-38F "KW") and AES key wrap with padding
/// (RFC 5649, "KWP") under a 128-, 192- or 256-bit key-encryption key (KEK).
/// </summary>
/// <remarks>
/// <para>
/// One instance holds one KEK (its schedule lives in the platform cipher) and can wrap and unwrap any
/// number of keys; it is not thread-safe. Every operation works in the caller's destination buffer and
/// allocates nothing per call.
/// </para>
/// <para>
/// Unwrapping never throws on bad wrapped data: it returns false for a wrong length, a wrong KEK or any
/// change to the wrapped octets, and then leaves the destination zeroed. The integrity check (the
/// 64-bit initial value of RFC 3394 2.2.3, or the alternative initial value, length and zero padding of
/// RFC 5649 3) is evaluated in full before the answer is given, with no early exit on the secret bytes.
/// </para>
/// </remarks>
public sealed class AesKeyWrap : IDisposable
{
    /// <summary>The size of a semiblock, the unit key wrap works in, in octets.</summary>
    public const int SemiblockSize = 8;

    /// <summary>The longest key data wrapped here (RFC 5649 allows up to 2^32 octets; this bound keeps lengths in an int).</summary>
    public const int MaxKeyDataLength = 1 << 30;

    // RFC 3394 2.2.3.1 default initial value and RFC 5649 3 alternative initial value prefix.
    private const ulong DefaultIv = 0xA6A6A6A6A6A6A6A6UL;
    private const uint AivPrefix = 0xA65959A6U;

    private readonly Aes _aes;
    private bool _disposed;

    /// <summary>Creates a key wrap instance under <paramref name="kek"/> (16, 24 or 32 octets).</summary>
    /// <exception cref="ArgumentException">The KEK is not an AES key length.</exception>
    public AesKeyWrap(ReadOnlySpan<byte> kek)
    {
        if (kek.Length is not (16 or 24 or 32))
        {
            throw new ArgumentException($"An AES key-encryption key is 16, 24 or 32 octets, not {kek.Length}.", nameof(kek));
        }

        _aes = Aes.Create();
        _aes.SetKey(kek);
    }

    /// <summary>The length of the RFC 3394 wrapping of <paramref name="keyDataLength"/> octets: one semiblock more.</summary>
    public static int WrappedLength(int keyDataLength) => keyDataLength + SemiblockSize;

    /// <summary>The length of the RFC 5649 wrapping of <paramref name="keyDataLength"/> octets: rounded up to semiblocks, plus one.</summary>
    public static int PaddedWrappedLength(int keyDataLength) => RoundUp(keyDataLength) + SemiblockSize;

    /// <summary>
    /// RFC 3394 2.2.1: wraps <paramref name="keyData"/> (a multiple of 8 octets, at least 16) into
    /// <paramref name="destination"/> and returns the number of octets written (key data length + 8).
    /// </summary>
    /// <exception cref="ArgumentException">The key data length is not allowed, the destination is too short, or the spans overlap.</exception>
    /// <exception cref="ObjectDisposedException">The instance was disposed.</exception>
    public int Wrap(ReadOnlySpan<byte> keyData, Span<byte> destination)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (keyData.Length < 2 * SemiblockSize || keyData.Length % SemiblockSize != 0 || keyData.Length > MaxKeyDataLength)
        {
            throw new ArgumentException($"RFC 3394 wraps two or more whole semiblocks (a multiple of 8 octets, at least 16), not {keyData.Length} octets.", nameof(keyData));
        }

        var length = WrappedLength(keyData.Length);
        CheckDestination(keyData, destination, length);
        keyData.CopyTo(destination[SemiblockSize..]);
        WrapInPlace(DefaultIv, destination[..length]);
        return length;
    }

    /// <summary>
    /// RFC 3394 2.2.2: unwraps <paramref name="wrapped"/> into <paramref name="destination"/>
    /// (at least <c>wrapped.Length - 8</c> octets) and checks the integrity value.
    /// </summary>
    /// <returns>
    /// True with the key data in <c>destination[..bytesWritten]</c>; false (destination zeroed, nothing
    /// written) if the wrapped data has a length key wrap cannot produce, the destination is too short,
    /// or the integrity check fails (another KEK, or altered data).
    /// </returns>
    /// <exception cref="ArgumentException">The spans overlap.</exception>
    /// <exception cref="ObjectDisposedException">The instance was disposed.</exception>
    public bool TryUnwrap(ReadOnlySpan<byte> wrapped, Span<byte> destination, out int bytesWritten)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        CheckOverlap(wrapped, destination);
        bytesWritten = 0;
        var n = wrapped.Length / SemiblockSize - 1;
        if (wrapped.Length % SemiblockSize != 0 || n < 2 || wrapped.Length > MaxKeyDataLength + SemiblockSize || destination.Length < n * SemiblockSize)
        {
            CryptographicOperations.ZeroMemory(destination);
            return false;
        }

        var plaintext = destination[..(n * SemiblockSize)];
        var a = UnwrapInto(wrapped, plaintext);
        Span<byte> check = stackalloc byte[SemiblockSize];
        Span<byte> expected = stackalloc byte[SemiblockSize];
        BinaryPrimitives.WriteUInt64BigEndian(check, a);
        BinaryPrimitives.WriteUInt64BigEndian(expected, DefaultIv);
        var ok = CryptographicOperations.FixedTimeEquals(check, expected);
        CryptographicOperations.ZeroMemory(check);
        if (!ok)
        {
            CryptographicOperations.ZeroMemory(plaintext);
            return false;
        }

        bytesWritten = plaintext.Length;
        return true;
    }

    /// <summary>
    /// RFC 5649 4.1: wraps <paramref name="keyData"/> (1 octet or more) with padding into
    /// <paramref name="destination"/> and returns the number of octets written
    /// (<see cref="PaddedWrappedLength"/>).
    /// </summary>
    /// <exception cref="ArgumentException">The key data is empty or too long, the destination is too short, or the spans overlap.</exception>
    /// <exception cref="ObjectDisposedException">The instance was disposed.</exception>
    public int WrapWithPadding(ReadOnlySpan<byte> keyData, Span<byte> destination)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (keyData.IsEmpty || keyData.Length > MaxKeyDataLength)
        {
            throw new ArgumentException($"RFC 5649 wraps 1 to {MaxKeyDataLength} octets here, not {keyData.Length}.", nameof(keyData));
        }

        var length = PaddedWrappedLength(keyData.Length);
        CheckDestination(keyData, destination, length);
        var output = destination[..length];

        // AIV = A65959A6 || MLI (32-bit big-endian octet count); P = key data || zero padding.
        var aiv = ((ulong)AivPrefix << 32) | (uint)keyData.Length;
        keyData.CopyTo(output[SemiblockSize..]);
        output[(SemiblockSize + keyData.Length)..].Clear();
        if (length == 2 * SemiblockSize)
        {
            // One semiblock of padded key data: C = AES(K, AIV || P) (RFC 5649 4.1 step 2, n = 1).
            BinaryPrimitives.WriteUInt64BigEndian(output, aiv);
            Span<byte> block = stackalloc byte[16];
            _aes.EncryptEcb(output, block, PaddingMode.None);
            block.CopyTo(output);
            CryptographicOperations.ZeroMemory(block);
        }
        else
        {
            WrapInPlace(aiv, output);
        }

        return length;
    }

    /// <summary>
    /// RFC 5649 4.2: unwraps <paramref name="wrapped"/> into <paramref name="destination"/> (at least
    /// <c>wrapped.Length - 8</c> octets; the padding is written there and then cleared) and checks the
    /// alternative initial value: its constant, the message length indicator and the zero padding.
    /// </summary>
    /// <returns>
    /// True with the key data in <c>destination[..bytesWritten]</c>; false (destination zeroed, nothing
    /// written) if the wrapped data has a length key wrap cannot produce, the destination is too short,
    /// or the integrity check fails (another KEK, or altered data).
    /// </returns>
    /// <exception cref="ArgumentException">The spans overlap.</exception>
    /// <exception cref="ObjectDisposedException">The instance was disposed.</exception>
    public bool TryUnwrapWithPadding(ReadOnlySpan<byte> wrapped, Span<byte> destination, out int bytesWritten)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        CheckOverlap(wrapped, destination);
        bytesWritten = 0;
        var n = wrapped.Length / SemiblockSize - 1;
        if (wrapped.Length % SemiblockSize != 0 || n < 1 || wrapped.Length > RoundUp(MaxKeyDataLength) + SemiblockSize || destination.Length < n * SemiblockSize)
        {
            CryptographicOperations.ZeroMemory(destination);
            return false;
        }

        var padded = destination[..(n * SemiblockSize)];
        ulong a;
        if (n == 1)
        {
            Span<byte> block = stackalloc byte[16];
            _aes.DecryptEcb(wrapped, block, PaddingMode.None);
            a = BinaryPrimitives.ReadUInt64BigEndian(block);
            block[SemiblockSize..].CopyTo(padded);
            CryptographicOperations.ZeroMemory(block);
        }
        else
        {
            a = UnwrapInto(wrapped, padded);
        }

        // All three checks of RFC 5649 3 are computed before the result is looked at.
        var prefixOk = (uint)(a >> 32) ^ AivPrefix;
        long mli = (uint)a;
        long upper = n * SemiblockSize;
        long lower = upper - SemiblockSize;

        // 8(n-1) < MLI <= 8n: both differences below are negative exactly when a bound is broken.
        var rangeBad = (((ulong)(lower - mli) >> 63) ^ 1UL) | ((ulong)(upper - mli) >> 63);

        // Every octet at index >= MLI of the last semiblock must be zero.
        var padding = 0;
        for (var p = (int)lower; p < upper; p++)
        {
            var isPadding = (int)((ulong)(mli - 1 - p) >> 63);
            padding |= padded[p] & -isPadding;
        }

        var bad = prefixOk | (uint)rangeBad | (uint)padding;
        if (bad != 0)
        {
            CryptographicOperations.ZeroMemory(padded);
            return false;
        }

        // Only a valid MLI is used as a length, and the padding (already zero) is cleared anyway.
        bytesWritten = (int)mli;
        padded[bytesWritten..].Clear();
        return true;
    }

    /// <summary>Releases the platform cipher and its key schedule. Safe to call more than once.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        _aes.Dispose();
    }

    private static int RoundUp(int length) => (int)(((long)length + SemiblockSize - 1) / SemiblockSize * SemiblockSize);

    private static void CheckDestination(ReadOnlySpan<byte> keyData, Span<byte> destination, int length)
    {
        if (destination.Length < length)
        {
            throw new ArgumentException($"The destination needs {length} octets, not {destination.Length}.", nameof(destination));
        }

        CheckOverlap(keyData, destination);
    }

    private static void CheckOverlap(ReadOnlySpan<byte> input, Span<byte> destination)
    {
        if (input.Overlaps(destination))
        {
            throw new ArgumentException("The input and the destination must not overlap.", nameof(destination));
        }
    }

    // RFC 3394 2.2.1 (index-based form): output[..8] receives A, output[8..] holds P on entry and R on exit.
    private void WrapInPlace(ulong iv, Span<byte> output)
    {
        var n = output.Length / SemiblockSize - 1;
        var a = iv;
        Span<byte> block = stackalloc byte[16];
        Span<byte> result = stackalloc byte[16];
        for (var j = 0; j <= 5; j++)
        {
            for (var i = 1; i <= n; i++)
            {
                var r = output.Slice(i * SemiblockSize, SemiblockSize);
                BinaryPrimitives.WriteUInt64BigEndian(block, a);
                r.CopyTo(block[SemiblockSize..]);
                _aes.EncryptEcb(block, result, PaddingMode.None);
                a = BinaryPrimitives.ReadUInt64BigEndian(result) ^ (ulong)((long)n * j + i);
                result[SemiblockSize..].CopyTo(r);
            }
        }

        BinaryPrimitives.WriteUInt64BigEndian(output, a);
        CryptographicOperations.ZeroMemory(block);
        CryptographicOperations.ZeroMemory(result);
    }

    // RFC 3394 2.2.2 (index-based form): plaintext receives R[1..n]; returns the recovered A.
    private ulong UnwrapInto(ReadOnlySpan<byte> wrapped, Span<byte> plaintext)
    {
        var n = plaintext.Length / SemiblockSize;
        var a = BinaryPrimitives.ReadUInt64BigEndian(wrapped);
        wrapped[SemiblockSize..].CopyTo(plaintext);
        Span<byte> block = stackalloc byte[16];
        Span<byte> result = stackalloc byte[16];
        for (var j = 5; j >= 0; j--)
        {
            for (var i = n; i >= 1; i--)
            {
                var r = plaintext.Slice((i - 1) * SemiblockSize, SemiblockSize);
                BinaryPrimitives.WriteUInt64BigEndian(block, a ^ (ulong)((long)n * j + i));
                r.CopyTo(block[SemiblockSize..]);
                _aes.DecryptEcb(block, result, PaddingMode.None);
                a = BinaryPrimitives.ReadUInt64BigEndian(result);
                result[SemiblockSize..].CopyTo(r);
            }
        }

        CryptographicOperations.ZeroMemory(block);
        CryptographicOperations.ZeroMemory(result);
        return a;
    }
}
