using System.Security.Cryptography;
using OpenBest.Crypto;
using OpenBest.Crypto.Aead;
using OpenBest.Crypto.Aka;
using OpenBest.Crypto.Kdf;
using OpenBest.Protocol;

namespace OpenBest.Sessions;

/// <summary>An uplink UP message the HSE forwards unmodified to the EAS (UE-to-EAS mode).</summary>
public sealed record UplinkForwarded(uint SessionId, string EasId, byte KeyId, ReadOnlyMemory<byte> Message) : SessionEvent(SessionId);

/// <summary>
/// A confirmed UE-to-EAS (or key-agreement-only) session's keys for the EAS named by the UE: K_EAS_PSK and
/// what the EAS needs to use it (profile 6.2). The key is secret: <see cref="ToString"/> never shows it.
/// </summary>
public sealed record EasKeysReady(uint SessionId, string EasId, byte KeyId, CipherSuite Suite, BestService Service, int CounterLength, uint EasKeyIdentifier, ReadOnlyMemory<byte> KEasPsk) : SessionEvent(SessionId)
{
    /// <summary>Whether the user plane runs end to end to the EAS (false: key agreement only).</summary>
    public bool UeToEasMode { get; init; }

    /// <summary>The Enterprise Key Identifier the UE was given for this key set (UE-to-EAS mode), or null: the EAS derives K_E2E with that Enterprise Key.</summary>
    public byte[]? EnterpriseKeyIdentifier { get; init; }

    /// <summary>Shows everything but the key.</summary>
    public override string ToString() => $"EasKeysReady(session {SessionId}, {EasId}, key {KeyId}, {Suite.Name}, {Service}, n={CounterLength}, id {EasKeyIdentifier:x8})";
}

/// <summary>A session as the operator's overview shows it: no subscriber identity, no key.</summary>
public sealed record SessionOverview(uint SessionId, bool Suspended, BestService Service, string Suite, SessionMode Mode, string EasId);

/// <summary>Where a session's user plane ends (TS 33.163: the three ways a BEST session is used).</summary>
public enum SessionMode
{
    /// <summary>UE-to-HSE mode: the HSE protects and terminates the user plane (also the no-security channel).</summary>
    UeToHse,

    /// <summary>UE-to-EAS mode: the user plane is protected end to end to the EAS; the HSE forwards it unopened.</summary>
    UeToEas,

    /// <summary>Key agreement only: no EMSDP user plane; the UE and the EAS use K_EAS_PSK in their own protocol.</summary>
    KeyAgreementOnly,
}

/// <summary>Counts of what the HSE dropped or refused (profile section 7: counted, never crashing).</summary>
public sealed class HseCounters
{
    /// <summary>Messages dropped, by reason.</summary>
    public Dictionary<DropReason, long> Dropped { get; } = [];

    /// <summary>Rejects sent, by cause.</summary>
    public Dictionary<Cause, long> RejectsSent { get; } = [];

    /// <summary>Authentication vectors used.</summary>
    public long VectorsUsed { get; internal set; }

    /// <summary>Session timers that failed (and were tried again at the next tick).</summary>
    public long TickFailures { get; internal set; }

    internal void Drop(DropReason reason) => Dropped[reason] = Dropped.GetValueOrDefault(reason) + 1;

    internal void Reject(Cause cause) => RejectsSent[cause] = RejectsSent.GetValueOrDefault(cause) + 1;
}

/// <summary>
/// The HSE side of EMSDP as a sans-IO state machine (profile section 6.2): received bytes, timer ticks
/// and application calls in; bytes to send and events out. One instance owns its sessions; the host
/// calls it from one logical executor at a time.
/// </summary>
public sealed partial class HseEngine : IDisposable
{
    private readonly HseOptions _options;
    private readonly IHseSubscribers _subscribers;
    private readonly TimeProvider _time;
    private readonly ICounterReservation _reservation;
    private readonly Dictionary<uint, HseSession> _sessions = [];
    private readonly Dictionary<string, CachedAnswer> _answers = new(StringComparer.Ordinal);
    private readonly Queue<(uint Id, DateTimeOffset FreeAt)> _released = new();
    private readonly PendingCount _pending = new();
    private readonly Dictionary<string, (long Minute, int Count)> _vectorBudget = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Source, string Imsi), (long Minute, int Count)> _sourceVectorBudget = [];
    private readonly Dictionary<string, int> _rejectsBySource = new(StringComparer.Ordinal);
    private long _budgetPrunedMinute = -1;
    private uint _neverUsed = 1;
    private long _rejectWindow;
    private int _rejectsInWindow;

    /// <summary>Creates an HSE over <paramref name="subscribers"/>.</summary>
    public HseEngine(IHseSubscribers subscribers, HseOptions? options = null, TimeProvider? time = null, ICounterReservation? reservation = null)
    {
        ArgumentNullException.ThrowIfNull(subscribers);
        _subscribers = subscribers;
        _options = options ?? new HseOptions();
        _time = time ?? TimeProvider.System;
        _reservation = reservation ?? NoCounterReservation.Instance;
        if (_options.SessionIdClass.Stride == 0 || _options.SessionIdClass.Offset >= _options.SessionIdClass.Stride)
        {
            throw new ArgumentException("The Session ID class needs 0 <= offset < stride.", nameof(options));
        }

        _neverUsed = AlignSessionId(1);
    }

    /// <summary>The smallest Session ID of this engine's class at or above <paramref name="id"/>.</summary>
    private uint AlignSessionId(uint id)
    {
        var (offset, stride) = _options.SessionIdClass;
        var aligned = (long)id - (id % stride) + offset;
        if (aligned < id)
        {
            aligned += stride;
        }

        if (aligned == 0)
        {
            aligned = stride;
        }

        return (uint)Math.Min(aligned, uint.MaxValue);
    }

    /// <summary>What was dropped and refused.</summary>
    public HseCounters Counters { get; } = new();

    /// <summary>Enterprise Key Identifier lookups that failed (taken as "no change").</summary>
    public long EnterpriseKeyLookupFailures { get; private set; }

    /// <summary>Sessions whose Session Start is sent and not yet confirmed (they live in memory only until confirmed).</summary>
    public int PendingSessions => _pending.Value;

    /// <summary>
    /// Whether a Session Request may start a new session: true unless the engine's sessions are about to go to another host
    /// (a cluster's shard that moves). While false, a new request is dropped, counted as <see cref="DropReason.Deferred"/>,
    /// and the device's retransmission reaches the next host; a pending session's retransmitted request still gets its
    /// answer, so the sessions already started can be confirmed.
    /// </summary>
    public bool AcceptsNewSessions { get; set; } = true;

    /// <summary>Sessions held (any state).</summary>
    public int SessionCount => _sessions.Count;

    /// <summary>Sessions established and not terminated.</summary>
    public int EstablishedCount => _sessions.Values.Count(s => s.State is HseState.Established or HseState.Suspended);

    private DateTimeOffset Now => _time.GetUtcNow();

    /// <summary>The back-off a congestion Reject names (<see cref="HseOptions.CongestionBackOff"/>).</summary>
    public TimeSpan CongestionBackOff => _options.CongestionBackOff;

    /// <summary>The state of a session, or null.</summary>
    public string? StateOf(uint sessionId) => _sessions.TryGetValue(sessionId, out var s) ? s.State.ToString() : null;

    /// <summary>The sessions that have a path, with it (a cluster's shard carries them to the node it moves to).</summary>
    public IReadOnlyList<(uint SessionId, object Path)> Paths() =>
        [.. _sessions.Values.Where(s => !s.Decoy && s.Path is not null).Select(s => (s.Id, s.Path!))];

    /// <summary>
    /// Gives a session that has no path (restored from the store) the one it had before: a cluster's shard that moved,
    /// whose devices' nodes still run. A path the session learned meanwhile stays. Returns whether it was set.
    /// </summary>
    public bool RestorePath(uint sessionId, object path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!_sessions.TryGetValue(sessionId, out var s) || s.Decoy || s.Path is not null)
        {
            return false;
        }

        s.Path = path;
        return true;
    }

    /// <summary>The subscriber and the EAS Id of a session, or null.</summary>
    public (string Imsi, string EasId)? Describe(uint sessionId) =>
        _sessions.TryGetValue(sessionId, out var s) && !s.Decoy ? (s.Imsi, s.Request.EasId) : null;

    /// <summary>The established (or suspended) sessions of a subscriber that name <paramref name="easId"/>, with their modes.</summary>
    public IReadOnlyList<(uint SessionId, SessionMode Mode)> SessionsOf(string imsi, string easId) =>
        [.. _sessions.Values.Where(s => !s.Decoy && s.State is HseState.Established or HseState.Suspended && s.Imsi == imsi && s.Request.EasId == easId).Select(s => (s.Id, ModeOf(s.Selected)))];

    /// <summary>
    /// The established (or suspended) UE-to-HSE sessions that name <paramref name="easId"/> (those whose user plane the HSE
    /// terminates, the no-security channel among them), with their subscribers and services.
    /// </summary>
    public IReadOnlyList<(uint SessionId, string Imsi, BestService Service)> SessionsNaming(string easId) =>
        [.. _sessions.Values.Where(s => !s.Decoy && s.State is HseState.Established or HseState.Suspended && s.Request.EasId == easId && ModeOf(s.Selected) == SessionMode.UeToHse)
            .OrderBy(s => s.Id).Select(s => (s.Id, s.Imsi, s.Selected.Service))];

    /// <summary>
    /// Every established or suspended session as an operator overview: Session ID, state, service, suite, mode and EAS Id
    /// (never the subscriber or a key).
    /// </summary>
    public IReadOnlyList<SessionOverview> Overview() =>
        [.. _sessions.Values.Where(s => !s.Decoy && s.State is HseState.Established or HseState.Suspended).OrderBy(s => s.Id).Select(OverviewOf)];

    /// <summary>One established or suspended session as <see cref="Overview"/> shows it, or null.</summary>
    public SessionOverview? OverviewOf(uint sessionId) =>
        _sessions.TryGetValue(sessionId, out var s) && !s.Decoy && s.State is HseState.Established or HseState.Suspended ? OverviewOf(s) : null;

    private static SessionOverview OverviewOf(HseSession s) =>
        new(s.Id, s.State == HseState.Suspended, s.Selected.Service, s.Suite?.Name ?? "none", ModeOf(s.Selected), s.Request.EasId);

    /// <summary>The mode of a session, or null when it is unknown or not established.</summary>
    public SessionMode? ModeOf(uint sessionId) =>
        _sessions.TryGetValue(sessionId, out var s) && !s.Decoy && s.State is HseState.Established or HseState.Suspended ? ModeOf(s.Selected) : null;

    private static SessionMode ModeOf(HseConfiguration selected) =>
        selected.Service == BestService.KeyAgreementOnly ? SessionMode.KeyAgreementOnly : selected.UeToEasMode ? SessionMode.UeToEas : SessionMode.UeToHse;

    /// <summary>The Enterprise Key Identifier of a session's current key set (UE-to-EAS mode), or null.</summary>
    public byte[]? EnterpriseKeyIdentifierOf(uint sessionId) => _sessions.TryGetValue(sessionId, out var s) ? s.EnterpriseKeyId?.ToArray() : null;

    /// <summary>The current Key ID of a session (0 if none).</summary>
    public byte CurrentKeyIdOf(uint sessionId) => _sessions.TryGetValue(sessionId, out var s) ? s.Keys.CurrentKeyId : (byte)0;

    /// <summary>Feeds one received EMSDP message from <paramref name="path"/>.</summary>
    public StepResult Receive(ReadOnlySpan<byte> message, object? path)
    {
        var result = new StepResult();
        if (HeaderPrefix.TryRead(message, out var prefix) != ParseStatus.Ok)
        {
            Drop(result, 0, DropReason.NotEmsdp);
            return result;
        }

        if (prefix.SessionId == 0)
        {
            if (prefix.Plane == Plane.Control && prefix.KeyId == 0)
            {
                OnSessionRequest(message, prefix, path, result);
            }
            else
            {
                Drop(result, 0, DropReason.Malformed);
            }

            return result;
        }

        if (!_sessions.TryGetValue(prefix.SessionId, out var session) || session.State == HseState.Gone)
        {
            Drop(result, prefix.SessionId, DropReason.UnknownSession);
            // Only a Key ID 0 CP message has a known layout (n = 1, no tag) without its session: answer those.
            if (prefix.Plane == Plane.Control && prefix.KeyId == 0 && EmsdpFrame.TryParse(message, prefix, 1, 0, out var unknown) == ParseStatus.Ok
                && unknown.Body.Length > 0 && unknown.Body[0] != (byte)CommandCode.MessageReject)
            {
                SendUnprotectedReject(result, prefix.SessionId, new MessageReject(Cause.UnknownSession, unknown.Body[0]), message.Length, path);
            }

            return result;
        }

        if (prefix.KeyId == 0)
        {
            OnUnprotected(session, message, prefix, path, result);
        }
        else
        {
            OnProtected(session, message, prefix, path, result);
        }

        return result;
    }

    /// <summary>Runs the timers: confirmation deadlines, retransmissions, grace periods, lingering, queues, caches.</summary>
    public StepResult Tick()
    {
        var result = new StepResult();
        var now = Now;
        foreach (var session in _sessions.Values.ToList())
        {
            try
            {
                TickSession(session, now, result);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // One session's failure (the store down while refreshing its keys) must not stop the others' timers.
                Counters.TickFailures++;
            }
        }

        foreach (var key in _answers.Where(a => a.Value.Expires <= now).Select(a => a.Key).ToList())
        {
            _answers.Remove(key);
        }

        return result;
    }

    /// <summary>
    /// Sends (or, while suspended, queues) a downlink payload on a UE-to-HSE session. A queued payload is sealed only when
    /// it is delivered (profile 6.2 "Suspend / Resume / push").
    /// </summary>
    /// <param name="sessionId">The session.</param>
    /// <param name="payload">The payload.</param>
    /// <param name="ackRequested">Whether to ask the UE for a Data Ack.</param>
    /// <param name="token">
    /// The application's handle for delivery reports, or 0: the UE's Data Ack for the message is reported as
    /// <see cref="DataAcknowledged"/> with this <see cref="DataAcknowledged.Token"/>, and a queued message given up as
    /// <see cref="DownlinkUndelivered"/>. In memory only: a restart forgets the tokens (the queue itself is kept).
    /// </param>
    /// <param name="page">
    /// Reach a suspended device (a network push): on a suspended session with a known path the message is sealed now, with an
    /// Ack requested, and sent to the session's last path, and it also stays queued until the UE's Data Ack for it. A device
    /// that was not reachable gets it again (sealed anew) when it next resumes, within its time to live; the session stays
    /// suspended. Without a path, or on a session that is not suspended, it changes nothing.
    /// </param>
    /// <exception cref="InvalidOperationException">The session is unknown, not established, or carries no HSE user plane.</exception>
    public StepResult SendDownlink(uint sessionId, ReadOnlySpan<byte> payload, bool ackRequested = false, long token = 0, bool page = false) =>
        SendDownlink(sessionId, payload, ackRequested, token, page, timeToLive: null);

    /// <summary>
    /// As <see cref="SendDownlink(uint, ReadOnlySpan{byte}, bool, long, bool)"/>, and a queued message is discarded (reported
    /// "expired" when it has a token) after <paramref name="timeToLive"/> instead of the HSE's default queue time to live: an
    /// application's maximum latency or a push's time to live, so that nothing arrives after it was reported expired and
    /// nothing is given up before it.
    /// </summary>
    public StepResult SendDownlink(uint sessionId, ReadOnlySpan<byte> payload, bool ackRequested, long token, bool page, TimeSpan? timeToLive)
    {
        var result = new StepResult();
        var session = Established(sessionId);
        if (session.Selected.UeToEasMode || session.Selected.Service is BestService.KeyAgreementOnly)
        {
            throw new InvalidOperationException("This session carries no user plane between the UE and the HSE.");
        }

        // Suspended, or restored after a restart and not heard from yet (no path): queue, sealed when delivered.
        if (session.State == HseState.Suspended || session.Path is null)
        {
            var lifetime = timeToLive is { } wanted && wanted > TimeSpan.Zero ? wanted : _options.QueuedDownlinkTimeToLive;
            var queued = new QueuedDownlink(payload.ToArray(), ackRequested, Now + lifetime) { Token = token };
            if (page && session.State == HseState.Suspended && session.Path is not null)
            {
                // The push: sealed now under the current key set, and kept queued until its Data Ack (docs/protocol.md).
                var (keyId, counter) = SendUser(session, payload, ackRequested: true, token, result);
                queued = queued with { AckRequested = true, PagedKeyId = keyId, PagedCounter = counter };
            }

            Enqueue(session, queued, result);
            return result;
        }

        SendUser(session, payload, ackRequested, token, result);
        return result;
    }

    /// <summary>Sends bytes an EAS sealed for a UE-to-EAS session, unmodified, to the session's current path.</summary>
    public StepResult ForwardDownlinkFromEas(uint sessionId, ReadOnlySpan<byte> message)
    {
        var result = new StepResult();
        var session = Established(sessionId);
        if (!session.Selected.UeToEasMode || HeaderPrefix.TryRead(message, out var prefix) != ParseStatus.Ok
            || prefix.SessionId != sessionId || prefix.Plane != Plane.User || session.Keys.Get(prefix.KeyId) is null)
        {
            Drop(result, sessionId, DropReason.UnexpectedInState);
            return result;
        }

        result.Add(message, session.Path);
        return result;
    }

    /// <summary>Starts a key refresh of an established session (profile 6.2: HSE-triggered).</summary>
    public StepResult RefreshKeys(uint sessionId)
    {
        var result = new StepResult();
        StartRefresh(Established(sessionId), result);
        return result;
    }

    /// <summary>Suspends a session from the network side.</summary>
    public StepResult Suspend(uint sessionId)
    {
        var result = new StepResult();
        var session = Established(sessionId);
        SendControl(session, SessionSuspend.Instance, result);
        session.State = HseState.Suspended;
        result.Events.Add(new SessionSuspended(sessionId, ByPeer: false));
        return result;
    }

    /// <summary>Terminates a session (Terminate Request, retransmitted until answered).</summary>
    public StepResult Terminate(uint sessionId, Cause? cause = null)
    {
        var result = new StepResult();
        var session = Established(sessionId);
        var bytes = SendControl(session, new SessionTerminateRequest(cause), result);
        session.State = HseState.Terminating;
        session.Outstanding = new Outstanding(bytes, CommandCode.SessionTerminateRequest, Now + _options.RetransmissionInterval);
        return result;
    }

    /// <summary>Zeroes every key.</summary>
    public void Dispose()
    {
        foreach (var session in _sessions.Values)
        {
            session.Dispose();
        }

        _sessions.Clear();
    }

    private HseSession Established(uint sessionId)
    {
        if (!_sessions.TryGetValue(sessionId, out var session) || session.State is not (HseState.Established or HseState.Suspended))
        {
            throw new InvalidOperationException($"Session {sessionId} is not established.");
        }

        return session;
    }

    private void Drop(StepResult result, uint sessionId, DropReason reason)
    {
        Counters.Drop(reason);
        result.Events.Add(new MessageDropped(sessionId, reason));
    }

    /// <summary>One unprotected Reject to <paramref name="path"/>: within its source's budget, then the global one (profile section 7).</summary>
    private bool TakeRejectToken(object? path)
    {
        var second = Now.ToUnixTimeSeconds();
        if (second != _rejectWindow)
        {
            _rejectWindow = second;
            _rejectsInWindow = 0;
            _rejectsBySource.Clear();
        }

        var source = PeerSource.Of(path);
        var bySource = _rejectsBySource.GetValueOrDefault(source);
        if (bySource >= _options.MaxRejectsPerSourcePerSecond)
        {
            return false;
        }

        if (_rejectsBySource.Count < _options.MaxTrackedSources)
        {
            _rejectsBySource[source] = bySource + 1;
        }

        return ++_rejectsInWindow <= _options.MaxRejectsPerSecond;
    }

    /// <summary>An unprotected Reject: never longer than what it answers, rate limited (profile section 7).</summary>
    private void SendUnprotectedReject(StepResult result, uint sessionId, MessageReject reject, int answeredLength, object? path)
    {
        Span<byte> buffer = stackalloc byte[Wire.MaxMessage];
        var length = EmsdpProtection.WriteUnprotected(sessionId, reject.Encode(), buffer);
        if (length > answeredLength || !TakeRejectToken(path))
        {
            Counters.Drop(DropReason.RateLimited);
            return;
        }

        Counters.Reject(reject.Cause);
        result.Add(buffer[..length], path);
    }

    private static byte[] SendControl(HseSession session, ControlCommand command, StepResult result, KeySet? keys = null, ReadOnlySpan<byte> requestHash = default)
    {
        var bytes = session.Selected.Service == BestService.None
            ? Unprotected(session.Id, Plane.Control, command.Encode())
            : session.Keys.SealControl(keys ?? session.Keys.Current!, session.Id, session.N, command, requestHash);
        session.Touch();
        result.Add(bytes, session.Path);
        return bytes;
    }

    /// <summary>A message of the no-security channel: Key ID 0, n = 1, counter 0, no tag (profile section 2).</summary>
    private static byte[] Unprotected(uint sessionId, Plane plane, ReadOnlySpan<byte> body)
    {
        Span<byte> buffer = stackalloc byte[Wire.MaxMessage];
        var length = new EmsdpHeader(plane, 0, false, sessionId, 1, 0).Write(buffer);
        body.CopyTo(buffer[length..]);
        return buffer[..(length + body.Length)].ToArray();
    }

    /// <summary>Seals and sends a downlink UP message; returns its (Key ID, counter), (0, 0) on the no-security channel.</summary>
    private (byte KeyId, ulong Counter) SendUser(HseSession session, ReadOnlySpan<byte> payload, bool ackRequested, long token, StepResult result)
    {
        if (session.Selected.Service == BestService.None)
        {
            // No counter and no tag: nothing to acknowledge against (docs/protocol.md, the no-security channel).
            session.Touch();
            result.Add(Unprotected(session.Id, Plane.User, payload), session.Path);
            return (0, 0);
        }

        var keys = session.Keys.Current!;
        Span<byte> buffer = stackalloc byte[Wire.MaxMessage];
        var counter = session.Keys.NextCounter(keys, Plane.User, session.Id, session.N);
        session.Touch();
        ackRequested |= SessionKeys.MustRequestAck(counter, session.Keys.LastAcked(keys.KeyId), session.N);
        var length = EmsdpProtection.SealUser(keys, Direction.Downlink, session.Id, session.N, counter, ackRequested, payload, buffer);
        result.Add(buffer[..length], session.Path);
        if (token != 0)
        {
            session.Tokens.Add(keys.KeyId, counter, token);
        }

        if (keys.MessagesSealed >= SessionKeys.UsageLimit(keys.Suite) && session.Keys.PendingKeyId is null)
        {
            StartRefresh(session, result);
        }

        return (keys.KeyId, counter);
    }

    /// <summary>Queues a downlink message; a full queue gives up its oldest.</summary>
    private void Enqueue(HseSession session, QueuedDownlink queued, StepResult result)
    {
        if (session.QueuedCount >= _options.MaxQueuedDownlink && session.Queue.TryDequeue(out var oldest))
        {
            Drop(result, session.Id, DropReason.RateLimited);
            GiveUp(session, oldest, DownlinkUndelivered.QueueFull, result);
        }

        session.Queue.Enqueue(queued);
        session.Touch();
    }

    /// <summary>A queued message that will not be delivered: its token (if any) is reported once, and forgotten.</summary>
    private static void GiveUp(HseSession session, QueuedDownlink queued, string reason, StepResult result)
    {
        if (queued.Token != 0)
        {
            session.ForgetToken(queued.Token);
            result.Events.Add(new DownlinkUndelivered(session.Id, queued.Token, reason));
        }
    }

    /// <summary>
    /// The session ended: every token still queued or sent and not acknowledged is reported as <see cref="DownlinkUndelivered.SessionEnded"/>,
    /// once, and the queue is emptied.
    /// </summary>
    private static void EndDeliveries(HseSession session, StepResult result)
    {
        var tokens = new List<long>();
        while (session.QueuedCount > 0 && session.Queue.TryDequeue(out var queued))
        {
            if (queued.Token != 0)
            {
                tokens.Add(queued.Token);
            }

            session.Touch();
        }

        if (session.HasTokens)
        {
            tokens.AddRange(session.Tokens.Tokens);
            session.Tokens.Clear();
        }

        foreach (var token in tokens.Distinct())
        {
            result.Events.Add(new DownlinkUndelivered(session.Id, token, DownlinkUndelivered.SessionEnded));
        }
    }

    private sealed record CachedAnswer(byte[] Message, DateTimeOffset Expires);

    private sealed record Outstanding(byte[] Message, CommandCode Code, DateTimeOffset NextSend, int Retries = 0);

    private enum HseState
    {
        New,
        StartSent,
        Established,
        Suspended,
        Terminating,
        Terminated,
        Gone,
    }

    /// <summary>Sessions in "Session Start sent", kept as a count so admission control costs nothing.</summary>
    private sealed class PendingCount
    {
        public int Value { get; set; }
    }

    private sealed class HseSession(uint id, ICounterReservation reservation, PendingCount pending, HashSet<uint> dirty) : IDisposable
    {
        private HseState _state;

        public uint Id { get; } = id;

        public HseState State
        {
            get => _state;
            set
            {
                pending.Value += (value == HseState.StartSent ? 1 : 0) - (_state == HseState.StartSent ? 1 : 0);
                _state = value;
                dirty.Add(Id);
            }
        }

        /// <summary>Whether the host holds this session's state (so its end must be written too).</summary>
        public bool Persisted { get; set; }

        /// <summary>After a restore, Data Acks that may be sealed anew for messages accepted before the restart.</summary>
        public int RestoredAckBudget { get; set; }

        /// <summary>The key set and highest UP counter restored: only messages at or below it get a new Ack.</summary>
        public byte RestoredKeyId { get; set; }

        /// <summary>See <see cref="RestoredKeyId"/>.</summary>
        public long RestoredHighest { get; set; } = -1;

        /// <summary>Marks the session's durable state as changed.</summary>
        public void Touch() => dirty.Add(Id);

        public string Imsi { get; set; } = string.Empty;

        public bool Decoy { get; set; }

        public SessionRequest Request { get; set; } = null!;

        public byte[] RequestHash { get; set; } = [];

        public byte[]? EasPsk { get; set; }

        /// <summary>The Enterprise Key Identifier of the current key set (UE-to-EAS mode), or null.</summary>
        public byte[]? EnterpriseKeyId { get; set; }

        /// <summary>The Enterprise Key Identifier named in the Manage Keys Request in flight, or null.</summary>
        public byte[]? PendingEnterpriseKeyId { get; set; }

        /// <summary>A refresh was asked for while another was in flight (or its Key ID not yet free): it runs when it can.</summary>
        public bool RefreshAgain { get; set; }

        public HseConfiguration Selected { get; set; }

        public CipherSuite? Suite { get; set; }

        public int N { get; set; } = 1;

        public SessionKeys Keys { get; } = new(reservation, Direction.Downlink);

        public object? Path { get; set; }

        public DateTimeOffset Deadline { get; set; }

        public bool ResyncDone { get; set; }

        public byte[] CurrentRand { get; set; } = [];

        public byte[]? StartMessage { get; set; }

        public byte[]? PendingRand { get; set; }

        public bool RefreshResyncDone { get; set; }

        public Outstanding? Outstanding { get; set; }

        public byte[]? TerminateResponse { get; set; }

        /// <summary>Downlink queued while suspended (created on first use: most sessions never queue).</summary>
        public Queue<QueuedDownlink> Queue => _queue ??= new();

        public int QueuedCount => _queue?.Count ?? 0;

        /// <summary>The Data Acks sealed (created on first use).</summary>
        public AckCache Acks => _acks ??= new();

        private Queue<QueuedDownlink>? _queue;

        private AckCache? _acks;

        private DownlinkTokens? _tokens;

        /// <summary>The application's tokens of the downlink sealed with one, by (Key ID, counter) (created on first use).</summary>
        public DownlinkTokens Tokens => _tokens ??= new();

        public bool HasTokens => _tokens is { Count: > 0 };

        /// <summary>Forgets every message sealed with <paramref name="token"/>: its delivery is no longer reported.</summary>
        public void ForgetToken(long token) => _tokens?.Forget(token);

        public long ForwardSecond { get; set; }

        public int ForwardsThisSecond { get; set; }

        /// <summary>UE-to-EAS mode: the forwarded (unverified) counters per Key ID, for the "forwarded" Acks; a new key set starts at 0.</summary>
        public ReplayWindow[]? ForwardWindows { get; set; }

        public DateTimeOffset? KeyExpiry { get; set; }

        public void Dispose()
        {
            Keys.Dispose();
            if (EasPsk is not null)
            {
                CryptographicOperations.ZeroMemory(EasPsk);
            }
        }
    }
}
