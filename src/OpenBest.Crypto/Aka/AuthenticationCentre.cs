using System.Security.Cryptography;

namespace OpenBest.Crypto.Aka;

/// <summary>The outcome of an AuC resynchronisation attempt (TS 33.102 clause 6.3.5).</summary>
public enum ResynchronisationOutcome
{
    /// <summary>MAC-S verified; the AuC's SEQ_HE is where the next vector will be accepted.</summary>
    Resynchronised,

    /// <summary>MAC-S did not verify; SEQ_HE must not move.</summary>
    MacFailure,
}

/// <summary>The result of <see cref="AuthenticationCentre.Resynchronise"/>.</summary>
/// <param name="Outcome">Whether MAC-S verified.</param>
/// <param name="SqnMs">SQN_MS recovered from AUTS (meaningful only when resynchronised).</param>
/// <param name="SeqHe">The SEQ_HE to continue from: unchanged when already in range, otherwise SEQ(SQN_MS).</param>
public readonly record struct ResynchronisationResult(ResynchronisationOutcome Outcome, ulong SqnMs, ulong SeqHe);

/// <summary>
/// The home environment's authentication centre (AuC) for MILENAGE subscribers: authentication vector
/// generation (TS 33.102 clause 6.3.2) and resynchronisation from RAND and AUTS (clause 6.3.5).
/// </summary>
public static class AuthenticationCentre
{
    /// <summary>
    /// Generates a vector for <paramref name="sqn"/>, with RAND from <paramref name="rand"/> or, when it
    /// is empty, from the operating system's CSPRNG. For EPS and 5G contexts the AMF separation bit is set.
    /// </summary>
    /// <exception cref="ArgumentException">RAND is neither empty nor 16 octets.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="sqn"/> exceeds 48 bits.</exception>
    public static AuthenticationVector Generate(Milenage milenage, ulong sqn, ushort amf, ReadOnlySpan<byte> rand = default, AkaContext context = AkaContext.Umts)
    {
        ArgumentNullException.ThrowIfNull(milenage);
        amf = AmfBits.ForContext(amf, context);
        var vector = new AuthenticationVector(sqn, amf);
        try
        {
            Generate(milenage, sqn, amf, rand, vector.RandWritable, vector.XresWritable, vector.CkWritable, vector.IkWritable, vector.AutnWritable, vector.AkWritable);
            return vector;
        }
        catch
        {
            vector.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Span form of <see cref="Generate(Milenage, ulong, ushort, ReadOnlySpan{byte}, AkaContext)"/>: writes
    /// RAND (generated when <paramref name="rand"/> is empty, else copied), XRES (8), CK, IK, AUTN (16) and AK (6).
    /// No allocation.
    /// </summary>
    public static void Generate(Milenage milenage, ulong sqn, ushort amf, ReadOnlySpan<byte> rand, Span<byte> randOut, Span<byte> xres, Span<byte> ck, Span<byte> ik, Span<byte> autn, Span<byte> ak)
    {
        ArgumentNullException.ThrowIfNull(milenage);
        if (sqn > SqnScheme.MaxSqn)
        {
            throw new ArgumentOutOfRangeException(nameof(sqn), "An SQN has 48 bits.");
        }

        if (randOut.Length < 16 || autn.Length < 16 || ak.Length < 6)
        {
            throw new ArgumentException("RAND and AUTN need 16 octets, AK 6.");
        }

        if (rand.IsEmpty)
        {
            RandomPool.Fill(randOut[..16]);
        }
        else if (rand.Length != 16)
        {
            throw new ArgumentException($"RAND must be 16 octets, not {rand.Length}.", nameof(rand));
        }
        else
        {
            rand.CopyTo(randOut);
        }

        Span<byte> sqnOctets = stackalloc byte[6];
        Span<byte> amfOctets = stackalloc byte[2];
        SqnScheme.Write(sqn, sqnOctets);
        AkaOctets.WriteAmf(amf, amfOctets);

        ReadOnlySpan<byte> r = randOut[..16];
        milenage.F1(r, sqnOctets, amfOctets, autn.Slice(8, 8), default);
        milenage.F2345(r, xres, ck, ik, ak);
        for (var i = 0; i < 6; i++)
        {
            autn[i] = (byte)(sqnOctets[i] ^ ak[i]);
        }

        amfOctets.CopyTo(autn[6..]);
    }

    /// <summary>
    /// Resynchronises from the RAND of the failed challenge and the USIM's AUTS = SQN_MS ⊕ AK* ‖ MAC-S.
    /// MAC-S = f1*(SQN_MS ‖ RAND ‖ AMF* = 0000) is always verified first, in fixed time. On success the
    /// returned SEQ_HE is the current one if the next vector would already be fresh for the USIM
    /// (SEQ_HE ≥ SEQ_MS and within Δ), otherwise SEQ(SQN_MS), so the next vector uses SEQ_MS + 1.
    /// </summary>
    /// <exception cref="ArgumentException">RAND is not 16 octets or AUTS not 14.</exception>
    public static ResynchronisationResult Resynchronise(Milenage milenage, ReadOnlySpan<byte> rand, ReadOnlySpan<byte> auts, ulong currentSeqHe, SqnScheme scheme, ulong delta = SqnScheme.DefaultDelta)
    {
        ArgumentNullException.ThrowIfNull(milenage);
        if (rand.Length != 16)
        {
            throw new ArgumentException($"RAND must be 16 octets, not {rand.Length}.", nameof(rand));
        }

        if (auts.Length != 14)
        {
            throw new ArgumentException($"AUTS must be 14 octets, not {auts.Length}.", nameof(auts));
        }

        Span<byte> sqnMsOctets = stackalloc byte[6];
        Span<byte> macS = stackalloc byte[8];
        Span<byte> amfStar = stackalloc byte[2];
        milenage.F5Star(rand, sqnMsOctets);
        for (var i = 0; i < 6; i++)
        {
            sqnMsOctets[i] ^= auts[i];
        }

        milenage.F1(rand, sqnMsOctets, amfStar, default, macS);
        if (!CryptographicOperations.FixedTimeEquals(macS, auts[6..]))
        {
            return new ResynchronisationResult(ResynchronisationOutcome.MacFailure, 0, currentSeqHe);
        }

        var sqnMs = SqnScheme.Read(sqnMsOctets);
        var seqMs = scheme.Seq(sqnMs);
        var inRange = currentSeqHe >= seqMs && currentSeqHe + 1 - seqMs <= delta;
        return new ResynchronisationResult(ResynchronisationOutcome.Resynchronised, sqnMs, inRange ? currentSeqHe : seqMs);
    }
}
