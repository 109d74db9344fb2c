using System.Buffers.Binary;
using OpenBest.Crypto.Aead;

namespace OpenBest.Protocol;

/// <summary>
/// The Session ID variable-length integer (profile section 2): the first octet's 0xC0 bits give the
/// length — 0x00 one octet (6 bits), 0x40 two (14 bits), 0x80 four (30 bits); 0xC0 is invalid.
/// Big-endian, and the minimal length MUST be used.
/// </summary>
public static class SessionIdCodec
{
    /// <summary>The largest Session ID, 2^30 − 1.</summary>
    public const uint MaxValue = (1u << 30) - 1;

    /// <summary>The encoded length of <paramref name="sessionId"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The value exceeds 30 bits.</exception>
    public static int GetLength(uint sessionId) => sessionId switch
    {
        < 1u << 6 => 1,
        < 1u << 14 => 2,
        <= MaxValue => 4,
        _ => throw new ArgumentOutOfRangeException(nameof(sessionId), "A Session ID has at most 30 bits."),
    };

    /// <summary>Writes the minimal encoding and returns its length.</summary>
    public static int Write(uint sessionId, Span<byte> destination)
    {
        var length = GetLength(sessionId);
        switch (length)
        {
            case 1:
                destination[0] = (byte)sessionId;
                break;
            case 2:
                BinaryPrimitives.WriteUInt16BigEndian(destination, (ushort)(0x4000 | sessionId));
                break;
            default:
                BinaryPrimitives.WriteUInt32BigEndian(destination, 0x8000_0000u | sessionId);
                break;
        }

        return length;
    }

    /// <summary>Reads a Session ID; false when truncated, the 0xC0 form, or not minimal.</summary>
    public static bool TryRead(ReadOnlySpan<byte> source, out uint sessionId, out int length)
    {
        sessionId = 0;
        length = 0;
        if (source.IsEmpty)
        {
            return false;
        }

        switch (source[0] & 0xC0)
        {
            case 0x00:
                sessionId = source[0];
                length = 1;
                return true;
            case 0x40:
                if (source.Length < 2)
                {
                    return false;
                }

                sessionId = BinaryPrimitives.ReadUInt16BigEndian(source) & 0x3FFFu;
                length = 2;
                return sessionId >= 1u << 6;
            case 0x80:
                if (source.Length < 4)
                {
                    return false;
                }

                sessionId = BinaryPrimitives.ReadUInt32BigEndian(source) & 0x3FFF_FFFFu;
                length = 4;
                return sessionId >= 1u << 14;
            default:
                return false;
        }
    }
}

/// <summary>
/// The fixed part of an EMSDP message header (profile section 2):
/// <code>
///  octet 0                 octets 1..             then
/// +-----------------------+----------------------+-------------------+
/// | TT P R KKK A          | Session ID (varint)  | Counter (n = 1/2/4)|
/// +-----------------------+----------------------+-------------------+
/// TT (0xC0) = 01: type 01 EMSDP message; other values are dropped silently
/// P  (0x20)  1 = user plane, 0 = control plane
/// R  (0x10)  reserved: sent 0, ignored
/// KKK(0x0E)  Key ID: 0 = no keys, 1..7 = a key set of the session
/// A  (0x01)  on UP: the sender asks for a Data Ack; on CP sent 0
/// </code>
/// </summary>
/// <param name="Plane">Control or user plane.</param>
/// <param name="KeyId">The key set, 0..7.</param>
/// <param name="AckRequested">The A bit (UP only).</param>
/// <param name="SessionId">The Session ID (0 only for a Session Request and a Reject answering one).</param>
/// <param name="CounterLength">n, the counter field's length: 1, 2 or 4.</param>
/// <param name="Counter">The full counter; the low 8·n bits are written.</param>
public readonly record struct EmsdpHeader(Plane Plane, byte KeyId, bool AckRequested, uint SessionId, int CounterLength, ulong Counter)
{
    /// <summary>The type bits of octet 0.</summary>
    public const byte TypeMask = 0xC0;

    /// <summary>Type 01.</summary>
    public const byte Type01 = 0x40;

    /// <summary>The plane bit.</summary>
    public const byte PlaneBit = 0x20;

    /// <summary>The reserved bit.</summary>
    public const byte ReservedBit = 0x10;

    /// <summary>The Key ID bits.</summary>
    public const byte KeyIdMask = 0x0E;

    /// <summary>The A bit.</summary>
    public const byte AckBit = 0x01;

    /// <summary>The encoded length: 1 + Session ID + n.</summary>
    public int EncodedLength => 1 + SessionIdCodec.GetLength(SessionId) + CounterLength;

    /// <summary>Octet 0 as encoded.</summary>
    public byte Octet0 => (byte)(Type01 | (Plane == Plane.User ? PlaneBit : 0) | ((KeyId & 7) << 1) | (AckRequested && Plane == Plane.User ? AckBit : 0));

    /// <summary>Writes the header and returns its length.</summary>
    /// <exception cref="ArgumentException">A field is out of range or the span too short.</exception>
    public int Write(Span<byte> destination)
    {
        if (KeyId > 7)
        {
            throw new ArgumentException("Key ID is 0..7.");
        }

        if (CounterLength is not (1 or 2 or 4))
        {
            throw new ArgumentException("The counter field has 1, 2 or 4 octets.");
        }

        if (destination.Length < EncodedLength)
        {
            throw new ArgumentException("The destination is too short for the header.", nameof(destination));
        }

        destination[0] = Octet0;
        var offset = 1 + SessionIdCodec.Write(SessionId, destination[1..]);
        WriteCounterField(Counter, CounterLength, destination[offset..]);
        return offset + CounterLength;
    }

    /// <summary>Writes the low 8·n bits of <paramref name="counter"/> big-endian.</summary>
    public static void WriteCounterField(ulong counter, int length, Span<byte> destination)
    {
        switch (length)
        {
            case 1:
                destination[0] = (byte)counter;
                break;
            case 2:
                BinaryPrimitives.WriteUInt16BigEndian(destination, (ushort)counter);
                break;
            default:
                BinaryPrimitives.WriteUInt32BigEndian(destination, (uint)counter);
                break;
        }
    }

    /// <summary>Reads an n-octet counter field.</summary>
    public static uint ReadCounterField(ReadOnlySpan<byte> source, int length) => length switch
    {
        1 => source[0],
        2 => BinaryPrimitives.ReadUInt16BigEndian(source),
        _ => BinaryPrimitives.ReadUInt32BigEndian(source),
    };
}

/// <summary>What the receiver must do with bytes that did not parse.</summary>
public enum ParseStatus
{
    /// <summary>Parsed.</summary>
    Ok,

    /// <summary>Not an EMSDP type 01 message, or the Session ID is invalid: drop silently (profile section 2).</summary>
    Drop,

    /// <summary>Malformed: cause 0x0B where an answer is allowed.</summary>
    Malformed,

    /// <summary>An unknown comprehension-required TLV: cause 0x0C where an answer is allowed.</summary>
    UnknownComprehensionRequired,
}

/// <summary>
/// Octet 0 and the Session ID of a received message: enough to find the session, which then gives
/// the counter length and tag size that the rest of the message needs.
/// </summary>
/// <param name="Octet0">Octet 0.</param>
/// <param name="SessionId">The Session ID.</param>
/// <param name="Length">Octets consumed (1 + Session ID length).</param>
public readonly record struct HeaderPrefix(byte Octet0, uint SessionId, int Length)
{
    /// <summary>The plane.</summary>
    public Plane Plane => (Octet0 & EmsdpHeader.PlaneBit) != 0 ? Plane.User : Plane.Control;

    /// <summary>The Key ID.</summary>
    public byte KeyId => (byte)((Octet0 & EmsdpHeader.KeyIdMask) >> 1);

    /// <summary>The A bit; meaningful on the user plane only.</summary>
    public bool AckRequested => Plane == Plane.User && (Octet0 & EmsdpHeader.AckBit) != 0;

    /// <summary>Reads octet 0 and the Session ID. <see cref="ParseStatus.Drop"/> for another type, an invalid or truncated Session ID.</summary>
    public static ParseStatus TryRead(ReadOnlySpan<byte> message, out HeaderPrefix prefix)
    {
        prefix = default;
        if (message.IsEmpty || (message[0] & EmsdpHeader.TypeMask) != EmsdpHeader.Type01)
        {
            return ParseStatus.Drop;
        }

        if (!SessionIdCodec.TryRead(message[1..], out var sessionId, out var length))
        {
            return ParseStatus.Drop;
        }

        prefix = new HeaderPrefix(message[0], sessionId, 1 + length);
        return ParseStatus.Ok;
    }
}

/// <summary>
/// A received message split into its parts, given the counter length and tag size that its session
/// (or the Key ID 0 / Session Start rules) dictate. Spans point into the received buffer.
/// </summary>
public readonly ref struct EmsdpFrame
{
    /// <summary>Octet 0 and the Session ID.</summary>
    public HeaderPrefix Prefix { get; init; }

    /// <summary>The counter field's value (low 8·n bits of the sender's counter).</summary>
    public uint CounterField { get; init; }

    /// <summary>n.</summary>
    public int CounterLength { get; init; }

    /// <summary>The header as received: octet 0, Session ID, counter field.</summary>
    public ReadOnlySpan<byte> Header { get; init; }

    /// <summary>CP: command code and TLVs; UP: the payload or its ciphertext.</summary>
    public ReadOnlySpan<byte> Body { get; init; }

    /// <summary>The tag (empty for Key ID 0).</summary>
    public ReadOnlySpan<byte> Tag { get; init; }

    /// <summary>The whole message as received.</summary>
    public ReadOnlySpan<byte> Message { get; init; }

    /// <summary>
    /// Splits <paramref name="message"/>. Returns <see cref="ParseStatus.Malformed"/> when it is too
    /// short for the header, the tag and (on CP) a command code. Never reads past the buffer.
    /// </summary>
    public static ParseStatus TryParse(ReadOnlySpan<byte> message, HeaderPrefix prefix, int counterLength, int tagLength, out EmsdpFrame frame)
    {
        frame = default;
        if (counterLength is not (1 or 2 or 4) || tagLength < 0)
        {
            throw new ArgumentException("Counter length is 1, 2 or 4 and the tag length non-negative.");
        }

        var headerLength = prefix.Length + counterLength;
        var minimum = headerLength + tagLength + (prefix.Plane == Plane.Control ? 1 : 0);
        if (message.Length < minimum)
        {
            return ParseStatus.Malformed;
        }

        frame = new EmsdpFrame
        {
            Prefix = prefix,
            CounterLength = counterLength,
            CounterField = EmsdpHeader.ReadCounterField(message[prefix.Length..], counterLength),
            Header = message[..headerLength],
            Body = message[headerLength..^tagLength],
            Tag = message[^tagLength..],
            Message = message,
        };
        return ParseStatus.Ok;
    }
}
