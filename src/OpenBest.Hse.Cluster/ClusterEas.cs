using System.Collections.Concurrent;
using OpenBest.Sessions;
using Orleans;
using Orleans.Concurrency;

namespace OpenBest.Hse.Cluster;

/// <summary>A session as a shard describes it to the HSE–EAS interface and the northbound API (never a key).</summary>
[GenerateSerializer, Immutable]
public sealed class ShardSession
{
    /// <summary>The Session ID.</summary>
    [Id(0)]
    public uint SessionId { get; init; }

    /// <summary>The subscriber.</summary>
    [Id(1)]
    public required string Imsi { get; init; }

    /// <summary>The EAS Id the session names.</summary>
    [Id(2)]
    public required string EasId { get; init; }

    /// <summary>Its <see cref="SessionMode"/>, or -1 while it is not established.</summary>
    [Id(3)]
    public int Mode { get; init; } = -1;

    /// <summary>Its <see cref="Protocol.BestService"/>.</summary>
    [Id(4)]
    public int Service { get; init; }

    /// <summary>Its current Key ID.</summary>
    [Id(5)]
    public byte CurrentKeyId { get; init; }

    /// <summary>The Enterprise Key Identifier of its current key set, or null.</summary>
    [Id(6)]
    public byte[]? EnterpriseKeyIdentifier { get; init; }

    /// <summary>Its suite's name (listings only).</summary>
    [Id(7)]
    public string? Suite { get; init; }

    /// <summary>Whether it is suspended (listings only).</summary>
    [Id(8)]
    public bool Suspended { get; init; }

    /// <summary>A listing from the shard's engine.</summary>
    internal static ShardSession Of(SessionListing l) => new()
    {
        SessionId = l.Overview.SessionId,
        Imsi = l.Imsi,
        EasId = l.Overview.EasId,
        Mode = (int)l.Overview.Mode,
        Service = (int)l.Overview.Service,
        CurrentKeyId = l.CurrentKeyId,
        Suite = l.Overview.Suite,
        Suspended = l.Overview.Suspended,
    };

    /// <summary>The listing it carries.</summary>
    internal SessionListing ToListing() =>
        new(new SessionOverview(SessionId, Suspended, (Protocol.BestService)Service, Suite ?? "none", (SessionMode)Mode, EasId), Imsi, CurrentKeyId);
}

/// <summary>
/// A cluster's sessions for the HSE–EAS interface, the northbound API and EAS delivery: each operation goes to the shard of
/// its Session ID (or of its subscriber, whose sessions all live in that shard), wherever the shard runs.
/// </summary>
public sealed class ClusterSessions(IGrainFactory grains, int shards) : IHseSessions
{
    /// <inheritdoc/>
    public async Task<SessionFacts?> DescribeAsync(uint sessionId) =>
        await ShardOf(sessionId).Describe(sessionId).ConfigureAwait(false) is { } s
            ? new SessionFacts(s.Imsi, s.EasId, s.Mode < 0 ? null : (SessionMode)s.Mode, s.CurrentKeyId, s.EnterpriseKeyIdentifier, s.Mode < 0 || s.Suite is null ? null : s.ToListing().Overview)
            : null;

    /// <inheritdoc/>
    public async Task<IReadOnlyList<(uint SessionId, SessionMode Mode)>> SessionsOfAsync(string imsi, string easId) =>
        [.. (await grains.GetGrain<IHseShardGrain>(ClusterRouting.ShardOfSubscriber(imsi, shards)).SessionsOf(imsi, easId).ConfigureAwait(false)).Select(s => (s.SessionId, (SessionMode)s.Mode))];

    /// <inheritdoc/>
    public async Task<IReadOnlyList<(uint SessionId, string Imsi, Protocol.BestService Service)>> SessionsNamingAsync(string easId)
    {
        // An enterprise's sessions are spread over every shard: each is asked, and the answers are merged by Session ID.
        var answers = await Task.WhenAll(Enumerable.Range(0, shards).Select(s => grains.GetGrain<IHseShardGrain>(s).SessionsNaming(easId))).ConfigureAwait(false);
        return [.. answers.SelectMany(a => a).OrderBy(s => s.SessionId).Select(s => (s.SessionId, s.Imsi, (Protocol.BestService)s.Service))];
    }

    /// <inheritdoc/>
    public async Task<SessionOutcome> RefreshKeysAsync(uint sessionId, byte? ifKeyId = null) =>
        (SessionOutcome)await ShardOf(sessionId).RefreshKeys(sessionId, ifKeyId ?? -1).ConfigureAwait(false);

    /// <inheritdoc/>
    public async Task<SessionOutcome> ForwardDownlinkFromEasAsync(uint sessionId, byte[] message) =>
        (SessionOutcome)await ShardOf(sessionId).ForwardDownlinkFromEas(sessionId, message).ConfigureAwait(false);

    /// <inheritdoc/>
    public async Task<SessionOutcome> SendDownlinkAsync(uint sessionId, byte[] payload, bool ackRequested, long token = 0, bool page = false, TimeSpan? timeToLive = null) =>
        (SessionOutcome)await ShardOf(sessionId).SendDownlink(sessionId, payload, ackRequested, token, page, timeToLive).ConfigureAwait(false);

    /// <inheritdoc/>
    public async Task<SessionOutcome> SendStreamAsync(uint sessionId, IReadOnlyList<byte[]> frames) =>
        (SessionOutcome)await ShardOf(sessionId).SendStream(sessionId, [.. frames]).ConfigureAwait(false);

    /// <inheritdoc/>
    public async Task<SessionOutcome> TerminateAsync(uint sessionId, Protocol.Cause? cause) =>
        (SessionOutcome)await ShardOf(sessionId).Terminate(sessionId, cause is { } c ? (int)c : -1).ConfigureAwait(false);

    /// <inheritdoc/>
    public async Task<IReadOnlyList<SessionListing>> ListAsync(string? easId = null)
    {
        var answers = await Task.WhenAll(Enumerable.Range(0, shards).Select(s => grains.GetGrain<IHseShardGrain>(s).List(easId))).ConfigureAwait(false);
        return [.. answers.SelectMany(a => a).OrderBy(s => s.SessionId).Select(s => s.ToListing())];
    }

    /// <inheritdoc/>
    public async Task<HseTraffic> TrafficAsync()
    {
        // Each shard's activation counts from zero: a shard that moved counts again from its new activation.
        var statuses = await Task.WhenAll(Enumerable.Range(0, shards).Select(s => grains.GetGrain<IHseShardGrain>(s).Status())).ConfigureAwait(false);
        var events = SessionEventCounts.Sum(statuses.Select(s => new SessionEventCounts(s.Events ?? [], s.EventsByEasId ?? [])));
        return new HseTraffic(statuses.Sum(s => s.Received), statuses.Sum(s => s.Sent), events);
    }

    private IHseShardGrain ShardOf(uint sessionId) => grains.GetGrain<IHseShardGrain>(sessionId % (uint)shards);
}

/// <summary>
/// The outbox of one EAS: the node running this grain delivers that EAS's UE-to-EAS messages, in order. When the node dies,
/// the grain is activated on a survivor (the nodes' keepers ask for every registered EAS), which goes on from the first
/// message not yet delivered.
/// </summary>
[Alias("OpenBest.Hse.Cluster.IEasOutboxGrain")]
public interface IEasOutboxGrain : IGrainWithStringKey
{
    /// <summary>A message for the EAS was stored: look at its outbox now.</summary>
    [OneWay]
    Task Wake();

    /// <summary>The node delivering this EAS's outbox (activates the grain when no node runs it).</summary>
    Task<string> Node();
}

/// <summary>The EASs whose outboxes this node delivers (those whose outbox grains it runs).</summary>
public sealed class EasOutboxes
{
    private readonly ConcurrentDictionary<string, byte> _held = new(StringComparer.Ordinal);

    /// <summary>The node's EAS delivery, once started.</summary>
    public EasDelivery? Delivery { get; set; }

    /// <summary>Told when this node starts delivering an EAS's outbox.</summary>
    public Action<string>? Taken { get; set; }

    /// <summary>The EASs this node delivers now.</summary>
    public IReadOnlyCollection<string> Held => [.. _held.Keys];

    /// <summary>Whether this node delivers <paramref name="easId"/>'s outbox.</summary>
    public bool Holds(string easId) => _held.ContainsKey(easId);

    internal void Hold(string easId)
    {
        _held[easId] = 0;
        Taken?.Invoke(easId);
        Delivery?.Wake();
    }

    internal void Release(string easId) => _held.TryRemove(easId, out _);

    internal void Wake() => Delivery?.Wake();
}

/// <summary>
/// The grain of one EAS's outbox. Two activations at once (a partition) would both deliver: messages may then reach the EAS
/// twice, each deliverer still in order, and the EAS drops a sequence number it has seen (docs/protocol.md, "HSE cluster").
/// </summary>
[KeepAlive]
internal sealed class EasOutboxGrain(EasOutboxes outboxes, NodeIdentity node) : Grain, IEasOutboxGrain
{
    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        outboxes.Hold(this.GetPrimaryKeyString());
        return Task.CompletedTask;
    }

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        outboxes.Release(this.GetPrimaryKeyString());
        return Task.CompletedTask;
    }

    public Task Wake()
    {
        outboxes.Wake();
        return Task.CompletedTask;
    }

    public Task<string> Node() => Task.FromResult(node.Name);
}
