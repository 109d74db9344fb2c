namespace OpenBest.Gsup;

/// <summary>
/// SEND AUTHENTICATION INFO ERROR (GSUP specification, "Send Authentication Info Error"; HLR → SGSN/VLR):
/// <code>
/// +------+-----------+----------------+
/// | 0x09 | 01 IMSI   | 02 01 cause    |
/// +------+-----------+----------------+
/// </code>
/// </summary>
/// <param name="Imsi">The subscriber.</param>
/// <param name="Cause">The GMM cause (TS 24.008 10.5.5.14); values outside <see cref="GsupCause"/> are kept as they came.</param>
public sealed record SendAuthInfoError(string Imsi, GsupCause Cause)
{
    /// <summary>The octets <see cref="Write"/> produces.</summary>
    public int GetEncodedLength() => 1 + 2 + GsupImsi.GetEncodedLength(Imsi) + 3;

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
        destination[0] = (byte)GsupMessageType.SendAuthInfoError;
        var at = 1;
        GsupTlvWriter.Write(destination, ref at, GsupIei.Imsi, imsi[..imsiLength]);
        GsupTlvWriter.Write(destination, ref at, GsupIei.Cause, (byte)Cause);
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
    /// Reads the message. False when it is another type, an IE is truncated, the IMSI or the cause is absent, invalid
    /// or repeated. Unknown IEs are ignored. Never throws.
    /// </summary>
    public static bool TryRead(ReadOnlySpan<byte> message, out SendAuthInfoError? error)
    {
        error = null;
        if (message.IsEmpty || message[0] != (byte)GsupMessageType.SendAuthInfoError)
        {
            return false;
        }

        var ies = message[1..];
        string? imsi = null;
        GsupCause? cause = null;
        var reader = new GsupTlvReader(ies);
        bool malformed;
        while (reader.TryRead(out var tag, out var offset, out var length, out malformed))
        {
            switch ((GsupIei)tag)
            {
                case GsupIei.Imsi:
                    if (imsi is not null || !GsupImsi.TryRead(ies.Slice(offset, length), out imsi))
                    {
                        return false;
                    }

                    break;
                case GsupIei.Cause:
                    if (cause is not null || length != 1)
                    {
                        return false;
                    }

                    cause = (GsupCause)ies[offset];
                    break;
                default:
                    break;
            }
        }

        if (malformed || imsi is null || cause is null)
        {
            return false;
        }

        error = new SendAuthInfoError(imsi, cause.Value);
        return true;
    }
}
