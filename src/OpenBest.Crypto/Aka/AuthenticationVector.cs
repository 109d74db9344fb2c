namespace OpenBest.Crypto.Aka;

/// <summary>
/// A UMTS authentication vector (TS 33.102 clause 6.3.2): RAND, XRES, CK, IK and AUTN, plus AK and the
/// SQN it was made for. CK, IK and XRES are secret; <see cref="Dispose"/> zeroes every field.
/// </summary>
public sealed class AuthenticationVector : IDisposable
{
    private readonly SecretBuffer _material = new(16 + 8 + 16 + 16 + 16 + 6);

    internal AuthenticationVector(ulong sqn, ushort amf, bool received = false)
    {
        Sqn = sqn;
        Amf = amf;
        IsReceived = received;
    }

    /// <summary>The sequence number the vector carries; 0 for a <see cref="IsReceived">received</see> vector, whose SQN stays concealed by AK.</summary>
    public ulong Sqn { get; }

    /// <summary>
    /// Whether the vector was computed by another authentication centre (an HLR reached over GSUP, say) and taken
    /// over with <see cref="FromReceived"/>: then <see cref="Sqn"/> is 0 and <see cref="Ak"/> all zeros, since only
    /// SQN ⊕ AK (in AUTN) is known, which is all the key derivations use.
    /// </summary>
    public bool IsReceived { get; }

    /// <summary>The authentication management field.</summary>
    public ushort Amf { get; }

    /// <summary>The 16-octet random challenge.</summary>
    public ReadOnlySpan<byte> Rand => _material.Span[..16];

    /// <summary>The expected response (8 octets with MILENAGE).</summary>
    public ReadOnlySpan<byte> Xres => _material.Span.Slice(16, 8);

    /// <summary>The 16-octet cipher key.</summary>
    public ReadOnlySpan<byte> Ck => _material.Span.Slice(24, 16);

    /// <summary>The 16-octet integrity key.</summary>
    public ReadOnlySpan<byte> Ik => _material.Span.Slice(40, 16);

    /// <summary>AUTN = SQN ⊕ AK ‖ AMF ‖ MAC-A (16 octets).</summary>
    public ReadOnlySpan<byte> Autn => _material.Span.Slice(56, 16);

    /// <summary>The 6-octet anonymity key.</summary>
    public ReadOnlySpan<byte> Ak => _material.Span.Slice(72, 6);

    /// <summary>SQN ⊕ AK: the first six octets of AUTN, an input of the EPS and 5G key derivations.</summary>
    public ReadOnlySpan<byte> SqnXorAk => Autn[..6];

    internal Span<byte> RandWritable => _material.WritableSpan[..16];

    internal Span<byte> XresWritable => _material.WritableSpan.Slice(16, 8);

    internal Span<byte> CkWritable => _material.WritableSpan.Slice(24, 16);

    internal Span<byte> IkWritable => _material.WritableSpan.Slice(40, 16);

    internal Span<byte> AutnWritable => _material.WritableSpan.Slice(56, 16);

    internal Span<byte> AkWritable => _material.WritableSpan.Slice(72, 6);

    /// <summary>
    /// Takes over a vector that another authentication centre computed (TS 33.102 6.3.2: the quintet RAND, XRES,
    /// CK, IK, AUTN), as an HLR or HSS hands it to a VLR or MME. The AMF is read from AUTN (octets 6 and 7).
    /// </summary>
    /// <exception cref="ArgumentException">RAND, CK, IK or AUTN is not 16 octets, or XRES not 8 (the MILENAGE length this type holds).</exception>
    public static AuthenticationVector FromReceived(ReadOnlySpan<byte> rand, ReadOnlySpan<byte> xres, ReadOnlySpan<byte> ck, ReadOnlySpan<byte> ik, ReadOnlySpan<byte> autn)
    {
        if (rand.Length != 16 || ck.Length != 16 || ik.Length != 16 || autn.Length != 16)
        {
            throw new ArgumentException("RAND, CK, IK and AUTN must be 16 octets each.");
        }

        if (xres.Length != 8)
        {
            throw new ArgumentException($"XRES must be 8 octets, not {xres.Length}.", nameof(xres));
        }

        var vector = new AuthenticationVector(0, (ushort)((autn[6] << 8) | autn[7]), received: true);
        rand.CopyTo(vector.RandWritable);
        xres.CopyTo(vector.XresWritable);
        ck.CopyTo(vector.CkWritable);
        ik.CopyTo(vector.IkWritable);
        autn.CopyTo(vector.AutnWritable);
        return vector;
    }

    /// <summary>Zeroes the vector.</summary>
    public void Dispose() => _material.Dispose();

    /// <summary>Never shows key material.</summary>
    public override string ToString() => IsReceived
        ? $"AuthenticationVector(received, AMF {Amf:x4})"
        : $"AuthenticationVector(SQN {Sqn:x12}, AMF {Amf:x4})";
}

/// <summary>The context a vector is generated for; EPS and 5G vectors carry the AMF separation bit.</summary>
public enum AkaContext
{
    /// <summary>UTRAN/GERAN, GBA and plain UMTS AKA: AMF as configured.</summary>
    Umts,

    /// <summary>E-UTRAN (TS 33.401): the AMF separation bit is set.</summary>
    Eps,

    /// <summary>5G AKA and EAP-AKA' (TS 33.501 6.1.3.2): the AMF separation bit is set.</summary>
    FiveG,
}

/// <summary>Constants and helpers for the authentication management field (TS 33.102 Annex H).</summary>
public static class AmfBits
{
    /// <summary>The AMF separation bit (bit 0, the most significant bit; TS 33.501 6.1.3.2, TS 33.401 6.1.1).</summary>
    public const ushort SeparationBit = 0x8000;

    /// <summary>The dummy AMF* = 0000 used in MAC-S of AUTS (TS 33.102 6.3.3).</summary>
    public const ushort ResynchronisationAmf = 0x0000;

    /// <summary>Returns <paramref name="amf"/> with the separation bit set for EPS and 5G contexts.</summary>
    public static ushort ForContext(ushort amf, AkaContext context) =>
        context == AkaContext.Umts ? amf : (ushort)(amf | SeparationBit);

    /// <summary>Whether the separation bit is set.</summary>
    public static bool HasSeparationBit(ushort amf) => (amf & SeparationBit) != 0;
}

/// <summary>Internal helpers shared by the AuC and USIM sides.</summary>
internal static class AkaOctets
{
    public static void WriteAmf(ushort amf, Span<byte> destination)
    {
        destination[0] = (byte)(amf >> 8);
        destination[1] = (byte)amf;
    }
}
