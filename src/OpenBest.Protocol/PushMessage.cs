using System.Buffers.Binary;
using System.Text;

namespace OpenBest.Protocol;

/// <summary>
/// The payload of a UP message on a push or management channel (profile 6.2 "Suspend / Resume / push"; docs/protocol.md,
/// "Suspend, resume and push"): <c>version (1 octet, 1) | port (2 octets, big endian) | message id (4 octets, big endian) |
/// body</c>. The port names the application on the device; the message id lets the device drop a repeat (the HSE sends a
/// push again when the device resumes without having acknowledged it). Port 1 is reserved for a BEST session request
/// (<see cref="SessionRequestBody"/>).
/// </summary>
/// <param name="Port">The application port on the device.</param>
/// <param name="MessageId">The sender's id of the message: a repeat has the same one.</param>
/// <param name="Body">The application's octets.</param>
public readonly record struct PushMessage(ushort Port, uint MessageId, ReadOnlyMemory<byte> Body)
{
    /// <summary>The version this format has.</summary>
    public const byte CurrentVersion = 1;

    /// <summary>The octets before the body: version, port, message id.</summary>
    public const int HeaderLength = 7;

    /// <summary>The reserved EAS Id (Enterprise Setup) of a device's push channel.</summary>
    public const string PushEasId = "urn:best:push";

    /// <summary>The reserved EAS Id (Enterprise Setup) of a device's management channel.</summary>
    public const string ManagementEasId = "urn:best:mgmt";

    /// <summary>The reserved port of a BEST session request: the body names a service and an EAS Id (<see cref="SessionRequestBody"/>).</summary>
    public const ushort SessionRequestPort = 1;

    /// <summary>The longest EAS Id a session request carries, in UTF-8 octets.</summary>
    public const int MaxEasIdLength = 253;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>The octets <see cref="Write"/> writes.</summary>
    public int Length => HeaderLength + Body.Length;

    /// <summary>Reads a push message; false (never an exception) when the octets are too short or of another version.</summary>
    /// <param name="payload">A UP message's payload.</param>
    /// <param name="message">The message read (its body a copy), or default.</param>
    public static bool TryParse(ReadOnlySpan<byte> payload, out PushMessage message)
    {
        message = default;
        if (payload.Length < HeaderLength || payload[0] != CurrentVersion)
        {
            return false;
        }

        message = new PushMessage(BinaryPrimitives.ReadUInt16BigEndian(payload[1..]), BinaryPrimitives.ReadUInt32BigEndian(payload[3..]), payload[HeaderLength..].ToArray());
        return true;
    }

    /// <summary>Writes the message; returns the octets written (<see cref="Length"/>).</summary>
    /// <exception cref="ArgumentException">The destination is too short.</exception>
    public int Write(Span<byte> destination)
    {
        if (destination.Length < Length)
        {
            throw new ArgumentException($"A push message of {Length} octets does not fit {destination.Length}.", nameof(destination));
        }

        destination[0] = CurrentVersion;
        BinaryPrimitives.WriteUInt16BigEndian(destination[1..], Port);
        BinaryPrimitives.WriteUInt32BigEndian(destination[3..], MessageId);
        Body.Span.CopyTo(destination[HeaderLength..]);
        return Length;
    }

    /// <summary>The message as a new array.</summary>
    public byte[] ToArray()
    {
        var bytes = new byte[Length];
        Write(bytes);
        return bytes;
    }

    /// <summary>
    /// The body of a BEST session request (port 1): <c>service (1 octet, the <see cref="BestService"/> code) | EAS Id (UTF-8,
    /// 1..253 octets)</c>. It asks the device to start a BEST session with that service and EAS.
    /// </summary>
    /// <exception cref="ArgumentException">The service is not a defined code, or the EAS Id is empty or longer than 253 octets.</exception>
    public static byte[] SessionRequestBody(BestService service, string easId)
    {
        ArgumentNullException.ThrowIfNull(easId);
        if (!Enum.IsDefined(service))
        {
            throw new ArgumentException($"Service {(byte)service} is not a BEST service.", nameof(service));
        }

        var length = Encoding.UTF8.GetByteCount(easId);
        if (length is < 1 or > MaxEasIdLength)
        {
            throw new ArgumentException($"An EAS Id in a session request has 1..{MaxEasIdLength} octets, not {length}.", nameof(easId));
        }

        var body = new byte[1 + length];
        body[0] = (byte)service;
        Encoding.UTF8.GetBytes(easId, body.AsSpan(1));
        return body;
    }

    /// <summary>A BEST session request message (port 1) with this message id.</summary>
    /// <exception cref="ArgumentException">See <see cref="SessionRequestBody"/>.</exception>
    public static PushMessage SessionRequest(uint messageId, BestService service, string easId) => new(SessionRequestPort, messageId, SessionRequestBody(service, easId));

    /// <summary>
    /// Reads a session request body; false (never an exception) when it has no EAS Id, one longer than 253 octets or not
    /// UTF-8, or a service that is not a defined code.
    /// </summary>
    public static bool TryReadSessionRequest(ReadOnlySpan<byte> body, out BestService service, out string easId)
    {
        service = default;
        easId = string.Empty;
        if (body.Length is < 2 or > 1 + MaxEasIdLength || body[0] > (byte)BestService.None)
        {
            return false;
        }

        try
        {
            easId = StrictUtf8.GetString(body[1..]);
        }
        catch (DecoderFallbackException)
        {
            return false;
        }

        service = (BestService)body[0];
        return true;
    }

    /// <summary>Whether this is a BEST session request (port 1 with a valid body), and what it asks for.</summary>
    public bool TryGetSessionRequest(out BestService service, out string easId)
    {
        if (Port == SessionRequestPort)
        {
            return TryReadSessionRequest(Body.Span, out service, out easId);
        }

        service = default;
        easId = string.Empty;
        return false;
    }

    /// <summary>The port, the message id and the body's length (never the body: it is the application's).</summary>
    public override string ToString() => $"PushMessage(port {Port}, id {MessageId:x8}, {Body.Length} octets)";
}
