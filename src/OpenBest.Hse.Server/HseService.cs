using System.Globalization;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenBest.Bearers;
using OpenBest.Gsup;
using OpenBest.Protocol;
using OpenBest.EasInterface;
using OpenBest.Hse;
using OpenBest.Hse.Northbound;
using OpenBest.Sessions;
using OpenBest.Storage;
using OpenBest.Storage.Postgres;

namespace OpenBest.Hse.Server;

/// <summary>
/// The HSE as a hosted service of a .NET generic host: <see cref="StartAsync"/> binds the listeners (before anything is
/// written to the data folder), opens the store and takes its lease, restores the sessions and starts the host and
/// its web endpoints; the events run in the background; <see cref="StopAsync"/> stops it gracefully (queued work run
/// and committed, then the listeners closed).
/// </summary>
public sealed partial class HseService(HseSettings settings, TextWriter output) : IHostedService, IAsyncDisposable
{
    private readonly List<IBearer> _bearers = [];
    private readonly List<IDisposable> _owned = [];
    private ILogger _log = Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
    private IHostApplicationLifetime? _lifetime;
    private HseHost? _host;
    private HseMetrics? _metrics;
    private WebApplication? _web;
    private WebApplication? _eas;
    private EasDelivery? _delivery;
    private NorthboundService? _northbound;
    private TlsConverter? _converter;
    private readonly List<TlsInbound> _inbound = [];
    private Task _events = Task.CompletedTask;
    private long _eventCount;
    private bool _stopped;

    /// <summary>The UDP listener's address, once started.</summary>
    public IPEndPoint? UdpEndPoint { get; private set; }

    /// <summary>0 when it ran and stopped cleanly; 1 when the store failed for good.</summary>
    public int ExitCode { get; private set; }

    /// <summary>Gives the service its logger and the application's lifetime (it stops the application when the store fails for good).</summary>
    public void Attach(ILogger log, IHostApplicationLifetime lifetime)
    {
        _log = log;
        _lifetime = lifetime;
    }

    /// <summary>Binds, opens the store, restores the sessions and starts everything; a failure leaves nothing running.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            await StartCoreAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Stops gracefully: queued work run and committed, then the listeners closed.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_stopped || _host is null)
        {
            return;
        }

        _stopped = true;

        // The host stops before its bearers close: queued work is run and committed, nothing is sent on a closed socket.
        if (_web is not null)
        {
            await _web.DisposeAsync().ConfigureAwait(false);
        }

        if (_delivery is not null)
        {
            await _delivery.DisposeAsync().ConfigureAwait(false);
        }

        foreach (var inbound in _inbound)
        {
            await inbound.DisposeAsync().ConfigureAwait(false);
        }

        if (_converter is not null)
        {
            await _converter.DisposeAsync().ConfigureAwait(false);
        }

        if (_eas is not null)
        {
            await _eas.DisposeAsync().ConfigureAwait(false);
        }

        await _host.DisposeAsync().ConfigureAwait(false);
        await _events.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        // After the enterprise port closed and the host ran its queued work: the northbound side drains the last events
        // (a Data Ack in the final steps still marks its delivery) and audit lines before it stops.
        if (_northbound is not null)
        {
            await _northbound.DisposeAsync().ConfigureAwait(false);
            _northbound = null;
        }
        foreach (var bearer in _bearers)
        {
            await bearer.DisposeAsync().ConfigureAwait(false);
        }

        _bearers.Clear();
        LogStopped(_log, _host.Received, _host.Sent, _host.Commits, _host.Errors);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"stopped: {_host.Received} messages received, {_host.Sent} sent, {_host.Commits} commits, {_host.Errors} errors, {Interlocked.Read(ref _eventCount)} events"));
        output.Flush();
        ExitCode = _host.Faulted.IsCompleted ? 1 : 0;
        await DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>Releases what it holds.</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var bearer in _bearers)
        {
            await bearer.DisposeAsync().ConfigureAwait(false);
        }

        _bearers.Clear();
        if (_northbound is not null)
        {
            // A start that failed after the northbound side was made (a busy enterprise port) stops its background work too.
            await _northbound.DisposeAsync().ConfigureAwait(false);
            _northbound = null;
        }

        _metrics?.Dispose();
        _metrics = null;
        for (var i = _owned.Count - 1; i >= 0; i--)
        {
            _owned[i].Dispose();
        }

        _owned.Clear();
    }

    private T Own<T>(T disposable)
        where T : IDisposable
    {
        _owned.Add(disposable);
        return disposable;
    }

    private async Task StartCoreAsync(CancellationToken cancel)
    {
        // Bind first: a bad address or a busy port fails before anything is written to the data folder.
        var udp = UdpBearer.Bind(new IPEndPoint(settings.Bind, settings.UdpPort), queue: 65_536, socketBuffer: UdpBearer.ServerSocketBuffer);
        _bearers.Add(udp);
        UdpEndPoint = udp.LocalEndPoint;
        TcpBearer? tcp = null;
        if (settings.TcpPort >= 0)
        {
            tcp = TcpBearer.Listen(new IPEndPoint(settings.Bind, settings.TcpPort));
            _bearers.Add(tcp);
        }

        if (settings.NonIp.Length > 0)
        {
            _bearers.Add(settings.NonIp == "-" ? StreamBearer.OverStandardStreams() : StreamBearer.OverDevice(settings.NonIp));
        }

        // The interface's certificates load before anything is written: a missing one is one line naming it.
        var easServer = settings.EasPort >= 0 ? Own(DevelopmentPki.LoadPair(new DevelopmentPki.Pair(settings.EasCertificate, settings.EasKey))) : null;
        var easCa = settings.EasPort >= 0 ? Own(DevelopmentPki.LoadCertificate(settings.EasCa)) : null;
        var key = Own(MasterKey.Load(settings.DataDir));
        var store = Own<ISubscriberStore>(string.IsNullOrWhiteSpace(settings.Postgres) ? SqliteSubscriberStore.Open(settings.DataDir, key) : PostgresSubscriberStore.Open(settings.Postgres, key));
        var state = (IHseStateStore)store;
        Own(state.AcquireHseLease());
        // Vectors from the local store (K and OPc sealed in it), or from the operator's HLR over GSUP (this HSE never holds K).
        IHseSubscribers subscribers = settings.Auc is { } auc
            ? Own(GsupAuc.Connect(new GsupClientOptions { Endpoint = auc, UnitName = settings.GsupName }))
            : Own(new StoreSubscribers(store, settings.SqnInd, seqBlock: settings.SeqBlock));
        var policy = new StorePolicy(state);
        var engine = new HseEngine(subscribers, settings.Engine with { Authorise = policy.Authorise, EnterpriseKeyIdentifier = settings.EnterpriseKeysAllowed ? state.EnterpriseKeyIdentifierOf : null });
        var host = new HseHost(engine, _bearers, queue: settings.WorkQueue, state: state) { StoreOutageLimit = settings.StoreOutage, UnstoredEasIds = settings.TlsServices.Keys.Concat(settings.TlsInbound.Select(i => i.EasId)).ToHashSet(StringComparer.Ordinal) };
        var restored = host.Restore();
        if (host.Unreadable > 0)
        {
            LogUnreadable(_log, host.Unreadable);
        }

        host.Start();
        _host = host;
        _metrics = new HseMetrics(host);
        if (settings.MetricsPort >= 0)
        {
            _web = await HseWeb.StartAsync(host, _metrics, new IPEndPoint(settings.Bind, settings.MetricsPort), cancel).ConfigureAwait(false);
        }

        if (easServer is not null)
        {
            // The northbound API, its tokens, notifications, push service and dashboard share the EAS interface's port.
            var northboundStore = Own(NorthboundStore.Open(settings.DataDir, settings.Postgres));
            _northbound = new NorthboundService(host, state, northboundStore, key, easServer, easCa!, new NorthboundOptions
            {
                RequestsPerSecond = settings.NorthboundRate,
                Burst = settings.NorthboundBurst,
                EnterpriseKeysAllowed = settings.EnterpriseKeysAllowed,
                HttpLoopbackCallbacks = settings.NorthboundHttpCallbacks,
            }, _log);
            _eas = await EasApi.StartAsync(host, state, easServer, easCa!, new IPEndPoint(settings.Bind, settings.EasPort), _northbound.Hooks, TimeProvider.System, cancel).ConfigureAwait(false);
            _northbound.Start();
            _delivery = new EasDelivery(host, state, easServer, easCa!);
        }

        if (settings.TlsServices.Count > 0 || settings.TlsInbound.Count > 0)
        {
            _converter = new TlsConverter(host, settings.TlsServices, _log);
            if (settings.TlsInbound.Count > 0)
            {
                var certificate = Own(DevelopmentPki.LoadPair(new DevelopmentPki.Pair(settings.EasCertificate, settings.EasKey)));
                foreach (var (port, easId) in settings.TlsInbound)
                {
                    _inbound.Add(new TlsInbound(_converter, new IPEndPoint(settings.Bind, port), easId, certificate, state.ImsiOf, _log));
                }
            }
        }

        var storeName = string.IsNullOrWhiteSpace(settings.Postgres) ? "SQLite" : "PostgreSQL";
        LogStarted(_log, udp.LocalEndPoint.ToString(), tcp?.LocalEndPoint?.ToString() ?? "none", settings.NonIp.Length == 0 ? "none" : settings.NonIp, storeName, restored, settings.Sources);
        var webText = (_web is null ? string.Empty : $", metrics on {HseWeb.Address(_web)}/metrics") + (_eas is null ? string.Empty : $", EAS interface on {HseWeb.Address(_eas)}")
            + (settings.TlsServices.Count == 0 ? string.Empty : $", TLS services {string.Join(", ", settings.TlsServices.Values.Select(t => $"{t.Id} → {t.Host}:{t.Port}"))}")
            + (_inbound.Count == 0 ? string.Empty : $", inbound TLS {string.Join(", ", _inbound.Select(i => $"{i.LocalEndPoint} → {i.EasId}"))}");
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"HSE listening on udp {udp.LocalEndPoint}{(tcp is null ? string.Empty : $" and tcp {tcp.LocalEndPoint}")}{(settings.NonIp.Length == 0 ? string.Empty : $" and non-IP {settings.NonIp}")}, {(settings.Auc is { } hlr ? $"vectors from the HLR at {hlr.Host}:{hlr.Port}" : $"{store.List().Count} subscriber(s)")} and {restored} restored session(s) in {storeName}{webText}; Ctrl+C stops it"));
        output.Flush();
        _events = Task.Run(() => EventsAsync(host), CancellationToken.None);
    }

    private async Task EventsAsync(HseHost host)
    {
        // The events end when the host stops, or fails for good; then the application stops.
        await foreach (var e in host.Events.ReadAllAsync().ConfigureAwait(false))
        {
            Interlocked.Increment(ref _eventCount);
            _metrics?.Record(e);
            _delivery?.OnEvent(e);
            _northbound?.OnEvent(e);
            _converter?.OnEvent(e);
            LogEvent(_log, e);
        }

        if (host.Faulted.IsCompleted)
        {
            LogStoreFailed(_log, host.LastError ?? "unknown");
            _lifetime?.StopApplication();
        }
    }

    private static void LogEvent(ILogger log, SessionEvent e)
    {
        // Session IDs, services and suites only: never keys, never the IMSI; the EAS Id is the UE's text, printed as data.
        switch (e)
        {
            case SessionEstablished s:
                LogEstablished(log, s.SessionId, s.Service, s.Suite.Name, s.CounterLength, s.UeToEasMode, PeerText.Printable(s.EasId));
                break;
            case SessionTerminated t:
                LogTerminated(log, t.SessionId, t.Cause?.ToString() ?? "none", t.ByPeer);
                break;
            case SessionRejected r:
                LogRejected(log, r.SessionId, r.Cause);
                break;
            case KeysRefreshed k:
                LogRefreshed(log, k.SessionId, k.KeyId);
                break;
            case MessageDropped d:
                LogDropped(log, d.SessionId, d.Reason);
                break;
        }
    }

    [LoggerMessage(1, LogLevel.Information, "HSE started: udp {Udp}, tcp {Tcp}, non-IP {NonIp}, store {Store}, {Restored} sessions restored, settings from {Sources}")]
    private static partial void LogStarted(ILogger log, string udp, string tcp, string nonIp, string store, int restored, string sources);

    [LoggerMessage(2, LogLevel.Information, "session {SessionId} established: {Service}, {Suite}, n={CounterLength}, UE-to-EAS {UeToEas}, EAS {EasId}")]
    private static partial void LogEstablished(ILogger log, uint sessionId, Protocol.BestService service, string suite, int counterLength, bool ueToEas, string easId);

    [LoggerMessage(3, LogLevel.Information, "session {SessionId} terminated: cause {Cause}, by peer {ByPeer}")]
    private static partial void LogTerminated(ILogger log, uint sessionId, string cause, bool byPeer);

    [LoggerMessage(4, LogLevel.Information, "session {SessionId} rejected: {Cause}")]
    private static partial void LogRejected(ILogger log, uint sessionId, Protocol.Cause cause);

    [LoggerMessage(5, LogLevel.Debug, "session {SessionId} keys refreshed to key {KeyId}")]
    private static partial void LogRefreshed(ILogger log, uint sessionId, byte keyId);

    [LoggerMessage(6, LogLevel.Debug, "session {SessionId}: message dropped ({Reason})")]
    private static partial void LogDropped(ILogger log, uint sessionId, DropReason reason);

    [LoggerMessage(7, LogLevel.Critical, "the store failed for good ({Error}): the HSE stopped; nothing unrecorded was sent, restart it on the same database")]
    private static partial void LogStoreFailed(ILogger log, string error);

    [LoggerMessage(9, LogLevel.Warning, "{Count} stored sessions could not be read and were deleted (their devices start new sessions)")]
    private static partial void LogUnreadable(ILogger log, int count);

    [LoggerMessage(8, LogLevel.Information, "HSE stopped: {Received} received, {Sent} sent, {Commits} commits, {Errors} errors")]
    private static partial void LogStopped(ILogger log, long received, long sent, long commits, long errors);
}
