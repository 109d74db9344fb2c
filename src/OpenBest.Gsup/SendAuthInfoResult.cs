namespace OpenBest.Gsup;

/// <summary>
/// SEND AUTHENTICATION INFO RESULT (GSUP specification, "Send Authentication Info Response"; HLR → SGSN/VLR):
/// <code>
/// +------+-----------+-----------------+-----------------+-----
/// | 0x0a | 01 IMSI   | 03 Auth Tuple   | 03 Auth Tuple   | ... 0..5 tuples
/// +------+-----------+-----------------+-----------------+-----
/// </code>
/// A parsed result's tuples are slices of the received octets (see <see cref="GsupAuthTuple"/>).
/// </summary>
/// <param name="Imsi">The subscriber.</param>
/// <param name="Tuples">The tuples, in the order the HLR generated them (rising SQN).</param>
public sealed record SendAuthInfoResult(string Imsi, IReadOnlyList<GsupAuthTuple> Tuples)
{
    /// <summary>The most tuples of one result (GSUP specification: 0-5; libosmocore <c>OSMO_GSUP_MAX_NUM_AUTH_INFO</c>).</summary>
    public const int MaxTuples = 5;

    /// <summary>The octets <see cref="Write"/> produces.</summary>
    public int GetEncodedLength() => 1 + 2 + GsupImsi.GetEncodedLength(Imsi) + Tuples.Sum(t => t.GetEncodedLength());

    /// <summary>Writes the message; returns the octets written.</summary>
    /// <exception cref="ArgumentException">More than five tuples, a tuple over 255 octets, or the destination is too short.</exception>
    public int Write(Span<byte> destination)
    {
        if (Tuples.Count > MaxTuples || Tuples.Any(t => t.GetEncodedLength() > 257))
        {
            throw new ArgumentException("A result has at most five tuples of at most 255 octets each.", nameof(destination));
        }

        if (destination.Length < GetEncodedLength())
        {
            throw new ArgumentException("The destination is too short.", nameof(destination));
        }

        Span<byte> imsi = stackalloc byte[GsupImsi.MaxEncodedLength];
        var imsiLength = GsupImsi.Write(Imsi, imsi);
        destination[0] = (byte)GsupMessageType.SendAuthInfoResult;
        var at = 1;
        GsupTlvWriter.Write(destination, ref at, GsupIei.Imsi, imsi[..imsiLength]);
        foreach (var tuple in Tuples)
        {
            tuple.Write(destination, ref at);
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
    /// Reads the message, slicing <paramref name="message"/> for the tuples' values. False when it is another type,
    /// an IE or tuple is malformed, the IMSI is absent, invalid or repeated, or there are more than five tuples.
    /// Unknown IEs are ignored. Never throws.
    /// </summary>
    public static bool TryRead(ReadOnlyMemory<byte> message, out SendAuthInfoResult? result)
    {
        result = null;
        var span = message.Span;
        if (span.IsEmpty || span[0] != (byte)GsupMessageType.SendAuthInfoResult)
        {
            return false;
        }

        var ies = message[1..];
        string? imsi = null;
        var tuples = new List<GsupAuthTuple>();
        var reader = new GsupTlvReader(ies.Span);
        bool malformed;
        while (reader.TryRead(out var tag, out var offset, out var length, out malformed))
        {
            switch ((GsupIei)tag)
            {
                case GsupIei.Imsi:
                    if (imsi is not null || !GsupImsi.TryRead(ies.Span.Slice(offset, length), out imsi))
                    {
                        return false;
                    }

                    break;
                case GsupIei.AuthTuple:
                    if (tuples.Count == MaxTuples || !GsupAuthTuple.TryRead(ies.Slice(offset, length), out var tuple))
                    {
                        return false;
                    }

                    tuples.Add(tuple);
                    break;
                default:
                    break;
            }
        }

        if (malformed || imsi is null)
        {
            return false;
        }

        result = new SendAuthInfoResult(imsi, tuples);
        return true;
    }

    /// <summary>Never shows key material.</summary>
    public override string ToString() => $"SendAuthInfoResult({Imsi}, {Tuples.Count} tuples)";
}
