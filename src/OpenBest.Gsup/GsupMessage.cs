namespace OpenBest.Gsup;

/// <summary>
/// What every GSUP message shares (GSUP specification, "Message Format, General"):
/// <code>
/// +--------------+------+-----+-----------+------------------
/// | message type | 0x01 | len | IMSI      | further IEs ...
/// +--------------+------+-----+-----------+------------------
/// </code>
/// IEs are tag (1), length (1), value. "Unknown IE shall be ignored", and after the IMSI a receiver takes IEs in any
/// order; every parser here does both, rejects a repeated single-valued IE, and never reads past the message.
/// </summary>
public static class GsupMessage
{
    /// <summary>
    /// The message type and IMSI of a message, enough to match an answer to its request. False when the IEs are
    /// truncated or the IMSI is absent or invalid. Never throws.
    /// </summary>
    public static bool TryReadHeader(ReadOnlySpan<byte> message, out byte type, out string? imsi)
    {
        type = 0;
        imsi = null;
        if (message.IsEmpty)
        {
            return false;
        }

        type = message[0];
        var ies = message[1..];
        var reader = new GsupTlvReader(ies);
        while (reader.TryRead(out var tag, out var offset, out var length, out _))
        {
            if (tag == (byte)GsupIei.Imsi)
            {
                return GsupImsi.TryRead(ies.Slice(offset, length), out imsi);
            }
        }

        return false;
    }
}
