using System.Diagnostics;
using System.Globalization;
using System.Net;
using Npgsql;
using OpenBest.Client;
using OpenBest.Hse.Cluster.Demo;
using OpenBest.Protocol;
using OpenBest.Sessions;
using OpenBest.Storage;
using OpenBest.Storage.Postgres;
using OpenBest.Testing;

namespace OpenBest.Hse.Cluster.Tests;

/// <summary>
/// PostgreSQL failover under load: a pg_auto_failover formation (primary and synchronous secondary), two cluster nodes on a multi-host
/// connection string (Target Session Attributes=primary), and the primary killed while a device on each node sends acknowledged messages.
/// </summary>
public sealed class DatabaseFailoverTests(PgAutoFailover formation, ITestOutputHelper log) : IClassFixture<PgAutoFailover>, IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-failover-");

    public void Dispose() => _directory.Delete(recursive: true);

    [Fact]
    public async Task PrimaryKilled_ClusterNodesReconnectToThePromotedStandby_NothingAcknowledgedIsLost()
    {
        if (formation.Unavailable is { } why)
        {
            Assert.True(Environment.GetEnvironmentVariable("CI") is null, "CI installs postgresql-15-auto-failover");
            Assert.Skip(why);
        }

        var first = formation.Primary() ?? throw new InvalidOperationException("no primary");
        await using (var admin = new NpgsqlConnection(formation.ConnectionString("postgres")))
        {
            await admin.OpenAsync(TestContext.Current.CancellationToken);
            await using var create = new NpgsqlCommand("CREATE DATABASE best", admin);
            await create.ExecuteNonQueryAsync(TestContext.Current.CancellationToken);
        }

        var database = formation.ConnectionString("best");
        string[] imsis = ["001010000000888", "001010000000889"];
        var k = Convert.FromHexString("000102030405060708090a0b0c0d0e0f");
        var opc = Convert.FromHexString("0f0e0d0c0b0a09080706050403020100");
        using (var key = MasterKey.Load(_directory.FullName))
        using (var store = PostgresSubscriberStore.Open(database, key))
        {
            store.Add([.. imsis.Select(i => new NewSubscriber(i, k, opc))]);
        }

        // Two cluster nodes on the formation, a device on each.
        var ports = new[] { LoopbackPorts.Free(udpToo: true), LoopbackPorts.Free(udpToo: true) };
        var environment = new Dictionary<string, string> { ["BEST_STORE_OUTAGE_SECONDS"] = "180" };
        await using var one = Node("node-1", ports[0]);
        await using var two = Node("node-2", ports[1]);
        await one.WaitForAsync("HSE node node-1 listening");
        await two.WaitForAsync("HSE node node-2 listening");
        var devices = new List<(BestClient Client, BestChannel Channel, uint SessionId, List<string> Sent)>();
        for (var d = 0; d < 2; d++)
        {
            var client = await BestClient.CreateAsync(new BestClientOptions
            {
                Imsi = imsis[d], K = k, Opc = opc, Transport = new BestTransport.Udp(new IPEndPoint(IPAddress.Loopback, ports[d])),
                // Retransmissions at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5, 63.5 s: the device keeps its session through the failover.
                RetransmissionInterval = TimeSpan.FromMilliseconds(500), MaxRetransmissions = 7, OperationTimeout = TimeSpan.FromSeconds(180),
            }, TestContext.Current.CancellationToken);
            var opened = (await client.OpenAsync(new UeChannelOptions { EasId = "eas.example", ServingNetwork = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org") }, TestContext.Current.CancellationToken)).Channel;
            Assert.NotNull(opened);
            devices.Add((client, opened, opened.SessionId, []));
        }

        var longest = TimeSpan.Zero;
        async Task SendAsync(int from, int to)
        {
            await Task.WhenAll(devices.Select(async (device, d) =>
            {
                for (var i = from; i < to; i++)
                {
                    var text = string.Create(CultureInfo.InvariantCulture, $"d{d}-m{i}");
                    var watch = Stopwatch.StartNew();
                    Assert.Equal(SendStatus.Acknowledged, await device.Channel.SendAsync(System.Text.Encoding.UTF8.GetBytes(text), acknowledged: true, TestContext.Current.CancellationToken));
                    lock (devices)
                    {
                        longest = watch.Elapsed > longest ? watch.Elapsed : longest;
                        device.Sent.Add(text);
                    }
                }
            }));
        }

        await SendAsync(0, 5);
        var killed = Stopwatch.StartNew();
        formation.Kill(first);
        await SendAsync(5, 15);
        var second = first == "node1" ? "node2" : "node1";
        // The monitor's own states settle on their schedule: wait for them rather than read them once.
        await Eventually.True(() => formation.Primary() == second, $"{second} the primary", TimeSpan.FromSeconds(120));
        log.WriteLine($"primary {first} killed; {second} promoted; the longest wait for an Ack was {longest.TotalSeconds:F1} s; all acknowledged after {killed.Elapsed.TotalSeconds:F1} s");

        foreach (var device in devices)
        {
            Assert.Equal(device.SessionId, device.Channel.SessionId); // no new AKA run
            await device.Client.DisposeAsync();
        }

        Assert.False(one.Output.Contains("stopped", StringComparison.Ordinal) || two.Output.Contains("stopped", StringComparison.Ordinal), $"{one.Output} {two.Output}");
        using var check = MasterKey.Load(_directory.FullName);
        using var promoted = PostgresSubscriberStore.Open(database, check);
        var stored = promoted.Uplinks(0, 100).Select(u => System.Text.Encoding.UTF8.GetString(u.Payload)).Order(StringComparer.Ordinal);
        Assert.Equal(devices.SelectMany(d => d.Sent).Order(StringComparer.Ordinal), stored);

        BestProcess Node(string name, int port) => NodeProcess.Start(name, database, _directory.FullName, environment, NodeProcess.Udp(port));
    }
}
