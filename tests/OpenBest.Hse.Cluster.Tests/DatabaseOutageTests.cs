using System.Globalization;
using System.Net;
using OpenBest.Client;
using OpenBest.Protocol;
using OpenBest.Sessions;
using OpenBest.Storage;
using OpenBest.Storage.Postgres;
using OpenBest.Storage.Tests;
using OpenBest.Hse.Cluster.Demo;
using OpenBest.Testing;

namespace OpenBest.Hse.Cluster.Tests;

/// <summary>A PostgreSQL server of its own with synchronous commits, which the test stops and starts again.</summary>
public sealed class DurablePostgres : IDisposable
{
    public PostgresServer Server { get; } = new(durable: true);

    public void Dispose() => Server.Dispose();
}

/// <summary>
/// The database away under load (stopped at once, as a crash or a failover does, and back a few seconds later): the HSE holds
/// the batch in hand and tries its commit again (StoreOutageSeconds), nothing it acknowledged is lost, nothing is stored twice.
/// </summary>
public sealed class DatabaseOutageTests(DurablePostgres postgres) : IClassFixture<DurablePostgres>, IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-outage-");

    public void Dispose() => _directory.Delete(recursive: true);

    [Fact]
    public async Task DatabaseAwayForSeconds_TheHseWaits_EveryAcknowledgedMessageStoredOnce()
    {
        var server = postgres.Server;
        server.SkipIfUnavailable();

        var database = server.CreateDatabase();
        const string imsi = "001010000000777";
        var k = Convert.FromHexString("000102030405060708090a0b0c0d0e0f");
        var opc = Convert.FromHexString("0f0e0d0c0b0a09080706050403020100");
        using (var key = MasterKey.Load(_directory.FullName))
        using (var store = PostgresSubscriberStore.Open(database, key))
        {
            store.Add([new NewSubscriber(imsi, k, opc)]);
        }

        var port = LoopbackPorts.Free(udpToo: true);
        await using var hse = BestProcess.Start(new Dictionary<string, string> { ["BEST_STORE_OUTAGE_SECONDS"] = "120" },
            "hse", "--postgres", database, "--data-dir", _directory.FullName, "--udp-port", port.ToString(CultureInfo.InvariantCulture), "--tcp-port", "-1");
        await hse.WaitForAsync("HSE listening");
        await using var client = await BestClient.CreateAsync(new BestClientOptions
        {
            Imsi = imsi, K = k, Opc = opc, Transport = new BestTransport.Udp(new IPEndPoint(IPAddress.Loopback, port)),
            // Retransmissions at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s: the device keeps its session through the outage.
            RetransmissionInterval = TimeSpan.FromMilliseconds(500), MaxRetransmissions = 6, OperationTimeout = TimeSpan.FromSeconds(120),
        }, TestContext.Current.CancellationToken);
        var channel = (await client.OpenAsync(new UeChannelOptions { EasId = "eas.example", ServingNetwork = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org") }, TestContext.Current.CancellationToken)).Channel;
        Assert.NotNull(channel);
        var sessionId = channel.SessionId;
        var sent = new List<string>();
        async Task SendAsync(int from, int to)
        {
            for (var i = from; i < to; i++)
            {
                var text = string.Create(CultureInfo.InvariantCulture, $"m{i}");
                Assert.Equal(SendStatus.Acknowledged, await channel.SendAsync(System.Text.Encoding.UTF8.GetBytes(text), acknowledged: true, TestContext.Current.CancellationToken));
                sent.Add(text);
            }
        }

        await SendAsync(0, 5);
        server.Stop();
        var during = SendAsync(5, 10);
        await Task.Delay(TimeSpan.FromSeconds(4), TestContext.Current.CancellationToken);
        Assert.False(during.IsCompleted, "no Ack while the database is away");
        server.Start();
        await during;
        await SendAsync(10, 15);

        Assert.Equal(sessionId, channel.SessionId); // no new AKA run
        Assert.DoesNotContain("stopped", hse.Output, StringComparison.Ordinal);
        using var check = MasterKey.Load(_directory.FullName);
        using var reopened = PostgresSubscriberStore.Open(database, check);
        var stored = reopened.Uplinks(0, 100).Select(u => System.Text.Encoding.UTF8.GetString(u.Payload)).ToList();
        Assert.Equal(sent, stored);
    }
}
