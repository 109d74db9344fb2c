using System.Buffers;
using System.Buffers.Binary;

namespace OpenBest.Gsup;

/// <summary>
/// Stream identifiers of the IPA multiplex ('OsmoBTS Abis/IP Specification', IPA multiplex; GSUP specification,
/// "Using IPA").
/// </summary>
public enum IpaStreamId : byte
{
    /// <summary>The Osmocom extension stream: the first payload octet names the protocol (<see cref="IpaOsmoExtension"/>).</summary>
    Osmo = 0xEE,

    /// <summary>IPA connection management (CCM): ping, pong and the identity exchange (<see cref="IpaCcmMessageType"/>).</summary>
    Ccm = 0xFE,
}

/// <summary>Protocols carried on the <see cref="IpaStreamId.Osmo"/> stream (GSUP specification, "Using IPA").</summary>
public enum IpaOsmoExtension : byte
{
    /// <summary>GSUP, the Generic Subscriber Update Protocol.</summary>
    Gsup = 0x05,

    /// <summary>OAP, the Osmocom Authentication Protocol (not used here; received frames are ignored).</summary>
    Oap = 0x06,
}

/// <summary>The result of reading one IPA frame.</summary>
public enum IpaFrameStatus
{
    /// <summary>A whole frame was read and consumed.</summary>
    Ok,

    /// <summary>More octets are needed; nothing was consumed.</summary>
    NeedMoreData,

    /// <summary>The declared length exceeds the limit: a protocol error that closes the connection.</summary>
    Invalid,
}

/// <summary>
/// IPA multiplex framing over TCP. Every frame is a 3-octet header and a payload:
/// <code>
/// +--------+--------+--------+--------------------------------------+
/// | length (16, BE) | stream | payload (length octets)              |
/// +--------+--------+--------+--------------------------------------+
///                   for stream 0xEE the payload starts with the extension octet (0x05 = GSUP)
/// </code>
/// The length counts the payload only, never the header; on the Osmocom stream it includes the extension octet.
/// </summary>
public static class IpaFraming
{
    /// <summary>The header: length (2) and stream identifier (1).</summary>
    public const int HeaderLength = 3;

    /// <summary>The largest payload a frame can declare.</summary>
    public const int MaxPayloadLength = ushort.MaxValue;

    /// <summary>The octets a frame with <paramref name="payloadLength"/> octets of payload takes.</summary>
    public static int GetEncodedLength(int payloadLength) => HeaderLength + payloadLength;

    /// <summary>Writes a frame on <paramref name="streamId"/>; returns the octets written.</summary>
    /// <exception cref="ArgumentException">The payload exceeds 65535 octets or the destination is too short.</exception>
    public static int Write(IpaStreamId streamId, ReadOnlySpan<byte> payload, Span<byte> destination)
    {
        if (payload.Length > MaxPayloadLength)
        {
            throw new ArgumentException("An IPA payload has at most 65535 octets.", nameof(payload));
        }

        if (destination.Length < HeaderLength + payload.Length)
        {
            throw new ArgumentException("The destination is too short.", nameof(destination));
        }

        BinaryPrimitives.WriteUInt16BigEndian(destination, (ushort)payload.Length);
        destination[2] = (byte)streamId;
        payload.CopyTo(destination[HeaderLength..]);
        return HeaderLength + payload.Length;
    }

    /// <summary>Writes a frame on the Osmocom stream: header, <paramref name="extension"/>, then <paramref name="body"/>.</summary>
    /// <exception cref="ArgumentException">The body exceeds 65534 octets or the destination is too short.</exception>
    public static int WriteOsmo(IpaOsmoExtension extension, ReadOnlySpan<byte> body, Span<byte> destination)
    {
        if (body.Length > MaxPayloadLength - 1)
        {
            throw new ArgumentException("An IPA Osmocom body has at most 65534 octets.", nameof(body));
        }

        if (destination.Length < HeaderLength + 1 + body.Length)
        {
            throw new ArgumentException("The destination is too short.", nameof(destination));
        }

        BinaryPrimitives.WriteUInt16BigEndian(destination, (ushort)(body.Length + 1));
        destination[2] = (byte)IpaStreamId.Osmo;
        destination[3] = (byte)extension;
        body.CopyTo(destination[(HeaderLength + 1)..]);
        return HeaderLength + 1 + body.Length;
    }

    /// <summary>A new array holding an Osmocom-stream frame (see <see cref="WriteOsmo"/>).</summary>
    public static byte[] EncodeOsmo(IpaOsmoExtension extension, ReadOnlySpan<byte> body)
    {
        var frame = new byte[HeaderLength + 1 + body.Length];
        WriteOsmo(extension, body, frame);
        return frame;
    }

    /// <summary>A new array holding a CCM frame.</summary>
    public static byte[] EncodeCcm(ReadOnlySpan<byte> ccm)
    {
        var frame = new byte[HeaderLength + ccm.Length];
        Write(IpaStreamId.Ccm, ccm, frame);
        return frame;
    }

    /// <summary>
    /// Reads one frame from the front of <paramref name="buffer"/>. On <see cref="IpaFrameStatus.Ok"/> the payload is
    /// returned (a slice of <paramref name="buffer"/>, possibly empty: libosmocore discards such frames, and so should
    /// the caller) and <paramref name="buffer"/> is advanced past the frame; otherwise nothing is consumed. The declared
    /// length is checked against <paramref name="maxPayloadLength"/> before anything is buffered. Never throws on input.
    /// </summary>
    /// <param name="buffer">Received octets.</param>
    /// <param name="maxPayloadLength">The largest payload accepted (at most 65535).</param>
    /// <param name="streamId">The stream identifier octet as received (any value; the caller decides what it knows).</param>
    /// <param name="payload">The payload after the header.</param>
    public static IpaFrameStatus TryRead(ref ReadOnlySequence<byte> buffer, int maxPayloadLength, out byte streamId, out ReadOnlySequence<byte> payload)
    {
        streamId = 0;
        payload = default;
        if (buffer.Length < HeaderLength)
        {
            return IpaFrameStatus.NeedMoreData;
        }

        Span<byte> header = stackalloc byte[HeaderLength];
        buffer.Slice(0, HeaderLength).CopyTo(header);
        var length = BinaryPrimitives.ReadUInt16BigEndian(header);
        if (length > maxPayloadLength)
        {
            return IpaFrameStatus.Invalid;
        }

        if (buffer.Length < HeaderLength + length)
        {
            return IpaFrameStatus.NeedMoreData;
        }

        streamId = header[2];
        payload = buffer.Slice(HeaderLength, length);
        buffer = buffer.Slice(HeaderLength + length);
        return IpaFrameStatus.Ok;
    }
}
