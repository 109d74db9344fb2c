using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using OpenBest.Bearers;
using OpenBest.Client;
using OpenBest.Hse;
using OpenBest.Protocol;
using OpenBest.Sessions;
using OpenBest.Storage;
using OpenBest.Testing;

namespace OpenBest.Client.Tests;

/// <summary>A real HSE (host, engine, SQLite store) on loopback for the SDK to talk to.</summary>
internal sealed class TestHse : IAsyncDisposable
{
    public const string Imsi = "001010000000001";
    public static readonly byte[] K = Convert.FromHexString("465b5ce8b199b49faa5f0a2ee238a6bc");
    public static readonly byte[] Opc = Convert.FromHexString("cd63cb71954a9f4e48a5994e37a02baf");

    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-client-");
    private readonly MasterKey _key = MasterKey.FromBytes(new byte[32]);
    private readonly StoreSubscribers _subscribers;

    public TestHse(params IBearer[] extra)
        : this(new HseOptions(), extra)
    {
    }

    public TestHse(HseOptions options, params IBearer[] extra)
    {
        Store = SqliteSubscriberStore.Open(_directory.FullName, _key);
        Store.Add([new NewSubscriber(Imsi, K, Opc)]);
        _subscribers = new StoreSubscribers(Store);
        Udp = UdpBearer.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var policy = new StorePolicy(Store, TimeSpan.Zero);
        Host = new HseHost(new HseEngine(_subscribers, options with { Authorise = policy.Authorise }), [Udp, .. extra], TimeSpan.FromMilliseconds(100), state: Store);
        Host.Start();
        _ = Task.Run(async () =>
        {
            await foreach (var e in Host.Events.ReadAllAsync())
            {
                if (e is SessionEstablished established)
                {
                    Established.Writer.TryWrite(established);
                }
                else if (e is SessionSuspended { ByPeer: true } suspended)
                {
                    Suspended.Writer.TryWrite(suspended);
                }
                else if (e is DataAcknowledged acknowledged)
                {
                    Acknowledged.Writer.TryWrite(acknowledged);
                }
                else if (e is SessionResumed resumed)
                {
                    Resumed.Writer.TryWrite(resumed);
                }
            }
        });
    }

    public SqliteSubscriberStore Store { get; }

    public UdpBearer Udp { get; }

    public HseHost Host { get; }

    public System.Threading.Channels.Channel<SessionEstablished> Established { get; } = System.Threading.Channels.Channel.CreateUnbounded<SessionEstablished>();

    /// <summary>Sessions the device suspended, as the HSE saw them.</summary>
    public System.Threading.Channels.Channel<SessionSuspended> Suspended { get; } = System.Threading.Channels.Channel.CreateUnbounded<SessionSuspended>();

    /// <summary>The devices' Data Acks of downlink, as the HSE saw them (with the token the downlink was sent with).</summary>
    public System.Threading.Channels.Channel<DataAcknowledged> Acknowledged { get; } = System.Threading.Channels.Channel.CreateUnbounded<DataAcknowledged>();

    /// <summary>Sessions the HSE saw resumed.</summary>
    public System.Threading.Channels.Channel<SessionResumed> Resumed { get; } = System.Threading.Channels.Channel.CreateUnbounded<SessionResumed>();

    public BestClientOptions Options(BestTransport? transport = null) => new()
    {
        Imsi = Imsi,
        K = K,
        Opc = Opc,
        Transport = transport ?? new BestTransport.Udp(Udp.LocalEndPoint),
        RetransmissionInterval = TimeSpan.FromMilliseconds(200),
        TickInterval = TimeSpan.FromMilliseconds(50),
        OperationTimeout = Eventually.Deadline,
    };

    public async ValueTask DisposeAsync()
    {
        await Host.DisposeAsync();
        await Udp.DisposeAsync();
        _subscribers.Dispose();
        Store.Dispose();
        _key.Dispose();
        _directory.Delete(recursive: true);
    }
}

/// <summary>The device SDK against a real HSE over loopback (issue: device SDK; profile 6.2).</summary>
public sealed class BestClientTests
{
    private static readonly ServingNetwork Network = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org");

    private static UeChannelOptions Channel(string eas = "eas.example.com", BestService service = BestService.Confidential) =>
        new() { EasId = eas, Service = service, ServingNetwork = Network };

    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    private static async Task<T> NextAsync<T>(System.Threading.Channels.ChannelReader<T> reader) => await reader.ReadAsync(Cancel).AsTask().WaitAsync(Eventually.Deadline, Cancel);

    [Fact]
    public async Task Open_SendAcknowledged_TheMessageIsInTheStore()
    {
        await using var hse = new TestHse();
        await using var client = await BestClient.CreateAsync(hse.Options(), Cancel);
        var opened = await client.OpenAsync(Channel(), Cancel);
        Assert.True(opened.Established);
        Assert.Equal(BestService.Confidential, opened.Channel!.Service);
        Assert.Equal(SendStatus.Acknowledged, await opened.Channel.SendAsync("meter 42.1 kWh"u8.ToArray(), acknowledged: true, Cancel));
        Assert.Equal(SendStatus.Sent, await opened.Channel.SendAsync("no ack"u8.ToArray(), cancellationToken: Cancel));
        var stored = hse.Store.Uplinks(0, 10);
        Assert.Equal("meter 42.1 kWh", System.Text.Encoding.UTF8.GetString(stored[0].Payload));
        Assert.Equal("eas.example.com", stored[0].EasId);
        Assert.True(await opened.Channel.CloseAsync(Cancel));
        Assert.True(opened.Channel.IsClosed);
        await Assert.ThrowsAsync<InvalidOperationException>(() => opened.Channel.SendAsync("late"u8.ToArray(), cancellationToken: Cancel));
    }

    [Fact]
    public async Task SeveralChannels_OverOneBearer_EachWithItsOwnEasServiceAndKeys()
    {
        await using var hse = new TestHse();
        await using var client = await BestClient.CreateAsync(hse.Options(), Cancel);
        var meter = (await client.OpenAsync(Channel("meter.example.com", BestService.Confidential), Cancel)).Channel!;
        var alarm = (await client.OpenAsync(Channel("alarm.example.com", BestService.Integrity), Cancel)).Channel!;
        Assert.NotEqual(meter.SessionId, alarm.SessionId);
        Assert.Equal(BestService.Integrity, alarm.Service);
        Assert.Equal(SendStatus.Acknowledged, await meter.SendAsync("m"u8.ToArray(), true, Cancel));
        Assert.Equal(SendStatus.Acknowledged, await alarm.SendAsync("a"u8.ToArray(), true, Cancel));
        var stored = hse.Store.Uplinks(0, 10).ToDictionary(u => u.EasId, u => System.Text.Encoding.UTF8.GetString(u.Payload));
        Assert.Equal("m", stored["meter.example.com"]);
        Assert.Equal("a", stored["alarm.example.com"]);
    }

    [Fact]
    public async Task Downlink_Suspend_Resume_Refresh()
    {
        await using var hse = new TestHse();
        await using var client = await BestClient.CreateAsync(hse.Options(), Cancel);
        var channel = (await client.OpenAsync(Channel(), Cancel)).Channel!;
        await NextAsync(hse.Established.Reader); // the HSE saw the confirmation
        await hse.Host.InvokeAsync(e => e.SendDownlink(channel.SessionId, "hello device"u8));
        var first = await NextAsync(channel.Received);
        Assert.Equal("hello device"u8.ToArray(), first.Payload.ToArray());

        // The downlink goes once the HSE holds the session suspended, so it is queued there, and comes with the resume.
        await channel.SuspendAsync();
        Assert.Equal(channel.SessionId, (await NextAsync(hse.Suspended.Reader)).SessionId);
        await hse.Host.InvokeAsync(e => e.SendDownlink(channel.SessionId, "while you slept"u8));
        await channel.ResumeAsync();
        var queued = await NextAsync(channel.Received);
        Assert.Equal("while you slept"u8.ToArray(), queued.Payload.ToArray());

        Assert.True(await channel.RefreshKeysAsync(Cancel));
        Assert.Equal(SendStatus.Acknowledged, await channel.SendAsync("after refresh"u8.ToArray(), true, Cancel));
    }

    [Fact]
    public async Task LostMessages_AreRetransmittedWithBackOff_UntilAcknowledged()
    {
        await using var hse = new TestHse();
        // A lossy link: every other datagram towards the HSE is dropped.
        using var proxy = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        proxy.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Cancel);
        var relay = Task.Run(async () =>
        {
            var buffer = new byte[2048];
            EndPoint device = new IPEndPoint(IPAddress.Any, 0);
            var n = 0;
            try
            {
                while (!stop.IsCancellationRequested)
                {
                    var from = new IPEndPoint(IPAddress.Any, 0);
                    var r = await proxy.ReceiveFromAsync(buffer, from, stop.Token);
                    var source = (IPEndPoint)r.RemoteEndPoint;
                    if (source.Equals(hse.Udp.LocalEndPoint))
                    {
                        await proxy.SendToAsync(buffer.AsMemory(0, r.ReceivedBytes), device, stop.Token);
                    }
                    else
                    {
                        device = source;
                        if (n++ % 2 == 1)
                        {
                            await proxy.SendToAsync(buffer.AsMemory(0, r.ReceivedBytes), hse.Udp.LocalEndPoint, stop.Token);
                        }
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
        }, Cancel);

        await using (var client = await BestClient.CreateAsync(hse.Options(new BestTransport.Udp((IPEndPoint)proxy.LocalEndPoint!)), Cancel))
        {
            var channel = (await client.OpenAsync(Channel(), Cancel)).Channel!;
            for (var i = 0; i < 3; i++)
            {
                Assert.Equal(SendStatus.Acknowledged, await channel.SendAsync(new[] { (byte)i }, true, Cancel));
            }
        }

        await stop.CancelAsync();
        await relay;
        Assert.Equal([0, 1, 2], hse.Store.Uplinks(0, 10).Select(u => (int)u.Payload[0]));
    }

    [Fact]
    public async Task Policy_FromTheStore_RefusesAService_WithATypedResult()
    {
        await using var hse = new TestHse();
        hse.Store.SetEasServices("integrity-only.example.com", ServicePolicy.Parse("integrity"));
        hse.Store.SetSubscriberServices(TestHse.Imsi, ServicePolicy.Parse("integrity,confidential"));
        await using var client = await BestClient.CreateAsync(hse.Options(), Cancel);
        var refused = await client.OpenAsync(Channel("integrity-only.example.com", BestService.Confidential) with { MinimumService = BestService.Confidential }, Cancel);
        Assert.False(refused.Established);
        Assert.Equal(Cause.NotAuthorised, refused.Rejected);
        var allowed = await client.OpenAsync(Channel("integrity-only.example.com", BestService.Integrity), Cancel);
        Assert.True(allowed.Established);
    }

    [Fact]
    public async Task NonIpBearer_CarriesTheSameChannel()
    {
        var toHse = new Pipe();
        var toDevice = new Pipe();
        var link = StreamBearer.Over(toHse.Reader.AsStream(), toDevice.Writer.AsStream(), "serial");
        await using var hse = new TestHse(link);
        await using var client = await BestClient.CreateAsync(hse.Options(new BestTransport.NonIp(toDevice.Reader.AsStream(), toHse.Writer.AsStream())), Cancel);
        var channel = (await client.OpenAsync(Channel(), Cancel)).Channel!;
        Assert.Equal(SendStatus.Acknowledged, await channel.SendAsync("over non-IP"u8.ToArray(), true, Cancel));
        await link.DisposeAsync();
    }

    [Fact]
    public async Task Misuse_Throws()
    {
        await Assert.ThrowsAsync<ArgumentException>(() => BestClient.CreateAsync(new BestClientOptions { Imsi = "12", K = new byte[16], Opc = new byte[16], Transport = new BestTransport.Udp(new IPEndPoint(IPAddress.Loopback, 1)) }, Cancel));
        await Assert.ThrowsAsync<ArgumentException>(() => BestClient.CreateAsync(new BestClientOptions { Imsi = "001010000000001", K = new byte[15], Opc = new byte[16], Transport = new BestTransport.Udp(new IPEndPoint(IPAddress.Loopback, 1)) }, Cancel));
        var options = new BestClientOptions { Imsi = "001010000000001", K = new byte[16], Opc = new byte[16], Transport = new BestTransport.Udp(new IPEndPoint(IPAddress.Loopback, 1)) };
        Assert.DoesNotContain("0000000000", options.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnOpenThatTimedOut_IsAbandoned_AndNeverAnswersForTheNextOpen()
    {
        // Nothing listens on this port: both opens time out, neither is "rejected".
        using var silent = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        silent.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        await using var client = await BestClient.CreateAsync(new BestClientOptions
        {
            Imsi = TestHse.Imsi, K = TestHse.K, Opc = TestHse.Opc, Transport = new BestTransport.Udp((IPEndPoint)silent.LocalEndPoint!),
            RetransmissionInterval = TimeSpan.FromMilliseconds(50), MaxRetransmissions = 2, TickInterval = TimeSpan.FromMilliseconds(20), OperationTimeout = TimeSpan.FromMilliseconds(300),
        }, Cancel);
        var first = await client.OpenAsync(Channel(), Cancel);
        Assert.Null(first.Channel);
        Assert.Null(first.Rejected);
        await Task.Delay(500, Cancel); // the first channel's retries would have run out by now
        var second = await client.OpenAsync(Channel(), Cancel);
        Assert.Null(second.Rejected);
        Assert.Equal(0, client.Errors);
    }

    [Fact]
    public async Task RefreshKeysEvery_RefreshesAutomatically()
    {
        await using var hse = new TestHse();
        await using var client = await BestClient.CreateAsync(hse.Options() with { RefreshKeysEvery = TimeSpan.FromMilliseconds(300) }, Cancel);
        var channel = (await client.OpenAsync(Channel(), Cancel)).Channel!;
        await NextAsync(hse.Established.Reader);
        var first = await hse.Host.QueryAsync(e => e.CurrentKeyIdOf(channel.SessionId));
        await Eventually.True(async () => await hse.Host.QueryAsync(e => e.CurrentKeyIdOf(channel.SessionId)) != first, "the client refreshes the keys by itself");
        Assert.Equal(SendStatus.Acknowledged, await channel.SendAsync("after an automatic refresh"u8.ToArray(), true, Cancel));
    }
}
