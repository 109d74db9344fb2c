using System.Net;
using OpenBest.Crypto;
using OpenBest.Crypto.Aka;
using OpenBest.Crypto.Kdf;

namespace OpenBest.Obf.Tests;

/// <summary>The GBA_ME client against the computed GBA vectors and a canned BSF that plays each RFC 3310 / TS 24.109 case.</summary>
public sealed class GbaMeClientTests
{
    // MILENAGE test set 19 (the AV of the computed GBA vectors, reference section 3.6).
    private static readonly byte[] K19 = Hex.Bytes("5122250214c33e723a5dd523fc145fc0");
    private static readonly byte[] Opc19 = Hex.Bytes("981d464c7c52eb6e5036234984ad0bcf");
    private static readonly byte[] Rand19 = Hex.Bytes("81e92b6c0ee0e12ebceba8d92a99dfa5");
    private const ulong Sqn19 = 0x16f3b3f70fc2;
    private const ushort Amf19 = 0xc3ab;
    private const string Nonce19 = "gekrbA7g4S6866jZKpnfpbtS6Rx0esOrKlwj0V7jUdU=";
    private const string Impi19 = "208930000000001@ims.mnc093.mcc208.3gppnetwork.org";
    private const string Bsf19 = "bsf.mnc093.mcc208.pub.3gppnetwork.org";

    // MILENAGE test set 1 for the other flows.
    private static readonly byte[] K1 = Hex.Bytes("465b5ce8b199b49faa5f0a2ee238a6bc");
    private static readonly byte[] Opc1 = Hex.Bytes("cd63cb71954a9f4e48a5994e37a02baf");
    private const string Impi = "user1_private@home1.net";

    [Fact]
    public void Set19Nonce_SplitsIntoRandAndAutn()
    {
        Assert.Equal(Nonce19, Gba.UbNonce(Rand19, Hex.Bytes("bb52e91c747ac3ab2a5c23d15ee351d5")));
        Assert.True(GbaMeClient.TrySplitNonce(Nonce19, out var rand, out var autn, out var error), error);
        Assert.Equal("81e92b6c0ee0e12ebceba8d92a99dfa5", Hex.String(rand));
        Assert.Equal("bb52e91c747ac3ab2a5c23d15ee351d5", Hex.String(autn));

        // Server-specific data after AUTN is ignored (TS 33.220 4.5.2).
        Assert.True(GbaMeClient.TrySplitNonce(Gba.UbNonce(Rand19, autn, [1, 2, 3, 4, 5]), out var rand2, out var autn2, out _));
        Assert.Equal(rand, rand2);
        Assert.Equal(autn, autn2);

        Assert.False(GbaMeClient.TrySplitNonce("not base64!", out _, out _, out _));
        Assert.False(GbaMeClient.TrySplitNonce(Convert.ToBase64String(new byte[31]), out _, out _, out _));
        Assert.False(GbaMeClient.TrySplitNonce(string.Empty, out _, out _, out _));
    }

    [Fact]
    public async Task Set19_BootstrapsWithTheSoftwareUsim_AndGivesTheComputedVectors()
    {
        using var bsf = new FakeBsf(K19, Opc19) { Realm = Bsf19, BsfDomain = Bsf19, Amf = Amf19, FixedFirstVector = (Sqn19, Rand19) };
        using var http = Client(bsf, Bsf19);
        using var milenage = new Milenage(K19, Opc19);
        var usim = new Usim(milenage, UsimSequenceState.FromSqnMs(Sqn19 - 32, SqnScheme.Default));
        var client = new GbaMeClient(http, Impi19, usim);

        using var result = await client.RunAsync(TestContext.Current.CancellationToken);

        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal(2, result.Requests);
        Assert.False(result.Resynchronised);
        Assert.Equal("gekrbA7g4S6866jZKpnfpQ==@bsf.mnc093.mcc208.pub.3gppnetwork.org", result.BTid);
        Assert.Equal("81e92b6c0ee0e12ebceba8d92a99dfa5", Hex.String(result.Rand));
        Assert.Equal("5349fbe098649f948f5d2e973a81c00f" + "9744871ad32bf9bbd1dd5ce54e3e2e5a", Hex.String(result.Ks));
        Assert.Equal("4e0b372085e422e8ef2dd338885825222d65dc01479f4ee60efdd4f3078d30a6", Hex.String(result.DeriveKsNaf("naf.example.com", Gba.UaHttpDigest)));
        Assert.Equal("4e0b372085e422e8ef2dd338885825222d65dc01479f4ee60efdd4f3078d30a6", Hex.String(client.DeriveKsNaf("naf.example.com", Gba.UaHttpDigest)));
        Assert.Same(result, client.Current);
        Assert.True(result.Lifetime > DateTimeOffset.UtcNow);
        Assert.Equal(Sqn19, usim.State.SqnMs);

        // The digest response carried the set 19 nonce back.
        Assert.Equal(Nonce19, bsf.Authorizations[1]["nonce"]);
    }

    [Fact]
    public async Task Requests_HaveTheTs24109Form()
    {
        using var bsf = new FakeBsf(K1, Opc1);
        using var http = Client(bsf);
        var client = new GbaMeClient(http, Impi, UsimFor(K1, Opc1));

        using var result = await client.RunAsync(TestContext.Current.CancellationToken);

        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal("Digest username=\"user1_private@home1.net\", realm=\"bsf.home1.net\", nonce=\"\", uri=\"/\", response=\"\"", bsf.RawAuthorizations[0]);
        var second = bsf.Authorizations[1];
        Assert.Equal(Impi, second["username"]);
        Assert.Equal("bsf.home1.net", second["realm"]);
        Assert.Equal("/", second["uri"]);
        Assert.Equal("auth-int", second["qop"]);
        Assert.Equal("00000001", second["nc"]);
        Assert.Matches("^[0-9a-f]{32}$", second["cnonce"]);
        Assert.Matches("^[0-9a-f]{32}$", second["response"]);
        Assert.Equal("5ccc069c403ebaf9f0171e9517f30e41", second["opaque"]);
        Assert.Equal("AKAv1-MD5", second["algorithm"]);
        Assert.False(second.ContainsKey("auts"));
        Assert.Contains("qop=auth-int,", bsf.RawAuthorizations[1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task NoOpaque_NoneIsSent_AndServerDataInTheNonceIsIgnored()
    {
        using var bsf = new FakeBsf(K1, Opc1) { Opaque = null, ServerData = Hex.Bytes("00112233445566778899aabbccddeeff") };
        using var http = Client(bsf);
        using var result = await new GbaMeClient(http, Impi, UsimFor(K1, Opc1)).RunAsync(TestContext.Current.CancellationToken);

        Assert.True(result.Succeeded, result.ToString());
        Assert.False(bsf.Authorizations[1].ContainsKey("opaque"));
    }

    [Fact]
    public async Task SynchronisationFailure_SendsAutsWithAnEmptyPassword_ThenBootstrapsOnTheFreshChallenge()
    {
        using var bsf = new FakeBsf(K1, Opc1) { SeqHe = 1 };
        using var http = Client(bsf);
        var sqnMs = SqnScheme.Default.Compose(1000, 0);
        using var milenage = new Milenage(K1, Opc1);
        var usim = new Usim(milenage, UsimSequenceState.FromSqnMs(sqnMs, SqnScheme.Default));

        using var result = await new GbaMeClient(http, Impi, usim).RunAsync(TestContext.Current.CancellationToken);

        Assert.True(result.Succeeded, result.ToString());
        Assert.True(result.Resynchronised);
        Assert.Equal(3, result.Requests);
        Assert.True(bsf.Authorizations[1].ContainsKey("auts"));
        Assert.Equal(14, Convert.FromBase64String(bsf.Authorizations[1]["auts"]).Length);
        Assert.True(bsf.AutsResponseVerified);
        Assert.Equal(sqnMs, bsf.RecoveredSqnMs);
        Assert.False(bsf.Authorizations[2].ContainsKey("auts"));
        Assert.NotEqual(bsf.Authorizations[1]["nonce"], bsf.Authorizations[2]["nonce"]);
        Assert.Equal(SqnScheme.Default.Compose(1001, 0), usim.State.SqnMs);
    }

    [Fact]
    public async Task ASecondSynchronisationFailure_EndsTheRun()
    {
        using var bsf = new FakeBsf(K1, Opc1) { IgnoreAuts = true, FixedFirstVector = (SqnScheme.Default.Compose(5, 0), Hex.Bytes("23553cbe9637a89d218ae64dae47bf35")) };
        using var http = Client(bsf);
        using var milenage = new Milenage(K1, Opc1);
        var usim = new Usim(milenage, UsimSequenceState.FromSqnMs(SqnScheme.Default.Compose(1000, 0), SqnScheme.Default));

        using var result = await new GbaMeClient(http, Impi, usim).RunAsync(TestContext.Current.CancellationToken);

        Assert.Equal(GbaBootstrapOutcome.SynchronisationFailed, result.Outcome);
        Assert.Equal(2, bsf.Requests);
        Assert.True(result.Ks.IsEmpty);
    }

    [Fact]
    public async Task MacFailure_StopsWithoutAnswering()
    {
        // The BSF's AuC holds another key: AUTN does not verify, so the BSF is not authentic.
        using var bsf = new FakeBsf(K19, Opc19);
        using var http = Client(bsf);
        var client = new GbaMeClient(http, Impi, UsimFor(K1, Opc1));

        using var result = await client.RunAsync(TestContext.Current.CancellationToken);

        Assert.Equal(GbaBootstrapOutcome.NetworkAuthenticationFailed, result.Outcome);
        Assert.Equal(1, bsf.Requests);
        Assert.Null(result.BTid);
        Assert.True(result.Ks.IsEmpty);
        Assert.Null(client.Current);
        Assert.Throws<InvalidOperationException>(() => result.DeriveKsNaf("naf.example.com", Gba.UaHttpDigest));
    }

    [Fact]
    public async Task ForgedRspauth_IsRefused()
    {
        using var bsf = new FakeBsf(K1, Opc1) { ForgeRspauth = true };
        using var http = Client(bsf);
        var client = new GbaMeClient(http, Impi, UsimFor(K1, Opc1));

        using var result = await client.RunAsync(TestContext.Current.CancellationToken);

        Assert.Equal(GbaBootstrapOutcome.ServerNotAuthenticated, result.Outcome);
        Assert.Contains("rspauth", result.Reason, StringComparison.Ordinal);
        Assert.Null(result.BTid);
        Assert.True(result.Ks.IsEmpty);
        Assert.Null(client.Current);
    }

    [Fact]
    public async Task ABodyChangedAfterRspauth_IsRefused()
    {
        using var bsf = new FakeBsf(K1, Opc1) { SwapBodyAfterRspauth = true };
        using var http = Client(bsf);
        using var result = await new GbaMeClient(http, Impi, UsimFor(K1, Opc1)).RunAsync(TestContext.Current.CancellationToken);
        Assert.Equal(GbaBootstrapOutcome.ServerNotAuthenticated, result.Outcome);
    }

    public static TheoryData<string, string?> BadAuthenticationInfo => new()
    {
        { "omit", "no Authentication-Info" },
        { "rspauth-missing", "no rspauth" },
        { "cnonce-other", "cnonce" },
        { "cnonce-missing", "cnonce" },
        { "nc-other", "nc" },
        { "qop-auth", "qop=auth" },
        { "malformed", "malformed" },
    };

    [Theory]
    [MemberData(nameof(BadAuthenticationInfo))]
    public async Task AuthenticationInfo_MustEchoTheRequestAndCarryRspauth(string variant, string? reason)
    {
        using var bsf = new FakeBsf(K1, Opc1)
        {
            OmitAuthenticationInfo = variant == "omit",
            AuthenticationInfo = variant switch
            {
                "rspauth-missing" => (_, cnonce, nc) => $"qop=auth-int, cnonce=\"{cnonce}\", nc={nc}",
                "cnonce-other" => (rspauth, _, nc) => $"qop=auth-int, rspauth=\"{rspauth}\", cnonce=\"00000000000000000000000000000000\", nc={nc}",
                "cnonce-missing" => (rspauth, _, nc) => $"qop=auth-int, rspauth=\"{rspauth}\", nc={nc}",
                "nc-other" => (rspauth, cnonce, _) => $"qop=auth-int, rspauth=\"{rspauth}\", cnonce=\"{cnonce}\", nc=00000002",
                "qop-auth" => (rspauth, cnonce, nc) => $"qop=auth, rspauth=\"{rspauth}\", cnonce=\"{cnonce}\", nc={nc}",
                "malformed" => (rspauth, cnonce, nc) => $"qop=auth-int, rspauth=\"{rspauth}, cnonce=\"{cnonce}\", nc={nc}",
                _ => null,
            },
        };
        using var http = Client(bsf);
        using var result = await new GbaMeClient(http, Impi, UsimFor(K1, Opc1)).RunAsync(TestContext.Current.CancellationToken);

        Assert.Equal(GbaBootstrapOutcome.ServerNotAuthenticated, result.Outcome);
        Assert.Contains(reason!, result.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AuthenticationInfo_InAnotherParameterOrderAndCase_IsAccepted()
    {
        using var bsf = new FakeBsf(K1, Opc1) { AuthenticationInfo = (rspauth, cnonce, nc) => $"NC={nc} ,CNonce=\"{cnonce}\", RSPAUTH={rspauth.ToUpperInvariant()}" };
        using var http = Client(bsf);
        using var result = await new GbaMeClient(http, Impi, UsimFor(K1, Opc1)).RunAsync(TestContext.Current.CancellationToken);
        Assert.True(result.Succeeded, result.ToString());
    }

    [Theory]
    [InlineData("MD5")]
    [InlineData("AKAv2-MD5")]
    public async Task ANonAkaV1Algorithm_IsRefused_BeforeTheUsimRuns(string algorithm)
    {
        using var bsf = new FakeBsf(K1, Opc1) { Algorithm = algorithm };
        using var http = Client(bsf);
        var calls = 0;
        using var result = await new GbaMeClient(http, Impi, (_, _) => { calls++; return AkaAnswer.MacFailure(); }).RunAsync(TestContext.Current.CancellationToken);

        Assert.Equal(GbaBootstrapOutcome.ProtocolViolation, result.Outcome);
        Assert.Equal(0, calls);
        Assert.Equal(1, bsf.Requests);
    }

    [Fact]
    public async Task AQopWithoutAuthInt_IsRefused()
    {
        using var bsf = new FakeBsf(K1, Opc1) { Qop = "auth" };
        using var http = Client(bsf);
        using var result = await new GbaMeClient(http, Impi, UsimFor(K1, Opc1)).RunAsync(TestContext.Current.CancellationToken);
        Assert.Equal(GbaBootstrapOutcome.ProtocolViolation, result.Outcome);
        Assert.Contains("auth-int", result.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheAkaChallenge_IsPickedAmongOthers()
    {
        using var bsf = new FakeBsf(K1, Opc1)
        {
            ChallengeFields = nonce =>
            [
                "Basic realm=\"bsf.home1.net\"",
                $"Digest realm=\"bsf.home1.net\", nonce=\"bogus\", algorithm=MD5, qop=\"auth\", Digest realm=\"bsf.home1.net\", nonce=\"{nonce}\", algorithm=akav1-md5, qop=\"auth,auth-int\", opaque=\"o\"",
            ],
        };
        using var http = Client(bsf);
        using var result = await new GbaMeClient(http, Impi, UsimFor(K1, Opc1)).RunAsync(TestContext.Current.CancellationToken);

        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal("o", bsf.Authorizations[1]["opaque"]);
    }

    [Theory]
    [InlineData("Digest realm=\"bsf.home1.net\", nonce=\"@@@\", algorithm=AKAv1-MD5, qop=\"auth-int\"", "base64")]
    [InlineData("Digest realm=\"bsf.home1.net\", nonce=\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\", algorithm=AKAv1-MD5, qop=\"auth-int\"", "fewer than")]
    [InlineData("Digest realm=\"bsf.home1.net\", realm=\"x\", nonce=\"n\", algorithm=AKAv1-MD5, qop=\"auth-int\"", "malformed")]
    public async Task AnUnusableChallenge_IsRefused(string field, string reason)
    {
        using var bsf = new FakeBsf(K1, Opc1) { ChallengeFields = _ => [field] };
        using var http = Client(bsf);
        using var result = await new GbaMeClient(http, Impi, UsimFor(K1, Opc1)).RunAsync(TestContext.Current.CancellationToken);

        Assert.Equal(GbaBootstrapOutcome.ProtocolViolation, result.Outcome);
        Assert.Contains(reason, result.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A401WithoutWwwAuthenticate_IsRefused()
    {
        using var bsf = new FakeBsf(K1, Opc1) { ChallengeFields = _ => [] };
        using var http = Client(bsf);
        using var result = await new GbaMeClient(http, Impi, UsimFor(K1, Opc1)).RunAsync(TestContext.Current.CancellationToken);
        Assert.Equal(GbaBootstrapOutcome.ProtocolViolation, result.Outcome);
    }

    [Fact]
    public async Task ABsfThatSkipsAuthentication_IsAProtocolViolation()
    {
        using var bsf = new FakeBsf(K1, Opc1) { InitialStatus = HttpStatusCode.OK };
        using var http = Client(bsf);
        using var result = await new GbaMeClient(http, Impi, UsimFor(K1, Opc1)).RunAsync(TestContext.Current.CancellationToken);
        Assert.Equal(GbaBootstrapOutcome.ProtocolViolation, result.Outcome);
    }

    [Fact]
    public async Task AnUnknownUser_IsRejected()
    {
        using var bsf = new FakeBsf(K1, Opc1) { InitialStatus = HttpStatusCode.Forbidden };
        using var http = Client(bsf);
        using var result = await new GbaMeClient(http, Impi, UsimFor(K1, Opc1)).RunAsync(TestContext.Current.CancellationToken);
        Assert.Equal(GbaBootstrapOutcome.Rejected, result.Outcome);
        Assert.Equal(HttpStatusCode.Forbidden, result.LastStatus);
    }

    [Fact]
    public async Task AWrongRes_IsRejectedByTheBsf()
    {
        using var bsf = new FakeBsf(K1, Opc1);
        using var http = Client(bsf);
        var usim = UsimFor(K1, Opc1);
        using var result = await new GbaMeClient(http, Impi, (rand, autn) =>
        {
            using var real = usim(rand, autn);
            var res = (byte[])real.Res.Clone();
            res[0] ^= 1;
            return AkaAnswer.Success(res, real.Ck, real.Ik);
        }).RunAsync(TestContext.Current.CancellationToken);

        Assert.Equal(GbaBootstrapOutcome.Rejected, result.Outcome);
        Assert.Equal(HttpStatusCode.Forbidden, result.LastStatus);
        Assert.Equal(2, bsf.Requests);
    }

    [Theory]
    [InlineData(HttpStatusCode.OK, nameof(GbaBootstrapOutcome.ProtocolViolation))]
    [InlineData(HttpStatusCode.Forbidden, nameof(GbaBootstrapOutcome.Rejected))]
    public async Task ABsfThatDoesNotChallengeAgainAfterAuts_EndsTheRun(HttpStatusCode status, string outcome)
    {
        using var bsf = new FakeBsf(K1, Opc1) { AutsStatus = status };
        using var http = Client(bsf);
        using var result = await new GbaMeClient(http, Impi, (_, _) => AkaAnswer.SynchronisationFailure(new byte[14])).RunAsync(TestContext.Current.CancellationToken);

        Assert.Equal(Enum.Parse<GbaBootstrapOutcome>(outcome), result.Outcome);
        Assert.True(result.Resynchronised);
        Assert.True(bsf.AutsResponseVerified);
        Assert.Equal(2, bsf.Requests);
    }

    [Fact]
    public async Task A401ToACorrectResponse_IsARejection_NotALoop()
    {
        using var bsf = new FakeBsf(K1, Opc1) { SuccessStatus = HttpStatusCode.Unauthorized };
        using var http = Client(bsf);
        using var result = await new GbaMeClient(http, Impi, UsimFor(K1, Opc1)).RunAsync(TestContext.Current.CancellationToken);

        Assert.Equal(GbaBootstrapOutcome.Rejected, result.Outcome);
        Assert.Equal(HttpStatusCode.Unauthorized, result.LastStatus);
        Assert.Equal(2, bsf.Requests);
    }

    public static TheoryData<string> BadBodies => new()
    {
        "btid-other-rand",
        "btid-no-domain",
        "lifetime-past",
        "lifetime-offset",
        "content-type",
        "namespace",
        "two-btids",
        "no-lifetime",
        "dtd",
        "not-xml",
    };

    [Theory]
    [MemberData(nameof(BadBodies))]
    public async Task AnAuthenticBodyThatIsWrong_IsRefused(string variant)
    {
        const string Ns = "uri:3gpp-gba";
        using var bsf = new FakeBsf(K1, Opc1)
        {
            BTidOverride = variant switch
            {
                "btid-other-rand" => Convert.ToBase64String(new byte[16]) + "@bsf.home1.net",
                "btid-no-domain" => "some-btid",
                _ => null,
            },
            LifetimeOverride = variant switch
            {
                "lifetime-past" => "2004-01-08T10:13:17Z",
                "lifetime-offset" => "2099-01-01T00:00:00+01:00",
                _ => null,
            },
            ContentType = variant == "content-type" ? "text/xml" : "application/vnd.3gpp.bsf+xml",
            BodyOverride = variant switch
            {
                "namespace" => (b, l) => $"<BootstrappingInfo xmlns=\"uri:other\"><btid>{b}</btid><lifetime>{l}</lifetime></BootstrappingInfo>",
                "two-btids" => (b, l) => $"<BootstrappingInfo xmlns=\"{Ns}\"><btid>{b}</btid><btid>{b}</btid><lifetime>{l}</lifetime></BootstrappingInfo>",
                "no-lifetime" => (b, _) => $"<BootstrappingInfo xmlns=\"{Ns}\"><btid>{b}</btid></BootstrappingInfo>",
                "dtd" => (b, l) => $"<!DOCTYPE BootstrappingInfo [<!ENTITY x \"{b}\">]><BootstrappingInfo xmlns=\"{Ns}\"><btid>&x;</btid><lifetime>{l}</lifetime></BootstrappingInfo>",
                "not-xml" => (b, l) => $"btid={b} lifetime={l}",
                _ => null,
            },
        };
        using var http = Client(bsf);
        var client = new GbaMeClient(http, Impi, UsimFor(K1, Opc1));
        using var result = await client.RunAsync(TestContext.Current.CancellationToken);

        Assert.Equal(GbaBootstrapOutcome.ProtocolViolation, result.Outcome);
        Assert.Null(result.BTid);
        Assert.Null(client.Current);
    }

    [Fact]
    public async Task ABodyWithAnExtension_IsAccepted()
    {
        using var bsf = new FakeBsf(K1, Opc1)
        {
            BodyOverride = (b, l) => $"<?xml version=\"1.0\" encoding=\"UTF-8\"?><BootstrappingInfo xmlns=\"uri:3gpp-gba\"><btid>{b}</btid><lifetime>{l}</lifetime><Extension><currenttime>2030-01-01T00:00:00Z</currenttime></Extension></BootstrappingInfo>",
        };
        using var http = Client(bsf);
        using var result = await new GbaMeClient(http, Impi, UsimFor(K1, Opc1)).RunAsync(TestContext.Current.CancellationToken);
        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal(bsf.LastBTid, result.BTid);
    }

    [Fact]
    public async Task TheLifetime_IsJudgedOnTheGivenClock()
    {
        using var bsf = new FakeBsf(K1, Opc1) { LifetimeOverride = "2030-06-01T12:00:00.5Z" };
        using var http = Client(bsf);
        var before = new GbaMeClient(http, Impi, UsimFor(K1, Opc1), new GbaMeClientOptions { Time = new FixedTime(new DateTimeOffset(2030, 6, 1, 12, 0, 0, TimeSpan.Zero)) });
        using var ok = await before.RunAsync(TestContext.Current.CancellationToken);
        Assert.True(ok.Succeeded, ok.ToString());
        Assert.Equal(new DateTimeOffset(2030, 6, 1, 12, 0, 0, 500, TimeSpan.Zero), ok.Lifetime);

        var after = new GbaMeClient(http, Impi, UsimFor(K1, Opc1), new GbaMeClientOptions { Time = new FixedTime(new DateTimeOffset(2030, 6, 1, 12, 0, 1, TimeSpan.Zero)) });
        using var late = await after.RunAsync(TestContext.Current.CancellationToken);
        Assert.Equal(GbaBootstrapOutcome.ProtocolViolation, late.Outcome);
    }

    [Fact]
    public async Task TheRealmOption_ReplacesTheHostInTheInitialRequest()
    {
        using var bsf = new FakeBsf(K1, Opc1);
        using var http = Client(bsf, "127.0.0.1");
        using var result = await new GbaMeClient(http, Impi, UsimFor(K1, Opc1), new GbaMeClientOptions { Realm = "bsf.home1.net" }).RunAsync(TestContext.Current.CancellationToken);
        Assert.True(result.Succeeded, result.ToString());
        Assert.Equal("bsf.home1.net", bsf.Authorizations[0]["realm"]);
    }

    private static HttpClient Client(FakeBsf bsf, string host = "bsf.home1.net") =>
        new(bsf, disposeHandler: false) { BaseAddress = new Uri($"http://{host}/") };

    /// <summary>A USIM that accepts any fresh SQN from the fake's AuC (which starts at SEQ 2).</summary>
    private static UsimFunction UsimFor(byte[] k, byte[] opc)
    {
        var usim = new Usim(new Milenage(k, opc), new UsimSequenceState(SqnScheme.Default));
        return (rand, autn) => AkaAnswer.FromUsim(usim, rand, autn);
    }

    private sealed class FixedTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
