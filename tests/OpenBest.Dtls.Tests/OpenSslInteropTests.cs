using System.Net;
using System.Net.Sockets;
using System.Text;
using OpenBest.Testing;
using Org.BouncyCastle.Tls;

namespace OpenBest.Dtls.Tests;

/// <summary>
/// GBA shared-key TLS (TS 33.222 5.4) against OpenSSL as the real peer in both roles: <c>openssl s_client</c> against our
/// NAF, our device client against <c>openssl s_server</c>. OpenSSL is keyed with Ks_NAF computed by the test
/// (<see cref="Bootstrap"/>) for a Ua security protocol identifier written out here, so a wrong NAF_Id on our side fails.
/// </summary>
public sealed class OpenSslInteropTests
{
    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    /// <summary>OpenSSL's name of each TLS 1.2 suite of the profile, and its Ua security protocol identifier 01 00 01 yy zz.</summary>
    public static TheoryData<string, string> Tls12Suites => new()
    {
        { "PSK-AES128-GCM-SHA256", "01000100a8" },
        { "PSK-AES256-GCM-SHA384", "01000100a9" },
        { "PSK-AES128-CBC-SHA256", "01000100ae" },
        { "PSK-AES128-CBC-SHA", "010001008c" },
        { "DHE-PSK-AES128-GCM-SHA256", "01000100aa" },
        { "ECDHE-PSK-AES128-CBC-SHA256", "010001c037" },
        { "ECDHE-PSK-CHACHA20-POLY1305", "010001ccac" },
    };

    private const string Tls13Ua = "0100000007";

    private static GbaTlsPskClientOptions DeviceOptions(GbaKs ks) => new()
    {
        NafFqdn = Bootstrap.NafFqdn,
        BTid = Bootstrap.BTid,
        KsNaf = ks.ForNaf(Bootstrap.NafFqdn),
        HandshakeTimeout = Eventually.Deadline,
    };

    private static GbaKs DeviceKs() => new(Bootstrap.Ks, Bootstrap.Rand, Bootstrap.Impi);

    private static async Task<string?> ReadLineAsync(Stream stream)
    {
        using var reader = new StreamReader(stream, Encoding.UTF8, leaveOpen: true);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(Cancel);
        limit.CancelAfter(Eventually.Deadline);
        return await reader.ReadLineAsync(limit.Token);
    }

    [Theory]
    [MemberData(nameof(Tls12Suites))]
    public async Task OpenSslClient_Tls12_AgainstOurNaf(string suite, string ua)
    {
        await using var naf = Naf.Start();
        await using var client = OpenSslProcess.Start("s_client", "-connect", naf.Address, "-tls1_2", "-cipher", suite,
            "-psk", Bootstrap.Hex(Bootstrap.KsNaf(ua)), "-psk_identity", Bootstrap.Identity, "-servername", Bootstrap.NafFqdn);

        await client.WaitForAsync("Cipher is " + suite);
        Assert.Contains("PSK identity hint: 3GPP-bootstrapping\n", client.Output, StringComparison.Ordinal);
        await client.WriteLineAsync("hello from the device");
        await client.WaitForAsync("naf got: hello from the device");

        var seen = await naf.First.Task.WaitAsync(Eventually.Deadline, Cancel);
        Assert.Equal(new Naf.Seen("hello from the device", Bootstrap.BTid, GbaMode.Me, "TLSv1.2", seen.CipherSuite, ua), seen);
        Assert.Equal(suite, GbaTlsPsk.OpenSslName(seen.CipherSuite));
        Assert.Equal([(Bootstrap.BTid, ua)], naf.Lookups);
    }

    [Theory]
    [MemberData(nameof(Tls12Suites))]
    public async Task OurClient_Tls12_AgainstOpenSslServer(string suite, string ua)
    {
        var (server, port) = await OpenSslProcess.StartServerAsync("-nocert", "-tls1_2", "-cipher", suite,
            "-psk", Bootstrap.Hex(Bootstrap.KsNaf(ua)), "-psk_hint", "3GPP-bootstrapping", "-psk_identity", Bootstrap.Identity);
        await using var _ = server;
        using var ks = DeviceKs();

        // The device offers TLS 1.3 too (by default); this NAF only speaks TLS 1.2.
        await using var stream = await GbaTlsPskClient.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), DeviceOptions(ks), Cancel);
        Assert.Equal("TLSv1.2", stream.Protocol);
        Assert.Equal(suite, GbaTlsPsk.OpenSslName(stream.CipherSuite));
        Assert.Equal(ua, Bootstrap.Hex(stream.UaSecurityProtocolId));

        await stream.WriteAsync("hello from the device\n"u8.ToArray(), Cancel);
        await server.WaitForAsync("hello from the device");
        Assert.DoesNotContain("PSK warning", server.Output, StringComparison.Ordinal); // s_server got the identity it expects
        await server.WriteLineAsync("hello from the naf");
        Assert.Equal("hello from the naf", await ReadLineAsync(stream));
    }

    [Fact]
    public async Task OpenSslClient_Tls13_AgainstOurNaf()
    {
        await using var naf = Naf.Start();
        await using var client = OpenSslProcess.Start("s_client", "-connect", naf.Address, "-tls1_3",
            "-psk", Bootstrap.Hex(Bootstrap.KsNaf(Tls13Ua)), "-psk_identity", Bootstrap.Identity, "-servername", Bootstrap.NafFqdn);

        await client.WaitForAsync("Cipher is TLS_AES_128_GCM_SHA256");
        await client.WriteLineAsync("hello over tls 1.3");
        await client.WaitForAsync("naf got: hello over tls 1.3");

        var seen = await naf.First.Task.WaitAsync(Eventually.Deadline, Cancel);
        Assert.Equal(new Naf.Seen("hello over tls 1.3", Bootstrap.BTid, GbaMode.Me, "TLSv1.3", CipherSuite.TLS_AES_128_GCM_SHA256, Tls13Ua), seen);
        Assert.Equal([(Bootstrap.BTid, Tls13Ua)], naf.Lookups);
    }

    [Fact]
    public async Task OurClient_Tls13_AgainstOpenSslServer()
    {
        // s_server takes a TLS 1.3 external PSK only under exactly the identity it was given: the device's identity must be that.
        var (server, port) = await OpenSslProcess.StartServerAsync("-nocert", "-tls1_3",
            "-psk", Bootstrap.Hex(Bootstrap.KsNaf(Tls13Ua)), "-psk_identity", Bootstrap.Identity);
        await using var _ = server;
        using var ks = DeviceKs();

        await using var stream = await GbaTlsPskClient.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), DeviceOptions(ks), Cancel);
        Assert.Equal("TLSv1.3", stream.Protocol);
        Assert.Equal(Tls13Ua, Bootstrap.Hex(stream.UaSecurityProtocolId));

        await stream.WriteAsync("device over tls 1.3\n"u8.ToArray(), Cancel);
        await server.WaitForAsync("device over tls 1.3");
        await server.WriteLineAsync("naf over tls 1.3");
        Assert.Equal("naf over tls 1.3", await ReadLineAsync(stream));
    }

    [Fact]
    public async Task UnknownBTid_IsRefusedWithUnknownPskIdentity_AndNothingIsDelivered()
    {
        await using var naf = Naf.Start();
        const string stranger = "AAAAAAAAAAAAAAAAAAAAAA==@bsf.mnc093.mcc208.pub.3gppnetwork.org";
        await using var client = OpenSslProcess.Start("s_client", "-connect", naf.Address, "-tls1_2", "-cipher", "PSK-AES128-GCM-SHA256",
            "-psk", Bootstrap.Hex(Bootstrap.KsNaf("01000100a8")), "-psk_identity", "3GPP-bootstrapping." + stranger, "-servername", Bootstrap.NafFqdn);

        await client.WaitForExitAsync();
        Assert.Contains("alert unknown psk identity", client.Output, StringComparison.Ordinal);
        await Eventually.True(() => naf.Server.Refusals == 1 && naf.Server.Connections == 0, "the NAF counts the refusal and forgets the connection");
        Assert.Equal([(stranger, "01000100a8")], naf.Lookups);
        Assert.Equal(0, naf.Server.Handshakes);
        Assert.Equal(0, naf.Served);
    }

    [Fact]
    public async Task UnknownBTid_Tls13_IsRefusedWithUnknownPskIdentity()
    {
        await using var naf = Naf.Start();
        const string stranger = "AAAAAAAAAAAAAAAAAAAAAA==@bsf.mnc093.mcc208.pub.3gppnetwork.org";
        await using var client = OpenSslProcess.Start("s_client", "-connect", naf.Address, "-tls1_3",
            "-psk", Bootstrap.Hex(Bootstrap.KsNaf(Tls13Ua)), "-psk_identity", "3GPP-bootstrapping." + stranger, "-servername", Bootstrap.NafFqdn);

        await client.WaitForExitAsync();
        Assert.Contains("alert unknown psk identity", client.Output, StringComparison.Ordinal);
        await Eventually.True(() => naf.Server.Refusals == 1 && naf.Server.Connections == 0, "the NAF counts the refusal and forgets the connection");
        Assert.Equal([(stranger, Tls13Ua)], naf.Lookups);
        Assert.Equal(0, naf.Served);
    }

    [Fact]
    public async Task OpenSslClient_WithWrongKey_FailsTheHandshake()
    {
        await using var naf = Naf.Start();

        // Ks_NAF for another cipher suite's Ua identifier: the NAF_Id the device used is not the one the NAF used.
        await using var client = OpenSslProcess.Start("s_client", "-connect", naf.Address, "-tls1_2", "-cipher", "PSK-AES128-GCM-SHA256",
            "-psk", Bootstrap.Hex(Bootstrap.KsNaf("01000100ae")), "-psk_identity", Bootstrap.Identity, "-servername", Bootstrap.NafFqdn);

        // (s_client prints its session summary even when the handshake failed: the alert is what tells.)
        await client.WaitForExitAsync();
        Assert.Matches("alert (bad record mac|decrypt error)", client.Output);
        await Eventually.True(() => naf.Server.Failures == 1 && naf.Server.Connections == 0, "the NAF counts the failure and forgets the connection");
        Assert.Equal(0, naf.Server.Handshakes);
        Assert.Equal(0, naf.Server.Refusals);
        Assert.Equal(0, naf.Served);
    }

    [Fact]
    public async Task OurClient_WithWrongKey_FailsWithTheNafsAlert()
    {
        var wrong = Bootstrap.KsNaf("other.example.org", Convert.FromHexString("01000100a8"));
        var (server, port) = await OpenSslProcess.StartServerAsync("-nocert", "-tls1_2", "-cipher", "PSK-AES128-GCM-SHA256",
            "-psk", Bootstrap.Hex(wrong), "-psk_hint", "3GPP-bootstrapping", "-psk_identity", Bootstrap.Identity);
        await using var _ = server;
        using var ks = DeviceKs();

        var e = await Assert.ThrowsAsync<GbaTlsPskException>(() => GbaTlsPskClient.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), DeviceOptions(ks), Cancel));
        Assert.True(e.AlertReceived, e.Message);
        Assert.NotNull(e.Alert);
        Assert.False(e.BootstrappingRequired);
    }

    [Fact]
    public async Task OurClient_RefusesANafWhoseHintIsNotGba()
    {
        var (server, port) = await OpenSslProcess.StartServerAsync("-nocert", "-tls1_2", "-cipher", "PSK-AES128-GCM-SHA256",
            "-psk", Bootstrap.Hex(Bootstrap.KsNaf("01000100a8")), "-psk_hint", "some-other-realm", "-psk_identity", Bootstrap.Identity);
        await using var _ = server;
        using var ks = DeviceKs();

        var e = await Assert.ThrowsAsync<GbaTlsPskException>(() => GbaTlsPskClient.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), DeviceOptions(ks), Cancel));
        Assert.False(e.AlertReceived);
        Assert.Equal(AlertDescription.handshake_failure, e.Alert);
        Assert.DoesNotContain(Bootstrap.BTid, server.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task OpenSslClient_AskingForAnotherHost_IsRefusedWithUnrecognizedName()
    {
        await using var naf = Naf.Start();
        await using var client = OpenSslProcess.Start("s_client", "-connect", naf.Address, "-tls1_2", "-cipher", "PSK-AES128-GCM-SHA256",
            "-psk", Bootstrap.Hex(Bootstrap.KsNaf("01000100a8")), "-psk_identity", Bootstrap.Identity, "-servername", "other.example.org");

        await client.WaitForExitAsync();
        Assert.Contains("unrecognized name", client.Output, StringComparison.Ordinal);
        await Eventually.True(() => naf.Server.Failures == 1 && naf.Server.Connections == 0, "the NAF counts the failure");
        Assert.Empty(naf.Lookups);
    }

    [Fact]
    public async Task DigestIdentity_IsRefusedWithoutALookup()
    {
        // GBA_Digest keys are not Ks_NAF: the OBF server does not run GBA_Digest, so the NAF refuses them outright.
        await using var naf = Naf.Start();
        await using var client = OpenSslProcess.Start("s_client", "-connect", naf.Address, "-tls1_2", "-cipher", "PSK-AES128-GCM-SHA256",
            "-psk", Bootstrap.Hex(Bootstrap.KsNaf("01000100a8")), "-psk_identity", "3GPP-bootstrapping-digest." + Bootstrap.BTid, "-servername", Bootstrap.NafFqdn);

        await client.WaitForExitAsync();
        Assert.Contains("alert unknown psk identity", client.Output, StringComparison.Ordinal);
        await Eventually.True(() => naf.Server.Refusals == 1 && naf.Server.Connections == 0, "the NAF counts the refusal");
        Assert.Empty(naf.Lookups);
    }

    [Fact]
    public async Task ClientThatNeverFinishesTheHandshake_IsClosedAndForgottenAfterTheTimeout()
    {
        await using var naf = Naf.Start(handshakeTimeout: TimeSpan.FromSeconds(1));
        using var raw = new TcpClient();
        await raw.ConnectAsync(IPAddress.Loopback, naf.Server.LocalEndPoint.Port, Cancel);
        var network = raw.GetStream();

        // The first bytes of a ClientHello record, and then nothing.
        await network.WriteAsync(new byte[] { 0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03 }, Cancel);

        using var limit = CancellationTokenSource.CreateLinkedTokenSource(Cancel);
        limit.CancelAfter(Eventually.Deadline);
        try
        {
            Assert.Equal(0, await network.ReadAsync(new byte[64], limit.Token)); // the NAF closed the connection
        }
        catch (IOException)
        {
            // or reset it
        }

        await Eventually.True(() => naf.Server.Connections == 0 && naf.Server.Failures == 1, "the NAF forgets the connection");
        Assert.Equal(0, naf.Server.Handshakes);
        Assert.Empty(naf.Lookups);
    }

    [Fact]
    public async Task ConnectionsBeyondTheLimit_AreClosedAtOnce()
    {
        await using var server = new GbaTlsPskServer(new IPEndPoint(IPAddress.Loopback, 0),
            new GbaTlsPskServerOptions { NafFqdn = Bootstrap.NafFqdn, MaxConnections = 1, HandshakeTimeout = Eventually.Deadline },
            (_, _, _) => ValueTask.FromResult<byte[]?>(null), (_, _) => Task.CompletedTask);
        using var first = new TcpClient();
        await first.ConnectAsync(IPAddress.Loopback, server.LocalEndPoint.Port, Cancel);
        await Eventually.True(() => server.Connections == 1, "the first connection has state");

        using var second = new TcpClient();
        await second.ConnectAsync(IPAddress.Loopback, server.LocalEndPoint.Port, Cancel);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(Cancel);
        limit.CancelAfter(Eventually.Deadline);
        try
        {
            Assert.Equal(0, await second.GetStream().ReadAsync(new byte[16], limit.Token));
        }
        catch (IOException)
        {
        }

        Assert.Equal(1, server.Failures);
        Assert.Equal(1, server.Connections);
    }
}
