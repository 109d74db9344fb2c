using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;
using OpenBest.Testing;

namespace OpenBest.Cli.Tests;

/// <summary>
/// The HSE as TLS converter (seed 000 section 2) with real processes: <c>best hse --tls-service</c> relays a device's
/// channel (<c>best ue stream</c>) over TLS to unchanged servers — Kestrel (HTTPS) and <c>openssl s_server -www</c> — and an
/// HTTP GET written by the device returns the page. A server whose certificate does not chain to the service's CA, or does
/// not name the host, is refused and the device's stream ends with "unreachable".
/// </summary>
public sealed class ConverterProcessTests : IAsyncLifetime
{
    private const string Imsi = "001010000000999";
    private const string K = "465b5ce8b199b49faa5f0a2ee238a6bc";
    private const string Opc = "cd63cb71954a9f4e48a5994e37a02baf";
    private static readonly string Body = string.Concat(Enumerable.Range(0, 6000).Select(i => $"line {i:D5} of the page from kestrel\n")); // ~200 KB
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-conv-");
    private WebApplication _kestrel = null!;
    private PeerProcess _openssl = null!;
    private PeerProcess _openssl12 = null!;
    private BestProcess _hse = null!;
    private string _udp = string.Empty;
    private int _kestrelPort;

    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    private string Data => _directory.FullName;

    public async ValueTask InitializeAsync()
    {
        using (var sink = new StringWriter())
        {
            Assert.Equal(0, BestApp.Run(["subscriber", "add", "--imsi", Imsi, "--k", K, "--opc", Opc, "--data-dir", Data], sink, sink));
        }

        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();

        // A CA of the test's own and a server certificate naming localhost only (so 127.0.0.1 is a name mismatch).
        using var server = LocalhostTls.Write(Data);

        // Kestrel, unchanged: HTTPS on the certificate, one page.
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        var kestrelCertificate = X509CertificateLoader.LoadPkcs12(server.Export(X509ContentType.Pkcs12), null);
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, listen =>
        {
            listen.Protocols = HttpProtocols.Http1;
            listen.UseHttps(kestrelCertificate);
        }));
        _kestrel = builder.Build();
        _kestrel.MapGet("/", () => Results.Text(Body));
        _kestrel.MapGet("/reading", () => Results.Text("{\"temperature\":21.5}", "application/json"));
        await _kestrel.StartAsync(Cancel);
        var kestrelPort = new Uri(_kestrel.Urls.First()).Port;
        _kestrelPort = kestrelPort;

        _openssl = await PeerProcess.StartServerAsync("openssl", port => ["s_server", "-accept", "127.0.0.1:" + port.ToString(CultureInfo.InvariantCulture),
            "-cert", Path.Combine(Data, "server.pem"), "-key", Path.Combine(Data, "server.key"), "-www"], "ACCEPT");

        _openssl12 = await PeerProcess.StartServerAsync("openssl", port => ["s_server", "-accept", "127.0.0.1:" + port.ToString(CultureInfo.InvariantCulture),
            "-cert", Path.Combine(Data, "server.pem"), "-key", Path.Combine(Data, "server.key"), "-www", "-tls1_2"], "ACCEPT");

        var ca_ = Path.Combine(Data, "ca.pem");
        _hse = BestProcess.Start("hse", "--data-dir", Data, "--udp-port", "0", "--tcp-port", "-1",
            "--tls-service", $"web=localhost:{kestrelPort},ca={ca_}",
            "--tls-service", $"openssl=localhost:{_openssl.Port},ca={ca_}",
            "--tls-service", $"openssl12=localhost:{_openssl12.Port},ca={ca_}",
            "--tls-service", $"untrusted=localhost:{kestrelPort}",
            "--tls-service", $"wrong-name=127.0.0.1:{kestrelPort},ca={ca_}");
        await _hse.WaitForAsync("TLS services");
        _udp = Regex.Match(_hse.Output, @"udp (\S+?)( and|,)").Groups[1].Value;
    }

    public async ValueTask DisposeAsync()
    {
        await _hse.DisposeAsync();
        await _openssl.DisposeAsync();
        await _openssl12.DisposeAsync();
        await _kestrel.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _directory.Delete(recursive: true);
    }

    [Fact]
    public async Task AnHttpGetFromTheDevice_ThroughTheConverter_ReturnsKestrelsPage_EveryOctetInOrder()
    {
        var (code, output, error) = await StreamAsync("web", "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", until: "line 05999");
        Assert.True(code == 0, error);
        Assert.Contains("HTTP/1.1 200 OK", output, StringComparison.Ordinal);
        Assert.EndsWith(Body, output, StringComparison.Ordinal);
        Assert.Matches(@"session \d+ \(Confidential, [^)]+\): \d+ octets to the service, \d+ from it", error);
    }

    [Theory]
    [InlineData("openssl", "Tls13")]
    [InlineData("openssl12", "Tls12")]
    public async Task AnHttpGetFromTheDevice_ThroughTheConverter_ReturnsOpenSslsPage_OverTls13And12(string service, string protocol)
    {
        var (code, output, error) = await StreamAsync(service, "GET / HTTP/1.0\r\n\r\n", until: "</HTML>");
        Assert.True(code == 0, error);
        Assert.Contains("HTTP/1.0 200 ok", output, StringComparison.Ordinal);
        Assert.Contains("s_server", output, StringComparison.Ordinal); // the page -www writes
        await Eventually.True(() => _hse.Error.Contains($"TLS to service {service} ({protocol}", StringComparison.Ordinal), $"the HSE spoke {protocol} to {service}");
    }

    /// <summary>
    /// The README's figures: octets of a small HTTPS GET from the device through the converter (BEST messages, session set-up
    /// included) against the same GET over direct TLS 1.3 and 1.2 (TLS records both ways, counted by a relay; TCP's own
    /// segments not counted), and the flights (one-way turns) of the direct exchange. Run with
    /// <c>dotnet test tests/OpenBest.Cli.Tests --filter Figures --logger "console;verbosity=detailed"</c>.
    /// </summary>
    [Fact]
    public async Task Figures_AnHttpsGet_ThroughTheConverter_VersusDirectTls()
    {
        const string Request = "GET /reading HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        var (code, output, error) = await StreamAsync("web", Request, until: "21.5}");
        Assert.True(code == 0, error);
        var bearer = Regex.Match(error, @"(\d+) octets in (\d+) messages sent, (\d+) in (\d+) received");
        Assert.True(bearer.Success, error);
        var converter = long.Parse(bearer.Groups[1].Value, CultureInfo.InvariantCulture) + long.Parse(bearer.Groups[3].Value, CultureInfo.InvariantCulture);
        var messages = int.Parse(bearer.Groups[2].Value, CultureInfo.InvariantCulture) + int.Parse(bearer.Groups[4].Value, CultureInfo.InvariantCulture);
        var lines = new List<string> { $"through the converter: {converter} octets in {messages} BEST messages (session set-up included); {output.Length} octets of HTTP" };
        foreach (var protocol in new[] { System.Security.Authentication.SslProtocols.Tls13, System.Security.Authentication.SslProtocols.Tls12 })
        {
            var (octets, flights) = await DirectAsync(Request, protocol);
            lines.Add($"direct {protocol}: {octets} octets of TLS records, {flights} flights (plus TCP's handshake)");
            Assert.True(converter < octets, string.Join("; ", lines));
        }

        foreach (var line in lines)
        {
            TestContext.Current.TestOutputHelper?.WriteLine(line);
        }
    }

    /// <summary>The same GET over TLS straight to Kestrel through a counting relay: octets both ways and one-way flights.</summary>
    private async Task<(long Octets, int Flights)> DirectAsync(string request, System.Security.Authentication.SslProtocols protocol)
    {
        using var relay = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        relay.Start();
        long octets = 0;
        var flights = 0;
        var last = 0;
        var gate = new object();
        void Count(int direction, int n)
        {
            lock (gate)
            {
                octets += n;
                if (direction != last)
                {
                    flights++;
                    last = direction;
                }
            }
        }

        var relaying = Task.Run(async () =>
        {
            using var device = await relay.AcceptTcpClientAsync(Cancel);
            using var server = new System.Net.Sockets.TcpClient();
            await server.ConnectAsync(IPAddress.Loopback, _kestrelPort, Cancel);
            async Task Pump(System.Net.Sockets.NetworkStream from, System.Net.Sockets.NetworkStream to, int direction)
            {
                var buffer = new byte[65536];
                int n;
                while ((n = await from.ReadAsync(buffer, Cancel)) > 0)
                {
                    Count(direction, n);
                    await to.WriteAsync(buffer.AsMemory(0, n), Cancel);
                }

                to.Socket.Shutdown(System.Net.Sockets.SocketShutdown.Send);
            }

            await Task.WhenAll(Pump(device.GetStream(), server.GetStream(), 1), Pump(server.GetStream(), device.GetStream(), 2));
        }, Cancel);

        using var ca = X509CertificateLoader.LoadCertificateFromFile(Path.Combine(Data, "ca.pem"));
        using (var client = new System.Net.Sockets.TcpClient())
        {
            await client.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)relay.LocalEndpoint).Port, Cancel);
            await using var tls = new System.Net.Security.SslStream(client.GetStream());
            await tls.AuthenticateAsClientAsync(new System.Net.Security.SslClientAuthenticationOptions
            {
                TargetHost = "localhost",
                EnabledSslProtocols = protocol,
                CertificateChainPolicy = new X509ChainPolicy { TrustMode = X509ChainTrustMode.CustomRootTrust, CustomTrustStore = { ca }, RevocationMode = X509RevocationMode.NoCheck },
            }, Cancel);
            await tls.WriteAsync(Encoding.ASCII.GetBytes(request), Cancel);
            using var reader = new StreamReader(tls);
            Assert.Contains("21.5", await reader.ReadToEndAsync(Cancel), StringComparison.Ordinal);
        }

        await relaying.WaitAsync(Eventually.Deadline, Cancel);
        return (octets, flights);
    }

    [Theory]
    [InlineData("untrusted")]
    [InlineData("wrong-name")]
    public async Task AServerTheHseCannotVerify_IsRefused_AndTheDeviceLearnsIt(string service)
    {
        var (code, output, error) = await StreamAsync(service, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", until: null);
        Assert.Equal(1, code);
        Assert.Empty(output);
        Assert.Contains("could not be reached or verified", error, StringComparison.Ordinal);
        await Eventually.True(() => _hse.Error.Contains($"TLS service {service} unreachable or not verified", StringComparison.Ordinal), "the HSE logs the refusal");
    }

    /// <summary>Runs <c>best ue stream</c>: writes <paramref name="request"/>, keeps stdin open until <paramref name="until"/> arrived (or the process ended), then closes it.</summary>
    private async Task<(int Code, string Output, string Error)> StreamAsync(string service, string request, string? until)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in new[] { Path.Combine(AppContext.BaseDirectory, "best.dll"), "ue", "stream", "--imsi", Imsi, "--k", K, "--opc", Opc, "--hse", _udp, "--eas", service,
            "--usim-state", Path.Combine(Data, "usim.json") })
        {
            info.ArgumentList.Add(argument);
        }

        using var process = Process.Start(info)!;
        var output = new StringBuilder();
        var reading = Task.Run(async () =>
        {
            var buffer = new char[8192];
            int n;
            while ((n = await process.StandardOutput.ReadAsync(buffer, Cancel)) > 0)
            {
                lock (output)
                {
                    output.Append(buffer, 0, n);
                }
            }
        }, Cancel);
        var error = process.StandardError.ReadToEndAsync(Cancel);
        await process.StandardInput.WriteAsync(request);
        await process.StandardInput.FlushAsync(Cancel);
        if (until is not null)
        {
            await Eventually.True(() =>
            {
                lock (output)
                {
                    return output.ToString().Contains(until, StringComparison.Ordinal) || process.HasExited;
                }
            }, $"the page through {service}");
        }

        process.StandardInput.Close();
        using var limit = new CancellationTokenSource(Eventually.Deadline + Eventually.Deadline);
        await process.WaitForExitAsync(limit.Token);
        await reading;
        var errorText = await error;
        lock (output)
        {
            return (process.ExitCode, output.ToString(), errorText);
        }
    }
}
