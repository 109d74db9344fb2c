using System.Threading.Channels;
using OpenBest.Bearers;
using OpenBest.Sessions;
using OpenBest.Storage;

namespace OpenBest.Hse;

/// <summary>
/// Runs an <see cref="HseEngine"/> over bearers: every received message, timer tick and application call is
/// a work item on one bounded queue that a single executor drains, so the engine has one owner at a time.
/// When the queue is full, received messages are dropped and counted before any crypto runs.
/// </summary>
/// <remarks>
/// With a state store, the executor commits in groups: it runs the items waiting (up to
/// <see cref="MaxBatch"/>), writes what they changed (sessions with their counters and replay windows,
/// accepted uplink, outbox) in one transaction, and only then sends their messages and publishes their
/// events. A crash therefore never loses an acknowledged message, and no counter is used before it is durable
/// (profile section 3). If the store keeps failing, the host stops rather than run on unrecorded state.
/// </remarks>
public sealed class HseHost : IAsyncDisposable
{
    private readonly HseEngine _engine;
    private readonly IReadOnlyList<IBearer> _bearers;
    private readonly TimeSpan _tick;
    private readonly Channel<WorkItem> _work;
    private readonly Channel<SessionEvent> _events = Channel.CreateUnbounded<SessionEvent>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _stop = new();
    private readonly CancellationTokenSource _executorStop = new();
    private Task _executor = Task.CompletedTask;
    private readonly IHseStateStore? _state;
    private readonly HseBatch _batch = new();
    private readonly List<(string Imsi, EasKeysReady Keys)> _keysToKeep = [];
    private readonly List<StepResult> _steps = [];
    private readonly List<(ReadOnlyMemory<byte> Message, BearerPath Path)> _datagrams = [];
    private readonly List<(TaskCompletionSource<StepResult>? Done, StepResult Step)> _waiting = [];
    private uint _savedNextSessionId;
    private readonly List<Task> _tasks = [];
    private long _received;
    private long _sent;
    private long _overloaded;
    private long _refused;
    // At most 100 congestion Rejects a second, whichever thread refuses (readers of several bearers).
    private readonly System.Threading.RateLimiting.FixedWindowRateLimiter _refusals = new(new() { PermitLimit = 100, Window = TimeSpan.FromSeconds(1), QueueLimit = 0 });
    private long _errors;
    private long _commits;
    private readonly TaskCompletionSource _faulted = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Creates a host; call <see cref="Start"/> to run it.</summary>
    /// <param name="engine">The engine; the host owns it from now on.</param>
    /// <param name="bearers">The listeners.</param>
    /// <param name="tick">How often timers run (1 s).</param>
    /// <param name="queue">Work items queued at most (admission control; 65 536).</param>
    /// <param name="state">Where sessions, uplink and the outbox are kept (group commit); null keeps nothing.</param>
    public HseHost(HseEngine engine, IReadOnlyList<IBearer> bearers, TimeSpan? tick = null, int queue = 65_536, IHseStateStore? state = null)
    {
        _engine = engine;
        _state = state;
        _bearers = bearers;
        _tick = tick ?? TimeSpan.FromSeconds(1);
        _work = Channel.CreateBounded<WorkItem>(new BoundedChannelOptions(queue) { SingleReader = true, FullMode = BoundedChannelFullMode.DropWrite },
            dropped =>
            {
                Interlocked.Increment(ref _overloaded);
                dropped.Done?.TrySetException(new InvalidOperationException("The HSE is overloaded: the work queue is full."));
                if (dropped.Received.Path is { } path)
                {
                    Refuse(dropped.Received.Message, path);
                }
            });
    }

    /// <summary>Session events, for the application (northbound delivery, EAS interface, metrics).</summary>
    public ChannelReader<SessionEvent> Events => _events.Reader;

    /// <summary>Messages received from all bearers.</summary>
    public long Received => Interlocked.Read(ref _received);

    /// <summary>Messages sent.</summary>
    public long Sent => Interlocked.Read(ref _sent);

    /// <summary>Messages refused because the work queue was full.</summary>
    public long Overloaded => Interlocked.Read(ref _overloaded);

    /// <summary>Of those, Session Requests answered with a congestion Reject (cause 0x0D, the engine's back-off).</summary>
    public long Refused => Interlocked.Read(ref _refused);

    /// <summary>Work items or sends that failed (storage unavailable, a socket error); the host goes on.</summary>
    public long Errors => Interlocked.Read(ref _errors);

    /// <summary>Work items run together and committed in one transaction at most (1024: under load one fsync serves that many messages; when idle a batch is whatever is waiting).</summary>
    public int MaxBatch { get; init; } = 1024;

    /// <summary>EAS Ids whose sessions' messages are not stored as uplink (the converter's TLS services: a stream, relayed at once).</summary>
    public IReadOnlySet<string> UnstoredEasIds { get; init; } = new HashSet<string>();

    /// <summary>
    /// In a cluster: the shard and epoch this host's engine runs under. Every batch is then written only while the epoch is
    /// the shard's newest, including batches that change nothing but send something; an overtaken epoch stops the host
    /// before anything of its batch leaves.
    /// </summary>
    public ShardFence? Fence
    {
        get => _batch.Fence;
        init => _batch.Fence = value;
    }

    /// <summary>
    /// How long the host goes on trying to commit a batch while the store fails (a database failing over to its standby)
    /// before it stops; at least four attempts over about 0.75 s are made in any case. Default 1 s.
    /// </summary>
    public TimeSpan StoreOutageLimit { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Transactions committed.</summary>
    public long Commits => Interlocked.Read(ref _commits);

    /// <summary>Stored sessions <see cref="Restore()"/> could not read (deleted).</summary>
    public int Unreadable { get; private set; }

    /// <summary>Set when the store failed for good and the host stopped.</summary>
    public Task Faulted => _faulted.Task;

    /// <summary>
    /// Restores the sessions a previous run stored, and the Session ID high-water mark; call before <see cref="Start"/>.
    /// </summary>
    /// <returns>The number of sessions restored.</returns>
    public int Restore() => _state is null ? 0 : Restore(_state.LoadSessions(), _state.LoadNextSessionId());

    /// <summary>Restores <paramref name="sessions"/> (a cluster shard's) and resumes Session IDs at <paramref name="nextSessionId"/>; call before <see cref="Start"/>.</summary>
    /// <returns>The number of sessions restored.</returns>
    public int Restore(IReadOnlyList<HseSessionSnapshot> sessions, uint nextSessionId)
    {
        ArgumentNullException.ThrowIfNull(sessions);
        if (_state is null)
        {
            return 0;
        }

        var restored = 0;
        var unreadable = new List<uint>();
        foreach (var snapshot in sessions)
        {
            try
            {
                _engine.Restore(snapshot);
                restored++;
            }
            catch (InvalidDataException e)
            {
                // One state this program cannot read must not keep the HSE down: it is counted and deleted (its UE
                // starts a new session), and the others are restored.
                Failed(e);
                unreadable.Add(snapshot.SessionId);
            }
            finally
            {
                System.Security.Cryptography.CryptographicOperations.ZeroMemory(snapshot.State);
            }
        }

        _engine.ResumeSessionIdsAt(nextSessionId);
        _savedNextSessionId = _engine.NextSessionId;
        _engine.TakeChanges(_batch.Saved, _batch.Ended);
        _batch.Clear();
        if (unreadable.Count > 0)
        {
            _batch.Ended.AddRange(unreadable);
            _state.Commit(_batch);
            _batch.Clear();
        }

        Unreadable = unreadable.Count;
        return restored;
    }

    /// <summary>The type of the last failure (never its message, which could name a subscriber), or null.</summary>
    public string? LastError { get; private set; }

    /// <summary>Starts the executor, the bearer readers and the timer.</summary>
    public void Start()
    {
        _executor = Task.Run(ExecutorAsync);
        foreach (var bearer in _bearers)
        {
            _tasks.Add(Task.Run(() => ReadAsync(bearer)));
        }

        _tasks.Add(Task.Run(TimerAsync));
    }

    /// <summary>Runs an application call (e.g. <see cref="HseEngine.SendDownlink(uint, ReadOnlySpan{byte}, bool, long, bool)"/>) on the executor.</summary>
    public Task<StepResult> InvokeAsync(Func<HseEngine, StepResult> call)
    {
        // The caller's task completes once the step is committed and its messages sent (or fails with the call).
        var done = new TaskCompletionSource<StepResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        var item = new WorkItem(
            engine =>
            {
                try
                {
                    return call(engine);
                }
                catch (Exception e)
                {
                    done.TrySetException(e);
                    return new StepResult();
                }
            },
            done);
        if (!_work.Writer.TryWrite(item))
        {
            done.TrySetException(new InvalidOperationException("The HSE is stopping."));
        }

        return done.Task;
    }

    /// <summary>Reads something of the engine on the executor (the engine has one owner at a time).</summary>
    public async Task<T> QueryAsync<T>(Func<HseEngine, T> query)
    {
        ArgumentNullException.ThrowIfNull(query);
        var value = default(T)!;
        await InvokeAsync(engine =>
        {
            value = query(engine);
            return new StepResult();
        }).ConfigureAwait(false);
        return value;
    }

    /// <summary>
    /// Stops the host gracefully: the bearers' readers and the timer stop, the executor runs and commits what is
    /// queued (for at most 10 s), then the engine is disposed (zeroing its keys).
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await Task.WhenAll(_tasks).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
        {
        }

        _work.Writer.TryComplete();
        try
        {
            await _executor.WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            await _executorStop.CancelAsync().ConfigureAwait(false);
            await _executor.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
        finally
        {
            _events.Writer.TryComplete();
            _engine.Dispose();
            _stop.Dispose();
            _executorStop.Dispose();
            _refusals.Dispose();
        }
    }

    /// <summary>One thing for the executor: a received message (no closure, no object of its own), a tick, or an application call.</summary>
    private readonly record struct WorkItem(Func<HseEngine, StepResult>? Call, TaskCompletionSource<StepResult>? Done, ReceivedMessage Received = default, bool IsTick = false)
    {
        public StepResult Run(HseEngine engine) => Call is { } call ? call(engine) : IsTick ? engine.Tick() : engine.Receive(Received.Message.Span, Received.Path);
    }

    /// <summary>
    /// A message the full work queue refused (the host waits for its store, or cannot keep up): a Session Request gets a
    /// congestion Reject with the engine's back-off (at most 100 a second, never longer than the request); anything else is
    /// dropped, counted, and comes again with its sender's retransmission. Never lost silently.
    /// </summary>
    private void Refuse(ReadOnlyMemory<byte> message, BearerPath path)
    {
        using var permit = _refusals.AttemptAcquire();
        if (permit.IsAcquired && HseEngine.CongestionRejectFor(message.Span, _engine.CongestionBackOff) is { } reject)
        {
            Interlocked.Increment(ref _refused);
            _ = SendRefusalAsync(path, reject);
        }
    }

    private static async Task SendRefusalAsync(BearerPath path, byte[] reject)
    {
        try
        {
            await path.SendAsync(reject).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // The path is gone: its device retransmits.
        }
    }

    private void Failed(Exception e)
    {
        Interlocked.Increment(ref _errors);
        LastError = e.GetType().Name;
    }

    private async Task ReadAsync(IBearer bearer)
    {
        try
        {
            await foreach (var received in bearer.Received.ReadAllAsync(_stop.Token).ConfigureAwait(false))
            {
                Interlocked.Increment(ref _received);
                _work.Writer.TryWrite(new WorkItem(null, null, received));
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task TimerAsync()
    {
        using var timer = new PeriodicTimer(_tick);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
            {
                _work.Writer.TryWrite(new WorkItem(null, null, IsTick: true));
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task ExecutorAsync()
    {
        try
        {
            while (await _work.Reader.WaitToReadAsync(_executorStop.Token).ConfigureAwait(false))
            {
                _steps.Clear();
                _waiting.Clear();
                while (_steps.Count < MaxBatch && _work.Reader.TryRead(out var item))
                {
                    try
                    {
                        var step = item.Run(_engine);
                        Collect(step);
                        _steps.Add(step);
                        _waiting.Add((item.Done, step));
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        // One failing item (storage down, a row sealed under another key) must not stop the HSE.
                        Failed(e);
                        item.Done?.TrySetException(e);
                    }
                }

                if (!await CommitAsync().ConfigureAwait(false))
                {
                    FailWaiting(new InvalidOperationException("The HSE's store failed: the HSE stopped."));
                    return;
                }

                await PublishAsync().ConfigureAwait(false);

                foreach (var (done, step) in _waiting)
                {
                    done?.TrySetResult(step);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (Exception e)
        {
            // Anything else (a state that does not serialise) ends the executor: say so, never hang.
            Failed(e);
            _faulted.TrySetResult();
            _work.Writer.TryComplete();
            _events.Writer.TryComplete();
        }
        finally
        {
            FailWaiting(new InvalidOperationException("The HSE is stopping."));
        }
    }

    /// <summary>Fails the calls of the batch in hand and of every item still queued.</summary>
    private void FailWaiting(Exception reason)
    {
        foreach (var (done, _) in _waiting)
        {
            done?.TrySetException(reason);
        }

        _waiting.Clear();
        while (_work.Reader.TryRead(out var item))
        {
            item.Done?.TrySetException(reason);
        }
    }

    /// <summary>
    /// What a step gives the store, with its session's owner read right after the step ran: a session that a later item of
    /// the same batch ends (a Terminate right behind a Session Start Confirmation or a message) is gone by commit time, and
    /// its uplink, outbox items and PSKs must be kept all the same.
    /// </summary>
    private void Collect(StepResult step)
    {
        if (_state is null)
        {
            return;
        }

        foreach (var e in step.Events)
        {
            switch (e)
            {
                case DataReceived data when _engine.Describe(data.SessionId) is { } who && !UnstoredEasIds.Contains(who.EasId):
                    _batch.Uplinks.Add(new UplinkToStore(data.SessionId, who.Imsi, who.EasId, data.KeyId, data.Counter, data.Payload, DateTimeOffset.UtcNow));
                    break;
                case UplinkForwarded forwarded:
                    // With its subscriber: the message can still be delivered (external id, keys) after its session ended.
                    _batch.Outbox.Add(new OutboxItem(forwarded.EasId, forwarded.SessionId, forwarded.Message, _engine.Describe(forwarded.SessionId)?.Imsi));
                    break;
                case EasKeysReady keys when _engine.Describe(keys.SessionId) is { } owner:
                    _keysToKeep.Add((owner.Imsi, keys));
                    break;
            }
        }
    }

    /// <summary>Writes what the batch changed; false when the store failed for good (the host then stops).</summary>
    private async Task<bool> CommitAsync()
    {
        if (_state is null)
        {
            _engine.TakeChanges(_batch.Saved, _batch.Ended);
            _batch.Clear();
            return true;
        }

        _engine.TakeChanges(_batch.Saved, _batch.Ended);
        if (_engine.NextSessionId != _savedNextSessionId)
        {
            _batch.NextSessionId = _engine.NextSessionId;
        }

        // PSKs to keep count too: a key-agreement-only session confirmed and ended in one batch changes no stored session.
        // A fenced host checks its epoch before it sends anything, even when nothing changed.
        if (_batch.IsEmpty && _keysToKeep.Count == 0 && (_batch.Fence is null || !_steps.Exists(s => s.Send.Count > 0)))
        {
            return true;
        }

        // One token for every attempt of this batch: a commit whose connection dropped during COMMIT may have succeeded,
        // and the store recognises its own token instead of writing the batch twice.
        _batch.CommitToken = Guid.NewGuid();
        var outage = System.Diagnostics.Stopwatch.StartNew();
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                // K_EAS_PSK of each confirmed session is kept (sealed; the last three per session) before the
                // confirmation's answer leaves, so an EAS can fetch it as soon as the UE talks to it.
                while (_keysToKeep.Count > 0)
                {
                    var (imsi, keys) = _keysToKeep[0];
                    var psk = keys.KEasPsk.ToArray();
                    try
                    {
                        _state.SavePsk(new PastPsk(imsi, keys.EasId, keys.EasKeyIdentifier, keys.SessionId, keys.KeyId, keys.Suite.Id,
                            ServiceName(keys.Service), keys.CounterLength, keys.UeToEasMode, psk, DateTimeOffset.UtcNow, keys.EnterpriseKeyIdentifier));
                    }
                    finally
                    {
                        System.Security.Cryptography.CryptographicOperations.ZeroMemory(psk);
                    }

                    _keysToKeep.RemoveAt(0);
                    _state.Audit("key-created", keys.EasId, string.Create(System.Globalization.CultureInfo.InvariantCulture, $"session {keys.SessionId}"), keys.EasKeyIdentifier);
                }

                _state.Commit(_batch);
                Interlocked.Increment(ref _commits);
                if (_batch.NextSessionId != 0)
                {
                    _savedNextSessionId = _batch.NextSessionId;
                }

                _batch.Clear();
                return true;
            }
            catch (Exception e) when (e is not OperationCanceledException and not StoreFencedException && (attempt < 4 || outage.Elapsed < StoreOutageLimit))
            {
                // The store is away (a database failing over): the batch waits, its messages unsent, and is tried again with
                // back-off up to a second; what arrives meanwhile waits in the work queue, or is refused and counted when it is full.
                Failed(e);
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(1000, 50 << Math.Min(attempt, 5))), _executorStop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // Nothing of this batch was sent: the devices retransmit to a restarted HSE, which has the last good state.
                Failed(e);
                _batch.Clear();
                _keysToKeep.Clear();
                _faulted.TrySetResult();
                _work.Writer.TryComplete();
                _events.Writer.TryComplete();
                return false;
            }
        }
    }

    /// <summary>The interface's name of a service.</summary>
    public static string ServiceName(Protocol.BestService service) => service switch
    {
        Protocol.BestService.KeyAgreementOnly => "key-agreement-only",
        Protocol.BestService.Integrity => "integrity",
        Protocol.BestService.None => "none",
        _ => "confidential",
    };

    /// <summary>The batch's events, then its messages: datagrams of a batched UDP bearer leave in one system call.</summary>
    private async Task PublishAsync()
    {
        _datagrams.Clear();
        foreach (var step in _steps)
        {
            foreach (var e in step.Events)
            {
                _events.Writer.TryWrite(e);
            }

            foreach (var send in step.Send)
            {
                if (send.Path is not BearerPath path)
                {
                    continue;
                }

                if (path.Bearer is UdpBearer { IsBatched: true })
                {
                    _datagrams.Add((send.Message, path));
                    continue;
                }

                try
                {
                    // Bearers never block here: UDP sends a datagram, TCP queues to the connection's writer.
                    await path.SendAsync(send.Message, _executorStop.Token).ConfigureAwait(false);
                    Interlocked.Increment(ref _sent);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    Failed(e);
                }
            }
        }

        if (_datagrams.Count == 0)
        {
            return;
        }

        foreach (var group in _datagrams.GroupBy(d => d.Path.Bearer))
        {
            try
            {
                await ((UdpBearer)group.Key).SendManyAsync([.. group], _executorStop.Token).ConfigureAwait(false);
                Interlocked.Add(ref _sent, group.Count());
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                Failed(e);
            }
        }
    }
}
