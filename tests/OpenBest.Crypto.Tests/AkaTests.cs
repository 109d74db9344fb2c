using OpenBest.Crypto.Aka;

namespace OpenBest.Crypto.Tests;

/// <summary>UMTS AKA (TS 33.102 clauses 6.3.2, 6.3.3, 6.3.5 and Annex C).</summary>
public sealed class AkaTests
{
    private const string K1 = "465b5ce8b199b49faa5f0a2ee238a6bc";
    private const string Opc1 = "cd63cb71954a9f4e48a5994e37a02baf";
    private const string Rand1 = "23553cbe9637a89d218ae64dae47bf35";

    private static Milenage Set1() => new(Hex.Bytes(K1), Hex.Bytes(Opc1));

    [Fact]
    public void Generate_Set1_GivesAutnXresCkIk()
    {
        // 33.102 6.3.2: AUTN = SQN ⊕ AK ‖ AMF ‖ MAC; MILENAGE test set 1.
        using var m = Set1();
        using var av = AuthenticationCentre.Generate(m, 0xff9bb4d0b607, 0xb9b9, Hex.Bytes(Rand1));
        Assert.Equal("55f328b43577b9b94a9ffac354dfafb3", Hex.String(av.Autn));
        Assert.Equal("a54211d5e3ba50bf", Hex.String(av.Xres));
        Assert.Equal("b40ba9a3c58b2a05bbf0d987b21bf8cb", Hex.String(av.Ck));
        Assert.Equal("f769bcd751044604127672711c6d3441", Hex.String(av.Ik));
        Assert.Equal("aa689c648370", Hex.String(av.Ak));
    }

    [Fact]
    public void Generate_Set19_MatchesRfc5448Autn()
    {
        using var m = new Milenage(Hex.Bytes("5122250214c33e723a5dd523fc145fc0"), Hex.Bytes("981d464c7c52eb6e5036234984ad0bcf"));
        using var av = AuthenticationCentre.Generate(m, 0x16f3b3f70fc2, 0xc3ab, Hex.Bytes("81e92b6c0ee0e12ebceba8d92a99dfa5"), AkaContext.FiveG);
        Assert.Equal("bb52e91c747ac3ab2a5c23d15ee351d5", Hex.String(av.Autn));
    }

    [Fact]
    public void Generate_Libosmocore_Vector()
    {
        // libosmocore tests/auth/milenage_test: K = OPc = 00..0f, RAND = 0, SQN = 0x22, AMF = 0000.
        var key = Hex.Bytes("000102030405060708090a0b0c0d0e0f");
        using var m = new Milenage(key, key);
        using var av = AuthenticationCentre.Generate(m, 0x22, 0x0000, new byte[16]);
        Assert.Equal("ec9320c2c2120000c8b7de2a3449f1bd", Hex.String(av.Autn));
        Assert.Equal("e9fc88ccc8a35381", Hex.String(av.Xres));
        Assert.Equal("7200a184d8f2c758fbdf87900ddbf275", Hex.String(av.Ck));
        Assert.Equal("12cb2dd3e0ec8378f6fc1d606c619f47", Hex.String(av.Ik));
    }

    [Fact]
    public void FromReceived_KeepsTheQuintet_AndReadsAmfFromAutn()
    {
        // A vector another AuC computed (an HLR over GSUP): taken over as received; SQN stays concealed by AK.
        using var m = Set1();
        using var own = AuthenticationCentre.Generate(m, 0xff9bb4d0b607, 0xb9b9, Hex.Bytes(Rand1));
        using var received = AuthenticationVector.FromReceived(own.Rand, own.Xres, own.Ck, own.Ik, own.Autn);
        Assert.True(received.IsReceived);
        Assert.False(own.IsReceived);
        Assert.Equal(0xb9b9, received.Amf);
        Assert.Equal(0UL, received.Sqn);
        Assert.Equal(Hex.String(own.SqnXorAk), Hex.String(received.SqnXorAk));
        Assert.Equal(Hex.String(own.Xres), Hex.String(received.Xres));
        Assert.Equal(Hex.String(own.Ck), Hex.String(received.Ck));
        Assert.Equal(Hex.String(own.Ik), Hex.String(received.Ik));
        Assert.DoesNotContain(Hex.String(own.Ck), received.ToString(), StringComparison.OrdinalIgnoreCase);
        Assert.Throws<ArgumentException>(() => AuthenticationVector.FromReceived(own.Rand, new byte[4], own.Ck, own.Ik, own.Autn));
        Assert.Throws<ArgumentException>(() => AuthenticationVector.FromReceived(own.Rand, own.Xres, own.Ck, own.Ik, own.Autn[..15]));
    }

    [Fact]
    public void Generate_WithoutRand_DrawsFreshRandomness()
    {
        using var m = Set1();
        using var a = AuthenticationCentre.Generate(m, 0x20, 0x8000);
        using var b = AuthenticationCentre.Generate(m, 0x20, 0x8000);
        Assert.NotEqual(Hex.String(a.Rand), Hex.String(b.Rand));
    }

    [Theory]
    [InlineData(AkaContext.Umts, 0x0000, 0x0000)]
    [InlineData(AkaContext.Eps, 0x0000, 0x8000)]
    [InlineData(AkaContext.FiveG, 0x1234, 0x9234)]
    public void Generate_SetsSeparationBit_ForEpsAnd5G(AkaContext context, int amf, int expected)
    {
        // TS 33.501 6.1.3.2 / TS 33.401 6.1.1: EPS and 5G vectors carry the AMF separation bit.
        using var m = Set1();
        using var av = AuthenticationCentre.Generate(m, 0x40, (ushort)amf, Hex.Bytes(Rand1), context);
        Assert.Equal(expected, av.Amf);
        Assert.Equal(expected, (av.Autn[6] << 8) | av.Autn[7]);
    }

    [Fact]
    public void Usim_AcceptsFreshVector_AndReturnsKeys()
    {
        using var m = Set1();
        var usim = new Usim(m, UsimSequenceState.FromSqnMs(0xff9bb4d0b5e0, SqnScheme.Default));
        using var result = usim.Authenticate(Hex.Bytes(Rand1), Hex.Bytes("55f328b43577b9b94a9ffac354dfafb3"));
        Assert.Equal(UsimAuthenticationStatus.Success, result.Status);
        Assert.Equal("a54211d5e3ba50bf", Hex.String(result.Res));
        Assert.Equal("b40ba9a3c58b2a05bbf0d987b21bf8cb", Hex.String(result.Ck));
        Assert.Equal("f769bcd751044604127672711c6d3441", Hex.String(result.Ik));
        Assert.Equal(0xff9bb4d0b607UL, usim.State.SqnMs);
    }

    [Fact]
    public void Usim_MacFailure_ChangesNothing()
    {
        // 33.102 6.3.3: the MAC is verified first; a failure leaves the SQN array alone.
        using var m = Set1();
        var state = UsimSequenceState.FromSqnMs(0x100, SqnScheme.Default);
        var usim = new Usim(m, state);
        var autn = Hex.Bytes("55f328b43577b9b94a9ffac354dfafb3");
        autn[15] ^= 1;
        using var result = usim.Authenticate(Hex.Bytes(Rand1), autn);
        Assert.Equal(UsimAuthenticationStatus.MacFailure, result.Status);
        Assert.True(result.Res.IsEmpty);
        Assert.True(result.Auts.IsEmpty);
        Assert.Equal(0x100UL, state.SqnMs);
    }

    [Fact]
    public void Usim_SyncFailure_ReturnsAuts_OfReferenceExample()
    {
        // Reference digest 2.4: set 1, USIM at SQN_MS = 000000000400 → AUTS 451e8beca03b87423afbed548cbd.
        // The vector's SQN ff9b… is more than Δ = 2^28 ahead, so it is out of range.
        using var m = Set1();
        var usim = new Usim(m, UsimSequenceState.FromSqnMs(0x400, SqnScheme.Default));
        using var result = usim.Authenticate(Hex.Bytes(Rand1), Hex.Bytes("55f328b43577b9b94a9ffac354dfafb3"));
        Assert.Equal(UsimAuthenticationStatus.SynchronisationFailure, result.Status);
        Assert.Equal("451e8beca03b87423afbed548cbd", Hex.String(result.Auts));
        Assert.Equal(0x400UL, usim.State.SqnMs);
    }

    [Fact]
    public void Usim_SyncFailure_Libosmocore_Auts()
    {
        // libosmocore: USIM at SQN_MS = 0x1f, RAND = 0 → AUTS 8711a0ec9e1637df17f80b384ee4.
        var key = Hex.Bytes("000102030405060708090a0b0c0d0e0f");
        using var m = new Milenage(key, key);
        using var replayed = AuthenticationCentre.Generate(m, 0x1f, 0, new byte[16]);
        var usim = new Usim(m, UsimSequenceState.FromSqnMs(0x1f, SqnScheme.Default));
        using var result = usim.Authenticate(new byte[16], replayed.Autn);
        Assert.Equal(UsimAuthenticationStatus.SynchronisationFailure, result.Status);
        Assert.Equal("8711a0ec9e1637df17f80b384ee4", Hex.String(result.Auts));
    }

    [Fact]
    public void Usim_RejectsReplay_OfAcceptedVector()
    {
        using var m = Set1();
        var usim = new Usim(m, new UsimSequenceState(SqnScheme.Default));
        using var av = AuthenticationCentre.Generate(m, SqnScheme.Default.Compose(1, 3), 0x8000);
        using (var first = usim.Authenticate(av.Rand, av.Autn))
        {
            Assert.Equal(UsimAuthenticationStatus.Success, first.Status);
        }

        using var second = usim.Authenticate(av.Rand, av.Autn);
        Assert.Equal(UsimAuthenticationStatus.SynchronisationFailure, second.Status);
    }

    [Fact]
    public void Usim_IndArray_AcceptsOlderSeqInAnotherSlot()
    {
        // Annex C.2.1: freshness is per IND entry, so a batch for another serving node stays usable.
        var scheme = SqnScheme.Default;
        var state = new UsimSequenceState(scheme);
        state.Accept(scheme.Compose(10, 4));
        Assert.True(state.IsFresh(scheme.Compose(5, 7)));
        Assert.False(state.IsFresh(scheme.Compose(10, 4)));
        Assert.False(state.IsFresh(scheme.Compose(9, 4)));
        Assert.True(state.IsFresh(scheme.Compose(11, 4)));
    }

    [Fact]
    public void Usim_RejectsJumpLargerThanDelta()
    {
        // Annex C.2.1: SEQ − SEQ_MS ≤ Δ = 2^28.
        var scheme = SqnScheme.Default;
        var state = new UsimSequenceState(scheme);
        state.Accept(scheme.Compose(100, 0));
        Assert.True(state.IsFresh(scheme.Compose(100 + (1UL << 28), 1)));
        Assert.False(state.IsFresh(scheme.Compose(101 + (1UL << 28), 1)));
    }

    [Fact]
    public void Usim_AgeLimit_RejectsTooOldSeq()
    {
        // Annex C.2.2 (optional): SEQ_MS − SEQ ≤ L.
        var scheme = SqnScheme.Default;
        var state = new UsimSequenceState(scheme, ageLimit: 5);
        state.Accept(scheme.Compose(100, 0));
        Assert.True(state.IsFresh(scheme.Compose(95, 1)));
        Assert.False(state.IsFresh(scheme.Compose(94, 1)));
    }

    [Fact]
    public void Resynchronise_RecoversSqnMs_AndMovesSeqHe()
    {
        // 33.102 6.3.5: verify MAC-S, then continue after SEQ_MS.
        using var m = Set1();
        var scheme = SqnScheme.Default;
        var result = AuthenticationCentre.Resynchronise(m, Hex.Bytes(Rand1), Hex.Bytes("451e8beca03b87423afbed548cbd"), currentSeqHe: 5, scheme);
        Assert.Equal(ResynchronisationOutcome.Resynchronised, result.Outcome);
        Assert.Equal(0x400UL, result.SqnMs);
        Assert.Equal(scheme.Seq(0x400), result.SeqHe);
    }

    [Fact]
    public void Resynchronise_KeepsSeqHe_WhenAlreadyInRange()
    {
        using var m = Set1();
        var result = AuthenticationCentre.Resynchronise(m, Hex.Bytes(Rand1), Hex.Bytes("451e8beca03b87423afbed548cbd"), currentSeqHe: 1000, SqnScheme.Default);
        Assert.Equal(ResynchronisationOutcome.Resynchronised, result.Outcome);
        Assert.Equal(1000UL, result.SeqHe);
    }

    [Fact]
    public void Resynchronise_WrongMacS_IsRefused()
    {
        using var m = Set1();
        var auts = Hex.Bytes("451e8beca03b87423afbed548cbd");
        auts[13] ^= 0x80;
        var result = AuthenticationCentre.Resynchronise(m, Hex.Bytes(Rand1), auts, currentSeqHe: 7, SqnScheme.Default);
        Assert.Equal(ResynchronisationOutcome.MacFailure, result.Outcome);
        Assert.Equal(7UL, result.SeqHe);
    }

    [Fact]
    public void FullCycle_SyncFailure_Resync_ThenFreshVectorAccepted()
    {
        // The whole loop of 33.102 6.3.5: the AuC is behind the USIM, resynchronises and issues a vector the USIM takes.
        using var m = Set1();
        var scheme = SqnScheme.Default;
        var usim = new Usim(m, UsimSequenceState.FromSqnMs(scheme.Compose(5000, 2), scheme));
        ulong seqHe = 10;

        using var stale = AuthenticationCentre.Generate(m, scheme.Next(seqHe, 31), 0x8000);
        using var failure = usim.Authenticate(stale.Rand, stale.Autn);
        Assert.Equal(UsimAuthenticationStatus.SynchronisationFailure, failure.Status);

        var resync = AuthenticationCentre.Resynchronise(m, stale.Rand, failure.Auts, seqHe, scheme);
        Assert.Equal(ResynchronisationOutcome.Resynchronised, resync.Outcome);
        seqHe = resync.SeqHe;
        Assert.Equal(5000UL, seqHe);

        using var fresh = AuthenticationCentre.Generate(m, scheme.Next(seqHe, 31), 0x8000);
        using var ok = usim.Authenticate(fresh.Rand, fresh.Autn);
        Assert.Equal(UsimAuthenticationStatus.Success, ok.Status);
        Assert.Equal(scheme.Compose(5001, 31), usim.State.SqnMs);
    }

    [Theory]
    [InlineData(5, 10, 0x14a)]   // osmocom: ((SQN >> 5) + 1) << 5 | 10 with SEQ_HE = 9 → 0x14a
    [InlineData(0, 0, 0x0b)]
    public void SqnScheme_Next_ComposesSeqAndInd(int indLength, int ind, long expected)
    {
        var scheme = new SqnScheme(indLength);
        var seqHe = indLength == 5 ? 9UL : 10UL;
        Assert.Equal((ulong)expected, scheme.Next(seqHe, ind));
    }

    [Fact]
    public void SqnScheme_Osmocom_Sequence_42_74_106()
    {
        // libosmocore: ind_bitlen 5, IND 10 gives 42, 74, 106.
        var scheme = SqnScheme.Default;
        ulong sqn = 42;
        Assert.Equal(74UL, scheme.Next(scheme.Seq(sqn), 10));
        Assert.Equal(106UL, scheme.Next(scheme.Seq(74), 10));
    }

    [Fact]
    public void SqnScheme_ReadWrite_RoundTrips()
    {
        Span<byte> octets = stackalloc byte[6];
        SqnScheme.Write(0xff9bb4d0b607, octets);
        Assert.Equal("ff9bb4d0b607", Hex.String(octets));
        Assert.Equal(0xff9bb4d0b607UL, SqnScheme.Read(octets));
    }

    [Fact]
    public void SqnScheme_RefusesExhaustedSeq()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => SqnScheme.Default.Compose((SqnScheme.MaxSqn >> 5) + 1, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => SqnScheme.Default.Compose(1, 32));
    }
}
