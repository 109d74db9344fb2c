using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using OpenBest.Testing;

namespace OpenBest.Cli.Tests;

/// <summary>
/// The converter the other way (seed 000 section 2, "and vice versa") with real processes: <c>best hse --tls-inbound</c>
/// accepts TLS from an unchanged client (<c>openssl s_client</c>, verifying the HSE's certificate) and relays it to the
/// device its SNI names, whose <c>best ue stream</c> holds a channel naming the listener's EAS Id. Both directions carry
/// data; a name that is no device's is refused in the handshake.
/// </summary>
public sealed class ConverterInboundProcessTests : IAsyncLifetime
{
    private const string Imsi = "001010000000998";
    private const string K = "465b5ce8b199b49faa5f0a2ee238a6bc";
    private const string Opc = "cd63cb71954a9f4e48a5994e37a02baf";
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-inbound-");
    private BestProcess _hse = null!;
    private string _udp = string.Empty;
    private int _port;

    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    private string Data => _directory.FullName;

    public async ValueTask InitializeAsync()
    {
        using (var sink = new StringWriter())
        {
            Assert.Equal(0, BestApp.Run(["subscriber", "add", "--imsi", Imsi, "--k", K, "--opc", Opc, "--data-dir", Data], sink, sink));
            Assert.Equal(0, BestApp.Run(["subscriber", "external-id", "--imsi", Imsi, "--eas", "inbound", "--id", "meter-9.acme", "--data-dir", Data], sink, sink));
            Assert.Equal(0, BestApp.Run(["pki", "init", "--eas", "eas.example.com", "--data-dir", Data], sink, sink));
        }

        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _hse = BestProcess.Start("hse", "--data-dir", Data, "--udp-port", "0", "--tcp-port", "-1", "--tls-inbound", "0=inbound");
        await _hse.WaitForAsync("inbound TLS");
        _udp = Regex.Match(_hse.Output, @"udp (\S+?)( and|,)").Groups[1].Value;
        _port = int.Parse(Regex.Match(_hse.Output, @"inbound TLS [^:]+:(\d+)").Groups[1].Value, CultureInfo.InvariantCulture);
    }

    public async ValueTask DisposeAsync()
    {
        await _hse.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _directory.Delete(recursive: true);
    }

    [Fact]
    public async Task AnUnchangedTlsClient_ReachesTheDeviceItNames_BothWays()
    {
        using var device = Start("dotnet", Path.Combine(AppContext.BaseDirectory, "best.dll"), "ue", "stream", "--imsi", Imsi, "--k", K, "--opc", Opc, "--hse", _udp, "--eas", "inbound",
            "--usim-state", Path.Combine(Data, "usim.json"));
        var (deviceOutput, _) = Collect(device);
        await Eventually.True(() => _hse.Error.Contains("EAS inbound", StringComparison.Ordinal), "the device's channel is established");

        await using var client = PeerProcess.Start("openssl", "s_client", "-connect", "127.0.0.1:" + _port.ToString(CultureInfo.InvariantCulture), "-servername", "meter-9.acme",
            "-CAfile", Path.Combine(Data, "pki", "ca.crt"), "-verify_return_error", "-quiet");
        await Eventually.True(() => _hse.Error.Contains("relayed to the device", StringComparison.Ordinal) || client.HasExited, "the HSE relays the client");
        Assert.False(client.HasExited, client.Output);

        await device.StandardInput.WriteLineAsync("reading 21.5 C from the device");
        await device.StandardInput.FlushAsync(Cancel);
        await client.WaitForAsync("reading 21.5 C from the device");
        await client.WriteLineAsync("set interval 60 s");
        await Eventually.True(() => { lock (deviceOutput) { return deviceOutput.ToString().Contains("set interval 60 s", StringComparison.Ordinal); } }, "the client's line reaches the device");
        device.Kill(entireProcessTree: true);
    }

    [Fact]
    public async Task ANameThatIsNoDevicesOrHasNoChannel_IsRefusedInTheHandshake()
    {
        foreach (var name in new[] { "someone-else.acme", "meter-9.acme" }) // the second is a device, but it has no channel open
        {
            await using var client = PeerProcess.Start("openssl", "s_client", "-connect", "127.0.0.1:" + _port.ToString(CultureInfo.InvariantCulture), "-servername", name,
                "-CAfile", Path.Combine(Data, "pki", "ca.crt"), "-verify_return_error", "-quiet");
            Assert.NotEqual(0, await client.ExitAsync());
        }

        await Eventually.True(() => Regex.Count(_hse.Error, "a TLS client of inbound refused") == 2, "the HSE refused both");
    }

    private static Process Start(string program, params string[] arguments)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        return Process.Start(info)!;
    }

    private static (StringBuilder Output, StringBuilder Error) Collect(Process process)
    {
        var (output, error) = (new StringBuilder(), new StringBuilder());
        process.OutputDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.ErrorDataReceived += (_, e) => { lock (error) { error.AppendLine(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return (output, error);
    }
}
