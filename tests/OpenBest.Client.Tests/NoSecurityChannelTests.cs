using System.Net;
using OpenBest.Bearers;
using OpenBest.Hse;
using OpenBest.Protocol;
using OpenBest.Sessions;
using OpenBest.Storage;

namespace OpenBest.Client.Tests;

/// <summary>
/// The no-security channel (seed 000 section 3: "a BEST channel can be set up with no security, allowing EMSDP to be used
/// just to manage separate channels") beside a secured channel on one bearer, against a real HSE on SQLite, across a
/// restart of the HSE.
/// </summary>
public sealed class NoSecurityChannelTests
{
    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    [Fact]
    public async Task BesideASecuredChannel_OnOneBearer_BothWork_AndBothSurviveAnHseRestart()
    {
        var directory = Directory.CreateTempSubdirectory("openbest-none-");
        try
        {
            using var key = MasterKey.FromBytes(new byte[32]);
            using var store = SqliteSubscriberStore.Open(directory.FullName, key);
            store.Add([new NewSubscriber(TestHse.Imsi, TestHse.K, TestHse.Opc)]);
            using var subscribers = new StoreSubscribers(store);
            var options = new HseOptions { AllowNoSecurity = true };
            var udp = UdpBearer.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            var endPoint = udp.LocalEndPoint;
            var host = Start(new HseHost(new HseEngine(subscribers, options), [udp], TimeSpan.FromMilliseconds(100), state: store));

            await using var client = await BestClient.CreateAsync(new BestClientOptions
            {
                Imsi = TestHse.Imsi, K = TestHse.K, Opc = TestHse.Opc, Transport = new BestTransport.Udp(endPoint),
                RetransmissionInterval = TimeSpan.FromMilliseconds(200), TickInterval = TimeSpan.FromMilliseconds(50), OperationTimeout = TimeSpan.FromSeconds(30),
            }, Cancel);
            var network = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org");
            var plain = (await client.OpenAsync(new UeChannelOptions { EasId = "mgmt.example.com", Service = BestService.None, MinimumService = BestService.None, ServingNetwork = network }, Cancel)).Channel!;
            var secured = (await client.OpenAsync(new UeChannelOptions { EasId = "eas.example.com", Service = BestService.Confidential, ServingNetwork = network }, Cancel)).Channel!;
            Assert.Equal(BestService.None, plain.Service);
            Assert.Null(plain.Suite);
            Assert.Equal(BestService.Confidential, secured.Service);

            // The no-security channel has no Data Ack: "sent"; the secured one is acknowledged once stored.
            Assert.Equal(SendStatus.Sent, await plain.SendAsync("plain before"u8.ToArray(), acknowledged: true, Cancel));
            Assert.Equal(SendStatus.Acknowledged, await secured.SendAsync("secured before"u8.ToArray(), acknowledged: true, Cancel));
            await OpenBest.Testing.Eventually.True(() => Payloads(store).Contains("plain before"), "the plain message is stored");
            await host.InvokeAsync(engine => engine.SendDownlink(plain.SessionId, "plain down"u8));
            Assert.Equal("plain down", await ReadAsync(plain));

            // Restart: both sessions come back from the store (the no-security one without keys), on the same port.
            await host.DisposeAsync();
            await udp.DisposeAsync();
            udp = UdpBearer.Bind(endPoint);
            var restarted = new HseHost(new HseEngine(subscribers, options), [udp], TimeSpan.FromMilliseconds(100), state: store);
            Assert.Equal(2, restarted.Restore());
            host = Start(restarted);
            Assert.Equal("Established", await host.QueryAsync(engine => engine.StateOf(plain.SessionId)));

            Assert.Equal(SendStatus.Sent, await plain.SendAsync("plain after"u8.ToArray(), cancellationToken: Cancel));
            Assert.Equal(SendStatus.Acknowledged, await secured.SendAsync("secured after"u8.ToArray(), acknowledged: true, Cancel));
            await OpenBest.Testing.Eventually.True(() => Payloads(store).Contains("plain after"), "the plain message after the restart is stored");
            await host.InvokeAsync(engine => engine.SendDownlink(plain.SessionId, "plain down again"u8));
            Assert.Equal("plain down again", await ReadAsync(plain));

            // Stored by channel: each message under its own session, the plain ones with Key ID 0.
            var rows = store.Uplinks(0, 100);
            Assert.All(rows.Where(r => r.SessionId == plain.SessionId), r => Assert.Equal(0, r.KeyId));
            Assert.All(rows.Where(r => r.SessionId == secured.SessionId), r => Assert.NotEqual(0, r.KeyId));
            Assert.Equal(["secured after", "secured before"], rows.Where(r => r.SessionId == secured.SessionId).Select(r => Text(r.Payload)).Order());

            // Terminate runs unprotected on the no-security channel, and the secured one goes on.
            await plain.CloseAsync(Cancel);
            await OpenBest.Testing.Eventually.True(async () => await host.QueryAsync(engine => engine.StateOf(plain.SessionId)) is null or "Terminated", "the no-security channel is terminated at the HSE");
            Assert.Equal(SendStatus.Acknowledged, await secured.SendAsync("secured last"u8.ToArray(), acknowledged: true, Cancel));
            await host.DisposeAsync();
            await udp.DisposeAsync();
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            directory.Delete(recursive: true);
        }
    }

    private static HseHost Start(HseHost host)
    {
        host.Start();
        // Nobody else reads the events here; drain them so the host never waits on them.
        _ = Task.Run(async () =>
        {
            await foreach (var _ in host.Events.ReadAllAsync())
            {
            }
        });
        return host;
    }

    private static List<string> Payloads(SqliteSubscriberStore store) => [.. store.Uplinks(0, 100).Select(u => Text(u.Payload))];

    private static string Text(ReadOnlyMemory<byte> payload) => System.Text.Encoding.UTF8.GetString(payload.Span);

    private static async Task<string> ReadAsync(BestChannel channel)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Cancel);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        var message = await channel.Received.ReadAsync(timeout.Token);
        return Text(message.Payload);
    }
}
