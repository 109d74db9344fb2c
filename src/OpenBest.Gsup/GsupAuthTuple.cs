namespace OpenBest.Gsup;

/// <summary>
/// One Auth Tuple IE (GSUP specification, "Auth tuple"): a container of sub-IEs
/// <code>
/// +------+-----+-------------+-----------+---------+-----------+-----------+-------------+---------------+
/// | 0x03 | len | 20 RAND(16) | 21 SRES(4)| 22 Kc(8)| 23 IK(16) | 24 CK(16) | 25 AUTN(16) | 27 RES(4..16) |
/// +------+-----+-------------+-----------+---------+-----------+-----------+-------------+---------------+
///                 mandatory    a GSM triplet         present when the subscriber has UMTS keys (a quintet)
/// </code>
/// The values are slices of the octets the tuple was read from (or built with): whoever owns those octets zeroes
/// them. <see cref="ToString"/> never shows them.
/// </summary>
public readonly struct GsupAuthTuple : IEquatable<GsupAuthTuple>
{
    /// <summary>The most octets of RES (TS 33.102 6.3.2: 4..16).</summary>
    public const int MaxResLength = 16;

    /// <summary>Creates a tuple; empty values are left out when written.</summary>
    public GsupAuthTuple(ReadOnlyMemory<byte> rand, ReadOnlyMemory<byte> sres, ReadOnlyMemory<byte> kc, ReadOnlyMemory<byte> ik, ReadOnlyMemory<byte> ck, ReadOnlyMemory<byte> autn, ReadOnlyMemory<byte> res)
    {
        Rand = rand;
        Sres = sres;
        Kc = kc;
        Ik = ik;
        Ck = ck;
        Autn = autn;
        Res = res;
    }

    /// <summary>RAND (16 octets).</summary>
    public ReadOnlyMemory<byte> Rand { get; }

    /// <summary>SRES (4 octets), or empty.</summary>
    public ReadOnlyMemory<byte> Sres { get; }

    /// <summary>Kc (8 octets), or empty.</summary>
    public ReadOnlyMemory<byte> Kc { get; }

    /// <summary>IK (16 octets), or empty.</summary>
    public ReadOnlyMemory<byte> Ik { get; }

    /// <summary>CK (16 octets), or empty.</summary>
    public ReadOnlyMemory<byte> Ck { get; }

    /// <summary>AUTN (16 octets), or empty.</summary>
    public ReadOnlyMemory<byte> Autn { get; }

    /// <summary>RES, the expected response (4..16 octets), or empty.</summary>
    public ReadOnlyMemory<byte> Res { get; }

    /// <summary>Whether the tuple is a UMTS quintet: IK, CK, AUTN and RES all present.</summary>
    public bool IsQuintet => !Ik.IsEmpty && !Ck.IsEmpty && !Autn.IsEmpty && !Res.IsEmpty;

    /// <summary>The octets of the whole IE (tag and length included).</summary>
    public int GetEncodedLength() => 2 + ContentLength();

    /// <summary>Writes the whole IE at <paramref name="at"/>, advancing it.</summary>
    internal void Write(Span<byte> destination, ref int at)
    {
        destination[at] = (byte)GsupIei.AuthTuple;
        destination[at + 1] = (byte)ContentLength();
        at += 2;
        WriteIfPresent(destination, ref at, GsupIei.Rand, Rand);
        WriteIfPresent(destination, ref at, GsupIei.Sres, Sres);
        WriteIfPresent(destination, ref at, GsupIei.Kc, Kc);
        WriteIfPresent(destination, ref at, GsupIei.Ik, Ik);
        WriteIfPresent(destination, ref at, GsupIei.Ck, Ck);
        WriteIfPresent(destination, ref at, GsupIei.Autn, Autn);
        WriteIfPresent(destination, ref at, GsupIei.Res, Res);
    }

    /// <summary>
    /// Reads the content of an Auth Tuple IE (the sub-IEs) from <paramref name="content"/>, slicing it. False when a
    /// sub-IE is truncated, repeats or has the wrong length, or RAND is absent. SRES and Kc, mandatory in the
    /// specification, are not required: only the quintet matters here. Unknown sub-IEs are ignored. Never throws.
    /// </summary>
    public static bool TryRead(ReadOnlyMemory<byte> content, out GsupAuthTuple tuple)
    {
        tuple = default;
        ReadOnlyMemory<byte> rand = default, sres = default, kc = default, ik = default, ck = default, autn = default, res = default;
        bool hasRand = false, hasSres = false, hasKc = false, hasIk = false, hasCk = false, hasAutn = false, hasRes = false;
        var reader = new GsupTlvReader(content.Span);
        bool malformed;
        while (reader.TryRead(out var tag, out var offset, out var length, out malformed))
        {
            var value = content.Slice(offset, length);
            var ok = (GsupIei)tag switch
            {
                GsupIei.Rand => Take(ref rand, ref hasRand, value, 16, 16),
                GsupIei.Sres => Take(ref sres, ref hasSres, value, 4, 4),
                GsupIei.Kc => Take(ref kc, ref hasKc, value, 8, 8),
                GsupIei.Ik => Take(ref ik, ref hasIk, value, 16, 16),
                GsupIei.Ck => Take(ref ck, ref hasCk, value, 16, 16),
                GsupIei.Autn => Take(ref autn, ref hasAutn, value, 16, 16),
                GsupIei.Res => Take(ref res, ref hasRes, value, 4, MaxResLength),
                _ => true,
            };
            if (!ok)
            {
                return false;
            }
        }

        if (malformed || !hasRand)
        {
            return false;
        }

        tuple = new GsupAuthTuple(rand, sres, kc, ik, ck, autn, res);
        return true;
    }

    /// <inheritdoc/>
    public bool Equals(GsupAuthTuple other) =>
        Rand.Span.SequenceEqual(other.Rand.Span) && Sres.Span.SequenceEqual(other.Sres.Span) && Kc.Span.SequenceEqual(other.Kc.Span)
        && Ik.Span.SequenceEqual(other.Ik.Span) && Ck.Span.SequenceEqual(other.Ck.Span) && Autn.Span.SequenceEqual(other.Autn.Span)
        && Res.Span.SequenceEqual(other.Res.Span);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is GsupAuthTuple other && Equals(other);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Rand.Length, Res.Length, IsQuintet);

    /// <summary>Equality of all values.</summary>
    public static bool operator ==(GsupAuthTuple left, GsupAuthTuple right) => left.Equals(right);

    /// <summary>Inequality of any value.</summary>
    public static bool operator !=(GsupAuthTuple left, GsupAuthTuple right) => !left.Equals(right);

    /// <summary>Never shows key material.</summary>
    public override string ToString() => IsQuintet ? "GsupAuthTuple(quintet)" : "GsupAuthTuple(triplet)";

    private int ContentLength() =>
        Present(Rand) + Present(Sres) + Present(Kc) + Present(Ik) + Present(Ck) + Present(Autn) + Present(Res);

    private static int Present(ReadOnlyMemory<byte> value) => value.IsEmpty ? 0 : 2 + value.Length;

    private static void WriteIfPresent(Span<byte> destination, ref int at, GsupIei tag, ReadOnlyMemory<byte> value)
    {
        if (!value.IsEmpty)
        {
            GsupTlvWriter.Write(destination, ref at, tag, value.Span);
        }
    }

    private static bool Take(ref ReadOnlyMemory<byte> slot, ref bool present, ReadOnlyMemory<byte> value, int min, int max)
    {
        if (present || value.Length < min || value.Length > max)
        {
            return false;
        }

        slot = value;
        present = true;
        return true;
    }
}
