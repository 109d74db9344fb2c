using System.Data.Common;
using System.Globalization;
using System.Threading.Channels;
using OpenBest.Sessions;
using OpenBest.Storage;

namespace OpenBest.Hse.Northbound.Dashboard;

/// <summary>
/// What the operator dashboard shows, sampled from the HSE (<see cref="IHseSessions"/>: one host, or every shard of a
/// cluster): the sessions, the messages received and sent, the session events counted per sample interval for the whole HSE and per EAS Id, and
/// the audit log without subjects or key identifiers. It keeps the last hour of samples and publishes a new
/// <see cref="DashboardState"/> at each sample and about a second after the sessions change.
/// </summary>
/// <remarks>
/// <see cref="OnEvent"/> only writes to a bounded queue (65 536 events; when full, events are counted as lost, never
/// waited for), so the HSE's event loop is never held up; one loop counts them and another samples.
/// The sample interval is 10 s unless given, or unless the environment variable <c>BEST_DASHBOARD_SAMPLE_SECONDS</c>
/// sets it (seconds, 0.1 to 3600, e.g. 1 for tests that watch the charts move): it overrides the constructor's value.
/// On a cluster, the sessions, message counts and session events are the whole cluster's: its shards count their events
/// (<see cref="DashboardCounter"/>) and every node's feed takes the differences between samples.
/// </remarks>
public sealed class DashboardFeed : IAsyncDisposable
{
    /// <summary>The environment variable that overrides the sample interval, in seconds (0.1 to 3600).</summary>
    public const string SampleSecondsVariable = "BEST_DASHBOARD_SAMPLE_SECONDS";

    /// <summary>How far back the charts go: one hour.</summary>
    public static readonly TimeSpan Window = TimeSpan.FromHours(1);

    /// <summary>Audit lines read from the store at each refresh (2000: enough for every enterprise's view to show its own newest).</summary>
    internal const int AuditLines = 2000;

    /// <summary>Session events waiting to be counted at most (65 536); past it they are counted as lost.</summary>
    internal const int QueueLimit = 65_536;

    // Session changes come in bursts (a fleet reconnecting): one refresh a second at most.
    private static readonly TimeSpan Debounce = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan TimerSlack = TimeSpan.FromMilliseconds(20);

    // The overview waits its turn on the HSE's executor: behind a full work queue it may take seconds, and an executor
    // that stopped (the store failed for good) never answers.
    private static readonly TimeSpan QueryTimeout = TimeSpan.FromSeconds(10);

    private readonly IHseSessions _hse;
    private readonly IHseStateStore _store;
    private readonly TimeProvider _time;
    private readonly Channel<DashboardEvent> _events;
    private readonly DashboardTally _tally = new();
    private readonly Queue<DashboardSample> _samples = new();
    private readonly int _capacity;
    private readonly SemaphoreSlim _wake = new(0, 1);
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _publishing = new();
    private readonly Task _counting;
    private readonly Task _sampling;
    private TaskCompletionSource<DashboardState> _next = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private DashboardState _state;
    private IReadOnlyList<DashboardAuditEntry> _audit = [];
    private HseTraffic? _lastTraffic;
    private DateTimeOffset _lastSample;
    private long _lost;

    /// <summary>Samples <paramref name="host"/> and <paramref name="store"/> every <paramref name="sampleInterval"/> (10 s by default), starting now.</summary>
    /// <param name="host">The HSE.</param>
    /// <param name="store">Its state store (the audit log).</param>
    /// <param name="sampleInterval">The sample interval (10 s); <c>BEST_DASHBOARD_SAMPLE_SECONDS</c> overrides it.</param>
    /// <param name="time">The clock (the system's).</param>
    public DashboardFeed(HseHost host, IHseStateStore store, TimeSpan? sampleInterval = null, TimeProvider? time = null)
        : this(IHseSessions.ForHost(host ?? throw new ArgumentNullException(nameof(host))), store, sampleInterval, time)
    {
    }

    /// <summary>Samples <paramref name="hse"/> and <paramref name="store"/> every <paramref name="sampleInterval"/> (10 s by default), starting now.</summary>
    /// <param name="hse">The HSE's sessions (one host's, or a cluster's).</param>
    /// <param name="store">Its state store (the audit log).</param>
    /// <param name="sampleInterval">The sample interval (10 s); <c>BEST_DASHBOARD_SAMPLE_SECONDS</c> overrides it.</param>
    /// <param name="time">The clock (the system's).</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="sampleInterval"/> is not positive.</exception>
    /// <exception cref="InvalidOperationException"><c>BEST_DASHBOARD_SAMPLE_SECONDS</c> is set but not a number of seconds from 0.1 to 3600.</exception>
    public DashboardFeed(IHseSessions hse, IHseStateStore store, TimeSpan? sampleInterval = null, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(hse);
        ArgumentNullException.ThrowIfNull(store);
        if (sampleInterval is { } given)
        {
            ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(given, TimeSpan.Zero, nameof(sampleInterval));
        }

        _hse = hse;
        _store = store;
        _time = time ?? TimeProvider.System;
        Interval = IntervalFromEnvironment() ?? sampleInterval ?? TimeSpan.FromSeconds(10);
        _capacity = (int)Math.Ceiling(Window / Interval);
        _events = Channel.CreateBounded<DashboardEvent>(
            new BoundedChannelOptions(QueueLimit) { SingleReader = true, FullMode = BoundedChannelFullMode.DropWrite },
            _ => Interlocked.Increment(ref _lost));
        _lastSample = _time.GetUtcNow();
        _state = new DashboardState(0, _lastSample, Interval, [], [], [], 0, AuditAvailable: true);
        _counting = Task.Run(CountAsync);
        _sampling = Task.Run(SampleAsync);
    }

    /// <summary>The sample interval in use.</summary>
    public TimeSpan Interval { get; }

    /// <summary>The latest state.</summary>
    internal DashboardState Current => Volatile.Read(ref _state);

    /// <summary>Cancelled when the feed stops (the events streams end).</summary>
    internal CancellationToken Stopping => _stop.Token;

    /// <summary>Counts one session event (called from the HSE's event loop; never blocks).</summary>
    public void OnEvent(SessionEvent e)
    {
        ArgumentNullException.ThrowIfNull(e);
        if (DashboardEvent.Of(e) is { } kept)
        {
            // A full queue drops the event and counts it (the callback above); a stopped feed ignores it.
            _events.Writer.TryWrite(kept);
        }
    }

    /// <summary>The first state newer than <paramref name="version"/>: at once if there is one, else when it is published.</summary>
    /// <exception cref="TaskCanceledException">The feed stopped.</exception>
    internal Task<DashboardState> NextAsync(long version)
    {
        lock (_publishing)
        {
            return _state.Version > version ? Task.FromResult(_state) : _next.Task;
        }
    }

    /// <summary>The events streams open on this feed (bounded in all and per caller).</summary>
    internal DashboardStreams Streams { get; } = new();

    /// <summary>Stops sampling; the events streams end.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested)
        {
            return;
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        _events.Writer.TryComplete();
        await _counting.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await _sampling.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        lock (_publishing)
        {
            _next.TrySetCanceled(_stop.Token);
        }

        // _stop stays undisposed: requests still arriving read its token and end at once.
        _wake.Dispose();
    }

    private static TimeSpan? IntervalFromEnvironment()
    {
        var text = Environment.GetEnvironmentVariable(SampleSecondsVariable);
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }

        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) || !(seconds >= 0.1 && seconds <= 3600))
        {
            throw new InvalidOperationException($"{SampleSecondsVariable}='{text}' is not a number of seconds from 0.1 to 3600 (the dashboard's sample interval); unset it for the default of 10 s");
        }

        return TimeSpan.FromSeconds(seconds);
    }

    private async Task CountAsync()
    {
        var reader = _events.Reader;
        while (await reader.WaitToReadAsync(CancellationToken.None).ConfigureAwait(false))
        {
            var changed = false;
            lock (_tally)
            {
                while (reader.TryRead(out var e))
                {
                    changed |= _tally.Add(e);
                }
            }

            // This loop is the only one that releases: the count is at most one.
            if (changed && _wake.CurrentCount == 0 && !_stop.IsCancellationRequested)
            {
                _wake.Release();
            }
        }
    }

    private async Task SampleAsync()
    {
        var token = _stop.Token;
        var next = _time.GetUtcNow() + Interval;
        try
        {
            await RefreshAsync(sample: false, token).ConfigureAwait(false);
            while (!token.IsCancellationRequested)
            {
                var woken = await WaitAsync(next - _time.GetUtcNow(), token).ConfigureAwait(false);
                if (woken)
                {
                    await Task.Delay(Debounce, _time, token).ConfigureAwait(false);
                }

                // A timer may fire a little early (its resolution): that is the sample it was set for, not a spin.
                var now = _time.GetUtcNow();
                var sample = now >= next - TimerSlack;
                if (!sample && !woken)
                {
                    continue;
                }

                if (sample)
                {
                    // Behind by more than an interval (a busy machine): the next sample is one interval from now.
                    next = next + Interval > now ? next + Interval : now + Interval;
                }

                await RefreshAsync(sample, token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            // Stopped.
        }
    }

    /// <summary>Waits <paramref name="delay"/>; true when the sessions changed first.</summary>
    private async Task<bool> WaitAsync(TimeSpan delay, CancellationToken token)
    {
        using var either = CancellationTokenSource.CreateLinkedTokenSource(token);
        var woken = _wake.WaitAsync(either.Token);
        var elapsed = Task.Delay(delay > TimeSpan.Zero ? delay : TimeSpan.Zero, _time, either.Token);
        await Task.WhenAny(woken, elapsed).ConfigureAwait(false);
        await either.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(woken, elapsed).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        token.ThrowIfCancellationRequested();
        return woken.IsCompletedSuccessfully;
    }

    private async Task RefreshAsync(bool sample, CancellationToken token)
    {
        IReadOnlyList<SessionOverview> sessions;
        try
        {
            sessions = [.. (await _hse.ListAsync().WaitAsync(QueryTimeout, _time, token).ConfigureAwait(false)).Select(l => l.Overview)];
        }
        catch (Exception e) when (e is not OutOfMemoryException && !token.IsCancellationRequested)
        {
            // The HSE is stopping, overloaded or stopped (or a cluster's shard did not answer): the previous sessions stand
            // until the next refresh.
            sessions = Current.Sessions;
        }

        HseTraffic? traffic;
        try
        {
            traffic = await _hse.TrafficAsync().WaitAsync(QueryTimeout, _time, token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException && !token.IsCancellationRequested)
        {
            traffic = null;
        }

        var auditAvailable = true;
        try
        {
            _audit = [.. _store.AuditLog(AuditLines).Select(DashboardAuditEntry.From)];
        }
        catch (Exception e) when (e is InvalidOperationException or DbException or ObjectDisposedException)
        {
            // The store is down: the HSE's own failure handling reports it; the page says the lines are not current.
            auditAvailable = false;
        }

        var now = _time.GetUtcNow();
        lock (_tally)
        {
            _tally.See(sessions);
            if (sample)
            {
                var (all, byEnterprise) = _tally.Take();
                if (traffic?.Events is { } events && _lastTraffic?.Events is { } before)
                {
                    // A cluster: its shards' counts of their events, whichever node ran them, instead of this node's.
                    (all, byEnterprise) = Since(events, before);
                }

                // A cluster's shard that moved counts again from zero: a count never goes back, it is only not known then.
                var (received, sent) = traffic is { } t && _lastTraffic is { } last ? (Math.Max(0, t.Received - last.Received), Math.Max(0, t.Sent - last.Sent)) : (0L, 0L);
                var perEnterprise = sessions.GroupBy(s => s.EasId, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
                _samples.Enqueue(new DashboardSample(now, Math.Max(0.001, (now - _lastSample).TotalSeconds), received, sent, all, byEnterprise, sessions.Count, perEnterprise));
                (_lastSample, _lastTraffic) = (now, traffic ?? _lastTraffic);
                while (_samples.Count > _capacity)
                {
                    _samples.Dequeue();
                }
            }

            // The counts a sample shows run from the sample before it (the first from the first refresh).
            _lastTraffic ??= traffic;
        }

        Publish(new DashboardState(Current.Version + 1, now, Interval, sessions, [.. _samples], _audit, Interlocked.Read(ref _lost), auditAvailable));
    }

    /// <summary>The counts between two totals (a shard that moved counts from zero again: a count never goes below zero).</summary>
    private static (long[] All, Dictionary<string, long[]> ByEnterprise) Since(SessionEventCounts now, SessionEventCounts before)
    {
        static long[] Minus(long[] a, long[]? b)
        {
            var d = new long[DashboardEvent.Kinds];
            for (var i = 0; i < d.Length && i < a.Length; i++)
            {
                d[i] = Math.Max(0, a[i] - (b is not null && i < b.Length ? b[i] : 0));
            }

            return d;
        }

        var byEnterprise = new Dictionary<string, long[]>(StringComparer.Ordinal);
        foreach (var (easId, kinds) in now.ByEasId)
        {
            var counted = Minus(kinds, before.ByEasId.GetValueOrDefault(easId));
            if (counted.Any(c => c > 0) && byEnterprise.Count < DashboardTally.MaxEnterprises)
            {
                byEnterprise[easId] = counted;
            }
        }

        return (Minus(now.All, before.All), byEnterprise);
    }

    private void Publish(DashboardState state)
    {
        TaskCompletionSource<DashboardState> waiting;
        lock (_publishing)
        {
            Volatile.Write(ref _state, state);
            waiting = _next;
            _next = new TaskCompletionSource<DashboardState>(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        waiting.TrySetResult(state);
    }
}
