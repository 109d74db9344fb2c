using System.Net;
using System.Net.Http.Json;
using OpenBest.Crypto;
using OpenBest.Crypto.Aka;
using OpenBest.Crypto.Kdf;
using OpenBest.Obf.Server;
using OpenBest.Storage;

namespace OpenBest.Obf.Tests;

/// <summary>
/// The OBF authentication server end to end over real HTTPS and mutual TLS on loopback: a GBA_ME client written from RFC
/// 3310 and TS 24.109 alone (<see cref="GbaMeClient"/>, which never saw the server's code) bootstraps on Ub, and
/// applications fetch their keys in the Nbsp_GBA form where the resource rights allow.
/// </summary>
public sealed class ObfServerTests : IAsyncLifetime
{
    private static readonly byte[] UaHttpDigest = [0x01, 0x00, 0x00, 0x00, 0x02];
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

    private GbaMeClient Device(HttpClient ub, string identity = TestObf.Impi, ulong sqnMs = 0) =>
        new(ub, identity, new Usim(_milenage, UsimSequenceState.FromSqnMs(sqnMs, SqnScheme.Default)), new GbaMeClientOptions { Realm = TestObf.Domain });

    [Fact]
    public async Task AStandardGbaMeClient_Bootstraps_AndTheNafGetsTheSameKsNaf()
    {
        using var ub = _obf.Ub();
        var device = Device(ub);
        using var result = await device.RunAsync(Cancel);
        Assert.True(result.Succeeded, result.ToString());

        // TS 33.220 4.5.2: B-TID = base64(RAND)@server domain; Ks = CK ‖ IK, kept sealed with its lifetime.
        Assert.Equal(Convert.ToBase64String(result.Rand!) + "@" + TestObf.Domain, result.BTid);
        var stored = _obf.Store.Bootstrap(result.BTid!)!.Value;
        using (stored.Ks)
        {
            Assert.Equal(result.Ks.ToArray(), stored.Ks.Span.ToArray());
            Assert.Equal(TestObf.Impi, stored.Record.Impi);
        }

        _obf.Store.Grant(new ResourceRight(TestObf.Impi, TestObf.Vtams, "position", DateTimeOffset.UtcNow));
        var (status, body) = await _obf.RetrieveAsync(TestObf.Vtams, result.BTid!);
        Assert.Equal(200, status);
        Assert.Equal(Convert.ToHexStringLower(device.DeriveKsNaf(TestObf.Vtams, UaHttpDigest)), body.GetProperty("meKeyMaterial").GetString());
        Assert.Equal("3G_GBA", body.GetProperty("gbaType").GetString());
        // vtams is not allowed to learn IMPIs: neither the field nor a USS names it.
        Assert.False(body.TryGetProperty("impi", out _));
        var uss = Assert.Single(body.GetProperty("ussList").EnumerateArray().ToList()).GetProperty("uss");
        Assert.Equal("position", Assert.Single(uss.GetProperty("flags").EnumerateArray().ToList()).GetProperty("flag").GetString());
        Assert.False(uss.TryGetProperty("ueIds", out _));
        Assert.Contains(_obf.Store.AuditLog(20), a => a.Event == "key-released" && a.Actor == TestObf.Vtams && a.Subject == result.BTid);
    }

    [Fact]
    public async Task SeveralBeneficiaries_EachGetTheirOwnKey_ForTheirOwnClassesOnly_AndNoneGetsAnothers()
    {
        using var ub = _obf.Ub();
        var device = Device(ub);
        using var result = await device.RunAsync(Cancel);
        Assert.True(result.Succeeded, result.ToString());
        _obf.Store.Grant(new ResourceRight(TestObf.Impi, TestObf.Vtams, "position", DateTimeOffset.UtcNow));
        _obf.Store.Grant(new ResourceRight(TestObf.Impi, TestObf.Vtams, "health", DateTimeOffset.UtcNow));
        _obf.Store.Grant(new ResourceRight(TestObf.Impi, TestObf.Ers, "alarm", DateTimeOffset.UtcNow));

        var (vtamsStatus, vtams) = await _obf.RetrieveAsync(TestObf.Vtams, result.BTid!);
        var (ersStatus, ers) = await _obf.RetrieveAsync(TestObf.Ers, result.BTid!);
        Assert.Equal(200, vtamsStatus);
        Assert.Equal(200, ersStatus);
        Assert.NotEqual(vtams.GetProperty("meKeyMaterial").GetString(), ers.GetProperty("meKeyMaterial").GetString());
        Assert.Equal(["health", "position"], vtams.GetProperty("ussList").EnumerateArray().Select(u => u.GetProperty("uss").GetProperty("flags")[0].GetProperty("flag").GetString()).Order());
        Assert.Equal(["alarm"], ers.GetProperty("ussList").EnumerateArray().Select(u => u.GetProperty("uss").GetProperty("flags")[0].GetProperty("flag").GetString()));
        // The emergency service may learn the IMPI (its policy); the fleet operator may not.
        Assert.Equal(TestObf.Impi, ers.GetProperty("impi").GetString());

        // A NAF cannot ask for another NAF's key: its certificate does not name that FQDN.
        var (stolen, problem) = await _obf.RetrieveAsync(TestObf.Vtams, result.BTid!, askedFor: TestObf.Ers);
        Assert.Equal(403, stolen);
        Assert.Equal("NAF_MISMATCH", problem.GetProperty("cause").GetString());
        // A NAF with a certificate of the CA but no registration, and one without rights, get nothing.
        Assert.Equal(403, (await _obf.RetrieveAsync("rogue.example.net", result.BTid!)).Status);
        _obf.Store.Revoke(TestObf.Impi, TestObf.Ers, "alarm");
        var (revoked, why) = await _obf.RetrieveAsync(TestObf.Ers, result.BTid!);
        Assert.Equal(403, revoked);
        Assert.Equal("NO_RESOURCE_RIGHTS", why.GetProperty("cause").GetString());
        Assert.Contains(_obf.Store.AuditLog(50), a => a.Event == "key-refused" && a.Actor == TestObf.Ers && a.Detail == "NO_RESOURCE_RIGHTS");
    }

    [Fact]
    public async Task AnUnknownOrExpiredBtid_Gets404_SayingBootstrapAgain()
    {
        _obf.Store.Grant(new ResourceRight(TestObf.Impi, TestObf.Vtams, "position", DateTimeOffset.UtcNow));
        var (status, problem) = await _obf.RetrieveAsync(TestObf.Vtams, "AAAAAAAAAAAAAAAAAAAAAA==@" + TestObf.Domain);
        Assert.Equal(404, status);
        Assert.Equal("BTID_NOT_FOUND", problem.GetProperty("cause").GetString());
        Assert.Contains("bootstrap again", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);

        // An expired one: stored with a lifetime in the past.
        var rand = new byte[16];
        rand[0] = 7;
        var btid = Gba.BTid(rand, TestObf.Domain);
        _obf.Store.SaveBootstraps([(new BootstrapRecord(btid, TestObf.Impi, rand, DateTimeOffset.UtcNow.AddHours(-2), DateTimeOffset.UtcNow.AddHours(-1)), new byte[32])]);
        Assert.Equal(404, (await _obf.RetrieveAsync(TestObf.Vtams, btid)).Status);

        // Malformed requests: 400 with a problem body.
        Assert.Equal(400, (await _obf.RetrieveAsync(TestObf.Vtams, btid, ua: "01")).Status);
    }

    [Fact]
    public async Task ASynchronisationFailure_IsAnsweredWithAuts_AndTheNextChallengeSucceeds()
    {
        // The USIM has seen a SEQ far ahead of the server's: it answers the first challenge with AUTS (TS 24.109 A.4).
        using var ub = _obf.Ub();
        var device = Device(ub, sqnMs: SqnScheme.Default.Compose(1_000, 5));
        using var result = await device.RunAsync(Cancel);
        Assert.True(result.Succeeded, result.ToString());
        Assert.True(result.Resynchronised);
        Assert.Equal(1, _obf.Server.Ub.Resynchronised);
    }

    [Fact]
    public async Task AWrongKey_IsRefused_AndAnUnknownIdentityLooksTheSame()
    {
        using var ub = _obf.Ub();
        // The card's K is not the registered one: the USIM finds AUTN's MAC wrong and stops (a MAC failure).
        using var otherMilenage = new Milenage(new byte[16], TestObf.Opc);
        var wrongCard = new GbaMeClient(ub, TestObf.Impi, new Usim(otherMilenage, new UsimSequenceState(SqnScheme.Default)), new GbaMeClientOptions { Realm = TestObf.Domain });
        using (var result = await wrongCard.RunAsync(Cancel))
        {
            Assert.Equal(GbaBootstrapOutcome.NetworkAuthenticationFailed, result.Outcome);
        }

        // An unknown identity gets a challenge like any other (no oracle of who is registered), which nobody can answer.
        var stranger = new GbaMeClient(ub, "999990000000001@ims.mnc099.mcc999.3gppnetwork.org", new Usim(_milenage, new UsimSequenceState(SqnScheme.Default)), new GbaMeClientOptions { Realm = TestObf.Domain });
        using (var result = await stranger.RunAsync(Cancel))
        {
            // The device sees a challenge whose AUTN it cannot verify: exactly what a card with the wrong key sees.
            Assert.Equal(GbaBootstrapOutcome.NetworkAuthenticationFailed, result.Outcome);
        }

        // A forged answer to a real challenge (a client that guesses RES): 403, and nothing stored.
        using var first = new HttpRequestMessage(HttpMethod.Get, "/");
        first.Headers.TryAddWithoutValidation("Authorization", $"Digest username=\"{TestObf.Impi}\", realm=\"{TestObf.Domain}\", nonce=\"\", uri=\"/\", response=\"\"");
        using var challenge = await ub.SendAsync(first, Cancel);
        Assert.Equal(HttpStatusCode.Unauthorized, challenge.StatusCode);
        Assert.True(DigestParameters.TryParse(challenge.Headers.WwwAuthenticate.ToString(), out var digest));
        Assert.Equal("AKAv1-MD5", digest["algorithm"]);
        Assert.Equal("auth-int", digest["qop"]);
        var forged = AkaDigest.Response(TestObf.Impi, TestObf.Domain, new byte[8], "GET", "/", digest["nonce"]!, "00000001", "abc", []);
        using var second = new HttpRequestMessage(HttpMethod.Get, "/");
        second.Headers.TryAddWithoutValidation("Authorization", $"Digest username=\"{TestObf.Impi}\", realm=\"{TestObf.Domain}\", nonce=\"{digest["nonce"]}\", uri=\"/\", qop=auth-int, nc=00000001, cnonce=\"abc\", response=\"{forged}\", opaque=\"{digest["opaque"]}\", algorithm=AKAv1-MD5");
        using var refused = await ub.SendAsync(second, Cancel);
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Equal(0, _obf.Server.Ub.Bootstrapped);
    }

    [Fact]
    public async Task ASecureElementThatIsNotAUsim_BootstrapsByItsIccid()
    {
        // Y.OBF_trust appendix 2.1: the ICCID (or EID) is the primary identifier; the key is derived with that identity.
        using var ub = _obf.Ub();
        var device = Device(ub, identity: "iccid:" + TestObf.Iccid);
        using var result = await device.RunAsync(Cancel);
        Assert.True(result.Succeeded, result.ToString());
        var stored = _obf.Store.Bootstrap(result.BTid!)!.Value;
        stored.Ks.Dispose();
        Assert.Equal(TestObf.Impi, stored.Record.Impi);
    }

    [Fact]
    public async Task TheRightsApi_IsLeastPrivilege_AndAudited()
    {
        _obf.Store.AddProvider(new ObfProvider("acme-m2m", "m2msp", null, DateTimeOffset.UtcNow));
        using var admin = _obf.Rpo(ObfApi.Operator);
        using (var grant = await admin.PostAsJsonAsync("/obf/v1/rights", new RightBody(TestObf.Impi, TestObf.Vtams, "position"), Cancel))
        {
            Assert.Equal(HttpStatusCode.Created, grant.StatusCode);
        }

        // An application sees only its own rights, and cannot grant any.
        using var ers = _obf.Rpo(TestObf.Ers);
        Assert.Equal("[]", await ers.GetStringAsync("/obf/v1/rights", Cancel));
        using (var refused = await ers.PostAsJsonAsync("/obf/v1/rights", new RightBody(TestObf.Impi, TestObf.Ers, "alarm"), Cancel))
        {
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        }

        using var vtams = _obf.Rpo(TestObf.Vtams);
        Assert.Contains("position", await vtams.GetStringAsync($"/obf/v1/rights?naf={TestObf.Vtams}", Cancel), StringComparison.Ordinal);
        // Bad input: one problem naming the fields, nothing written.
        using (var bad = await admin.PostAsJsonAsync("/obf/v1/rights", new RightBody(TestObf.Impi, "not a name", "x"), Cancel))
        {
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        }

        Assert.Single(_obf.Store.Rights());
        Assert.Contains(_obf.Store.AuditLog(10), a => a.Event == "right-granted" && a.Actor == ObfApi.Operator);
        Assert.Contains("BootstrappingInfoRetrieval", await admin.GetStringAsync("/openapi/v1.json", Cancel), StringComparison.Ordinal);
    }

    [Fact]
    public async Task WithoutAClientCertificate_TheKeyServiceRefusesTheHandshake()
    {
        var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, server, _, _) => EasInterface.DevelopmentPki.IsIssuedBy(server as System.Security.Cryptography.X509Certificates.X509Certificate2, _obf.Ca);
        using var anonymous = new HttpClient(handler) { BaseAddress = new Uri(_obf.Server.RpoAddress) };
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => anonymous.GetAsync("/obf/v1/rights", Cancel));
    }
}
