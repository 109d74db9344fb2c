using System.Globalization;
using System.Net;
using System.Net.Sockets;
using OpenBest.Client;
using OpenBest.Protocol;
using OpenBest.Sessions;
using OpenBest.Testing;

namespace OpenBest.Cli.Tests;

/// <summary>
/// The front of an HSE cluster: <c>best cluster nginx-config</c> writes an nginx stream configuration, and a real nginx
/// (Debian's, with libnginx-mod-stream) carries devices' EMSDP over UDP and TCP to a <c>best hse</c> process and back.
/// </summary>
public sealed class NginxFrontProcessTests : IDisposable
{
    private const string Imsi = "001010000000889";
    private const string K = "465b5ce8b199b49faa5f0a2ee238a6bc";
    private const string Opc = "cd63cb71954a9f4e48a5994e37a02baf";
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-nginx-");

    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _directory.Delete(recursive: true);
    }

    [Fact]
    public void NginxConfig_BadNodes_IsOneLineAndExit2()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        Assert.Equal(2, BestApp.Run(["cluster", "nginx-config", "--nodes", "127.0.0.1:3163,hse-2"], output, error));
        Assert.Contains("'hse-2' is not HOST:PORT", error.ToString(), StringComparison.Ordinal);
        Assert.Single(error.ToString().TrimEnd().Split('\n'));
        Assert.Empty(output.ToString());
    }

    [Fact]
    public async Task Devices_ReachTheHse_ThroughNginx_OverUdpAndTcp()
    {
        if (!File.Exists("/usr/sbin/nginx") || !File.Exists(Hse.Cluster.NginxFront.DebianStreamModule))
        {
            Assert.True(Environment.GetEnvironmentVariable("CI") is null, "CI installs nginx and libnginx-mod-stream");
            Assert.Skip("nginx with its stream module is not installed");
        }

        var data = _directory.FullName;
        using (var sink = new StringWriter())
        {
            Assert.Equal(0, BestApp.Run(["subscriber", "add", "--imsi", Imsi, "--k", K, "--opc", Opc, "--data-dir", data], sink, sink));
        }

        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        var node = FreePort();
        await using var hse = BestProcess.Start("hse", "--data-dir", data, "--udp-port", node.ToString(CultureInfo.InvariantCulture), "--tcp-port", node.ToString(CultureInfo.InvariantCulture));
        await hse.WaitForAsync("Ctrl+C stops it");

        var listen = FreePort();
        var config = Path.Combine(data, "nginx.conf");
        using (var output = new StringWriter())
        using (var error = new StringWriter())
        {
            Assert.Equal(0, BestApp.Run(["cluster", "nginx-config", "--nodes", $"127.0.0.1:{node}", "--listen", listen.ToString(CultureInfo.InvariantCulture)], output, error));
            await File.WriteAllTextAsync(config, output.ToString(), Cancel);
        }

        var check = PeerProcess.Start("/usr/sbin/nginx", "-t", "-c", config, "-p", data, "-e", "stderr", "-g", $"pid {data}/nginx-t.pid;");
        await Eventually.True(() => check.HasExited, "nginx -t");
        Assert.Contains("syntax is ok", check.Output, StringComparison.Ordinal);
        await check.DisposeAsync();

        await using var nginx = PeerProcess.Start("/usr/sbin/nginx", "-c", config, "-p", data, "-e", "stderr", "-g", $"daemon off; pid {data}/nginx.pid; error_log stderr notice;");
        await Eventually.True(() => nginx.Output.Contains("start worker process", StringComparison.Ordinal) || nginx.HasExited, "nginx starts");
        Assert.False(nginx.HasExited, nginx.Output);

        foreach (var tcp in new[] { false, true })
        {
            var front = new IPEndPoint(IPAddress.Loopback, listen);
            await using var client = await BestClient.CreateAsync(new BestClientOptions
            {
                Imsi = Imsi, K = Convert.FromHexString(K), Opc = Convert.FromHexString(Opc),
                Transport = tcp ? new BestTransport.Tcp(front) : new BestTransport.Udp(front),
                UsimStateFile = Path.Combine(data, "usim.json"), OperationTimeout = TimeSpan.FromSeconds(30),
            }, Cancel);
            var opened = await client.OpenAsync(new UeChannelOptions { EasId = "eas.example.com", Service = BestService.Integrity }, Cancel);
            var channel = opened.Channel ?? throw new InvalidOperationException($"no session through nginx ({(tcp ? "TCP" : "UDP")}): {opened.Rejected} {nginx.Output}");
            Assert.Equal(SendStatus.Acknowledged, await channel.SendAsync("through the front"u8.ToArray(), acknowledged: true, Cancel));
            Assert.True(await channel.CloseAsync(Cancel));
        }
    }

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }
}
