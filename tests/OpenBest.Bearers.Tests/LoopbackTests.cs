using System.Net;
using System.Net.Sockets;
using OpenBest.Bearers;
using OpenBest.Crypto;
using OpenBest.Crypto.Aka;
using OpenBest.Protocol;
using OpenBest.Sessions;
using OpenBest.Testing;

namespace OpenBest.Bearers.Tests;

/// <summary>The UE and HSE state machines over real UDP and TCP sockets on loopback.</summary>
public sealed class LoopbackTests
{
    private const string Imsi = "208930000000001";
    private static readonly byte[] K = Convert.FromHexString("465b5ce8b199b49faa5f0a2ee238a6bc");
    private static readonly byte[] Opc = Convert.FromHexString("cd63cb71954a9f4e48a5994e37a02baf");
    private static readonly IPEndPoint AnyLoopback = new(IPAddress.Loopback, 0);

    [Fact]
    public async Task Udp_SessionAndAcknowledgedUplink()
    {
        await using var hseBearer = UdpBearer.Bind(AnyLoopback);
        await using var ueBearer = UdpBearer.Bind(AnyLoopback);
        await RunAsync(hseBearer, ueBearer, ueBearer.PathTo(hseBearer.LocalEndPoint));
    }

    [Fact]
    public async Task Tcp_SessionAndAcknowledgedUplink()
    {
        await using var hseBearer = TcpBearer.Listen(AnyLoopback);
        await using var ueBearer = await TcpBearer.ConnectAsync(hseBearer.LocalEndPoint!, TestContext.Current.CancellationToken);
        await RunAsync(hseBearer, ueBearer, ueBearer.ServerPath!);
    }

    [Fact]
    public async Task Udp_OversizedDatagram_IsDroppedAndCounted()
    {
        // Profile 1: datagrams over 1280 octets are dropped unless configured otherwise.
        await using var bearer = UdpBearer.Bind(AnyLoopback);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        await client.SendToAsync(new byte[1281], SocketFlags.None, bearer.LocalEndPoint, TestContext.Current.CancellationToken);
        await client.SendToAsync(new byte[] { 0x40, 0x00, 0x00 }, SocketFlags.None, bearer.LocalEndPoint, TestContext.Current.CancellationToken);
        var received = await bearer.Received.ReadAsync(TestContext.Current.CancellationToken);
        Assert.Equal(3, received.Message.Length);
        Assert.Equal(1, bearer.Dropped);
    }

    [Fact]
    public async Task Tcp_ZeroLengthFrame_ClosesTheConnection()
    {
        await using var bearer = TcpBearer.Listen(AnyLoopback);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(bearer.LocalEndPoint!, TestContext.Current.CancellationToken);
        // One frame split over two writes, then an invalid zero length.
        await client.SendAsync(new byte[] { 0x00, 0x03, 0x40 }, SocketFlags.None, TestContext.Current.CancellationToken);
        await Task.Delay(50, TestContext.Current.CancellationToken);
        await client.SendAsync(new byte[] { 0x00, 0x00, 0x00, 0x00 }, SocketFlags.None, TestContext.Current.CancellationToken);
        var received = await bearer.Received.ReadAsync(TestContext.Current.CancellationToken);
        Assert.Equal(new byte[] { 0x40, 0x00, 0x00 }, received.Message.ToArray());
        var buffer = new byte[16];
        var read = await client.ReceiveAsync(buffer, SocketFlags.None, TestContext.Current.CancellationToken);
        Assert.Equal(0, read); // closed by the bearer
        Assert.Equal(1, bearer.Dropped);
    }

    private static async Task RunAsync(IBearer hseBearer, IBearer ueBearer, BearerPath toHse)
    {
        var cancel = TestContext.Current.CancellationToken;
        using var subscribers = new InMemorySubscribers();
        subscribers.Add(Imsi, K, Opc);
        using var hse = new HseEngine(subscribers);
        using var milenage = new Milenage(K, Opc);
        using var ue = new UeEndpoint(new Usim(milenage, new UsimSequenceState(SqnScheme.Default)), new UeOptions { Imsi = Imsi });

        var hseEvents = new List<SessionEvent>();
        var ueEvents = new List<SessionEvent>();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        var hseLoop = Task.Run(async () =>
        {
            await foreach (var received in hseBearer.Received.ReadAllAsync(stop.Token))
            {
                StepResult step;
                lock (hse)
                {
                    step = hse.Receive(received.Message.Span, received.Path);
                    hseEvents.AddRange(step.Events);
                }

                foreach (var send in step.Send)
                {
                    await ((BearerPath)send.Path!).SendAsync(send.Message, stop.Token);
                }
            }
        }, stop.Token);

        async Task SendUeAsync(StepResult step)
        {
            lock (ueEvents)
            {
                ueEvents.AddRange(step.Events);
            }

            foreach (var send in step.Send)
            {
                await toHse.SendAsync(send.Message, stop.Token);
            }
        }

        var ueLoop = Task.Run(async () =>
        {
            await foreach (var received in ueBearer.Received.ReadAllAsync(stop.Token))
            {
                StepResult step;
                lock (ue)
                {
                    step = ue.Receive(received.Message.Span);
                }

                await SendUeAsync(step);
            }
        }, stop.Token);

        StepResult opened;
        int channel;
        lock (ue)
        {
            opened = ue.Open(new UeChannelOptions { EasId = "eas.example.com", ServingNetwork = ServingNetwork.FromName("5G:mnc093.mcc208.3gppnetwork.org") }, out channel);
        }

        await SendUeAsync(opened);
        await Eventually.True(() => { lock (ue) { return ue.IsEstablished(channel); } }, "the session is established");

        const int messages = 50;
        for (var i = 0; i < messages; i++)
        {
            StepResult step;
            lock (ue)
            {
                step = ue.Send(channel, BitConverter.GetBytes(i), ackRequested: true);
            }

            await SendUeAsync(step);
        }

        await Eventually.True(() => { lock (ueEvents) { return ueEvents.OfType<DataAcknowledged>().Count() == messages; } }, "every message is acknowledged");
        lock (hse)
        {
            var delivered = hseEvents.OfType<DataReceived>().Select(d => BitConverter.ToInt32(d.Payload.Span)).Order().ToList();
            Assert.Equal(Enumerable.Range(0, messages), delivered);
        }

        await stop.CancelAsync();
        await Task.WhenAll(hseLoop, ueLoop).ContinueWith(_ => { }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
    }
}

/// <summary>Listener hardening: oversized frames, peers that never read.</summary>
public sealed class TcpHardeningTests
{
    [Fact]
    public async Task DeclaredLengthOverTheLimit_ClosesTheConnection()
    {
        var cancel = TestContext.Current.CancellationToken;
        await using var bearer = TcpBearer.Listen(new IPEndPoint(IPAddress.Loopback, 0));
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(bearer.LocalEndPoint!, cancel);
        await client.SendAsync(new byte[] { 0xFF, 0xFF, 0x40 }, SocketFlags.None, cancel); // declares 65535 > 4096
        var buffer = new byte[8];
        Assert.Equal(0, await client.ReceiveAsync(buffer, SocketFlags.None, cancel));
        Assert.Equal(1, bearer.Dropped);
    }

    [Fact]
    public async Task PeerThatNeverReads_NeverBlocksTheSender()
    {
        var cancel = TestContext.Current.CancellationToken;
        await using var bearer = TcpBearer.Listen(new IPEndPoint(IPAddress.Loopback, 0));
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 1024 };
        await client.ConnectAsync(bearer.LocalEndPoint!, cancel);
        await client.SendAsync(new byte[] { 0x00, 0x03, 0x40, 0x00, 0x00 }, SocketFlags.None, cancel);
        var path = (await bearer.Received.ReadAsync(cancel)).Path;

        // 4 000 messages of 60 KiB (240 MiB, far beyond any socket buffer) to a peer that reads nothing: every send
        // returns without waiting for the peer, and the excess is dropped. A send that blocked would block for ever (the
        // peer never reads), so the deadline only tells a blocked sender from a slow machine.
        var message = new byte[60 * 1024];
        var sending = Task.Run(async () =>
        {
            for (var i = 0; i < 4_000; i++)
            {
                await path.SendAsync(message, cancel);
            }
        }, cancel);
        await sending.WaitAsync(Eventually.Deadline, cancel);
        Assert.True(bearer.Dropped > 0);
    }
}

public sealed class TcpIdleTests
{
    [Fact]
    public async Task IdleConnection_IsClosed()
    {
        var cancel = TestContext.Current.CancellationToken;
        await using var bearer = TcpBearer.Listen(new IPEndPoint(IPAddress.Loopback, 0), idleTimeout: TimeSpan.FromMilliseconds(300));
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(bearer.LocalEndPoint!, cancel);
        var buffer = new byte[8];
        var read = await client.ReceiveAsync(buffer, SocketFlags.None, cancel).AsTask().WaitAsync(Eventually.Deadline, cancel);
        Assert.Equal(0, read);
    }
}
