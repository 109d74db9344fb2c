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
    private BestProcess _hse = null!;
    private string _udp = string.Empty;

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
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=Converter Test CA", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        using var ca = caRequest.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(2));
        using var serverKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var serverRequest = new CertificateRequest("CN=localhost", serverKey, HashAlgorithmName.SHA256);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("localhost");
        serverRequest.CertificateExtensions.Add(names.Build());
        serverRequest.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var issued = serverRequest.Create(ca, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1), RandomNumberGenerator.GetBytes(8));
        using var server = issued.CopyWithPrivateKey(serverKey);
        await File.WriteAllTextAsync(Path.Combine(Data, "ca.pem"), ca.ExportCertificatePem(), Cancel);
        await File.WriteAllTextAsync(Path.Combine(Data, "server.pem"), server.ExportCertificatePem(), Cancel);
        await File.WriteAllTextAsync(Path.Combine(Data, "server.key"), serverKey.ExportPkcs8PrivateKeyPem(), Cancel);

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
        await _kestrel.StartAsync(Cancel);
        var kestrelPort = new Uri(_kestrel.Urls.First()).Port;

        _openssl = await PeerProcess.StartServerAsync("openssl", port => ["s_server", "-accept", "127.0.0.1:" + port.ToString(CultureInfo.InvariantCulture),
            "-cert", Path.Combine(Data, "server.pem"), "-key", Path.Combine(Data, "server.key"), "-www"], "ACCEPT");

        var ca_ = Path.Combine(Data, "ca.pem");
        _hse = BestProcess.Start("hse", "--data-dir", Data, "--udp-port", "0", "--tcp-port", "-1",
            "--tls-service", $"web=localhost:{kestrelPort},ca={ca_}",
            "--tls-service", $"openssl=localhost:{_openssl.Port},ca={ca_}",
            "--tls-service", $"untrusted=localhost:{kestrelPort}",
            "--tls-service", $"wrong-name=127.0.0.1:{kestrelPort},ca={ca_}");
        await _hse.WaitForAsync("TLS services");
        _udp = Regex.Match(_hse.Output, @"udp (\S+?)( and|,)").Groups[1].Value;
    }

    public async ValueTask DisposeAsync()
    {
        await _hse.DisposeAsync();
        await _openssl.DisposeAsync();
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

    [Fact]
    public async Task AnHttpGetFromTheDevice_ThroughTheConverter_ReturnsOpenSslsPage()
    {
        var (code, output, error) = await StreamAsync("openssl", "GET / HTTP/1.0\r\n\r\n", until: "</HTML>");
        Assert.True(code == 0, error);
        Assert.Contains("HTTP/1.0 200 ok", output, StringComparison.Ordinal);
        Assert.Contains("s_server", output, StringComparison.Ordinal); // the page -www writes
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
