using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using OpenBest.Protocol;
using OpenBest.Sessions;
using OpenBest.Storage;

namespace OpenBest.Hse.Northbound;

/// <summary>A session as the northbound API knows it (from the HSE's events): never shown with its IMSI.</summary>
/// <param name="EasId">The EAS Id (enterprise or reserved channel) the session names.</param>
/// <param name="Imsi">The subscriber (used only to find the enterprise's external identifier).</param>
/// <param name="Mode">Where its user plane ends.</param>
/// <param name="Service">Its service.</param>
/// <param name="Suite">Its suite.</param>
/// <param name="KeyId">Its current Key ID.</param>
public sealed record NorthboundSessionInfo(string EasId, string Imsi, SessionMode Mode, BestService Service, string Suite, byte KeyId);

/// <summary>
/// Turns the HSE's session events into the enterprises' event notifications (SESSION_STARTED, SESSION_TERMINATED,
/// KEYS_REFRESHED, DELIVERY_STATUS) in their durable outbox, and tracks each downlink, push and session request to a
/// final status: DELIVERED when the device's Data Ack comes (the engine reports it by the delivery's token),
/// EXPIRED after its maximum latency or time to live, FAILED with a cause. Runs off the HSE's event loop.
/// </summary>
/// <remarks>
/// On a cluster every node runs one, fed with the events of the shards it runs: a delivery's token is in the store, so
/// the node that sees the device's Data Ack finds the delivery whichever node sent it; a session's end is described by
/// its shard. Only the node that leads (<see cref="NorthboundOptions.Leads"/>) expires deliveries at their deadlines.
/// </remarks>
public sealed class NorthboundEvents : IAsyncDisposable
{
    /// <summary>Statuses a delivery leaves only once.</summary>
    public static readonly IReadOnlyList<string> Waiting = ["BUFFERED", "REQUESTED"];

    private readonly IHseSessions _hse;
    private readonly IHseStateStore _state;
    private readonly NorthboundStore _store;
    private readonly NotificationSender _sender;
    private readonly TimeProvider _time;
    private readonly Func<bool> _leads;
    private readonly bool _cluster;
    private readonly Channel<SessionEvent> _queue = Channel.CreateBounded<SessionEvent>(new BoundedChannelOptions(262_144) { SingleReader = true, FullMode = BoundedChannelFullMode.DropWrite });
    private readonly ConcurrentDictionary<uint, NorthboundSessionInfo> _sessions = new();
    private readonly HashSet<string> _orphans = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stop = new();
    private Task _loop = Task.CompletedTask;
    private Task _timer = Task.CompletedTask;
    private long _lost;

    /// <summary>Creates the tracker; <see cref="Start"/> starts it.</summary>
    /// <param name="hse">The HSE's sessions (one host's, or a cluster's shards).</param>
    /// <param name="state">The HSE's state store.</param>
    /// <param name="store">The northbound store.</param>
    /// <param name="sender">The notifications' sender.</param>
    /// <param name="time">The clock.</param>
    /// <param name="leads">Whether this HSE expires deliveries now (null: always).</param>
    /// <param name="cluster">
    /// Whether this is a node of a cluster. One HSE that starts knows every session and every delivery: the deliveries
    /// waiting then lost their messages with its engine's queues. A node starting says nothing of the others' deliveries,
    /// and sees only the events of the shards it runs.
    /// </param>
    public NorthboundEvents(IHseSessions hse, IHseStateStore state, NorthboundStore store, NotificationSender sender, TimeProvider time, Func<bool>? leads = null, bool cluster = false)
    {
        _hse = hse;
        _state = state;
        _store = store;
        _sender = sender;
        _time = time;
        _leads = leads ?? (() => true);
        _cluster = cluster;
    }

    /// <summary>The northbound store.</summary>
    public NorthboundStore Store => _store;

    /// <summary>The highest event sequence number: a new EVENTS subscription starts after it.</summary>
    public long LastEvent() => _store.LastEvent();

    /// <summary>Events that did not fit the queue (counted, never blocking the HSE).</summary>
    public long Lost => Interlocked.Read(ref _lost);

    /// <summary>Learns the sessions the HSE restored and starts following its events and the deliveries' deadlines.</summary>
    public void Start()
    {
        // Deliveries waiting from before a restart lost their messages: they end at their deadline, said so.
        foreach (var waiting in _cluster ? [] : _store.Waiting(["BUFFERED"], 100_000))
        {
            _orphans.Add(waiting.Id);
        }

        _loop = Task.Run(() => LoopAsync(_stop.Token));
        _timer = Task.Run(() => TimerAsync(_stop.Token));
    }

    /// <summary>Takes one of the HSE's events (never blocks).</summary>
    public void OnEvent(SessionEvent e)
    {
        if (!_queue.Writer.TryWrite(e))
        {
            Interlocked.Increment(ref _lost);
        }
    }

    /// <summary>
    /// A live session: one whose events this HSE follows, or else as its engine (a cluster's shard) describes it. What is
    /// described is not kept: only the events of a session's own HSE (or node) start and end what is kept of it.
    /// </summary>
    public async Task<NorthboundSessionInfo?> SessionAsync(uint sessionId)
    {
        if (_sessions.TryGetValue(sessionId, out var known))
        {
            return known;
        }

        return await _hse.DescribeAsync(sessionId).ConfigureAwait(false) is { Overview: { } overview } facts
            ? new NorthboundSessionInfo(facts.EasId, facts.Imsi, overview.Mode, overview.Service, overview.Suite, facts.CurrentKeyId)
            : null;
    }

    /// <summary>
    /// A token for a delivery: the engine reports the device's Data Ack (or the message's loss) by it. Random (never 0),
    /// so that tokens drawn by a cluster's nodes do not collide, and stored before the message goes out.
    /// </summary>
    public long Track(string deliveryId, string enterprise, string kind)
    {
        long token;
        do
        {
            token = BitConverter.ToInt64(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8)) & long.MaxValue;
        }
        while (token == 0);

        _store.AddToken(token, deliveryId, enterprise, kind);
        return token;
    }

    /// <summary>Moves a delivery to a final status and tells the enterprise; false when it was final already.</summary>
    public bool Finish(string enterprise, string deliveryId, string status, string? cause, long sessionId = 0, IReadOnlyList<string>? from = null)
    {
        if (!_store.UpdateDelivery(deliveryId, from ?? Waiting, status, cause, sessionId, _time.GetUtcNow()))
        {
            return false;
        }

        if (status != "PUSHED")
        {
            _store.RemoveTokens(deliveryId);
        }

        if (_store.Delivery(enterprise, deliveryId) is { } delivery)
        {
            Notify(enterprise, DeliveryNotification(delivery));
        }

        return true;
    }

    /// <summary>Appends an event notification to the enterprise's outbox and wakes the sender.</summary>
    public void Notify(string enterprise, JsonObject body)
    {
        ArgumentNullException.ThrowIfNull(body);
        body["at"] = _time.GetUtcNow().ToString("O", CultureInfo.InvariantCulture);
        _store.AppendEvent(enterprise, body.ToJsonString(), _time.GetUtcNow());
        _sender.Pulse();
    }

    /// <summary>A delivery as the API shows it.</summary>
    public static JsonObject DeliveryNotification(NorthboundDelivery d)
    {
        ArgumentNullException.ThrowIfNull(d);
        var body = new JsonObject
        {
            ["type"] = d.Kind == "SESSION_REQUEST" ? "SESSION_REQUEST_STATUS" : "DELIVERY_STATUS",
            ["id"] = d.Id,
            ["kind"] = d.Kind,
            ["externalId"] = d.ExternalId,
            ["status"] = d.Status,
        };
        if (d.Cause is not null)
        {
            body["cause"] = d.Cause;
        }

        if (d.SessionId != 0)
        {
            body["sessionId"] = d.SessionId;
        }

        return body;
    }

    /// <summary>Stops following events.</summary>
    public async ValueTask DisposeAsync()
    {
        // The events already queued are handled (for up to 10 s), then the loops stop.
        _queue.Writer.TryComplete();
        await Task.WhenAny(_loop, Task.Delay(TimeSpan.FromSeconds(10))).ConfigureAwait(false);
        await _stop.CancelAsync().ConfigureAwait(false);
        await _loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await _timer.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _stop.Dispose();
    }

    private static bool IsEnterprise(string easId) => !easId.StartsWith("urn:best:", StringComparison.Ordinal);

    private async Task LoopAsync(CancellationToken stop)
    {
        // The sessions the HSE restored: their ends are notified like any other's. A cluster's node sees the events of the
        // shards it runs only: a session it did not see start is described by its shard when it ends (EndedAsync).
        try
        {
            foreach (var l in _cluster ? [] : await _hse.ListAsync().ConfigureAwait(false))
            {
                _sessions.TryAdd(l.Overview.SessionId, new NorthboundSessionInfo(l.Overview.EasId, l.Imsi, l.Overview.Mode, l.Overview.Service, l.Overview.Suite, l.CurrentKeyId));
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // The host stopped (or a cluster's shard did not answer) before it answered: sessions are learned when first asked.
        }

        await foreach (var e in _queue.Reader.ReadAllAsync(stop).ConfigureAwait(false))
        {
            try
            {
                await HandleAsync(e).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // The store is down (the notification is lost with it; the HSE's own failure handling reports the store), or a
                // cluster's shard did not answer (its node died): the loop goes on with the next event.
            }
        }
    }

    private async Task HandleAsync(SessionEvent e)
    {
        switch (e)
        {
            case SessionEstablished s:
            {
                var imsi = (await _hse.DescribeAsync(s.SessionId).ConfigureAwait(false))?.Imsi;
                if (imsi is null)
                {
                    return;
                }

                var mode = s.Service == BestService.KeyAgreementOnly ? SessionMode.KeyAgreementOnly : s.UeToEasMode ? SessionMode.UeToEas : SessionMode.UeToHse;
                _sessions[s.SessionId] = new NorthboundSessionInfo(s.EasId, imsi, mode, s.Service, s.Suite.Name, s.KeyId);
                if (!IsEnterprise(s.EasId))
                {
                    return;
                }

                var externalId = _state.ExternalIdOf(s.EasId, imsi);
                Notify(s.EasId, new JsonObject
                {
                    ["type"] = "SESSION_STARTED",
                    ["sessionId"] = s.SessionId,
                    ["externalId"] = externalId,
                    ["service"] = HseHost.ServiceName(s.Service),
                    ["mode"] = ModeName(mode),
                    ["suite"] = s.Suite.Name,
                    ["keyId"] = s.KeyId,
                });
                if (externalId is not null)
                {
                    foreach (var request in _store.Waiting(["REQUESTED"], 10_000).Where(r => r.Kind == "SESSION_REQUEST" && r.Enterprise == s.EasId && r.ExternalId == externalId))
                    {
                        Finish(s.EasId, request.Id, "STARTED", null, s.SessionId, ["REQUESTED"]);
                    }
                }

                break;
            }

            case SessionTerminated t when await EndedAsync(t.SessionId).ConfigureAwait(false) is { } ended && IsEnterprise(ended.EasId):
                Notify(ended.EasId, new JsonObject
                {
                    ["type"] = "SESSION_TERMINATED",
                    ["sessionId"] = t.SessionId,
                    ["externalId"] = _state.ExternalIdOf(ended.EasId, ended.Imsi),
                    ["cause"] = t.Cause?.ToString() ?? "None",
                    ["byDevice"] = t.ByPeer,
                });
                break;
            case KeysRefreshed k when await SessionAsync(k.SessionId).ConfigureAwait(false) is { } refreshed:
                _sessions[k.SessionId] = refreshed with { KeyId = k.KeyId };
                if (IsEnterprise(refreshed.EasId))
                {
                    Notify(refreshed.EasId, new JsonObject
                    {
                        ["type"] = "KEYS_REFRESHED",
                        ["sessionId"] = k.SessionId,
                        ["externalId"] = _state.ExternalIdOf(refreshed.EasId, refreshed.Imsi),
                        ["keyId"] = k.KeyId,
                    });
                }

                break;
            case DataAcknowledged { Token: not 0 } acked when _store.Token(acked.Token) is { } delivered:
                // A session request's push reaching the device is not yet the session: it stays REQUESTED.
                if (delivered.Kind != "SESSION_REQUEST")
                {
                    Finish(delivered.Enterprise, delivered.DeliveryId, "DELIVERED", null, acked.SessionId);
                }

                break;
            case DownlinkUndelivered { Token: not 0 } lost when _store.Token(lost.Token) is { } undelivered:
                Finish(undelivered.Enterprise, undelivered.DeliveryId, lost.Reason == DownlinkUndelivered.Expired ? "EXPIRED" : "FAILED", lost.Reason switch
                {
                    DownlinkUndelivered.Expired => ExpiryCause(undelivered.Kind),
                    DownlinkUndelivered.QueueFull => "QUEUE_FULL",
                    _ => "SESSION_ENDED",
                }, lost.SessionId);
                break;
            case DataReceived:
                _sender.Pulse(); // stored uplink for a subscription
                break;
        }
    }

    /// <summary>
    /// What the API knew of a session that ended. A cluster's node may not have seen it start (its shard moved here): the
    /// shard still describes it while it lingers after its end.
    /// </summary>
    private async Task<NorthboundSessionInfo?> EndedAsync(uint sessionId)
    {
        if (_sessions.TryRemove(sessionId, out var known))
        {
            return known;
        }

        return await _hse.DescribeAsync(sessionId).ConfigureAwait(false) is { } facts
            ? new NorthboundSessionInfo(facts.EasId, facts.Imsi, facts.Mode ?? SessionMode.UeToHse, default, string.Empty, facts.CurrentKeyId)
            : null;
    }

    private async Task TimerAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(TimeSpan.FromSeconds(1), _time, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            if (!_leads())
            {
                continue;
            }

            try
            {
                var now = _time.GetUtcNow();
                foreach (var due in _store.Waiting(Waiting, 10_000).Where(d => d.Deadline <= now))
                {
                    var cause = _orphans.Contains(due.Id) ? "UNCONFIRMED_AFTER_RESTART" : ExpiryCause(due.Kind);
                    Finish(due.Enterprise, due.Id, "EXPIRED", cause);
                }
            }
            catch (Exception e) when (e is InvalidOperationException or System.Data.Common.DbException)
            {
                // Tried again at the next second.
            }
        }
    }

    /// <summary>
    /// Why a delivery of <paramref name="kind"/> expired, the same whether the HSE's queue or the API's timer saw the
    /// deadline first: a downlink's maximum latency, a push's time to live, a session request that no session answered.
    /// </summary>
    public static string ExpiryCause(string kind) => kind switch
    {
        "DOWNLINK" => "MAX_LATENCY_EXCEEDED",
        "SESSION_REQUEST" => "NO_SESSION_STARTED",
        _ => "TTL_EXPIRED",
    };

    /// <summary>The API's name of a mode.</summary>
    public static string ModeName(SessionMode mode) => mode switch
    {
        SessionMode.UeToEas => "UE_TO_EAS",
        SessionMode.KeyAgreementOnly => "KEY_AGREEMENT_ONLY",
        _ => "UE_TO_HSE",
    };
}
