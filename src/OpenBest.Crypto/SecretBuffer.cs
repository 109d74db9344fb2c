using System.Security.Cryptography;

namespace OpenBest.Crypto;

/// <summary>
/// Fixed-size secret bytes in a pinned array (so the garbage collector never leaves copies behind)
/// that is zeroed when the buffer is disposed (and then recycled for the next secret: <see cref="PinnedArrays{T}"/>).
/// </summary>
/// <remarks>
/// The contents are reachable only as spans, never as a mutable public array. After
/// <see cref="Dispose"/> every access throws <see cref="ObjectDisposedException"/>.
/// </remarks>
public sealed class SecretBuffer : IDisposable
{
    private readonly int _length;
    private byte[] _bytes;
    private bool _disposed;

    /// <summary>Creates a zero-filled secret buffer of <paramref name="length"/> octets.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> is negative.</exception>
    public SecretBuffer(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        _length = length;
        _bytes = PinnedArrays<byte>.Rent(length);
    }

    /// <summary>Creates a secret buffer holding a copy of <paramref name="value"/>.</summary>
    public SecretBuffer(ReadOnlySpan<byte> value)
        : this(value.Length)
    {
        value.CopyTo(_bytes);
    }

    /// <summary>The number of octets held.</summary>
    public int Length => _length;

    /// <summary>The secret octets, read-only.</summary>
    /// <exception cref="ObjectDisposedException">The buffer was disposed.</exception>
    public ReadOnlySpan<byte> Span
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _bytes;
        }
    }

    /// <summary>The secret octets, writable, for code that fills the buffer in place.</summary>
    /// <exception cref="ObjectDisposedException">The buffer was disposed.</exception>
    public Span<byte> WritableSpan
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _bytes;
        }
    }

    /// <summary>Zeroes the octets. Safe to call more than once.</summary>
    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            var bytes = _bytes;
            _bytes = [];
            PinnedArrays<byte>.Return(bytes); // zeroed there, and kept for the next secret of this length
        }
    }

    /// <summary>Never shows the contents.</summary>
    public override string ToString() => $"SecretBuffer({_length} octets)";
}
