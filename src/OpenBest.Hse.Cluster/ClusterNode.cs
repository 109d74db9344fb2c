using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using Orleans;
using Orleans.Configuration;
using Orleans.Hosting;
using OpenBest.Bearers;
using OpenBest.EasInterface;
using OpenBest.Gsup;
using OpenBest.Hse.Northbound;
using OpenBest.Sessions;
using OpenBest.Storage;
using OpenBest.Storage.Postgres;

namespace OpenBest.Hse.Cluster;

/// <summary>What makes a node of an HSE cluster, beside the HSE's settings.</summary>
/// <param name="NodeName">The node's name (shown in tables and logs).</param>
/// <param name="SiloPort">The port nodes talk to each other on.</param>
/// <param name="GatewayPort">The port Orleans clients would connect to.</param>
/// <param name="ClusterId">The cluster's name in the membership table.</param>
public sealed record ClusterNodeOptions(string NodeName, int SiloPort = 11111, int GatewayPort = 30000, string ClusterId = "openbest-hse");

/// <summary>
/// One node of an HSE cluster (<c>best hse --cluster</c>): an Orleans silo whose membership lives in the HSE's PostgreSQL
/// database, hosting shard grains, and listeners that forward every message to its shard wherever that runs; the shard's
/// answers come back here and leave on the socket the device reached.
/// </summary>
public sealed partial class ClusterNode : IAsyncDisposable
{
    private readonly HseSettings _settings;
    private readonly ClusterNodeOptions _options;
    private readonly ILogger _log;
    private readonly List<IBearer> _bearers = [];
    private readonly ConcurrentDictionary<string, BearerPath> _paths = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _tasks = [];
    private readonly List<IDisposable> _owned = [];
    private IHost? _silo;
    private IGrainFactory? _grains;
    private Relay? _relay;
    private INodeRelay? _relayReference;
    private NodeIdentity? _identity;
    private readonly EasOutboxes _outboxes = new();
    private readonly NorthboundLead _lead = new();
    private NorthboundService? _northbound;
    private TlsConverter? _converter;
    private readonly List<TlsInbound> _inbound = [];
    private HashSet<string> _registeredEas = new(StringComparer.Ordinal);
    private PostgresSubscriberStore? _store;
    private Microsoft.AspNetCore.Builder.WebApplication? _easApi;
    private long _forwarded;
    private long _relayed;

    private ClusterNode(HseSettings settings, ClusterNodeOptions options, ILogger log)
    {
        _settings = settings;
        _options = options;
        _log = log;
    }

    /// <summary>The UDP listener's address.</summary>
    public IPEndPoint? UdpEndPoint { get; private set; }

    /// <summary>The TCP listener's address, or null.</summary>
    public IPEndPoint? TcpEndPoint { get; private set; }

    /// <summary>The HSE–EAS interface's address (with the northbound API), or null.</summary>
    public string? EasAddress { get; private set; }

    /// <summary>The node's delivery of EAS outboxes and key pushes, or null without the HSE–EAS interface.</summary>
    public EasDelivery? Delivery => _outboxes.Delivery;

    /// <summary>Whether this node posts the cluster's notifications and expires its deliveries now.</summary>
    public bool LeadsNorthbound => _lead.Held;

    /// <summary>The EASs whose outboxes this node delivers now.</summary>
    public IReadOnlyCollection<string> DeliveringFor => _outboxes.Held;

    /// <summary>Messages forwarded to shards.</summary>
    public long Forwarded => Interlocked.Read(ref _forwarded);

    /// <summary>Answers sent for shards.</summary>
    public long Relayed => Interlocked.Read(ref _relayed);

    /// <summary>The cluster's shards, as its database records them.</summary>
    public int ShardCount { get; private set; }

    /// <summary>The nodes the membership has as active.</summary>
    public int ActiveNodes => _silo?.Services.GetRequiredService<Orleans.Runtime.IClusterMembershipService>().CurrentSnapshot.Members.Values.Count(m => m.Status == Orleans.Runtime.SiloStatus.Active) ?? 0;

    /// <summary>Binds the listeners, opens the store (its migrations install the cluster's tables), joins the cluster and starts forwarding.</summary>
    /// <exception cref="SettingsException">The settings do not make a cluster node.</exception>
    public static async Task<ClusterNode> StartAsync(HseSettings settings, ClusterNodeOptions options, ILogger log, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrWhiteSpace(settings.Postgres))
        {
            throw new SettingsException("--cluster needs --postgres: the nodes share one PostgreSQL database (sessions, shards and membership)");
        }

        var node = new ClusterNode(settings, options, log);
        try
        {
            await node.StartCoreAsync(cancellationToken).ConfigureAwait(false);
            return node;
        }
        catch
        {
            await node.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task StartCoreAsync(CancellationToken cancellationToken)
    {
        var udp = UdpBearer.Bind(new IPEndPoint(_settings.Bind, _settings.UdpPort), queue: 65_536, socketBuffer: UdpBearer.ServerSocketBuffer);
        _bearers.Add(udp);
        UdpEndPoint = udp.LocalEndPoint;
        if (_settings.TcpPort >= 0)
        {
            var tcp = TcpBearer.Listen(new IPEndPoint(_settings.Bind, _settings.TcpPort));
            _bearers.Add(tcp);
            TcpEndPoint = tcp.LocalEndPoint as IPEndPoint;
        }

        if (_settings.NonIp.Length > 0)
        {
            // A node with a non-IP link (a serial device, or its own stdin/stdout) forwards its frames like datagrams.
            _bearers.Add(_settings.NonIp == "-" ? StreamBearer.OverStandardStreams() : StreamBearer.OverDevice(_settings.NonIp));
        }

        // The interface's certificates load before anything is written: a missing one is one line naming it.
        var easServer = _settings.EasPort >= 0 ? Own(DevelopmentPki.LoadPair(new DevelopmentPki.Pair(_settings.EasCertificate, _settings.EasKey))) : null;
        var easCa = _settings.EasPort >= 0 ? Own(DevelopmentPki.LoadCertificate(_settings.EasCa)) : null;
        var key = Own(MasterKey.Load(_settings.DataDir));
        var store = Own(PostgresSubscriberStore.Open(_settings.Postgres, key));
        _store = store;
        var policy = new StorePolicy(store);
        var engine = _settings.Engine with { Authorise = policy.Authorise, EnterpriseKeyIdentifier = _settings.EnterpriseKeysAllowed ? store.EnterpriseKeyIdentifierOf : null };
        ShardCount = store.ClusterShards(_settings.ClusterShards);
        // A shard's executor commits through the store's synchronous calls, and a node that takes over a dead node's shards
        // starts them all at once: with the thread pool's default floor (one thread per core) those calls held every pool
        // thread and the membership's probes waited behind them for seconds, long enough for the other nodes to suspect a
        // healthy node. The floor is a few threads per shard.
        ThreadPool.GetMinThreads(out var workers, out var completion);
        ThreadPool.SetMinThreads(Math.Max(workers, (2 * ShardCount) + 32), completion);
        // Vectors from the store (K and OPc sealed in it), or from the operator's HLR over GSUP: one connection per node, under
        // the node's own unit name, so the HLR gives each node its own IND (and so its own SQN space).
        var hlr = _settings.Auc is { } auc
            ? Own(GsupAuc.Connect(new GsupClientOptions { Endpoint = auc, UnitName = string.Create(CultureInfo.InvariantCulture, $"{_settings.GsupName}-{_options.NodeName}") }))
            : null;
        Func<IHseSubscribers> subscribers = hlr is null ? () => new StoreSubscribers(store, _settings.SqnInd, seqBlock: _settings.SeqBlock) : () => hlr;
        var context = new ShardContext(store, engine, subscribers, _options.NodeName, ShardCount, _settings.WorkQueue)
        {
            StoreOutage = _settings.StoreOutage,
            Events = OnShardEvent,
            UnstoredEasIds = _settings.TlsServices.Keys.Concat(_settings.TlsInbound.Select(i => i.EasId)).ToHashSet(StringComparer.Ordinal),
        };
        _identity = new NodeIdentity(_options.NodeName, string.Create(CultureInfo.InvariantCulture, $"{_options.NodeName}/{Environment.ProcessId}/{DateTime.UtcNow.Ticks}"));
        var membership = Own(NpgsqlDataSource.Create(_settings.Postgres));
        var identity = _identity;
        var advertised = IPAddress.IsLoopback(_settings.Bind) || _settings.Bind.Equals(IPAddress.Any) ? IPAddress.Loopback : _settings.Bind;
        _silo = new HostBuilder()
            .ConfigureLogging(logging => logging.SetMinimumLevel(LogLevel.Warning).AddProvider(new NodeLogProvider(_log))
                // Start-up notes (server GC, a watchdog's first check) are not the operator's concern.
                .AddFilter("Orleans.Runtime.Silo", LogLevel.Error).AddFilter("Orleans.Runtime.Watchdog", LogLevel.Error))
            .UseOrleans(silo =>
            {
                silo.Configure<ClusterOptions>(o =>
                {
                    o.ClusterId = _options.ClusterId;
                    o.ServiceId = "openbest-hse";
                });
                silo.Configure<SiloOptions>(o => o.SiloName = _options.NodeName);
                silo.ConfigureEndpoints(advertised, _options.SiloPort, _options.GatewayPort, listenOnAnyHostAddress: _settings.Bind.Equals(IPAddress.Any));
                silo.Configure<ClusterMembershipOptions>(o =>
                {
                    // A dead node is declared after three missed probes of 1 s, by two other nodes (Orleans asks for no more
                    // than half the active nodes: the only other one in a cluster of two). Its shards move within seconds, well
                    // inside a device's 31.5 s of retransmissions. A node that finds itself declared dead stops at once, so a
                    // slow second or two of one node on a busy machine must not be enough to declare it.
                    o.ProbeTimeout = TimeSpan.FromSeconds(1);
                    o.NumMissedProbesLimit = 3;
                    o.NumVotesForDeathDeclaration = 2;
                    o.TableRefreshTimeout = TimeSpan.FromSeconds(2);
                    o.IAmAliveTablePublishTimeout = TimeSpan.FromSeconds(10);
                    o.DefunctSiloCleanupPeriod = TimeSpan.FromMinutes(10);
                    o.DefunctSiloExpiration = TimeSpan.FromHours(1);
                });
                silo.Services.AddSingleton<IMembershipTable>(new PostgresMembershipTable(membership, _options.ClusterId));
                silo.Services.AddSingleton(context);
                silo.Services.AddPlacementDirector<ShardPlacement, ShardPlacementDirector>();
                silo.Services.AddSingleton(identity);
                silo.Services.AddSingleton(_outboxes);
                silo.Services.AddSingleton(_lead);
            })
            .Build();
        await _silo.StartAsync(cancellationToken).ConfigureAwait(false);
        _grains = _silo.Services.GetRequiredService<IGrainFactory>();
        // Orleans holds an observer weakly: the node keeps it alive as long as it runs.
        _relay = new Relay(this);
        _relayReference = _grains.CreateObjectReference<INodeRelay>(_relay);
        var sessions = new ClusterSessions(_grains, ShardCount);
        StartTlsConverter(sessions, store);
        if (easServer is not null)
        {
            // Every node serves the HSE–EAS interface and the northbound API over the cluster's shards; each node delivers the
            // outboxes of the EASs whose outbox grains it runs, and pushes the keys of the sessions its shards establish.
            _registeredEas = RegisteredEas(store);
            _outboxes.Taken = easId => LogDelivering(_log, Protocol.PeerText.Printable(easId));
            _outboxes.Delivery = new EasDelivery(sessions, store, easServer, easCa!, delivers: _outboxes.Holds);
            // The northbound API (tokens, subscriptions, downlinks, pushes, session control, dashboard) over the cluster's
            // shards and the shared northbound store; the node leading it posts the notifications.
            _lead.Taken = () => LogLeading(_log);
            _northbound = new NorthboundService(sessions, store, Own(NorthboundStore.Open(_settings.DataDir, _settings.Postgres)), key, easServer, easCa!, new NorthboundOptions
            {
                RequestsPerSecond = _settings.NorthboundRate,
                Burst = _settings.NorthboundBurst,
                EnterpriseKeysAllowed = _settings.EnterpriseKeysAllowed,
                HttpLoopbackCallbacks = _settings.NorthboundHttpCallbacks,
                Cluster = true,
                Leads = () => _lead.Held,
            }, _log);
            _easApi = await EasApi.StartAsync(sessions, store, easServer, easCa!, new IPEndPoint(_settings.Bind, _settings.EasPort), _northbound.Hooks, TimeProvider.System, cancellationToken).ConfigureAwait(false);
            _northbound.Start();
            EasAddress = HseWeb.Address(_easApi);
        }

        for (var i = 0; i < _bearers.Count; i++)
        {
            var bearer = _bearers[i];
            var index = i;
            _tasks.Add(Task.Run(() => IngressAsync(bearer, index), CancellationToken.None));
        }

        _tasks.Add(Task.Run(KeeperAsync, CancellationToken.None));
    }

    /// <summary>Where each shard runs, asking every shard (which activates those no node runs).</summary>
    public async Task<IReadOnlyList<ShardStatus>> RefreshShardsAsync()
    {
        var grains = _grains ?? throw new InvalidOperationException("The node is not started.");
        var asks = Enumerable.Range(0, ShardCount).Select(async s =>
        {
            try
            {
                return await grains.GetGrain<IHseShardGrain>(s).Status().WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                return new ShardStatus { Shard = s, Node = "?", Faulted = true };
            }
        });
        return await Task.WhenAll(asks).ConfigureAwait(false);
    }

    /// <summary>Stops: the listeners stop forwarding, the silo leaves the cluster (its shards commit what they ran and deactivate; other nodes take them).</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await Task.WhenAll(_tasks).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        foreach (var inbound in _inbound)
        {
            await inbound.DisposeAsync().ConfigureAwait(false);
        }

        _inbound.Clear();
        if (_converter is not null)
        {
            await _converter.DisposeAsync().ConfigureAwait(false);
            _converter = null;
        }

        if (_easApi is not null)
        {
            await _easApi.DisposeAsync().ConfigureAwait(false);
            _easApi = null;
        }

        if (_northbound is not null)
        {
            await _northbound.DisposeAsync().ConfigureAwait(false);
            _northbound = null;
        }

        if (_silo is not null)
        {
            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            try
            {
                await _silo.StopAsync(deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }

            _silo.Dispose();
            _silo = null;
        }

        if (_outboxes.Delivery is { } delivery)
        {
            // After the silo: the shards' last events were handed over; what was not delivered stays in the outbox.
            _outboxes.Delivery = null;
            await delivery.DisposeAsync().ConfigureAwait(false);
        }

        foreach (var bearer in _bearers)
        {
            await bearer.DisposeAsync().ConfigureAwait(false);
        }

        _bearers.Clear();
        for (var i = _owned.Count - 1; i >= 0; i--)
        {
            _owned[i].Dispose();
        }

        _owned.Clear();
        _stop.Dispose();
    }

    private T Own<T>(T disposable)
        where T : IDisposable
    {
        _owned.Add(disposable);
        return disposable;
    }

    private async Task IngressAsync(IBearer bearer, int index)
    {
        var grains = _grains!;
        var relay = _relayReference!;
        var node = _identity!.Incarnation;
        var groups = new Dictionary<int, List<RoutedMessage>>();
        var shards = ShardCount;
        var prefix = string.Create(CultureInfo.InvariantCulture, $"{index}|");
        try
        {
            while (await bearer.Received.WaitToReadAsync(_stop.Token).ConfigureAwait(false))
            {
                var count = 0;
                while (count < 1024 && bearer.Received.TryRead(out var received))
                {
                    count++;
                    var key = prefix + received.Path;
                    if (_paths.Count > 1_000_000)
                    {
                        // Paths of devices long gone; a device that talks again is known again at once.
                        _paths.Clear();
                    }

                    _paths[key] = received.Path;
                    var shard = ClusterRouting.ShardOf(received.Message.Span, _settings.Engine, shards);
                    if (!groups.TryGetValue(shard, out var list))
                    {
                        groups[shard] = list = [];
                    }

                    list.Add(new RoutedMessage { Message = received.Message.ToArray(), Key = key, Source = received.Path.Source });
                }

                foreach (var (shard, list) in groups)
                {
                    if (list.Count == 0)
                    {
                        continue;
                    }

                    try
                    {
                        _ = grains.GetGrain<IHseShardGrain>(shard).Receive(node, relay, [.. list]);
                        Interlocked.Add(ref _forwarded, list.Count);
                    }
                    catch (Exception e) when (e is not OutOfMemoryException)
                    {
                        LogForwardFailed(_log, shard, e.GetType().Name);
                    }

                    list.Clear();
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task KeeperAsync()
    {
        // Every 2 s every shard is asked where it runs: a shard whose node died is activated on a survivor as soon as the
        // membership declared the death (its devices' next messages would activate it too; this also brings back its
        // suspended sessions' timers and queues).
        // The first pass waits a moment, so that nodes starting together see each other before shards are placed.
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(2));
        try
        {
            await Task.Delay(TimeSpan.FromSeconds(3), _stop.Token).ConfigureAwait(false);
            do
            {
                await RefreshShardsAsync().ConfigureAwait(false);
                await RefreshOutboxesAsync().ConfigureAwait(false);
                await SweepConversionsAsync().ConfigureAwait(false);
            }
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false));
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>
    /// The TLS converter (seed 000 section 2) on a cluster: a device's channel naming a TLS service gets its connection from
    /// the node running the session's shard (which sees its frames); an inbound listener runs on every node, and the shard of
    /// the device's channel sends that channel's frames to the node that accepted the client. Sessions of TLS services are
    /// not stored: when their shard moves they end, with their connections, as after a single HSE's restart.
    /// </summary>
    private void StartTlsConverter(ClusterSessions sessions, PostgresSubscriberStore store)
    {
        if (_settings.TlsServices.Count == 0 && _settings.TlsInbound.Count == 0)
        {
            return;
        }

        var grains = _grains!;
        var relay = _relayReference!;
        _converter = new TlsConverter(sessions, _settings.TlsServices, _log)
        {
            Follow = sessionId => grains.GetGrain<IHseShardGrain>(sessionId % (uint)ShardCount).Follow(sessionId, relay),
        };
        if (_settings.TlsInbound.Count > 0)
        {
            var certificate = Own(DevelopmentPki.LoadPair(new DevelopmentPki.Pair(_settings.EasCertificate, _settings.EasKey)));
            foreach (var (port, easId) in _settings.TlsInbound)
            {
                _inbound.Add(new TlsInbound(_converter, new IPEndPoint(_settings.Bind, port), easId, certificate, store.ImsiOf, _log));
            }
        }
    }

    /// <summary>Ends the conversions whose sessions are gone (their shard moved away from this node, or they ended elsewhere).</summary>
    private async Task SweepConversionsAsync()
    {
        if (_converter is not { Active: > 0 } converter)
        {
            return;
        }

        try
        {
            await converter.SweepAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            LogSweepFailed(_log, e.GetType().Name); // the next round asks again
        }
    }

    /// <summary>
    /// Asks every registered EAS's outbox grain, and the northbound lead, where it runs, so that an outbox or the lead whose
    /// node died moves to a survivor.
    /// </summary>
    private async Task RefreshOutboxesAsync()
    {
        if (_outboxes.Delivery is null || _store is null || _grains is null)
        {
            return;
        }

        try
        {
            _registeredEas = RegisteredEas(_store);
            await Task.WhenAll(_registeredEas.Select(easId => _grains.GetGrain<IEasOutboxGrain>(easId).Node().WaitAsync(TimeSpan.FromSeconds(10)))
                .Append(_grains.GetGrain<INorthboundLeadGrain>(0).Node().WaitAsync(TimeSpan.FromSeconds(10)))).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            LogOutboxFailed(_log, e.GetType().Name); // the next round asks again
        }
    }

    private static HashSet<string> RegisteredEas(PostgresSubscriberStore store) => store.EasRegistrations().Select(r => r.EasId).ToHashSet(StringComparer.Ordinal);

    /// <summary>
    /// A shard's event on this node: the northbound service notifies and tracks deliveries from here; keys go to the EAS from
    /// here; a stored uplink wakes its EAS's outbox, wherever that runs.
    /// </summary>
    private void OnShardEvent(SessionEvent e)
    {
        _converter?.OnEvent(e);
        _northbound?.OnEvent(e);
        if (e is UplinkForwarded forwarded)
        {
            if (_registeredEas.Contains(forwarded.EasId) && _grains is { } grains)
            {
                _ = grains.GetGrain<IEasOutboxGrain>(forwarded.EasId).Wake();
            }

            return;
        }

        _outboxes.Delivery?.OnEvent(e);
    }

    private void Send(RelayedMessage[] messages)
    {
        foreach (var m in messages)
        {
            if (_paths.TryGetValue(m.Key, out var path))
            {
                _ = SendOneAsync(path, m.Message);
            }
        }
    }

    private async Task SendOneAsync(BearerPath path, byte[] message)
    {
        try
        {
            await path.SendAsync(message, _stop.Token).ConfigureAwait(false);
            Interlocked.Increment(ref _relayed);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            LogSendFailed(_log, e.GetType().Name);
        }
    }

    /// <summary>The engine's own warnings and errors (membership, activations) go to the node's log.</summary>
    private sealed class NodeLogProvider(ILogger log) : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => log;

        public void Dispose()
        {
        }
    }

    /// <summary>The node's observer: shards' answers arrive here.</summary>
    private sealed class Relay(ClusterNode node) : INodeRelay
    {
        public Task Send(RelayedMessage[] messages)
        {
            node.Send(messages);
            return Task.CompletedTask;
        }

        public Task Followed(FollowedEvent[] events)
        {
            foreach (var e in events)
            {
                node._converter?.OnFollowedEvent(e.ToEvent());
            }

            return Task.CompletedTask;
        }
    }

    [LoggerMessage(20, LogLevel.Warning, "forwarding to shard {Shard} failed ({Error})")]
    private static partial void LogForwardFailed(ILogger log, int shard, string error);

    [LoggerMessage(25, LogLevel.Warning, "asking for the TLS conversions' sessions failed ({Error})")]
    private static partial void LogSweepFailed(ILogger log, string error);

    [LoggerMessage(24, LogLevel.Information, "this node posts the northbound notifications and expires deliveries")]
    private static partial void LogLeading(ILogger log);

    [LoggerMessage(23, LogLevel.Information, "this node delivers the outbox of EAS {EasId}")]
    private static partial void LogDelivering(ILogger log, string easId);

    [LoggerMessage(22, LogLevel.Warning, "asking for the EAS outboxes failed ({Error})")]
    private static partial void LogOutboxFailed(ILogger log, string error);

    [LoggerMessage(21, LogLevel.Debug, "an answer could not be sent ({Error})")]
    private static partial void LogSendFailed(ILogger log, string error);
}
