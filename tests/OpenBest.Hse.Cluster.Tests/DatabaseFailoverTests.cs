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
/// PostgreSQL failover under load: a pg_auto_failover formation (primary and synchronous secondary), an HSE on a multi-host
/// connection string (Target Session Attributes=primary), and the primary killed while a device sends acknowledged messages.
/// </summary>
public sealed class DatabaseFailoverTests(PgAutoFailover formation, ITestOutputHelper log) : IClassFixture<PgAutoFailover>, IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-failover-");

    public void Dispose() => _directory.Delete(recursive: true);

    [Fact]
    public async Task PrimaryKilled_TheHseReconnectsToThePromotedStandby_NothingAcknowledgedIsLost()
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
        const string imsi = "001010000000888";
        var k = Convert.FromHexString("000102030405060708090a0b0c0d0e0f");
        var opc = Convert.FromHexString("0f0e0d0c0b0a09080706050403020100");
        using (var key = MasterKey.Load(_directory.FullName))
        using (var store = PostgresSubscriberStore.Open(database, key))
        {
            store.Add([new NewSubscriber(imsi, k, opc)]);
        }

        var port = LoopbackPorts.Free(udpToo: true);
        await using var hse = BestProcess.Start(new Dictionary<string, string> { ["BEST_STORE_OUTAGE_SECONDS"] = "180" },
            "hse", "--postgres", database, "--data-dir", _directory.FullName, "--udp-port", port.ToString(CultureInfo.InvariantCulture), "--tcp-port", "-1");
        await hse.WaitForAsync("HSE listening");
        await using var client = await BestClient.CreateAsync(new BestClientOptions
        {
            Imsi = imsi, K = k, Opc = opc, Transport = new BestTransport.Udp(new IPEndPoint(IPAddress.Loopback, port)),
            // Retransmissions at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5, 63.5 s: the device keeps its session through the failover.
            RetransmissionInterval = TimeSpan.FromMilliseconds(500), MaxRetransmissions = 7, OperationTimeout = TimeSpan.FromSeconds(180),
        }, TestContext.Current.CancellationToken);
        var channel = (await client.OpenAsync(new UeChannelOptions { EasId = "eas.example", ServingNetwork = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org") }, TestContext.Current.CancellationToken)).Channel;
        Assert.NotNull(channel);
        var sessionId = channel.SessionId;
        var sent = new List<string>();
        var longest = TimeSpan.Zero;
        async Task SendAsync(int from, int to)
        {
            for (var i = from; i < to; i++)
            {
                var text = string.Create(CultureInfo.InvariantCulture, $"m{i}");
                var watch = Stopwatch.StartNew();
                Assert.Equal(SendStatus.Acknowledged, await channel.SendAsync(System.Text.Encoding.UTF8.GetBytes(text), acknowledged: true, TestContext.Current.CancellationToken));
                longest = watch.Elapsed > longest ? watch.Elapsed : longest;
                sent.Add(text);
            }
        }

        await SendAsync(0, 5);
        var killed = Stopwatch.StartNew();
        formation.Kill(first);
        await SendAsync(5, 15);
        var second = first == "node1" ? "node2" : "node1";
        Assert.Equal(second, formation.Primary());
        log.WriteLine($"primary {first} killed; {second} promoted; the longest wait for an Ack was {longest.TotalSeconds:F1} s; all {sent.Count} acknowledged after {killed.Elapsed.TotalSeconds:F1} s");

        Assert.Equal(sessionId, channel.SessionId); // no new AKA run
        Assert.DoesNotContain("stopped", hse.Output, StringComparison.Ordinal);
        using var check = MasterKey.Load(_directory.FullName);
        using var promoted = PostgresSubscriberStore.Open(database, check);
        Assert.Equal(sent, promoted.Uplinks(0, 100).Select(u => System.Text.Encoding.UTF8.GetString(u.Payload)));
    }
}
