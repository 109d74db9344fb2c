using System.Diagnostics;
using System.Globalization;
using System.Text;
using OpenBest.Client;
using OpenBest.Hse.Cluster.Demo;
using OpenBest.Sessions;
using OpenBest.Storage;
using OpenBest.Storage.Postgres;
using OpenBest.Storage.Tests;
using OpenBest.Testing;

namespace OpenBest.Hse.Cluster.Tests;

/// <summary>
/// A node that dies while shards move to it (docs/protocol.md, "HSE cluster", node failure): a second node joins, shards
/// start moving to it, and it is killed with SIGKILL as soon as it holds one. Every device's session goes on, on the node
/// that is left, without a new AKA run.
/// </summary>
public sealed class ClusterMigrationTests(PostgresServer server) : IClassFixture<PostgresServer>, IDisposable
{
    private const string K = "000102030405060708090a0b0c0d0e0f";
    private const string Opc = "0f0e0d0c0b0a09080706050403020100";
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-cluster-move-");

    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    public void Dispose() => _directory.Delete(recursive: true);

    [Fact]
    public async Task ANodeKilledWhileShardsMoveToIt_EveryDeviceGoesOnWithoutANewAkaRun()
    {
        server.SkipIfUnavailable();

        // One device in every shard, so that whichever shards are moving at the kill, devices' sessions are among them.
        const int Shards = 16;
        var imsis = Placement.OneImsiPerShard(Shards);
        var database = server.CreateDatabase();
        var data = _directory.FullName;
        using var key = MasterKey.Load(data);
        using var store = PostgresSubscriberStore.Open(database, key);
        store.Add([.. imsis.Select(imsi => new NewSubscriber(imsi, Convert.FromHexString(K), Convert.FromHexString(Opc)))]);

        var udp = LoopbackPorts.Free(udpToo: true);
        await using var one = NodeProcess.Start("node-1", database, data, NodeProcess.Udp(udp));
        await one.WaitForAsync("HSE node node-1 listening");
        var devices = new List<(BestClient Client, BestChannel Channel, uint SessionId)>();
        try
        {
            foreach (var imsi in imsis)
            {
                var client = await NodeProcess.DeviceAsync(imsi, K, Opc, udp, asInTheField: true);
                var opened = await client.OpenAsync(new UeChannelOptions { EasId = "moves.example", ServingNetwork = Protocol.ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org") }, Cancel);
                Assert.True(opened.Established, $"{imsi}: {opened.Rejected}");
                devices.Add((client, opened.Channel!, opened.Channel!.SessionId));
            }

            await SendFromEveryDeviceAsync(devices, "before");

            // node-2 joins, and shards start moving to it (each checks its placement every 5 s): it is killed as soon as the
            // store records one of them on it, while the others are still on their way.
            await using var two = NodeProcess.Start("node-2", database, data, NodeProcess.Udp(LoopbackPorts.Free(udpToo: true)));
            await two.WaitForAsync("HSE node node-2 listening");
            var moving = Stopwatch.StartNew();
            while (!store.ShardOwners().Any(o => o.Node == "node-2"))
            {
                Assert.True(moving.Elapsed < TimeSpan.FromSeconds(90), $"no shard moved to node-2 | node-2: {two.Output} {two.Error}");
                await Task.Delay(20, Cancel);
            }

            Process.GetProcessById(two.Id).Kill();
            var atKill = string.Join(", ", store.ShardOwners().Where(o => o.Node == "node-2").Select(o => o.Shard));

            // Every device's next acknowledged message is answered within its retransmissions, on the session it had.
            await SendFromEveryDeviceAsync(devices, "after", $"node-2 held shard(s) {atKill} at the kill | node-1: {one.Output} {one.Error}");
            Assert.All(store.ShardOwners(), o => Assert.Equal("node-1", o.Node));
        }
        finally
        {
            foreach (var (client, _, _) in devices)
            {
                await client.DisposeAsync();
            }
        }
    }

    private static async Task SendFromEveryDeviceAsync(List<(BestClient Client, BestChannel Channel, uint SessionId)> devices, string what, string context = "")
    {
        var results = await Task.WhenAll(devices.Select(async d =>
        {
            var status = await d.Channel.SendAsync(Encoding.UTF8.GetBytes($"{what} {d.SessionId}"), acknowledged: true, Cancel);
            return (d.SessionId, Shard: d.SessionId % 16, status, Now: d.Channel.SessionId);
        }));
        var failed = results.Where(r => r.status != SendStatus.Acknowledged || r.Now != r.SessionId).ToList();
        Assert.True(failed.Count == 0, $"{what}: {string.Join("; ", failed.Select(r => string.Create(CultureInfo.InvariantCulture, $"session {r.SessionId} (shard {r.Shard}): {r.status}, now session {r.Now}")))} {context}");
    }
}
