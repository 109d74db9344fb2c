using System.Buffers;
using System.Buffers.Binary;

namespace OpenBest.Protocol;

/// <summary>The result of reading a frame from a stream bearer.</summary>
public enum FrameStatus
{
    /// <summary>A whole message was read.</summary>
    Ok,

    /// <summary>More octets are needed; nothing was consumed.</summary>
    NeedMoreData,

    /// <summary>A zero length prefix: a protocol error that closes the connection.</summary>
    Invalid,
}

/// <summary>
/// Stream-bearer framing (profile section 1): every message is preceded by its length as 2 octets
/// big-endian, 1..65535. Only the EMSDP message is hashed or MACed, never the prefix.
/// </summary>
public static class StreamFraming
{
    /// <summary>The largest message a stream frame carries.</summary>
    public const int MaxMessageLength = ushort.MaxValue;

    /// <summary>Writes the length prefix and the message; returns the octets written.</summary>
    /// <exception cref="ArgumentException">The message is empty, too long, or the destination too short.</exception>
    public static int Write(ReadOnlySpan<byte> message, Span<byte> destination)
    {
        if (message.IsEmpty || message.Length > MaxMessageLength)
        {
            throw new ArgumentException("A framed message has 1..65535 octets.", nameof(message));
        }

        if (destination.Length < message.Length + 2)
        {
            throw new ArgumentException("The destination is too short.", nameof(destination));
        }

        BinaryPrimitives.WriteUInt16BigEndian(destination, (ushort)message.Length);
        message.CopyTo(destination[2..]);
        return message.Length + 2;
    }

    /// <summary>
    /// Reads one frame from the front of <paramref name="buffer"/>: on <see cref="FrameStatus.Ok"/> the
    /// message is returned and <paramref name="buffer"/> advanced past it; otherwise nothing is consumed.
    /// The declared length is checked before anything is buffered.
    /// </summary>
    public static FrameStatus TryRead(ref ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> message)
    {
        message = default;
        if (buffer.Length < 2)
        {
            return FrameStatus.NeedMoreData;
        }

        Span<byte> prefix = stackalloc byte[2];
        buffer.Slice(0, 2).CopyTo(prefix);
        var length = BinaryPrimitives.ReadUInt16BigEndian(prefix);
        if (length == 0)
        {
            return FrameStatus.Invalid;
        }

        if (buffer.Length < 2 + length)
        {
            return FrameStatus.NeedMoreData;
        }

        message = buffer.Slice(2, length);
        buffer = buffer.Slice(2 + length);
        return FrameStatus.Ok;
    }
}
