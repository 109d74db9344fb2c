using System.Net;
using System.Text;
using OpenBest.Crypto.Kdf;
using OpenBest.Testing;
using Org.BouncyCastle.Tls;

namespace OpenBest.Dtls.Tests;

/// <summary>The identity and key rules of GBA shared-key TLS, and our device client against our NAF.</summary>
public sealed class GbaTlsPskTests
{
    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    [Fact]
    public void Identity_IsPrefixDotBTid()
    {
        Assert.Equal("3GPP-bootstrapping." + Bootstrap.BTid, GbaTlsPsk.Identity(Bootstrap.BTid));
        Assert.Equal("3GPP-bootstrapping-uicc." + Bootstrap.BTid, GbaTlsPsk.Identity(Bootstrap.BTid, GbaMode.Uicc));
    }

    [Theory]
    [InlineData("3GPP-bootstrapping.abc@bsf.example", GbaMode.Me, "abc@bsf.example")]
    [InlineData("3GPP-bootstrappingabc@bsf.example", GbaMode.Me, "abc@bsf.example")]
    [InlineData("3GPP-bootstrapping-uicc.abc@bsf.example", GbaMode.Uicc, "abc@bsf.example")]
    [InlineData("3GPP-bootstrapping-uiccabc@bsf.example", GbaMode.Uicc, "abc@bsf.example")]
    [InlineData("3GPP-bootstrapping-digest.abc@bsf.example", GbaMode.Digest, "abc@bsf.example")]
    [InlineData("abc@bsf.example", GbaMode.Me, "abc@bsf.example")]
    [InlineData("gekrbA7g4S6866jZKpnfpQ==@bsf.mnc093.mcc208.pub.3gppnetwork.org", GbaMode.Me, "gekrbA7g4S6866jZKpnfpQ==@bsf.mnc093.mcc208.pub.3gppnetwork.org")]
    public void Identity_IsRead(string identity, GbaMode mode, string bTid)
    {
        Assert.True(GbaTlsPsk.TryParseIdentity(identity, out var readMode, out var readBTid));
        Assert.Equal((mode, bTid), (readMode, readBTid));
    }

    [Theory]
    [InlineData("")]
    [InlineData("3GPP-bootstrapping")]
    [InlineData("3GPP-bootstrapping.")]
    [InlineData("3GPP-bootstrapping.abc\n@bsf")]
    public void Identity_WithoutBTid_IsNotRead(string identity) => Assert.False(GbaTlsPsk.TryParseIdentity(identity, out _, out _));

    [Fact]
    public void UaIdentifiers_AreTheAnnexHOnes()
    {
        Assert.Equal("01000100a8", Bootstrap.Hex(GbaTlsPsk.UaTls12(CipherSuite.TLS_PSK_WITH_AES_128_GCM_SHA256)));
        Assert.Equal("010001ccac", Bootstrap.Hex(GbaTlsPsk.UaTls12(CipherSuite.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256)));
        Assert.Equal("0100000007", Bootstrap.Hex(GbaTlsPsk.UaTls13.ToArray()));
        Assert.Equal(Gba.UaSharedKeyTls13.ToArray(), GbaTlsPsk.UaTls13.ToArray());
    }

    [Theory]
    [InlineData("3GPP-bootstrapping", GbaMode.Me, true)]
    [InlineData("3GPP-bootstrapping-uicc", GbaMode.Me, false)]
    [InlineData("3GPP-bootstrapping-uicc", GbaMode.Uicc, true)]
    [InlineData("3GPP-bootstrapping-uicc;3GPP-bootstrapping", GbaMode.Me, true)]
    [InlineData("3GPP-bootstrapping, 3GPP-bootstrapping-uicc", GbaMode.Uicc, true)]
    [InlineData("3GPP-bootstrapping-digest", GbaMode.Me, false)]
    [InlineData("", GbaMode.Me, false)]
    [InlineData(null, GbaMode.Me, false)]
    public void Hint_NamesTheMode(string? hint, GbaMode mode, bool names) => Assert.Equal(names, GbaTlsPsk.HintNames(hint, mode));

    [Fact]
    public void DeviceKsNaf_IsTheKdfOfTheTest()
    {
        using var ks = new GbaKs(Bootstrap.Ks, Bootstrap.Rand, Bootstrap.Impi);
        foreach (var ua in new[] { "01000100a8", "0100000007", "010001c037" })
        {
            Assert.Equal(Bootstrap.KsNaf(ua), ks.KsNaf(Bootstrap.NafFqdn, Convert.FromHexString(ua)));
        }

        Assert.NotEqual(Bootstrap.KsNaf("01000100a8"), Bootstrap.KsNaf("01000100a9"));
        Assert.Equal(Bootstrap.BTid, Gba.BTid(Bootstrap.Rand, Gba.BsfDomain("208", "93")));
    }

    [Fact]
    public void DisposedKs_DerivesNothing()
    {
        var ks = new GbaKs(Bootstrap.Ks, Bootstrap.Rand, Bootstrap.Impi);
        ks.Dispose();
        Assert.Throws<ObjectDisposedException>(() => ks.KsNaf(Bootstrap.NafFqdn, Convert.FromHexString("0100000007")));
    }

    private static GbaTlsPskClientOptions Device(GbaKs ks, bool tls13 = true, string? bTid = null, GbaMode mode = GbaMode.Me) => new()
    {
        NafFqdn = Bootstrap.NafFqdn,
        BTid = bTid ?? Bootstrap.BTid,
        KsNaf = ks.ForNaf(Bootstrap.NafFqdn),
        OfferTls13 = tls13,
        Mode = mode,
        HandshakeTimeout = Eventually.Deadline,
    };

    private static async Task<string> ExchangeAsync(GbaTlsPskStream stream, string line)
    {
        await stream.WriteAsync(Encoding.UTF8.GetBytes(line + "\n"), Cancel);
        using var reader = new StreamReader(stream, Encoding.UTF8, leaveOpen: true);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(Cancel);
        limit.CancelAfter(Eventually.Deadline);
        return await reader.ReadLineAsync(limit.Token) ?? "(closed)";
    }

    [Theory]
    [InlineData(true, "TLSv1.3", "0100000007")]
    [InlineData(false, "TLSv1.2", "010001ccac")]
    public async Task OurClient_AgainstOurNaf(bool tls13, string protocol, string ua)
    {
        await using var naf = Naf.Start();
        using var ks = new GbaKs(Bootstrap.Ks, Bootstrap.Rand, Bootstrap.Impi);

        await using var stream = await GbaTlsPskClient.ConnectAsync(naf.Server.LocalEndPoint, Device(ks, tls13), Cancel);
        Assert.Equal((protocol, ua), (stream.Protocol, Bootstrap.Hex(stream.UaSecurityProtocolId)));
        Assert.Equal("naf got: ping", await ExchangeAsync(stream, "ping"));
        var seen = await naf.First.Task.WaitAsync(Eventually.Deadline, Cancel);
        Assert.Equal((Bootstrap.BTid, protocol, ua, stream.CipherSuite), (seen.BTid, seen.Protocol, seen.Ua, seen.CipherSuite));
    }

    [Fact]
    public async Task OurClient_Uicc_IsServedWithKsExtNaf()
    {
        await using var naf = Naf.Start();
        using var ks = new GbaKs(Bootstrap.Ks, Bootstrap.Rand, Bootstrap.Impi);

        await using var stream = await GbaTlsPskClient.ConnectAsync(naf.Server.LocalEndPoint, Device(ks, tls13: false, mode: GbaMode.Uicc) with { RequireHint = false }, Cancel);
        Assert.Equal("naf got: uicc", await ExchangeAsync(stream, "uicc"));
        Assert.Equal(GbaMode.Uicc, (await naf.First.Task.WaitAsync(Eventually.Deadline, Cancel)).Mode);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task UnknownBTid_TellsTheDeviceToBootstrapAgain(bool tls13)
    {
        await using var naf = Naf.Start();
        using var ks = new GbaKs(Bootstrap.Ks, Bootstrap.Rand, Bootstrap.Impi);

        var e = await Assert.ThrowsAsync<GbaTlsPskException>(() => GbaTlsPskClient.ConnectAsync(naf.Server.LocalEndPoint, Device(ks, tls13, bTid: "expired@bsf.example"), Cancel));
        Assert.True(e.BootstrappingRequired, e.Message);
        await Eventually.True(() => naf.Server.Refusals == 1 && naf.Server.Connections == 0, "the NAF counts the refusal");
        Assert.Equal(0, naf.Served);
    }

    [Fact]
    public async Task LookupThatFails_IsAnInternalError_NotARefusal()
    {
        await using var server = new GbaTlsPskServer(new IPEndPoint(IPAddress.Loopback, 0), new GbaTlsPskServerOptions { NafFqdn = Bootstrap.NafFqdn },
            (_, _, _) => throw new HttpRequestException("the BSF is down"), (_, _) => Task.CompletedTask);
        using var ks = new GbaKs(Bootstrap.Ks, Bootstrap.Rand, Bootstrap.Impi);

        var e = await Assert.ThrowsAsync<GbaTlsPskException>(() => GbaTlsPskClient.ConnectAsync(server.LocalEndPoint, Device(ks, tls13: false), Cancel));
        Assert.Equal((true, AlertDescription.internal_error), (e.AlertReceived, e.Alert));
        Assert.False(e.BootstrappingRequired);
        await Eventually.True(() => server.Failures == 1 && server.Connections == 0, "the NAF counts the failure");
        Assert.Equal(0, server.Refusals);
    }

    [Fact]
    public async Task DigestMode_IsNotOffered()
    {
        using var ks = new GbaKs(Bootstrap.Ks, Bootstrap.Rand, Bootstrap.Impi);
        await Assert.ThrowsAsync<ArgumentException>(() => GbaTlsPskClient.AuthenticateAsync(Stream.Null, Device(ks, mode: GbaMode.Digest), Cancel));
    }
}
