using OpenBest.Sessions;

namespace OpenBest.Hse;

/// <summary>A session as the HSE–EAS interface and the northbound API see it.</summary>
/// <param name="Imsi">The subscriber.</param>
/// <param name="EasId">The EAS Id the session names.</param>
/// <param name="Mode">Its mode, or null while it is not established.</param>
/// <param name="CurrentKeyId">Its current Key ID (0 if none).</param>
/// <param name="EnterpriseKeyIdentifier">The Enterprise Key Identifier of its current key set, or null.</param>
public sealed record SessionFacts(string Imsi, string EasId, SessionMode? Mode, byte CurrentKeyId, byte[]? EnterpriseKeyIdentifier);

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

    /// <summary>Seals and sends (or queues while suspended) a downlink payload of a UE-to-HSE session.</summary>
    Task<SessionOutcome> SendDownlinkAsync(uint sessionId, byte[] payload, bool ackRequested);

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

    public Task<SessionOutcome> SendDownlinkAsync(uint sessionId, byte[] payload, bool ackRequested) => Run(engine => engine.SendDownlink(sessionId, payload, ackRequested));

    /// <summary>What the engine says of a session (the host's and a cluster shard's one rule).</summary>
    internal static SessionFacts? Facts(HseEngine engine, uint sessionId) => engine.Describe(sessionId) is { } owner
        ? new SessionFacts(owner.Imsi, owner.EasId, engine.ModeOf(sessionId), engine.CurrentKeyIdOf(sessionId), engine.EnterpriseKeyIdentifierOf(sessionId))
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
