using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using OpenBest.Client;
using OpenBest.Dtls;
using OpenBest.Protocol;
using OpenBest.Sessions;
using OpenBest.Testing;

namespace OpenBest.Cli.Tests;

/// <summary>
/// Key agreement only for every PSK protocol (seed 004; TS 33.163 key agreement only), with real processes: <c>best hse</c>,
/// <c>best eas</c> with its TLS-PSK and DTLS-PSK servers, <c>best ue psk</c> and <c>best eas psk</c> printing keys for
/// OpenSSL, GnuTLS and strongSwan, which are the peers. Each endpoint of the enterprise has its own key from one AKA run.
/// </summary>
public sealed partial class KeyAgreementOnlyProcessTests : IAsyncLifetime
{
    private const string Imsi = "001010000000888";
    private const string K = "465b5ce8b199b49faa5f0a2ee238a6bc";
    private const string Opc = "cd63cb71954a9f4e48a5994e37a02baf";
    private const string ExternalId = "meter-8@acme";
    private const string EasId = "eas.example.com";
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-kao-");
    private BestProcess _hse = null!;
    private BestProcess _eas = null!;

    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    private string Data => _directory.FullName;

    private string Udp { get; set; } = string.Empty;

    private int EasPort { get; set; }

    private IPEndPoint TlsPsk { get; set; } = null!;

    public async ValueTask InitializeAsync()
    {
        using (var sink = new StringWriter())
        {
            Assert.Equal(0, BestApp.Run(["subscriber", "add", "--imsi", Imsi, "--k", K, "--opc", Opc, "--data-dir", Data], sink, sink));
            Assert.Equal(0, BestApp.Run(["subscriber", "external-id", "--imsi", Imsi, "--eas", EasId, "--id", ExternalId, "--data-dir", Data], sink, sink));
            Assert.Equal(0, BestApp.Run(["pki", "init", "--eas", EasId, "--data-dir", Data], sink, sink));
        }

        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        EasPort = FreeTcpPort();
        _hse = BestProcess.Start("hse", "--data-dir", Data, "--udp-port", "0", "--tcp-port", "-1", "--eas-port", EasPort.ToString(CultureInfo.InvariantCulture));
        await _hse.WaitForAsync("EAS interface on https://");
        Udp = Regex.Match(_hse.Output, @"udp (\S+?)( and|,)").Groups[1].Value;
        _eas = BestProcess.Start("eas", "--eas-id", EasId, "--hse", $"https://127.0.0.1:{EasPort}/", "--data-dir", Data, "--tls-psk-port", "0", "--dtls-psk-port", "0");
        await _eas.WaitForAsync("TLS-PSK on ");
        TlsPsk = IPEndPoint.Parse(Regex.Match(_eas.Output, @"TLS-PSK on (\S+?);").Groups[1].Value);
    }

    public async ValueTask DisposeAsync()
    {
        await _eas.DisposeAsync();
        await _hse.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _directory.Delete(recursive: true);
    }

    /// <summary><c>best ue psk</c>: a BEST session that agrees a PSK, printed in <paramref name="format"/>.</summary>
    private async Task<string> UePskAsync(string format, params string[] more)
    {
        var (code, output, error) = await BestProcess.RunAsync(["ue", "psk", "--imsi", Imsi, "--k", K, "--opc", Opc, "--hse", Udp, "--eas", EasId, "--external-id", ExternalId,
            "--usim-state", Path.Combine(Data, "usim.json"), "--format", format, .. more]);
        Assert.True(code == 0, output + error);
        return output;
    }

    /// <summary><c>best eas psk</c>: the key the HSE gives this EAS for <paramref name="identity"/>, printed in <paramref name="format"/>.</summary>
    private async Task<string> EasPskAsync(string identity, string format, params string[] more)
    {
        // The HSE keeps a key once the device's Start Confirmation arrived, a moment after the device has it.
        string? printed = null;
        await Eventually.True(async () =>
        {
            var (code, output, _) = await BestProcess.RunAsync(["eas", "psk", "--eas-id", EasId, "--identity", identity, "--hse", $"https://127.0.0.1:{EasPort}/", "--data-dir", Data, "--format", format, .. more]);
            printed = output;
            return code == 0;
        }, $"the HSE gives {EasId} the key of {identity}");
        return printed!;
    }

    [Fact]
    public async Task OpenSslAndGnuTlsDevices_OnTheKeyBestUePskPrints_ReachTheEasTlsPskServer_Tls13AndTls12()
    {
        var openssl = OpenSslArguments().Match(await UePskAsync("openssl"));
        Assert.True(openssl.Success);
        var (identity, key) = (openssl.Groups[1].Value, openssl.Groups[2].Value);
        Assert.Matches($"^{Regex.Escape(ExternalId)}#[0-9a-f]{{8}}$", identity);
        string[][] versions = [["-tls1_3"], ["-tls1_2", "-cipher", PskTls.OpenSslTls12Cipher]];
        foreach (var version in versions)
        {
            var line = "reading over " + version[0];
            var (code, output) = await PeerAsync("openssl", line, ["s_client", "-connect", TlsPsk.ToString(), .. version, "-psk_identity", identity, "-psk", key, "-quiet"]);
            if (!output.Contains("ok: " + line, StringComparison.Ordinal))
            {
                var direct = await BestProcess.RunAsync(["eas", "psk", "--eas-id", EasId, "--identity", identity, "--hse", $"https://127.0.0.1:{EasPort}/", "--data-dir", Data]);
                Assert.Fail($"openssl exit {code}: {output}\nEAS: {_eas.Output}{_eas.Error}\nHSE: {_hse.Error}\nbest eas psk now: {direct.Code} {direct.Output}{direct.Error}");
            }
            await _eas.WaitForAsync($"tls-psk {identity}: {line}");
        }

        if (File.Exists("/usr/bin/gnutls-cli"))
        {
            var gnutls = GnuTlsArguments().Match(await UePskAsync("gnutls"));
            Assert.True(gnutls.Success);
            var (code, output) = await PeerAsync("gnutls-cli", "reading over gnutls", ["--port", TlsPsk.Port.ToString(CultureInfo.InvariantCulture), "--pskusername", gnutls.Groups[1].Value, "--pskkey", gnutls.Groups[2].Value,
                "--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.3:-KX-ALL:+PSK:+DHE-PSK:+ECDHE-PSK", "127.0.0.1"]);
            Assert.True(output.Contains("ok: reading over gnutls", StringComparison.Ordinal), $"gnutls-cli exit {code}: {output}\nEAS: {_eas.Output}{_eas.Error}\nHSE: {_hse.Error}");
        }
        else
        {
            Assert.True(Environment.GetEnvironmentVariable("CI") is null, "CI installs gnutls-bin");
        }
    }

    [Fact]
    public async Task OurDevice_AgainstOpenSslServer_KeyedByBestEasPsk_AndEachEndpointHasItsOwnKey()
    {
        await using var client = await BestClient.CreateAsync(new BestClientOptions
        {
            Imsi = Imsi, K = Convert.FromHexString(K), Opc = Convert.FromHexString(Opc), Transport = new BestTransport.Udp(IPEndPoint.Parse(Udp)),
            UsimStateFile = Path.Combine(Data, "usim.json"), OperationTimeout = TimeSpan.FromSeconds(30),
        }, Cancel);
        var opened = await client.OpenAsync(new UeChannelOptions { EasId = EasId, Service = BestService.KeyAgreementOnly, MinimumService = BestService.KeyAgreementOnly, ServingNetwork = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org") }, Cancel);
        var channel = opened.Channel ?? throw new InvalidOperationException($"no session: {opened.Rejected}");
        var (psk, gateway, server) = (new byte[32], new byte[32], new byte[32]);
        Assert.True(channel.TryGetPsk(psk, out var keyIdentifier));
        Assert.True(channel.TryGetPsk("gw1.acme.example", gateway, out _));
        Assert.True(channel.TryGetPsk("api.acme.example", server, out _));
        var identity = BestChannel.PskIdentity(ExternalId, keyIdentifier);

        // The enterprise side takes each key from the HSE: the EAS's own, and each endpoint's (seed 004: EMSE_Id in the derivation).
        Assert.Equal(Convert.ToHexStringLower(psk), OpenSslArguments().Match(await EasPskAsync(identity, "openssl")).Groups[2].Value);
        Assert.Equal(Convert.ToHexStringLower(gateway), OpenSslArguments().Match(await EasPskAsync(identity, "openssl", "--endpoint", "gw1.acme.example")).Groups[2].Value);
        Assert.Equal(Convert.ToHexStringLower(server), OpenSslArguments().Match(await EasPskAsync(identity, "openssl", "--endpoint", "api.acme.example")).Groups[2].Value);
        Assert.Equal(3, new[] { psk, gateway, server }.Select(Convert.ToHexString).Distinct().Count());

        // An OpenSSL server of the enterprise keyed for its endpoint; the device connects with that endpoint's key.
        foreach (var tls13 in new[] { true, false })
        {
            string[] version = tls13 ? ["-tls1_3"] : ["-tls1_2", "-cipher", PskTls.OpenSslTls12Cipher];
            await using var openssl = await PeerProcess.StartServerAsync("openssl", port => ["s_server", "-accept", "127.0.0.1:" + port.ToString(CultureInfo.InvariantCulture), "-nocert", .. version,
                "-psk_identity", identity, "-psk", Convert.ToHexStringLower(server)], "ACCEPT");
            await using var stream = await PskTls.ConnectAsync(new IPEndPoint(IPAddress.Loopback, openssl.Port), identity, server, tls13 ? TlsPskVersion.Tls13 : TlsPskVersion.Tls12, Cancel);
            await stream.WriteAsync("device to api\n"u8.ToArray(), Cancel);
            await openssl.WaitForAsync("device to api");
        }

        await channel.CloseAsync(Cancel);
    }

    [Fact]
    public async Task IkeV2_TwoStrongSwansInNetworkNamespaces_EstablishAnIkeSa_OnTheKeyFromTheHse()
    {
        if (!StrongSwan.Available(out var why))
        {
            Assert.True(Environment.GetEnvironmentVariable("CI") is null, $"CI runs strongSwan: {why}");
            Assert.Skip(why);
        }

        // The device's secrets section from best ue psk; the gateway's from best eas psk (the gateway is the endpoint gw1).
        var device = await UePskAsync("swanctl", "--endpoint", "gw1.acme.example");
        var identity = Regex.Match(device, "id = \"([^\"]+)\"").Groups[1].Value;
        var gateway = await EasPskAsync(identity, "swanctl", "--endpoint", "gw1.acme.example");
        Assert.Equal(device, gateway);
        var wrongEndpoint = await EasPskAsync(identity, "swanctl", "--endpoint", "api.acme.example");

        await using (var pair = await StrongSwan.StartAsync(Data, identity, device, gateway))
        {
            var (ok, sas) = await pair.InitiateAsync();
            Assert.True(ok, sas);
            Assert.Contains("ESTABLISHED, IKEv2", sas, StringComparison.Ordinal);
            Assert.Contains($"remote '{identity}'", sas, StringComparison.Ordinal);
        }

        // A gateway keyed for another endpoint: IKE_AUTH fails, no SA.
        await using (var pair = await StrongSwan.StartAsync(Data, identity, device, wrongEndpoint))
        {
            var (ok, sas) = await pair.InitiateAsync();
            Assert.False(ok, sas);
            Assert.DoesNotContain("ESTABLISHED", sas, StringComparison.Ordinal);
        }
    }

    /// <summary>Runs a client program that sends <paramref name="line"/>, keeps its input open a moment for the answer, then ends.</summary>
    private static async Task<(int Code, string Output)> PeerAsync(string program, string line, string[] arguments)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        using var process = Process.Start(info)!;
        var output = new StringBuilder();
        process.OutputDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.ErrorDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        await process.StandardInput.WriteLineAsync(line);
        await process.StandardInput.FlushAsync(Cancel);
        await Eventually.True(() => { lock (output) { return output.ToString().Contains("ok: " + line, StringComparison.Ordinal) || process.HasExited; } }, $"{program} gets the answer");
        if (!process.HasExited)
        {
            process.Kill(entireProcessTree: true);
        }

        await process.WaitForExitAsync(CancellationToken.None);
        process.WaitForExit();
        lock (output)
        {
            return (process.ExitCode, output.ToString());
        }
    }

    private static int FreeTcpPort()
    {
        using var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    [GeneratedRegex(@"-psk_identity (\S+) -psk ([0-9a-f]{64})")]
    private static partial Regex OpenSslArguments();

    [GeneratedRegex(@"--pskusername (\S+) --pskkey ([0-9a-f]{64})")]
    private static partial Regex GnuTlsArguments();
}
