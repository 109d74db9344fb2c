using System.Diagnostics;
using System.Globalization;
using System.Net;
using OpenBest.Client;
using OpenBest.Gsup.Tests;
using OpenBest.Hse.Cluster.Demo;
using OpenBest.Protocol;
using OpenBest.Sessions;
using OpenBest.Storage;
using OpenBest.Storage.Postgres;
using OpenBest.Storage.Tests;
using OpenBest.Testing;

namespace OpenBest.Hse.Cluster.Tests;

/// <summary>
/// A cluster's nodes with the HSE's other sources and bearers (docs/protocol.md, "HSE cluster"): vectors from the
/// operator's HLR over GSUP (a real osmo-hlr; each node connects under its own name, so the HLR gives each its own IND),
/// and a non-IP link on one node (its stdin/stdout) whose frames reach shards on the other node and come back.
/// </summary>
public sealed class ClusterVectorsAndBearersTests(PostgresServer server) : IClassFixture<PostgresServer>, IDisposable
{
    private const string K = "000102030405060708090a0b0c0d0e0f";
    private const string Opc = "0f0e0d0c0b0a09080706050403020100";
    private const string Eas = "eas.example.com";
    private const int Shards = 16;
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-cluster-bearers-");

    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    private static ServingNetwork Network => ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org");

    public void Dispose() => _directory.Delete(recursive: true);

    [Fact]
    public async Task Nodes_TakeVectorsFromTheHlr_EachOverItsOwnConnection_AndTheStoreHoldsNoKey()
    {
        server.SkipIfUnavailable();
        await using var hlr = await OsmoHlr.StartAsync();
        string[] imsis = ["001010000000501", "001010000000502", "001010000000503", "001010000000504"];
        foreach (var imsi in imsis)
        {
            await hlr.CreateSubscriberAsync(imsi, K, Opc);
        }

        var database = server.CreateDatabase();
        var udp = new[] { LoopbackPorts.Free(udpToo: true), LoopbackPorts.Free(udpToo: true) };
        var auc = string.Create(CultureInfo.InvariantCulture, $"gsup://{hlr.Address}:{OsmoHlr.GsupPort}");
        var nodes = new[] { Node("node-1", udp[0], database, "--auc", auc), Node("node-2", udp[1], database, "--auc", auc) };
        try
        {
            await nodes[0].WaitForAsync("HSE node node-1 listening");
            await nodes[1].WaitForAsync("HSE node node-2 listening");
            await Eventually.True(async () =>
            {
                var peers = await hlr.VtyAsync("show gsup-connections");
                return peers.Contains("OpenBest-HSE-node-1", StringComparison.Ordinal) && peers.Contains("OpenBest-HSE-node-2", StringComparison.Ordinal);
            }, "both nodes connected to the HLR under their own names", TimeSpan.FromSeconds(60));

            // Devices through both nodes: each session's shard asks the HLR over its node's connection.
            for (var i = 0; i < imsis.Length; i++)
            {
                await using var device = await DeviceAsync(imsis[i], new BestTransport.Udp(new IPEndPoint(IPAddress.Loopback, udp[i % 2])));
                var opened = await device.OpenAsync(new UeChannelOptions { EasId = Eas, ServingNetwork = Network }, Cancel);
                Assert.True(opened.Established, $"{imsis[i]}: {opened} | {hlr.Log}");
                Assert.Equal(SendStatus.Acknowledged, await opened.Channel!.SendAsync("vector from the HLR"u8.ToArray(), acknowledged: true, Cancel));
            }

            // The cluster's database never held a subscriber's key.
            using var key = MasterKey.Load(_directory.FullName);
            using var store = PostgresSubscriberStore.Open(database, key);
            Assert.Empty(store.List());
        }
        finally
        {
            foreach (var node in nodes)
            {
                await node.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task ANonIpLinkOnOneNode_ReachesAShardOnTheOther()
    {
        server.SkipIfUnavailable();

        // One subscriber per shard, so one of them lives in a shard that runs on the node without the link.
        var imsis = Placement.OneImsiPerShard(Shards);
        var database = server.CreateDatabase();
        using (var key = MasterKey.Load(_directory.FullName))
        using (var store = PostgresSubscriberStore.Open(database, key))
        {
            store.Add([.. imsis.Select(imsi => new NewSubscriber(imsi, Convert.FromHexString(K), Convert.FromHexString(Opc)))]);
        }

        await using var plain = Node("node-1", LoopbackPorts.Free(udpToo: true), database);
        await plain.WaitForAsync("HSE node node-1 listening");
        var info = new ProcessStartInfo("dotnet") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[]
        {
            Path.Combine(AppContext.BaseDirectory, "best.dll"), "hse", "--cluster", "--postgres", database, "--data-dir", _directory.FullName, "--node-name", "node-2",
            "--udp-port", "0", "--tcp-port", "-1", "--non-ip", "-",
            "--silo-port", LoopbackPorts.Free().ToString(CultureInfo.InvariantCulture), "--gateway-port", LoopbackPorts.Free().ToString(CultureInfo.InvariantCulture),
        })
        {
            info.ArgumentList.Add(arg);
        }

        using var linked = Process.Start(info)!;
        var said = new System.Text.StringBuilder();
        try
        {
            // Human output and logs go to stderr: stdout carries frames only.
            _ = Task.Run(async () =>
            {
                while (await linked.StandardError.ReadLineAsync(CancellationToken.None) is { } line)
                {
                    lock (said)
                    {
                        said.AppendLine(line);
                    }
                }
            }, CancellationToken.None);
            await Eventually.True(() => Said(said).Contains("HSE node node-2 listening", StringComparison.Ordinal), "node-2 listening", TimeSpan.FromSeconds(60));
            var farShard = (await Placement.SettledAsync(database, _directory.FullName)).First(o => o.Node == "node-1").Shard;
            var imsi = imsis[farShard];

            await using var device = await DeviceAsync(imsi, new BestTransport.NonIp(linked.StandardOutput.BaseStream, linked.StandardInput.BaseStream));
            var opened = await device.OpenAsync(new UeChannelOptions { EasId = Eas, ServingNetwork = Network }, Cancel);
            Assert.True(opened.Established, $"{opened} | {Said(said)}");
            Assert.Equal(SendStatus.Acknowledged, await opened.Channel!.SendAsync("over a serial line"u8.ToArray(), acknowledged: true, Cancel));
            Assert.Equal(farShard, (int)(opened.Channel.SessionId % Shards));
        }
        finally
        {
            linked.Kill(entireProcessTree: true);
            await linked.WaitForExitAsync(CancellationToken.None);
        }
    }

    private static string Said(System.Text.StringBuilder said)
    {
        lock (said)
        {
            return said.ToString();
        }
    }

    private static Task<BestClient> DeviceAsync(string imsi, BestTransport transport) => BestClient.CreateAsync(new BestClientOptions
    {
        Imsi = imsi,
        K = Convert.FromHexString(K),
        Opc = Convert.FromHexString(Opc),
        Transport = transport,
        TickInterval = TimeSpan.FromMilliseconds(50),
        OperationTimeout = TimeSpan.FromSeconds(30),
    }, Cancel);

    private BestProcess Node(string name, int udp, string database, params string[] extra) => NodeProcess.Start(name, database, _directory.FullName, [.. NodeProcess.Udp(udp), .. extra]);
}
