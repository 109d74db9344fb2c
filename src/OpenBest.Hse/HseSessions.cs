using OpenBest.Sessions;

namespace OpenBest.Hse;

/// <summary>A session as the HSE–EAS interface and the northbound API see it.</summary>
/// <param name="Imsi">The subscriber.</param>
/// <param name="EasId">The EAS Id the session names.</param>
/// <param name="Mode">Its mode, or null while it is not established.</param>
/// <param name="CurrentKeyId">Its current Key ID (0 if none).</param>
/// <param name="EnterpriseKeyIdentifier">The Enterprise Key Identifier of its current key set, or null.</param>
/// <param name="Overview">Its state, service, suite and mode while it is established (or suspended), else null.</param>
public sealed record SessionFacts(string Imsi, string EasId, SessionMode? Mode, byte CurrentKeyId, byte[]? EnterpriseKeyIdentifier, SessionOverview? Overview = null);

/// <summary>A live session as the northbound API and the dashboard list it (never a key).</summary>
/// <param name="Overview">Its Session ID, state, service, suite, mode and EAS Id.</param>
/// <param name="Imsi">Its subscriber (the API shows the enterprise's external identifier instead).</param>
/// <param name="CurrentKeyId">Its current Key ID.</param>
public sealed record SessionListing(SessionOverview Overview, string Imsi, byte CurrentKeyId);

/// <summary>Messages an HSE received and sent since it started (a cluster: summed over its shards' activations).</summary>
/// <param name="Received">Messages received.</param>
/// <param name="Sent">Messages sent.</param>
/// <param name="Events">
/// A cluster's counts of its session events since its shards' activations (the dashboard's kinds), which every node's
/// dashboard shows; null for one HSE, whose dashboard counts the events it is given.
/// </param>
public readonly record struct HseTraffic(long Received, long Sent, SessionEventCounts? Events = null);

/// <summary>Counts of session events by kind (the dashboard's), for the whole HSE and per EAS Id.</summary>
/// <param name="All">The whole HSE's, by kind.</param>
/// <param name="ByEasId">Each EAS Id's, by kind.</param>
public sealed record SessionEventCounts(long[] All, IReadOnlyDictionary<string, long[]> ByEasId)
{
    /// <summary>The sum of several counts (a cluster's shards').</summary>
    public static SessionEventCounts Sum(IEnumerable<SessionEventCounts> counts)
    {
        ArgumentNullException.ThrowIfNull(counts);
        long[] all = [];
        var by = new Dictionary<string, long[]>(StringComparer.Ordinal);
        foreach (var c in counts)
        {
            all = Add(all, c.All);
            foreach (var (easId, kinds) in c.ByEasId)
            {
                by[easId] = Add(by.GetValueOrDefault(easId) ?? [], kinds);
            }
        }

        return new SessionEventCounts(all, by);
    }

    private static long[] Add(long[] a, long[] b)
    {
        var sum = new long[Math.Max(a.Length, b.Length)];
        for (var i = 0; i < sum.Length; i++)
        {
            sum[i] = (i < a.Length ? a[i] : 0) + (i < b.Length ? b[i] : 0);
        }

        return sum;
    }
}

/// <summary>What became of an operation on a session.</summary>
public enum SessionOutcome
{
    /// <summary>Done: a message went out to the device.</summary>
    Done,

    /// <summary>Nothing went out: the condition asked for did not hold, a refresh is already running, or a downlink waits in the suspended session's queue.</summary>
    Nothing,

    /// <summary>The message does not fit the session (plane, Session ID or Key ID): dropped.</summary>
    Dropped,

    /// <summary>The session is unknown or not established.</summary>
    NotEstablished,
}

/// <summary>
/// The sessions behind the HSE–EAS interface, the northbound API and EAS delivery: one HSE's engine (<see cref="ForHost"/>),
/// or a cluster's shards. Every operation names a session or a subscriber, so it can run wherever that session runs.
/// </summary>
public interface IHseSessions
{
    /// <summary>A session's subscriber, EAS Id, mode and keys' identifiers, or null when it is unknown.</summary>
    Task<SessionFacts?> DescribeAsync(uint sessionId);

    /// <summary>The established (or suspended) sessions of a subscriber that name <paramref name="easId"/>, with their modes.</summary>
    Task<IReadOnlyList<(uint SessionId, SessionMode Mode)>> SessionsOfAsync(string imsi, string easId);

    /// <summary>The established (or suspended) UE-to-HSE sessions that name <paramref name="easId"/>, by Session ID.</summary>
    Task<IReadOnlyList<(uint SessionId, string Imsi, Protocol.BestService Service)>> SessionsNamingAsync(string easId);

    /// <summary>Refreshes a session's keys; with <paramref name="ifKeyId"/>, only while that is its current Key ID (else <see cref="SessionOutcome.Nothing"/>).</summary>
    Task<SessionOutcome> RefreshKeysAsync(uint sessionId, byte? ifKeyId = null);

    /// <summary>Forwards a downlink message an EAS protected end to end.</summary>
    Task<SessionOutcome> ForwardDownlinkFromEasAsync(uint sessionId, byte[] message);

    /// <summary>
    /// Seals and sends (or queues while suspended) a downlink payload of a UE-to-HSE session. With a <paramref name="token"/>,
    /// the engine reports the device's Data Ack (or the payload's loss) by it; <paramref name="page"/> wakes a suspended
    /// device; <paramref name="timeToLive"/> bounds its wait in the queue.
    /// </summary>
    Task<SessionOutcome> SendDownlinkAsync(uint sessionId, byte[] payload, bool ackRequested, long token = 0, bool page = false, TimeSpan? timeToLive = null);

    /// <summary>Seals and sends stream frames (the TLS converter's) on a UE-to-HSE session, in order, in one step.</summary>
    Task<SessionOutcome> SendStreamAsync(uint sessionId, IReadOnlyList<byte[]> frames);

    /// <summary>Terminates a session with <paramref name="cause"/> (the device gets a Terminate Request).</summary>
    Task<SessionOutcome> TerminateAsync(uint sessionId, Protocol.Cause? cause);

    /// <summary>The established (or suspended) sessions, all or those naming <paramref name="easId"/>, by Session ID.</summary>
    Task<IReadOnlyList<SessionListing>> ListAsync(string? easId = null);

    /// <summary>The messages received and sent.</summary>
    Task<HseTraffic> TrafficAsync();

    /// <summary>The sessions of one HSE's host.</summary>
    public static IHseSessions ForHost(HseHost host) => new HostSessions(host);
}

/// <summary>The sessions of one host: every operation runs on its executor.</summary>
internal sealed class HostSessions(HseHost host) : IHseSessions
{
    public Task<SessionFacts?> DescribeAsync(uint sessionId) => host.QueryAsync(engine => Facts(engine, sessionId));

    public Task<IReadOnlyList<(uint SessionId, SessionMode Mode)>> SessionsOfAsync(string imsi, string easId) => host.QueryAsync(engine => engine.SessionsOf(imsi, easId));

    public Task<IReadOnlyList<(uint SessionId, string Imsi, Protocol.BestService Service)>> SessionsNamingAsync(string easId) => host.QueryAsync(engine => engine.SessionsNaming(easId));

    public Task<SessionOutcome> RefreshKeysAsync(uint sessionId, byte? ifKeyId = null) => Run(engine => ifKeyId is { } keyId && engine.CurrentKeyIdOf(sessionId) != keyId ? new StepResult() : engine.RefreshKeys(sessionId));

    public Task<SessionOutcome> ForwardDownlinkFromEasAsync(uint sessionId, byte[] message) => Run(engine => engine.ForwardDownlinkFromEas(sessionId, message));

    public Task<SessionOutcome> SendDownlinkAsync(uint sessionId, byte[] payload, bool ackRequested, long token = 0, bool page = false, TimeSpan? timeToLive = null) =>
        Run(engine => engine.SendDownlink(sessionId, payload, ackRequested, token, page, timeToLive));

    public Task<SessionOutcome> TerminateAsync(uint sessionId, Protocol.Cause? cause) => Run(engine => engine.Terminate(sessionId, cause));

    public Task<SessionOutcome> SendStreamAsync(uint sessionId, IReadOnlyList<byte[]> frames) => Run(engine =>
    {
        // One step for the batch: the frames leave in order, after one commit.
        var step = new StepResult();
        foreach (var frame in frames)
        {
            var one = engine.SendDownlink(sessionId, frame);
            step.Send.AddRange(one.Send);
            step.Events.AddRange(one.Events);
        }

        return step;
    });

    public Task<IReadOnlyList<SessionListing>> ListAsync(string? easId = null) => host.QueryAsync(engine => List(engine, easId));

    public Task<HseTraffic> TrafficAsync() => Task.FromResult(new HseTraffic(host.Received, host.Sent));

    /// <summary>The engine's sessions as listings (the host's and a cluster shard's one rule).</summary>
    internal static IReadOnlyList<SessionListing> List(HseEngine engine, string? easId) =>
        [.. engine.Overview().Where(o => easId is null || o.EasId == easId)
            .Select(o => engine.Describe(o.SessionId) is { } owner ? new SessionListing(o, owner.Imsi, engine.CurrentKeyIdOf(o.SessionId)) : null)
            .OfType<SessionListing>()];

    /// <summary>What the engine says of a session (the host's and a cluster shard's one rule).</summary>
    internal static SessionFacts? Facts(HseEngine engine, uint sessionId) => engine.Describe(sessionId) is { } owner
        ? new SessionFacts(owner.Imsi, owner.EasId, engine.ModeOf(sessionId), engine.CurrentKeyIdOf(sessionId), engine.EnterpriseKeyIdentifierOf(sessionId), engine.OverviewOf(sessionId))
        : null;

    private async Task<SessionOutcome> Run(Func<HseEngine, StepResult> call)
    {
        try
        {
            var step = await host.InvokeAsync(call).ConfigureAwait(false);
            return step.Events.OfType<MessageDropped>().Any() ? SessionOutcome.Dropped
                : step.Send.Count > 0 ? SessionOutcome.Done : SessionOutcome.Nothing;
        }
        catch (InvalidOperationException)
        {
            return SessionOutcome.NotEstablished;
        }
    }
}
