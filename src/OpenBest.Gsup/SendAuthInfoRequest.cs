namespace OpenBest.Gsup;

/// <summary>
/// SEND AUTHENTICATION INFO REQUEST (GSUP specification, "Send Authentication Info Request"; SGSN/VLR → HLR). Written
/// in the order libosmocore writes it:
/// <code>
/// +------+-----------+---------------+---------------+----------+-------------+--------------+
/// | 0x08 | 01 IMSI   | 26 AUTS (14)  | 20 RAND (16)  | 52 n (1) | 2a RAT (1)  | 0a class (1) |
/// +------+-----------+---------------+---------------+----------+-------------+--------------+
///          mandatory   both or neither: resynchronisation   optional (libosmocore additions)
/// </code>
/// </summary>
public sealed record SendAuthInfoRequest
{
    /// <summary>A request for vectors of <paramref name="imsi"/>; with <paramref name="rand"/> and <paramref name="auts"/> it resynchronises first (TS 33.102 6.3.5).</summary>
    /// <exception cref="ArgumentException">The IMSI is not 6..15 digits, or RAND and AUTS are not both empty or 16 and 14 octets.</exception>
    public SendAuthInfoRequest(string imsi, ReadOnlyMemory<byte> rand = default, ReadOnlyMemory<byte> auts = default)
    {
        if (!GsupImsi.IsValid(imsi))
        {
            throw new ArgumentException($"An IMSI has {GsupImsi.MinDigits}..{GsupImsi.MaxDigits} decimal digits: '{imsi}'.", nameof(imsi));
        }

        if (!(rand.IsEmpty && auts.IsEmpty) && (rand.Length != 16 || auts.Length != 14))
        {
            throw new ArgumentException("A resynchronising request carries RAND (16 octets) and AUTS (14 octets), or neither.", nameof(auts));
        }

        Imsi = imsi;
        Rand = rand;
        Auts = auts;
    }

    /// <summary>The subscriber.</summary>
    public string Imsi { get; }

    /// <summary>The RAND of the challenge the USIM answered with AUTS, or empty.</summary>
    public ReadOnlyMemory<byte> Rand { get; }

    /// <summary>AUTS = SQN_MS ⊕ AK* ‖ MAC-S, or empty.</summary>
    public ReadOnlyMemory<byte> Auts { get; }

    /// <summary>Whether the request resynchronises (RAND and AUTS present).</summary>
    public bool IsResynchronisation => !Auts.IsEmpty;

    /// <summary>How many vectors to return (IE 0x52), or null to leave it to the HLR (osmo-hlr: 5, its maximum).</summary>
    public byte? NumberOfVectors { get; init; }

    /// <summary>The current RAT type (IE 0x2a), or null. osmo-hlr sets the AMF separation bit for <see cref="GsupRatType.EutranSgs"/>.</summary>
    public GsupRatType? CurrentRatType { get; init; }

    /// <summary>The message class (IE 0x0a), or null.</summary>
    public GsupMessageClass? MessageClass { get; init; }

    /// <summary>The octets <see cref="Write"/> produces.</summary>
    public int GetEncodedLength() =>
        1 + 2 + GsupImsi.GetEncodedLength(Imsi)
        + (IsResynchronisation ? 2 + 14 + 2 + 16 : 0)
        + (NumberOfVectors is null ? 0 : 3)
        + (CurrentRatType is null ? 0 : 3)
        + (MessageClass is null ? 0 : 3);

    /// <summary>Writes the message; returns the octets written.</summary>
    /// <exception cref="ArgumentException">The destination is too short.</exception>
    public int Write(Span<byte> destination)
    {
        if (destination.Length < GetEncodedLength())
        {
            throw new ArgumentException("The destination is too short.", nameof(destination));
        }

        Span<byte> imsi = stackalloc byte[GsupImsi.MaxEncodedLength];
        var imsiLength = GsupImsi.Write(Imsi, imsi);
        destination[0] = (byte)GsupMessageType.SendAuthInfoRequest;
        var at = 1;
        GsupTlvWriter.Write(destination, ref at, GsupIei.Imsi, imsi[..imsiLength]);
        if (IsResynchronisation)
        {
            GsupTlvWriter.Write(destination, ref at, GsupIei.Auts, Auts.Span);
            GsupTlvWriter.Write(destination, ref at, GsupIei.Rand, Rand.Span);
        }

        if (NumberOfVectors is { } n)
        {
            GsupTlvWriter.Write(destination, ref at, GsupIei.NumVectorsRequested, n);
        }

        if (CurrentRatType is { } rat)
        {
            GsupTlvWriter.Write(destination, ref at, GsupIei.CurrentRatType, (byte)rat);
        }

        if (MessageClass is { } messageClass)
        {
            GsupTlvWriter.Write(destination, ref at, GsupIei.MessageClass, (byte)messageClass);
        }

        return at;
    }

    /// <summary>A new array holding the message.</summary>
    public byte[] Encode()
    {
        var bytes = new byte[GetEncodedLength()];
        Write(bytes);
        return bytes;
    }

    /// <summary>
    /// Reads the message (RAND and AUTS are copied). False when it is another type, an IE is truncated or has the
    /// wrong length, a single-valued IE repeats, the IMSI is absent or invalid, or only one of RAND and AUTS is
    /// present. Unknown IEs are ignored. Never throws.
    /// </summary>
    public static bool TryRead(ReadOnlySpan<byte> message, out SendAuthInfoRequest? request)
    {
        request = null;
        if (message.IsEmpty || message[0] != (byte)GsupMessageType.SendAuthInfoRequest)
        {
            return false;
        }

        var ies = message[1..];
        string? imsi = null;
        byte[]? rand = null;
        byte[]? auts = null;
        byte? vectors = null;
        GsupRatType? rat = null;
        GsupMessageClass? messageClass = null;
        var reader = new GsupTlvReader(ies);
        bool malformed;
        while (reader.TryRead(out var tag, out var offset, out var length, out malformed))
        {
            var value = ies.Slice(offset, length);
            switch ((GsupIei)tag)
            {
                case GsupIei.Imsi when imsi is null && GsupImsi.TryRead(value, out imsi):
                    break;
                case GsupIei.Rand when rand is null && length == 16:
                    rand = value.ToArray();
                    break;
                case GsupIei.Auts when auts is null && length == 14:
                    auts = value.ToArray();
                    break;
                case GsupIei.NumVectorsRequested when vectors is null && length == 1:
                    vectors = value[0];
                    break;
                case GsupIei.CurrentRatType when rat is null && length == 1:
                    rat = (GsupRatType)value[0];
                    break;
                case GsupIei.MessageClass when messageClass is null && length == 1:
                    messageClass = (GsupMessageClass)value[0];
                    break;
                case GsupIei.Imsi or GsupIei.Rand or GsupIei.Auts or GsupIei.NumVectorsRequested or GsupIei.CurrentRatType or GsupIei.MessageClass:
                    return false;
                default:
                    break;
            }
        }

        if (malformed || imsi is null || (rand is null) != (auts is null))
        {
            return false;
        }

        request = new SendAuthInfoRequest(imsi, rand, auts)
        {
            NumberOfVectors = vectors,
            CurrentRatType = rat,
            MessageClass = messageClass,
        };
        return true;
    }
}
