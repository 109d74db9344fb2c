using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.RegularExpressions;
using OpenBest.EasInterface;
using OpenBest.Hse.Cluster.Demo;
using OpenBest.Storage;
using OpenBest.Storage.Postgres;
using OpenBest.Storage.Tests;
using OpenBest.Testing;

namespace OpenBest.Hse.Cluster.Tests;

/// <summary>
/// The TLS converter on a cluster (seed 000 section 2; docs/protocol.md, "HSE cluster"): two node processes on a real
/// PostgreSQL, a device whose session's shard runs on node-1. Its stream to an unchanged TLS server (openssl s_server)
/// goes out from node-1 while the device talks to node-2; and an unchanged TLS client (openssl s_client) accepted by
/// node-2 reaches the device, whose frames node-1's shard sends to node-2.
/// </summary>
public sealed class ClusterConverterTests(PostgresServer server) : IClassFixture<PostgresServer>, IAsyncLifetime
{
    private const string K = "465b5ce8b199b49faa5f0a2ee238a6bc";
    private const string Opc = "cd63cb71954a9f4e48a5994e37a02baf";
    private const int Shards = 16;
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-cluster-tls-");
    private PeerProcess? _service;

    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    private string Data => _directory.FullName;

    public ValueTask InitializeAsync() => ValueTask.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        if (_service is not null)
        {
            await _service.DisposeAsync();
        }

        _directory.Delete(recursive: true);
    }

    [Fact]
    public async Task ADevicesStream_ReachesATlsServer_AndATlsClientReachesTheDevice_ThroughTheOtherNode()
    {
        server.SkipIfUnavailable();
        var imsis = Placement.OneImsiPerShard(Shards);
        var database = server.CreateDatabase();
        DevelopmentPki.Init(Data, ["eas.example.com"]);
        using (var key = MasterKey.Load(Data))
        using (var store = PostgresSubscriberStore.Open(database, key))
        {
            store.Add([.. imsis.Select(imsi => new NewSubscriber(imsi, Convert.FromHexString(K), Convert.FromHexString(Opc)))]);
            foreach (var imsi in imsis)
            {
                store.SetExternalId("inbound", "dev-" + imsi, imsi);
            }
        }

        var ca = WriteServerCertificate();
        _service = await PeerProcess.StartServerAsync("openssl", port => ["s_server", "-accept", "127.0.0.1:" + port.ToString(CultureInfo.InvariantCulture),
            "-cert", Path.Combine(Data, "server.pem"), "-key", Path.Combine(Data, "server.key"), "-www"], "ACCEPT");
        var udp = new[] { LoopbackPorts.Free(udpToo: true), LoopbackPorts.Free(udpToo: true) };
        var inbound = new[] { LoopbackPorts.Free(), LoopbackPorts.Free() };
        var nodes = new[] { Node("node-1", udp[0], inbound[0], database, ca), Node("node-2", udp[1], inbound[1], database, ca) };
        try
        {
            await nodes[0].WaitForAsync("HSE node node-1 listening");
            await nodes[1].WaitForAsync("HSE node node-2 listening");
            var shard = (await Placement.SettledAsync(database, Data)).First(o => o.Node == "node-1").Shard;
            var imsi = imsis[shard];

            // Outbound: the device talks to node-2; its session's shard (node-1) opens the TLS connection to the server.
            using (var device = Device(imsi, udp[1], "openssl"))
            {
                var output = Collect(device);
                await device.StandardInput.WriteAsync("GET / HTTP/1.0\r\n\r\n");
                await device.StandardInput.FlushAsync(Cancel);
                await Eventually.True(() => Text(output).Contains("</HTML>", StringComparison.Ordinal), "openssl's page through the converter", TimeSpan.FromSeconds(60));
                Assert.Contains("HTTP/1.0 200 ok", Text(output), StringComparison.Ordinal);
                Assert.Contains("converter: TLS to service openssl", nodes[0].Error, StringComparison.Ordinal);
                device.Kill(entireProcessTree: true);
            }

            // Inbound: the device's channel runs on node-1; a TLS client accepted by node-2 reaches it, both ways.
            using var holder = Device(imsi, udp[0], "inbound");
            var fromClient = Collect(holder);
            // Until the device's channel is up, the client's name has no channel and its handshake is refused: it tries again.
            PeerProcess? client = null;
            var deadline = Stopwatch.StartNew();
            while (client is null)
            {
                var attempt = PeerProcess.Start("openssl", "s_client", "-connect", "127.0.0.1:" + inbound[1].ToString(CultureInfo.InvariantCulture), "-servername", "dev-" + imsi,
                    "-CAfile", Path.Combine(Data, "pki", "ca.crt"), "-verify_return_error", "-quiet");
                await Eventually.True(() => Regex.Count(nodes[1].Error, "relayed to the device") > 0 || attempt.HasExited, "node-2 relays the client or refuses it", TimeSpan.FromSeconds(60));
                if (!attempt.HasExited)
                {
                    client = attempt;
                    break;
                }

                await attempt.DisposeAsync();
                Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(60), "the device's inbound channel was not up within 60 s: " + nodes[1].Error);
                await Task.Delay(TimeSpan.FromSeconds(1), Cancel);
            }

            await using var _ = client;
            await holder.StandardInput.WriteLineAsync("reading 21.5 C from the device");
            await holder.StandardInput.FlushAsync(Cancel);
            await client.WaitForAsync("reading 21.5 C from the device");
            await client.WriteLineAsync("set interval 60 s");
            await Eventually.True(() => Text(fromClient).Contains("set interval 60 s", StringComparison.Ordinal), "the client's line reaches the device", TimeSpan.FromSeconds(60));
            holder.Kill(entireProcessTree: true);
        }
        finally
        {
            foreach (var node in nodes)
            {
                await node.DisposeAsync();
            }
        }
    }

    /// <summary>A CA of the test's own and a certificate for localhost (the TLS server's); the CA file's path.</summary>
    private string WriteServerCertificate()
    {
        using var certificate = LocalhostTls.Write(Data);
        return Path.Combine(Data, "ca.pem");
    }

    private Process Device(string imsi, int udp, string easId)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in new[] { Path.Combine(AppContext.BaseDirectory, "best.dll"), "ue", "stream", "--imsi", imsi, "--k", K, "--opc", Opc,
            "--hse", "127.0.0.1:" + udp.ToString(CultureInfo.InvariantCulture), "--eas", easId, "--usim-state", Path.Combine(Data, "usim-" + imsi + ".json") })
        {
            info.ArgumentList.Add(argument);
        }

        return Process.Start(info)!;
    }

    private static StringBuilder Collect(Process process)
    {
        var output = new StringBuilder();
        process.OutputDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.ErrorDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return output;
    }

    private static string Text(StringBuilder output)
    {
        lock (output)
        {
            return output.ToString();
        }
    }

    private BestProcess Node(string name, int udp, int inbound, string database, string ca) => NodeProcess.Start(name, database, Data,
        [.. NodeProcess.Udp(udp), "--tls-service", string.Create(CultureInfo.InvariantCulture, $"openssl=localhost:{_service!.Port},ca={ca}"),
        "--tls-inbound", string.Create(CultureInfo.InvariantCulture, $"{inbound}=inbound")]);
}
