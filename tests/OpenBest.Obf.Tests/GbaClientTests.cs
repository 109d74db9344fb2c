using System.Net;
using OpenBest.Crypto;
using OpenBest.Crypto.Aka;
using OpenBest.EasInterface;
using OpenBest.Storage;

namespace OpenBest.Obf.Tests;

/// <summary>
/// <see cref="GbaClient"/>, the product's GBA_ME (behind <c>best obf bootstrap</c> and the bench): against the OBF server over
/// real HTTPS, and against <see cref="FakeBsf"/>, a BSF written from RFC 2617/3310 and TS 24.109 annex A alone, which can be
/// made to misbehave. Mutual authentication (TS 24.109 4.4.5; RFC 3310 3.3): nothing from a server that did not prove it ran
/// the same AKA is trusted, and a malformed answer is a status, never an exception.
/// </summary>
public sealed class GbaClientTests : IAsyncLifetime
{
    private TestObf _obf = null!;
    private Milenage _milenage = null!;

    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        _obf = await TestObf.StartAsync();
        _milenage = new Milenage(TestObf.K, TestObf.Opc);
    }

    public async ValueTask DisposeAsync()
    {
        _milenage.Dispose();
        await _obf.DisposeAsync();
    }

    private Usim Card(ulong sqnMs = 0) => new(_milenage, UsimSequenceState.FromSqnMs(sqnMs, SqnScheme.Default));

    [Fact]
    public async Task Bootstraps_AndItsKsNaf_IsTheKeyTheApplicationFetches()
    {
        _obf.Store.Grant(new ResourceRight(TestObf.Impi, TestObf.Vtams, "position", DateTimeOffset.UtcNow));
        using var ub = _obf.Ub();
        using var bootstrap = await new GbaClient(ub, Card()).BootstrapAsync(TestObf.Impi, Cancel);
        Assert.Equal(GbaBootstrapStatus.Bootstrapped, bootstrap.Status);
        Assert.EndsWith("@" + TestObf.Domain, bootstrap.BTid, StringComparison.Ordinal);
        Assert.False(bootstrap.Resynchronised);
        Assert.InRange(bootstrap.Lifetime, DateTimeOffset.UtcNow.AddHours(23), DateTimeOffset.UtcNow.AddHours(25));
        // The rights ride in BootstrappingInfo's extension point, inside the body rspauth covers (Y.OBF_trust 6.2 g, i).
        Assert.Equal([new BootstrapRight(TestObf.Vtams, "position")], bootstrap.Rights);

        var ua = Convert.FromHexString("0100000002");
        var mine = new byte[32];
        bootstrap.DeriveKsNaf(TestObf.Impi, TestObf.Vtams, ua, mine);
        using var own = DevelopmentPki.LoadPair(DevelopmentPki.Naf(_obf.Directory.FullName, TestObf.Vtams));
        using var naf = new NafKeyClient(new Uri(_obf.Server.RpoAddress), TestObf.Vtams, own, _obf.Ca);
        var retrieval = await naf.RetrieveAsync(bootstrap.BTid!, ua, Cancel);
        Assert.Equal(200, retrieval.Status);
        Assert.Equal(Convert.ToHexStringLower(mine), retrieval.Answer!.MeKeyMaterial);
        Assert.Equal(["position"], retrieval.Answer.UssList!.SelectMany(u => u.Uss.Flags.Select(f => f.Flag)));

        // Another application of the same device, with no rights: refused with its cause, not an exception.
        using var otherCertificate = DevelopmentPki.LoadPair(DevelopmentPki.Naf(_obf.Directory.FullName, TestObf.Ers));
        using var other = new NafKeyClient(new Uri(_obf.Server.RpoAddress), TestObf.Ers, otherCertificate, _obf.Ca);
        var refused = await other.RetrieveAsync(bootstrap.BTid!, ua, Cancel);
        Assert.Equal((403, "NO_RESOURCE_RIGHTS"), (refused.Status, refused.Cause));
        Assert.Null(refused.Answer);
        var unknown = await naf.RetrieveAsync("AAAAAAAAAAAAAAAAAAAAAA==@" + TestObf.Domain, ua, Cancel);
        Assert.Equal((404, "BTID_NOT_FOUND"), (unknown.Status, unknown.Cause));
    }

    [Fact]
    public async Task ACardAheadOfTheServer_Resynchronises_ThenBootstraps()
    {
        // TS 24.109 A.4: AUTS with the digest of the empty password, then a fresh challenge.
        using var ub = _obf.Ub();
        using var bootstrap = await new GbaClient(ub, Card(SqnScheme.Default.Compose(1_000, 5))).BootstrapAsync(TestObf.Impi, Cancel);
        Assert.Equal(GbaBootstrapStatus.Bootstrapped, bootstrap.Status);
        Assert.True(bootstrap.Resynchronised);
        Assert.Equal(1, _obf.Server.Ub.Resynchronised);
    }

    [Fact]
    public async Task ACardWithOtherKeys_RefusesTheServer_AndSendsNothingMore()
    {
        using var other = new Milenage(Convert.FromHexString("0396eb317b6d1c36f19c1c84cd6ffd16"), TestObf.Opc);
        using var ub = _obf.Ub();
        using var bootstrap = await new GbaClient(ub, new Usim(other, new UsimSequenceState(SqnScheme.Default))).BootstrapAsync(TestObf.Impi, Cancel);
        Assert.Equal(GbaBootstrapStatus.NetworkNotAuthenticated, bootstrap.Status);
        Assert.Null(bootstrap.BTid);
        Assert.Throws<InvalidOperationException>(() => bootstrap.DeriveKsNaf(TestObf.Impi, TestObf.Vtams, Convert.FromHexString("0100000002"), new byte[32]));
    }

    [Fact]
    public async Task AgainstAnIndependentBsf_ItBootstraps_AndResynchronises()
    {
        using var bsf = new FakeBsf(TestObf.K, TestObf.Opc) { SeqHe = 3 };
        using var ub = new HttpClient(bsf) { BaseAddress = new Uri("https://bsf.home1.net/") };
        using var bootstrap = await new GbaClient(ub, Card(SqnScheme.Default.Compose(500, 0))).BootstrapAsync(TestObf.Impi, Cancel);
        Assert.Equal(GbaBootstrapStatus.Bootstrapped, bootstrap.Status);
        Assert.True(bootstrap.Resynchronised);
        Assert.True(bsf.AutsResponseVerified);
        Assert.Equal(bsf.LastBTid, bootstrap.BTid);
        Assert.Equal(3, bsf.Requests);
    }

    public static TheoryData<string> Misbehaviours() => ["forged rspauth", "no Authentication-Info", "body changed after rspauth", "no BootstrappingInfo", "an entity in the body", "no challenge", "a short nonce"];

    [Theory]
    [MemberData(nameof(Misbehaviours))]
    public async Task AServerThatDoesNotProveItself_OrAnswersGarbage_IsAProtocolError_NeverAnException(string misbehaviour)
    {
        using var bsf = misbehaviour switch
        {
            "forged rspauth" => new FakeBsf(TestObf.K, TestObf.Opc) { ForgeRspauth = true },
            "no Authentication-Info" => new FakeBsf(TestObf.K, TestObf.Opc) { OmitAuthenticationInfo = true },
            "body changed after rspauth" => new FakeBsf(TestObf.K, TestObf.Opc) { SwapBodyAfterRspauth = true },
            "no BootstrappingInfo" => new FakeBsf(TestObf.K, TestObf.Opc) { BodyOverride = (_, _) => "<html/>" },
            "an entity in the body" => new FakeBsf(TestObf.K, TestObf.Opc) { BodyOverride = (b, l) => $"<!DOCTYPE x [<!ENTITY e \"{new string('a', 64)}\">]><BootstrappingInfo xmlns=\"uri:3gpp-gba\"><btid>&e;{b}</btid><lifetime>{l}</lifetime></BootstrappingInfo>" },
            "no challenge" => new FakeBsf(TestObf.K, TestObf.Opc) { InitialStatus = HttpStatusCode.OK },
            _ => new FakeBsf(TestObf.K, TestObf.Opc) { ChallengeFields = _ => ["Digest realm=\"bsf.home1.net\", nonce=\"AAAA\", algorithm=AKAv1-MD5, qop=\"auth-int\""] },
        };
        using var ub = new HttpClient(bsf) { BaseAddress = new Uri("https://bsf.home1.net/") };
        using var bootstrap = await new GbaClient(ub, Card()).BootstrapAsync(TestObf.Impi, Cancel);
        Assert.Equal(GbaBootstrapStatus.ProtocolError, bootstrap.Status);
        Assert.Null(bootstrap.BTid);
    }

    [Fact]
    public async Task AServerThatRefusesTheResponse_IsRefused()
    {
        using var bsf = new FakeBsf(TestObf.K, TestObf.Opc) { SuccessStatus = HttpStatusCode.Forbidden };
        using var ub = new HttpClient(bsf) { BaseAddress = new Uri("https://bsf.home1.net/") };
        using var bootstrap = await new GbaClient(ub, Card()).BootstrapAsync(TestObf.Impi, Cancel);
        Assert.Equal(GbaBootstrapStatus.Refused, bootstrap.Status);
    }
}
