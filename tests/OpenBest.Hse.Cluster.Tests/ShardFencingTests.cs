using System.Security.Cryptography;
using System.Threading.Channels;
using OpenBest.Crypto;
using OpenBest.Crypto.Aead;
using OpenBest.Crypto.Aka;
using OpenBest.Hse.Cluster;
using OpenBest.Protocol;
using OpenBest.Sessions;
using OpenBest.Storage;
using OpenBest.Storage.Postgres;
using OpenBest.Storage.Tests;
using OpenBest.Testing;

namespace OpenBest.Hse.Cluster.Tests;

/// <summary>
/// The cluster's safety when the engine runs one shard on two nodes at once (docs/protocol.md, "HSE cluster: safety"): a forced
/// double activation of a shard against a real PostgreSQL, driven by a device (a sans-IO UE) whose datagrams the test hands
/// to either activation.
/// </summary>
public sealed class ShardFencingTests(PostgresServer server) : IClassFixture<PostgresServer>
{
    private const string Imsi = "001010123456789";
    private const int Shards = 32;

    [Fact]
    public async Task DoubleActivation_TheOlderSendsAndStoresNothing_ADatagramIsAcceptedOnce_NoCounterSealsTwice()
    {
        server.SkipIfUnavailable();
        var (store, key, k, opc) = Provision();
        using var masterKey = key;
        using var _ = store;
        var context = new ShardContext(store, new HseOptions(), () => new StoreSubscribers(store), "test", Shards);
        var shard = ClusterRouting.ShardOfSubscriber(Imsi, Shards);
        var device = new Device(k, opc);
        var relayA = new Relay();
        var relayB = new Relay();
        await using var a = ShardHost.Start(shard, context);
        Assert.Equal(1, a.Epoch);

        // A session through the first activation, and one acknowledged message.
        var open = device.Ue.Open(new UeChannelOptions { EasId = "eas.example", ServingNetwork = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org") }, out var channel);
        Deliver(a, relayA, open);
        var established = await device.PumpUntilAsync<SessionEstablished>(relayA);
        Assert.Equal(shard, (int)(established.SessionId % Shards));
        var sessionStart = relayA.Count; // the Session Start has a layout of its own (a 1-octet counter before n is known)
        var one = device.Ue.Send(channel, "one"u8, ackRequested: true);
        Deliver(a, relayA, one);
        await device.PumpUntilAsync<DataAcknowledged>(relayA);

        // The engine runs the shard a second time (a partition, a slow membership): the new activation takes a newer epoch
        // and restores the session from the store.
        await using var b = ShardHost.Start(shard, context);
        Assert.Equal(2, b.Epoch);
        Assert.Equal(1, b.Restored);

        // The old activation runs the next datagram but cannot commit it: nothing leaves, nothing is stored, it stops.
        var two = device.Ue.Send(channel, "two"u8, ackRequested: true);
        var sentByA = relayA.Count;
        Deliver(a, relayA, two);
        await Eventually.True(() => a.Faulted.IsCompleted, "the old activation stops on its refused commit");
        Assert.Equal(sentByA, relayA.Count);
        await Assert.ThrowsAnyAsync<InvalidOperationException>(() => a.Host.InvokeAsync(e => e.SendDownlink(established.SessionId, "late"u8, ackRequested: true)));

        // The same datagram at the new activation: accepted once, acknowledged there (the device's path moves with it).
        Deliver(b, relayB, two);
        await device.PumpUntilAsync<DataAcknowledged>(relayB);

        // Replays of both datagrams at the new activation store nothing more; a third message shows they were run.
        Deliver(b, relayB, one);
        Deliver(b, relayB, two);
        var three = device.Ue.Send(channel, "three"u8, ackRequested: true);
        Deliver(b, relayB, three);
        await Eventually.True(() => store.Uplinks(0, 100).Any(u => u.Payload.AsSpan().SequenceEqual("three"u8)), "the third message stored");
        var stored = store.Uplinks(0, 100).Select(u => System.Text.Encoding.UTF8.GetString(u.Payload)).ToList();
        Assert.Equal(["one", "two", "three"], stored);

        // Downlink from the new activation: under counters the old one never used. Every (Key ID, plane, counter) the HSE
        // sealed under, across both activations, seals one byte string only.
        await b.Host.InvokeAsync(e => e.SendDownlink(established.SessionId, "down"u8, ackRequested: true));
        await device.PumpUntilAsync<DataReceived>(relayB);
        var sealedUnder = new Dictionary<(byte, Plane, ulong), byte[]>();
        foreach (var message in relayA.All.Skip(sessionStart).Concat(relayB.All))
        {
            Assert.Equal(ParseStatus.Ok, HeaderPrefix.TryRead(message, out var prefix));
            if (prefix.KeyId == 0)
            {
                continue;
            }

            Assert.Equal(ParseStatus.Ok, EmsdpFrame.TryParse(message, prefix, established.CounterLength, established.Suite.TagSize(prefix.Plane), out var frame));
            var counterKey = (prefix.KeyId, prefix.Plane, (ulong)frame.CounterField);
            if (sealedUnder.TryGetValue(counterKey, out var earlier))
            {
                Assert.True(earlier.AsSpan().SequenceEqual(message), $"two byte strings under key {prefix.KeyId} {prefix.Plane} counter {frame.CounterField}");
            }

            sealedUnder[counterKey] = message;
        }
    }

    [Fact]
    public void Store_WritesAFencedBatchOnlyUnderTheNewestEpoch_AndLoadsOneShard()
    {
        server.SkipIfUnavailable();
        var (store, key, _, _) = Provision();
        using var masterKey = key;
        using var _ = store;
        var (first, next) = store.TakeShard(3, "node-a");
        Assert.Equal((1L, 0u), (first, next));
        var batch = new HseBatch { Fence = new ShardFence(3, first), NextSessionId = 35 };
        store.Commit(batch);
        var (second, resumed) = store.TakeShard(3, "node-b");
        Assert.Equal((2L, 35u), (second, resumed));
        Assert.Equal("node-b", store.ShardOwners().Single(o => o.Shard == 3).Node);

        // The older epoch writes nothing, even an empty batch; the newer one writes.
        var stale = new HseBatch { Fence = new ShardFence(3, first), NextSessionId = 67 };
        Assert.Throws<StoreFencedException>(() => store.Commit(stale));
        Assert.Throws<StoreFencedException>(() => store.Commit(new HseBatch { Fence = new ShardFence(3, first) }));
        store.Commit(new HseBatch { Fence = new ShardFence(3, second) });
        Assert.Equal(35u, store.TakeShard(3, "node-c").NextSessionId);

        // The first node records the cluster's shards; later nodes follow the database whatever their settings say.
        Assert.Equal(16, store.ClusterShards(16));
        Assert.Equal(16, store.ClusterShards(8));
        Assert.Empty(store.LoadSessions(3, Shards));
    }

    [Fact]
    public void Engine_HandsOutItsShardsSessionIds_AndMessagesFindTheirShard()
    {
        using var engine = new HseEngine(new NoSubscribers(), new HseOptions { SessionIdClass = (5, 32) });
        Assert.Equal(5u, engine.NextSessionId);
        engine.ResumeSessionIdsAt(6);
        Assert.Equal(37u, engine.NextSessionId);
        engine.ResumeSessionIdsAt(37);
        Assert.Equal(37u, engine.NextSessionId);
        using var zero = new HseEngine(new NoSubscribers(), new HseOptions { SessionIdClass = (0, 32) });
        Assert.Equal(32u, zero.NextSessionId);
        Assert.Throws<ArgumentException>(() => new HseEngine(new NoSubscribers(), new HseOptions { SessionIdClass = (32, 32) }));

        // A Session Request goes to its subscriber's shard; any other message to its Session ID's; garbage to shard 0.
        var ue = new UeEndpoint(new Usim(new Milenage(new byte[16], new byte[16]), new UsimSequenceState(SqnScheme.Default)), new UeOptions { Imsi = Imsi });
        var request = ue.Open(new UeChannelOptions { EasId = "eas.example" }, out _).Send[0].Message;
        Assert.Equal(Imsi, HseEngine.SubscriberOf(request.Span, new HseOptions()));
        Assert.Equal(ClusterRouting.ShardOfSubscriber(Imsi, Shards), ClusterRouting.ShardOf(request.Span, new HseOptions(), Shards));
        Span<byte> header = stackalloc byte[16];
        var length = new EmsdpHeader(Plane.User, 1, false, 70, 1, 0).Write(header);
        Assert.Equal(70 % Shards, ClusterRouting.ShardOf(header[..length], new HseOptions(), Shards));
        Assert.Equal(0, ClusterRouting.ShardOf([0xFF, 0xFF], new HseOptions(), Shards));
        Assert.Null(HseEngine.SubscriberOf([], new HseOptions()));
    }

    private (PostgresSubscriberStore Store, MasterKey Key, byte[] K, byte[] Opc) Provision()
    {
        var key = MasterKey.FromBytes(RandomNumberGenerator.GetBytes(32));
        var store = PostgresSubscriberStore.Open(server.CreateDatabase(), key);
        var k = RandomNumberGenerator.GetBytes(16);
        var opc = RandomNumberGenerator.GetBytes(16);
        store.Add([new NewSubscriber(Imsi, k, opc)]);
        return (store, key, k, opc);
    }

    private static void Deliver(ShardHost shard, Relay relay, StepResult step)
    {
        foreach (var send in step.Send)
        {
            Assert.True(shard.Deliver(send.Message.ToArray(), "node", relay, "udp:device", "device"));
        }
    }

    /// <summary>A node's way back to the device, recording every answer.</summary>
    private sealed class Relay : IReplyRelay
    {
        private readonly List<byte[]> _all = [];

        public Channel<byte[]> Answers { get; } = Channel.CreateUnbounded<byte[]>();

        public int Count
        {
            get
            {
                lock (_all)
                {
                    return _all.Count;
                }
            }
        }

        public IReadOnlyList<byte[]> All
        {
            get
            {
                lock (_all)
                {
                    return [.. _all];
                }
            }
        }

        public void Send(IReadOnlyList<(string Key, byte[] Message)> messages)
        {
            foreach (var (_, message) in messages)
            {
                lock (_all)
                {
                    _all.Add(message);
                }

                Answers.Writer.TryWrite(message);
            }
        }
    }

    /// <summary>The device: a UE endpoint on a software USIM, fed the HSE's answers by the test.</summary>
    private sealed class Device(byte[] k, byte[] opc)
    {
        public UeEndpoint Ue { get; } = new(new Usim(new Milenage(k, opc), new UsimSequenceState(SqnScheme.Default)), new UeOptions { Imsi = Imsi });

        /// <summary>Feeds the answers that <paramref name="relay"/> gets to the UE until it raises a <typeparamref name="T"/>.</summary>
        public async Task<T> PumpUntilAsync<T>(Relay relay)
            where T : SessionEvent
        {
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            while (true)
            {
                var answer = await relay.Answers.Reader.ReadAsync(deadline.Token);
                var step = Ue.Receive(answer);
                if (step.Events.OfType<T>().FirstOrDefault() is { } wanted)
                {
                    return wanted;
                }
            }
        }
    }

    private sealed class NoSubscribers : IHseSubscribers
    {
        public AuthenticationVector? CreateVector(string imsi, AkaContext context) => null;

        public bool Resynchronise(string imsi, ReadOnlySpan<byte> rand, ReadOnlySpan<byte> auts) => false;
    }
}
