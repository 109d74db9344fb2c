using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using System.Security.Cryptography;
using X86Aes = System.Runtime.Intrinsics.X86.Aes;

namespace OpenBest.Crypto;

/// <summary>
/// The AES-128 block cipher (FIPS 197), forward direction only, for one 16-octet block at a time.
/// </summary>
/// <remarks>
/// <para>
/// MILENAGE (TS 35.206) calls the block cipher five or six times per run and AES-CCM (NIST SP 800-38C)
/// runs it in CBC-MAC and CTR modes, so a cheap single-block call with no allocation is what the hot
/// paths need. On x86 with AES-NI the key schedule is expanded once and each block costs eleven
/// instructions; elsewhere the class falls back to the platform's AES in ECB mode (correct, slower,
/// and allocating).
/// </para>
/// <para>The round keys live in pinned memory and are zeroed by <see cref="Dispose"/>.</para>
/// </remarks>
public sealed class Aes128 : IDisposable
{
    /// <summary>The block size in octets.</summary>
    public const int BlockSize = 16;

    /// <summary>The key size in octets.</summary>
    public const int KeySize = 16;

    private const int RoundKeyCount = 11;

    // After disposal: a schedule of zeros, so a late call never reaches the recycled array of another key.
    private static readonly Vector128<byte>[] Disposed = new Vector128<byte>[RoundKeyCount];

    // AES-NI path: 11 expanded round keys in pinned memory (recycled: PinnedArrays).
    private Vector128<byte>[]? _roundKeys;

    // Portable path: the platform cipher with the raw key.
    private readonly System.Security.Cryptography.Aes? _fallback;

    private bool _disposed;

    /// <summary>Whether this process runs the hardware (AES-NI) path.</summary>
    public static bool IsHardwareAccelerated => X86Aes.IsSupported && Sse2.IsSupported;

    /// <summary>Expands <paramref name="key"/> (16 octets) into a ready cipher.</summary>
    /// <exception cref="ArgumentException"><paramref name="key"/> is not 16 octets long.</exception>
    public Aes128(ReadOnlySpan<byte> key)
    {
        if (key.Length != KeySize)
        {
            throw new ArgumentException($"An AES-128 key is {KeySize} octets, not {key.Length}.", nameof(key));
        }

        if (IsHardwareAccelerated)
        {
            _roundKeys = PinnedArrays<Vector128<byte>>.Rent(RoundKeyCount);
            ExpandKey(key, _roundKeys);
        }
        else
        {
            _fallback = System.Security.Cryptography.Aes.Create();
            _fallback.Key = key.ToArray();
        }
    }

    /// <summary>Copies the key (the first round key) into <paramref name="destination"/>: only to seal it at rest.</summary>
    /// <exception cref="ObjectDisposedException">The cipher was disposed.</exception>
    internal void ExportKey(Span<byte> destination)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_roundKeys is not null)
        {
            _roundKeys[0].CopyTo(destination);
            return;
        }

        var key = _fallback!.Key;
        key.CopyTo(destination);
        System.Security.Cryptography.CryptographicOperations.ZeroMemory(key);
    }

    /// <summary>Encrypts one block: <paramref name="output"/> = AES_K(<paramref name="input"/>). The spans may be the same.</summary>
    /// <exception cref="ArgumentException">A span is shorter than 16 octets.</exception>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void EncryptBlock(ReadOnlySpan<byte> input, Span<byte> output)
    {
        if (input.Length < BlockSize || output.Length < BlockSize)
        {
            ThrowBlockTooShort();
        }

        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_roundKeys is not null)
        {
            var block = Vector128.LoadUnsafe(ref MemoryMarshal.GetReference(input));
            block = EncryptVector(block);
            block.StoreUnsafe(ref MemoryMarshal.GetReference(output));
        }
        else
        {
            _fallback!.EncryptEcb(input[..BlockSize], output[..BlockSize], PaddingMode.None);
        }
    }

    /// <summary>Encrypts one block held in a vector (hardware path only).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal Vector128<byte> EncryptVector(Vector128<byte> block)
    {
        var rk = _roundKeys!;
        block ^= rk[0];
        block = X86Aes.Encrypt(block, rk[1]);
        block = X86Aes.Encrypt(block, rk[2]);
        block = X86Aes.Encrypt(block, rk[3]);
        block = X86Aes.Encrypt(block, rk[4]);
        block = X86Aes.Encrypt(block, rk[5]);
        block = X86Aes.Encrypt(block, rk[6]);
        block = X86Aes.Encrypt(block, rk[7]);
        block = X86Aes.Encrypt(block, rk[8]);
        block = X86Aes.Encrypt(block, rk[9]);
        return X86Aes.EncryptLast(block, rk[10]);
    }

    /// <summary>Throws when the key schedule was zeroed.</summary>
    internal void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <summary>Whether <see cref="EncryptVector"/> may be called.</summary>
    internal bool HasVectorPath => _roundKeys is not null;

    /// <summary>Zeroes the key schedule. Safe to call more than once.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        if (_roundKeys is not null)
        {
            var schedule = _roundKeys;
            _roundKeys = Disposed;
            PinnedArrays<Vector128<byte>>.Return(schedule); // zeroed there
        }

        _fallback?.Dispose();
    }

    private static void ExpandKey(ReadOnlySpan<byte> key, Vector128<byte>[] rk)
    {
        // FIPS 197 section 5.2 with AESKEYGENASSIST; the round constants are 01 02 04 08 10 20 40 80 1b 36.
        var k = Vector128.Create(key);
        rk[0] = k;
        k = ExpandStep(k, X86Aes.KeygenAssist(k, 0x01)); rk[1] = k;
        k = ExpandStep(k, X86Aes.KeygenAssist(k, 0x02)); rk[2] = k;
        k = ExpandStep(k, X86Aes.KeygenAssist(k, 0x04)); rk[3] = k;
        k = ExpandStep(k, X86Aes.KeygenAssist(k, 0x08)); rk[4] = k;
        k = ExpandStep(k, X86Aes.KeygenAssist(k, 0x10)); rk[5] = k;
        k = ExpandStep(k, X86Aes.KeygenAssist(k, 0x20)); rk[6] = k;
        k = ExpandStep(k, X86Aes.KeygenAssist(k, 0x40)); rk[7] = k;
        k = ExpandStep(k, X86Aes.KeygenAssist(k, 0x80)); rk[8] = k;
        k = ExpandStep(k, X86Aes.KeygenAssist(k, 0x1b)); rk[9] = k;
        k = ExpandStep(k, X86Aes.KeygenAssist(k, 0x36)); rk[10] = k;
    }

    private static Vector128<byte> ExpandStep(Vector128<byte> key, Vector128<byte> assist)
    {
        // Broadcast RotWord(SubWord(w3)) ^ Rcon, then fold the previous words in (w_i = w_{i-4} ^ w_{i-1}).
        assist = Sse2.Shuffle(assist.AsUInt32(), 0xFF).AsByte();
        key ^= Sse2.ShiftLeftLogical128BitLane(key, 4);
        key ^= Sse2.ShiftLeftLogical128BitLane(key, 4);
        key ^= Sse2.ShiftLeftLogical128BitLane(key, 4);
        return key ^ assist;
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void ThrowBlockTooShort() =>
        throw new ArgumentException($"AES works on {BlockSize}-octet blocks; a span was shorter.");
}
