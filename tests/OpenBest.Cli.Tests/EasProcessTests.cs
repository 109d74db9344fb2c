using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace OpenBest.Cli.Tests;

/// <summary>The enterprise side as a person runs it: <c>best pki init</c>, <c>best hse --eas-port</c>, <c>best eas</c> and a device in UE-to-EAS mode.</summary>
public sealed class EasProcessTests : IDisposable
{
    private const string Imsi = "001010000000777";
    private const string K = "465b5ce8b199b49faa5f0a2ee238a6bc";
    private const string Opc = "cd63cb71954a9f4e48a5994e37a02baf";
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-easproc-");

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _directory.Delete(recursive: true);
    }

    private static Process Start(params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "best.dll"));
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        return Process.Start(info)!;
    }

    private static int FreeTcpPort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    [Fact]
    public async Task DeviceToEas_ThroughTheHse_AsProcesses()
    {
        var cancel = TestContext.Current.CancellationToken;
        var data = _directory.FullName;
        using (var sink = new StringWriter())
        {
            Assert.Equal(0, BestApp.Run(["subscriber", "add", "--imsi", Imsi, "--k", K, "--opc", Opc, "--data-dir", data], sink, sink));
            Assert.Equal(0, BestApp.Run(["subscriber", "external-id", "--imsi", Imsi, "--eas", "eas.example.com", "--id", "meter-1@acme", "--data-dir", data], sink, sink));
            Assert.Equal(0, BestApp.Run(["pki", "init", "--eas", "eas.example.com", "--data-dir", data], sink, sink));
        }

        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        var easPort = FreeTcpPort();
        using var hse = Start("hse", "--data-dir", data, "--udp-port", "0", "--tcp-port", "-1", "--eas-port", easPort.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Process? eas = null;
        try
        {
            var banner = await hse.StandardOutput.ReadLineAsync(cancel).AsTask().WaitAsync(TimeSpan.FromSeconds(60), cancel);
            Assert.Contains("EAS interface on https://", banner, StringComparison.Ordinal);
            _ = Task.Run(async () => { while (await hse.StandardError.ReadLineAsync(cancel) is not null) { } }, cancel);
            var udp = System.Text.RegularExpressions.Regex.Match(banner!, @"udp (\S+?)( and|,)").Groups[1].Value;

            const string EnterpriseKey = "61636d65:00112233445566778899aabbccddeeff"; // identifier "acme"
            eas = Start("eas", "--eas-id", "eas.example.com", "--hse", $"https://127.0.0.1:{easPort}/", "--data-dir", data, "--enterprise-key", "meter-1@acme=" + EnterpriseKey);
            var registered = await eas.StandardOutput.ReadLineAsync(cancel).AsTask().WaitAsync(TimeSpan.FromSeconds(60), cancel);
            Assert.StartsWith("EAS eas.example.com registered", registered, StringComparison.Ordinal);

            // The first session: the EAS asks for its Enterprise Key in its answer to the key push, the HSE refreshes the
            // keys naming it, and the message waits for that key set. The second: the HSE names it at key confirmation.
            foreach (var text in new[] { "hello enterprise", "second session" })
            {
                using var output = new StringWriter();
                using var error = new StringWriter();
                var code = await Task.Run(() => BestApp.Run(["ue", "send", "--imsi", Imsi, "--k", K, "--opc", Opc, "--hse", udp, "--eas", "eas.example.com", "--e2e", "--enterprise-key", EnterpriseKey,
                    "--usim-state", Path.Combine(data, "usim.json"), text], output, error), cancel);
                Assert.True(code == 0, output.ToString() + error);
                Assert.Contains("acknowledged (under Enterprise Key 61636d65)", output.ToString(), StringComparison.Ordinal);
                var received = await eas.StandardOutput.ReadLineAsync(cancel).AsTask().WaitAsync(OpenBest.Testing.Eventually.Deadline, cancel);
                Assert.Matches($@"^#\d+ session \d+ \(meter-1@acme\): {text}$", received);
            }
        }
        finally
        {
            eas?.Kill(entireProcessTree: true);
            hse.Kill(entireProcessTree: true);
            await hse.WaitForExitAsync(CancellationToken.None);
            if (eas is not null)
            {
                await eas.WaitForExitAsync(CancellationToken.None);
                eas.Dispose();
            }
        }
    }
}
