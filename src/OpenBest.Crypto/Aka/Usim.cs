using System.Security.Cryptography;

namespace OpenBest.Crypto.Aka;

/// <summary>
/// The USIM's record of accepted sequence numbers (TS 33.102 Annex C.2): one SEQ_MS per IND value,
/// the wrap-around limit Δ and an optional age limit L.
/// </summary>
/// <remarks>
/// A received SQN = SEQ ‖ i is fresh iff SEQ − max(SEQ_MS) ≤ Δ, SEQ &gt; SEQ_MS(i) and, with an age
/// limit, max(SEQ_MS) − SEQ ≤ L. The array is changed only by <see cref="Accept"/>, which the USIM calls
/// after the MAC verified.
/// </remarks>
public sealed class UsimSequenceState
{
    private readonly ulong[] _seqMs;

    /// <summary>Creates a fresh state (every SEQ_MS 0).</summary>
    /// <param name="scheme">The IND length.</param>
    /// <param name="delta">Δ, default 2^28.</param>
    /// <param name="ageLimit">L, or null for no age limit (the default; TS 33.102 leaves it to the operator).</param>
    public UsimSequenceState(SqnScheme scheme, ulong delta = SqnScheme.DefaultDelta, ulong? ageLimit = null)
    {
        Scheme = scheme;
        Delta = delta;
        AgeLimit = ageLimit;
        _seqMs = new ulong[scheme.ArraySize];
    }

    /// <summary>
    /// Creates a state for a USIM whose highest accepted SQN is <paramref name="sqnMs"/>, with every IND
    /// entry at SEQ(SQN_MS): the conservative reading of a card of which only SQN_MS is known.
    /// </summary>
    public static UsimSequenceState FromSqnMs(ulong sqnMs, SqnScheme scheme, ulong delta = SqnScheme.DefaultDelta)
    {
        var state = new UsimSequenceState(scheme, delta);
        Array.Fill(state._seqMs, scheme.Seq(sqnMs));
        state.SqnMs = sqnMs & SqnScheme.MaxSqn;
        return state;
    }

    /// <summary>Restores a state saved with <see cref="SeqMsEntries"/> and <see cref="SqnMs"/>.</summary>
    /// <exception cref="ArgumentException">The array does not have 2^IND length entries.</exception>
    public static UsimSequenceState Restore(SqnScheme scheme, IReadOnlyList<ulong> seqMs, ulong sqnMs, ulong delta = SqnScheme.DefaultDelta)
    {
        ArgumentNullException.ThrowIfNull(seqMs);
        if (seqMs.Count != scheme.ArraySize)
        {
            throw new ArgumentException($"The SEQ_MS array has {scheme.ArraySize} entries for an IND of {scheme.IndLength} bits.", nameof(seqMs));
        }

        var state = new UsimSequenceState(scheme, delta);
        for (var i = 0; i < seqMs.Count; i++)
        {
            state._seqMs[i] = seqMs[i];
        }

        state.SqnMs = sqnMs & SqnScheme.MaxSqn;
        return state;
    }

    /// <summary>A copy of the SEQ_MS array, to save the state.</summary>
    public IReadOnlyList<ulong> SeqMsEntries => [.. _seqMs];

    /// <summary>The SQN scheme.</summary>
    public SqnScheme Scheme { get; }

    /// <summary>Δ, the largest accepted step ahead of SEQ_MS.</summary>
    public ulong Delta { get; }

    /// <summary>L, the age limit, or null.</summary>
    public ulong? AgeLimit { get; }

    /// <summary>SQN_MS: the highest SQN accepted so far (the value AUTS conceals).</summary>
    public ulong SqnMs { get; private set; }

    /// <summary>The highest SEQ in the array.</summary>
    public ulong SeqMs => Scheme.Seq(SqnMs);

    /// <summary>SEQ_MS(i) for IND value <paramref name="ind"/>.</summary>
    public ulong SeqMsAt(int ind) => _seqMs[ind];

    /// <summary>Whether <paramref name="sqn"/> is in the correct range (Annex C.2.1, C.2.2).</summary>
    public bool IsFresh(ulong sqn)
    {
        var seq = Scheme.Seq(sqn);
        var ind = Scheme.Ind(sqn);
        var seqMs = SeqMs;
        if (seq > seqMs && seq - seqMs > Delta)
        {
            return false;
        }

        if (AgeLimit is { } limit && seqMs > seq && seqMs - seq > limit)
        {
            return false;
        }

        return seq > _seqMs[ind];
    }

    /// <summary>Records <paramref name="sqn"/> as accepted.</summary>
    public void Accept(ulong sqn)
    {
        var seq = Scheme.Seq(sqn);
        _seqMs[Scheme.Ind(sqn)] = seq;
        if (seq >= Scheme.Seq(SqnMs))
        {
            SqnMs = sqn & SqnScheme.MaxSqn;
        }
    }
}

/// <summary>What the USIM answered to AUTHENTICATE.</summary>
public enum UsimAuthenticationStatus
{
    /// <summary>MAC and SQN verified: RES, CK and IK are available (response tag 'DB').</summary>
    Success,

    /// <summary>XMAC ≠ MAC (status word 9862): nothing is returned.</summary>
    MacFailure,

    /// <summary>MAC verified but SQN out of range: AUTS is returned (response tag 'DC').</summary>
    SynchronisationFailure,
}

/// <summary>The USIM's answer. Secret fields are zeroed by <see cref="Dispose"/>.</summary>
public sealed class UsimAuthenticationResult : IDisposable
{
    private readonly SecretBuffer _material = new(8 + 16 + 16 + 14);

    internal UsimAuthenticationResult(UsimAuthenticationStatus status, ulong sqn, ushort amf)
    {
        Status = status;
        Sqn = sqn;
        Amf = amf;
    }

    /// <summary>Success, MAC failure or synchronisation failure.</summary>
    public UsimAuthenticationStatus Status { get; }

    /// <summary>The SQN recovered from AUTN (0 on MAC failure).</summary>
    public ulong Sqn { get; }

    /// <summary>The AMF carried in AUTN.</summary>
    public ushort Amf { get; }

    /// <summary>RES (8 octets) on success, else empty.</summary>
    public ReadOnlySpan<byte> Res => Status == UsimAuthenticationStatus.Success ? _material.Span[..ResLength] : default;

    /// <summary>CK on success, else empty (also empty when the card keeps it).</summary>
    public ReadOnlySpan<byte> Ck => Status == UsimAuthenticationStatus.Success && HasKeys ? _material.Span.Slice(8, 16) : default;

    /// <summary>IK on success, else empty (also empty when the card keeps it).</summary>
    public ReadOnlySpan<byte> Ik => Status == UsimAuthenticationStatus.Success && HasKeys ? _material.Span.Slice(24, 16) : default;

    /// <summary>AUTS (14 octets) on synchronisation failure, else empty.</summary>
    public ReadOnlySpan<byte> Auts => Status == UsimAuthenticationStatus.SynchronisationFailure ? _material.Span.Slice(40, 14) : default;

    internal Span<byte> Writable => _material.WritableSpan;

    /// <summary>
    /// A success as a card reports it over APDUs (TS 31.102 7.1.2, tag 'DB'): the SQN stays hidden in the card (0 here);
    /// <paramref name="ck"/> and <paramref name="ik"/> are empty when the card keeps them (GBA context).
    /// </summary>
    /// <exception cref="ArgumentException">RES is longer than 8 octets, or CK or IK is neither empty nor 16 octets.</exception>
    public static UsimAuthenticationResult FromCard(ushort amf, ReadOnlySpan<byte> res, ReadOnlySpan<byte> ck, ReadOnlySpan<byte> ik)
    {
        if (res.Length is < 4 or > 8 || ck.Length is not (0 or 16) || ik.Length is not (0 or 16))
        {
            throw new ArgumentException("A card's answer has RES of 4 to 8 octets and CK, IK of 16 octets or none.");
        }

        var result = new UsimAuthenticationResult(UsimAuthenticationStatus.Success, 0, amf) { ResLength = res.Length, HasKeys = ck.Length == 16 };
        res.CopyTo(result.Writable);
        ck.CopyTo(result.Writable[8..]);
        ik.CopyTo(result.Writable[24..]);
        return result;
    }

    /// <summary>A synchronisation failure as a card reports it (tag 'DC' with AUTS).</summary>
    /// <exception cref="ArgumentException">AUTS is not 14 octets.</exception>
    public static UsimAuthenticationResult SynchronisationFailureFromCard(ushort amf, ReadOnlySpan<byte> auts)
    {
        if (auts.Length != 14)
        {
            throw new ArgumentException($"AUTS must be 14 octets, not {auts.Length}.", nameof(auts));
        }

        var result = new UsimAuthenticationResult(UsimAuthenticationStatus.SynchronisationFailure, 0, amf);
        auts.CopyTo(result.Writable[40..]);
        return result;
    }

    /// <summary>A MAC failure as a card reports it (status word '9862').</summary>
    public static UsimAuthenticationResult MacFailureFromCard(ushort amf) => new(UsimAuthenticationStatus.MacFailure, 0, amf);

    /// <summary>Whether CK and IK came with RES (false when the card keeps them, as in the GBA context).</summary>
    public bool HasKeys { get; private init; } = true;

    private int ResLength { get; init; } = 8;

    /// <summary>Zeroes RES, CK, IK and AUTS.</summary>
    public void Dispose() => _material.Dispose();

    /// <summary>Never shows key material.</summary>
    public override string ToString() => $"UsimAuthenticationResult({Status})";
}

/// <summary>
/// What the device needs of a USIM: AUTHENTICATE in the 3G/EPS/5G context (TS 31.102 7.1.2, TS 33.102 6.3.3).
/// Implemented by the software <see cref="Usim"/> and by cards reached over APDUs (PC/SC, AT+CSIM).
/// </summary>
/// <remarks>A card answers one command at a time; callers that share one serialise on the instance.</remarks>
public interface IUsim
{
    /// <summary>Runs AUTHENTICATE on <paramref name="rand"/> and <paramref name="autn"/> (16 octets each).</summary>
    /// <exception cref="ArgumentException">RAND or AUTN is not 16 octets.</exception>
    /// <exception cref="IOException">The card cannot be reached or answered outside the standard.</exception>
    UsimAuthenticationResult Authenticate(ReadOnlySpan<byte> rand, ReadOnlySpan<byte> autn);
}

/// <summary>
/// A UICC that runs GBA_U (TS 33.220 5.3.2, G.1, G.2; TS 31.102 7.1.2 GBA security context): Ks = CK ‖ IK and
/// Ks_int_NAF never leave the card; the device gets RES to answer the BSF and, for a NAF, Ks_ext_NAF.
/// </summary>
public interface IGbaUicc
{
    /// <summary>
    /// AUTHENTICATE in the GBA context, bootstrapping mode: RES on success (CK and IK stay in the card, which keeps
    /// Ks and RAND), AUTS on a synchronisation failure, nothing on a MAC failure.
    /// </summary>
    /// <exception cref="IOException">The card cannot be reached, has no GBA context, or answered outside the standard.</exception>
    UsimAuthenticationResult BootstrapGba(ReadOnlySpan<byte> rand, ReadOnlySpan<byte> autn);

    /// <summary>Writes RAND, the B-TID and the key lifetime the BSF gave into EF_GBABP (TS 31.102 4.2.79).</summary>
    /// <exception cref="IOException">The card refused or cannot be reached.</exception>
    void StoreBootstrappingParameters(ReadOnlySpan<byte> rand, string btid, DateTimeOffset lifetime);

    /// <summary>
    /// AUTHENTICATE in the GBA context, NAF derivation mode: the card derives Ks_ext_NAF (returned into
    /// <paramref name="ksExtNaf"/>, 32 octets) and Ks_int_NAF (kept, with the NAF_Id and B-TID in EF_GBANL).
    /// </summary>
    /// <exception cref="IOException">There is no bootstrap in the card, or it cannot be reached.</exception>
    void DeriveNafKey(ReadOnlySpan<byte> nafId, string impi, Span<byte> ksExtNaf);
}

/// <summary>
/// A software USIM for MILENAGE subscribers: the AUTHENTICATE command in the 3G/EPS/5G context
/// (TS 33.102 clause 6.3.3, TS 31.102 7.1.2).
/// </summary>
/// <remarks>
/// Order of checks: MAC first (a MAC failure changes nothing), then freshness; the SEQ_MS array is
/// updated only after both pass. On a synchronisation failure it returns
/// AUTS = (SQN_MS ⊕ f5*(RAND)) ‖ f1*(SQN_MS ‖ RAND ‖ AMF* = 0000).
/// The separation-bit check of EPS and 5G is the ME's (TS 33.501 6.1.3.2), see <see cref="AmfBits"/>.
/// </remarks>
public sealed class Usim : IUsim
{
    private readonly Milenage _milenage;

    /// <summary>Creates a USIM over <paramref name="milenage"/> with the sequence state <paramref name="state"/>.</summary>
    public Usim(Milenage milenage, UsimSequenceState state)
    {
        ArgumentNullException.ThrowIfNull(milenage);
        ArgumentNullException.ThrowIfNull(state);
        _milenage = milenage;
        State = state;
    }

    /// <summary>The SQN array; it changes only after a successful authentication.</summary>
    public UsimSequenceState State { get; }

    /// <summary>Whether freshness is checked at all. A test tool may switch it off; a USIM never does.</summary>
    public bool CheckFreshness { get; init; } = true;

    /// <summary>
    /// Called after an accepted SQN updated the array and before CK and IK are returned: a software USIM
    /// commits its state durably here (profile section 5), so a crash can never make it accept a SQN twice.
    /// </summary>
    public Action<UsimSequenceState>? CommitState { get; init; }

    /// <summary>Runs AUTHENTICATE on <paramref name="rand"/> and <paramref name="autn"/>.</summary>
    /// <exception cref="ArgumentException">RAND or AUTN is not 16 octets.</exception>
    public UsimAuthenticationResult Authenticate(ReadOnlySpan<byte> rand, ReadOnlySpan<byte> autn)
    {
        if (rand.Length != 16)
        {
            throw new ArgumentException($"RAND must be 16 octets, not {rand.Length}.", nameof(rand));
        }

        if (autn.Length != 16)
        {
            throw new ArgumentException($"AUTN must be 16 octets, not {autn.Length}.", nameof(autn));
        }

        Span<byte> ak = stackalloc byte[6];
        Span<byte> sqnOctets = stackalloc byte[6];
        Span<byte> xmac = stackalloc byte[8];
        try
        {
            _milenage.F2345(rand, default, default, default, ak);
            for (var i = 0; i < 6; i++)
            {
                sqnOctets[i] = (byte)(autn[i] ^ ak[i]);
            }

            var amf = (ushort)((autn[6] << 8) | autn[7]);
            _milenage.F1(rand, sqnOctets, autn.Slice(6, 2), xmac, default);
            if (!CryptographicOperations.FixedTimeEquals(xmac, autn[8..]))
            {
                return new UsimAuthenticationResult(UsimAuthenticationStatus.MacFailure, 0, amf);
            }

            var sqn = SqnScheme.Read(sqnOctets);
            if (CheckFreshness && !State.IsFresh(sqn))
            {
                var failure = new UsimAuthenticationResult(UsimAuthenticationStatus.SynchronisationFailure, sqn, amf);
                ComputeAuts(rand, failure.Writable.Slice(40, 14));
                return failure;
            }

            var result = new UsimAuthenticationResult(UsimAuthenticationStatus.Success, sqn, amf);
            var w = result.Writable;
            State.Accept(sqn);
            try
            {
                CommitState?.Invoke(State);
            }
            catch
            {
                result.Dispose();
                throw;
            }

            _milenage.F2345(rand, w[..8], w.Slice(8, 16), w.Slice(24, 16), default);
            return result;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(ak);
            CryptographicOperations.ZeroMemory(sqnOctets);
        }
    }

    private void ComputeAuts(ReadOnlySpan<byte> rand, Span<byte> auts)
    {
        Span<byte> sqnMs = stackalloc byte[6];
        Span<byte> amfStar = stackalloc byte[2];
        SqnScheme.Write(State.SqnMs, sqnMs);
        _milenage.F5Star(rand, auts);
        for (var i = 0; i < 6; i++)
        {
            auts[i] ^= sqnMs[i];
        }

        _milenage.F1(rand, sqnMs, amfStar, default, auts.Slice(6, 8));
    }
}
