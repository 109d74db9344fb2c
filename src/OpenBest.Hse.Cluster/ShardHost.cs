using System.Collections.Concurrent;
using System.Threading.Channels;
using OpenBest.Bearers;
using OpenBest.Protocol;
using OpenBest.Hse.Northbound.Dashboard;
using OpenBest.Sessions;
using OpenBest.Storage;

namespace OpenBest.Hse.Cluster;

/// <summary>Where a shard's answers go: the node the device reached, which sends them on the socket the device used.</summary>
public interface IReplyRelay
{
    /// <summary>Sends <paramref name="messages"/> (path key, message) through the node's bearers; never blocks.</summary>
    void Send(IReadOnlyList<(string Key, byte[] Message)> messages);
}

/// <summary>The shards of an HSE cluster and how a message finds its shard (docs/protocol.md, "HSE cluster").</summary>
public static class ClusterRouting
{
    /// <summary>
    /// Shards of a new cluster database unless its settings say otherwise (ClusterShards). The first node records the
    /// number in the database and every node follows it: a Session ID names its shard (Session ID modulo the number).
    /// </summary>
    public const int DefaultShards = 16;

    /// <summary>
    /// The shard of a message: its Session ID's, or for a Session Request its subscriber's (so one subscriber's requests, and
    /// their SQNs, are handled one at a time wherever they arrive); shard 0 for a message neither names (it is dropped there).
    /// </summary>
    public static int ShardOf(ReadOnlySpan<byte> message, HseOptions options, int shards)
    {
        if (HeaderPrefix.TryRead(message, out var prefix) != ParseStatus.Ok)
        {
            return 0;
        }

        if (prefix.SessionId != 0)
        {
            return (int)(prefix.SessionId % (uint)shards);
        }

        return HseEngine.SubscriberOf(message, options) is { } imsi ? ShardOfSubscriber(imsi, shards) : 0;
    }

    /// <summary>The shard of a subscriber: FNV-1a of its IMSI, modulo <paramref name="shards"/> (stable across nodes and versions).</summary>
    public static int ShardOfSubscriber(string imsi, int shards)
    {
        ArgumentNullException.ThrowIfNull(imsi);
        var hash = 2166136261u;
        foreach (var c in imsi)
        {
            hash = (hash ^ c) * 16777619u;
        }

        return (int)(hash % (uint)shards);
    }
}

/// <summary>What a shard needs from its node: the store, the engine's settings, where vectors come from.</summary>
/// <param name="Store">The HSE's PostgreSQL store (state, shards, subscribers).</param>
/// <param name="Engine">The engine's options; each shard gets its own Session ID class.</param>
/// <param name="Subscribers">Makes a shard's vector source (its SEQ block cache moves with the shard).</param>
/// <param name="Node">The node's name, recorded with each shard it takes.</param>
/// <param name="ShardCount">The cluster's shards (recorded in the database).</param>
/// <param name="WorkQueue">Work items a shard queues at most.</param>
public sealed record ShardContext(IHseStateStore Store, HseOptions Engine, Func<IHseSubscribers> Subscribers, string Node, int ShardCount, int WorkQueue = 65_536)
{
    /// <summary>How long a shard holds a batch while the store fails (a database failover) before it stops.</summary>
    public TimeSpan StoreOutage { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>What the node does with its shards' events (after their batches committed): EAS key pushes and outbox wake-ups.</summary>
    public Action<SessionEvent>? Events { get; init; }

    /// <summary>EAS Ids whose sessions are not stored (TLS services: a conversion does not outlive its node's connection).</summary>
    public IReadOnlySet<string> UnstoredEasIds { get; init; } = new HashSet<string>();

    /// <summary>The shard store.</summary>
    public IHseShardStore Shards => (IHseShardStore)Store;
}

/// <summary>
/// One activation of one shard: an <see cref="HseEngine"/> for the sessions whose Session IDs fall in the shard, under an
/// <see cref="HseHost"/> (one executor, group commit) fenced by the epoch the activation took. Messages come from the
/// cluster's nodes; answers go back through the node each came from.
/// </summary>
public sealed class ShardHost : IAsyncDisposable
{
    private readonly ShardInbox _inbox;
    private readonly Task _events;
    private readonly Action<SessionEvent>? _onEvent;
    private readonly DashboardCounter _counter = new();
    private readonly ConcurrentDictionary<uint, Action<SessionEvent>> _followers = new();
    private long _established;

    private ShardHost(int shard, long epoch, HseHost host, ShardInbox inbox, int restored, IReadOnlyList<SessionOverview> sessions, Action<SessionEvent>? onEvent)
    {
        _counter.See(sessions);
        Shard = shard;
        Epoch = epoch;
        Host = host;
        Sessions = IHseSessions.ForHost(host);
        _inbox = inbox;
        _onEvent = onEvent;
        Restored = restored;
        _events = Task.Run(DrainEventsAsync);
    }

    /// <summary>The shard.</summary>
    public int Shard { get; }

    /// <summary>The epoch this activation took.</summary>
    public long Epoch { get; }

    /// <summary>Sessions restored from the store at activation.</summary>
    public int Restored { get; }

    /// <summary>The host running the shard's engine.</summary>
    public HseHost Host { get; }

    /// <summary>The shard's sessions, for the HSE–EAS interface and the northbound API.</summary>
    public IHseSessions Sessions { get; }

    /// <summary>Sessions established by this activation.</summary>
    public long Established => Interlocked.Read(ref _established);

    /// <summary>This activation's session events, counted by the dashboard's kinds (every node's dashboard sums the shards').</summary>
    public SessionEventCounts EventCounts => _counter.Totals();

    /// <summary>Set when the host stopped for good (the store failed, or a newer activation took the shard).</summary>
    public Task Faulted => Host.Faulted;

    /// <summary>Takes <paramref name="shard"/> (a new epoch), restores its sessions and starts its host.</summary>
    public static ShardHost Start(int shard, ShardContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentOutOfRangeException.ThrowIfNegative(shard);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(shard, context.ShardCount);
        var (epoch, next) = context.Shards.TakeShard(shard, context.Node);
        var engine = new HseEngine(context.Subscribers(), context.Engine with { SessionIdClass = ((uint)shard, (uint)context.ShardCount) });
        var inbox = new ShardInbox(context.WorkQueue);
        var host = new HseHost(engine, [inbox], queue: context.WorkQueue, state: context.Store) { Fence = new ShardFence(shard, epoch), StoreOutageLimit = context.StoreOutage, UnstoredEasIds = context.UnstoredEasIds };
        try
        {
            var sessions = context.Shards.LoadSessions(shard, context.ShardCount);
            var restored = host.Restore(sessions, Math.Max(next, 1));
            var overview = engine.Overview(); // before the host runs the engine on its executor
            host.Start();
            return new ShardHost(shard, epoch, host, inbox, restored, overview, context.Events);
        }
        catch
        {
            // The engine's keys are zeroed; the next message activates the shard again.
            host.DisposeAsync().AsTask().GetAwaiter().GetResult();
            throw;
        }
    }

    /// <summary>A message a node received on <paramref name="key"/> (its path there) from <paramref name="source"/>; false when the shard's queue is full (dropped, counted).</summary>
    public bool Deliver(byte[] message, string node, IReplyRelay relay, string key, string source) => _inbox.Deliver(message, node, relay, key, source);

    /// <summary>Sends <paramref name="sessionId"/>'s user-plane payloads and its end to <paramref name="to"/>, after they committed.</summary>
    public void Follow(uint sessionId, Action<SessionEvent> to) => _followers[sessionId] = to;

    /// <summary>The paths of the shard's sessions (the node each device reached, and that node's key for it).</summary>
    public Task<CarriedPath[]> PathsAsync() => Host.QueryAsync(engine =>
        engine.Paths().Select(p => p.Path is ClusterPath c ? new CarriedPath { SessionId = p.SessionId, Node = c.Node, Key = c.Key, Source = c.Source } : null).OfType<CarriedPath>().ToArray());

    /// <summary>Gives restored sessions the paths they had before the shard moved (through <paramref name="relayOf"/>'s node relays); returns how many were set.</summary>
    public Task<int> RestorePathsAsync(IReadOnlyList<CarriedPath> paths, Func<string, IReplyRelay?> relayOf) => Host.QueryAsync(engine =>
        paths.Count(p => relayOf(p.Node) is { } relay && engine.RestorePath(p.SessionId, _inbox.PathFor(p.Node, relay, p.Key, p.Source))));

    /// <summary>Stops: queued work runs and commits (while the epoch holds), then the engine's keys are zeroed.</summary>
    public async ValueTask DisposeAsync()
    {
        await Host.DisposeAsync().ConfigureAwait(false);
        await _events.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await _inbox.DisposeAsync().ConfigureAwait(false);
    }

    private async Task DrainEventsAsync()
    {
        await foreach (var e in Host.Events.ReadAllAsync().ConfigureAwait(false))
        {
            if (e is SessionEstablished)
            {
                Interlocked.Increment(ref _established);
            }

            _counter.Add(e);
            if (e is DataReceived or SessionTerminated && _followers.TryGetValue(e.SessionId, out var follower))
            {
                if (e is SessionTerminated)
                {
                    _followers.TryRemove(e.SessionId, out _);
                }

                follower(e);
            }

            _onEvent?.Invoke(e);
        }
    }
}

/// <summary>The path of a device as a shard sees it: the node that received its message and that node's key for the path.</summary>
public sealed class ClusterPath : BearerPath
{
    private readonly ShardInbox _inbox;

    internal ClusterPath(ShardInbox inbox, string node, IReplyRelay relay, string key, string source)
    {
        _inbox = inbox;
        Node = node;
        Relay = relay;
        Key = key;
        SourceText = source;
    }

    /// <inheritdoc/>
    public override IBearer Bearer => _inbox;

    /// <summary>The node the device reached.</summary>
    public string Node { get; }

    /// <summary>That node's relay.</summary>
    public IReplyRelay Relay { get; }

    /// <summary>That node's key for the path (bearer and address).</summary>
    public string Key { get; }

    private string SourceText { get; }

    /// <inheritdoc/>
    public override string Source => SourceText;

    /// <summary>The node's key (its bearer and the device's address): per-path limits count on it.</summary>
    public override string ToString() => Key;
}

/// <summary>The bearer of a shard: messages forwarded by nodes in, answers out through each path's node, batched per node.</summary>
internal sealed class ShardInbox : IBearer
{
    private readonly Channel<ReceivedMessage> _received;
    private readonly ConcurrentDictionary<(string Node, string Key), ClusterPath> _paths = new();
    private readonly ConcurrentDictionary<string, Lazy<Outbound>> _outbound = new(StringComparer.Ordinal);
    private long _dropped;

    public ShardInbox(int queue)
    {
        _received = Channel.CreateBounded<ReceivedMessage>(new BoundedChannelOptions(queue) { SingleReader = true, FullMode = BoundedChannelFullMode.DropWrite }, _ => Interlocked.Increment(ref _dropped));
    }

    public ChannelReader<ReceivedMessage> Received => _received.Reader;

    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>The path of a device through <paramref name="node"/> (one object per node and key).</summary>
    public ClusterPath PathFor(string node, IReplyRelay relay, string key, string source) =>
        _paths.GetOrAdd((node, key), k => new ClusterPath(this, k.Node, relay, k.Key, source));

    public bool Deliver(byte[] message, string node, IReplyRelay relay, string key, string source)
    {
        if (_paths.Count > 200_000)
        {
            // Paths of devices long gone: the sessions keep their path objects, only the lookup is rebuilt.
            _paths.Clear();
        }

        return _received.Writer.TryWrite(new ReceivedMessage(message, PathFor(node, relay, key, source)));
    }

    public ValueTask SendAsync(ReadOnlyMemory<byte> message, BearerPath path, CancellationToken cancellationToken = default)
    {
        if (path is ClusterPath cluster)
        {
            // Lazy: one pump per node even when two sends race to make it.
            _outbound.GetOrAdd(cluster.Node, static (_, relay) => new Lazy<Outbound>(() => new Outbound(relay)), cluster.Relay).Value.Post(cluster.Key, message.ToArray());
        }

        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        _received.Writer.TryComplete();
        foreach (var outbound in _outbound.Values)
        {
            await outbound.Value.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Answers for one node: whatever is waiting goes in one call.</summary>
    private sealed class Outbound : IAsyncDisposable
    {
        private readonly Channel<(string Key, byte[] Message)> _queue = Channel.CreateBounded<(string, byte[])>(new BoundedChannelOptions(65_536) { SingleReader = true, FullMode = BoundedChannelFullMode.DropWrite });
        private readonly IReplyRelay _relay;
        private readonly Task _pump;

        public Outbound(IReplyRelay relay)
        {
            _relay = relay;
            _pump = Task.Run(PumpAsync);
        }

        public void Post(string key, byte[] message) => _queue.Writer.TryWrite((key, message));

        public async ValueTask DisposeAsync()
        {
            _queue.Writer.TryComplete();
            await _pump.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        private async Task PumpAsync()
        {
            var batch = new List<(string, byte[])>();
            while (await _queue.Reader.WaitToReadAsync().ConfigureAwait(false))
            {
                batch.Clear();
                while (batch.Count < 512 && _queue.Reader.TryRead(out var item))
                {
                    batch.Add(item);
                }

                try
                {
                    _relay.Send([.. batch]);
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    // A node that left: its devices' next messages reach another node, which becomes their path.
                }
            }
        }
    }
}
