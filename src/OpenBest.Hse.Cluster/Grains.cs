using System.Diagnostics;
using OpenBest.Sessions;
using Orleans;
using Orleans.Concurrency;
using Orleans.Runtime;

namespace OpenBest.Hse.Cluster;

/// <summary>A message a node received, forwarded to its shard: the bytes, the node's key for the path, and the sender's source.</summary>
[GenerateSerializer, Immutable]
public sealed class RoutedMessage
{
    /// <summary>The EMSDP message.</summary>
    [Id(0)]
    public required byte[] Message { get; init; }

    /// <summary>The receiving node's key for the path (bearer and address).</summary>
    [Id(1)]
    public required string Key { get; init; }

    /// <summary>The sender (an address without its port), for per-source limits.</summary>
    [Id(2)]
    public required string Source { get; init; }
}

/// <summary>An answer for a node to send on one of its paths.</summary>
[GenerateSerializer, Immutable]
public sealed class RelayedMessage
{
    /// <summary>The node's key for the path.</summary>
    [Id(0)]
    public required string Key { get; init; }

    /// <summary>The EMSDP message.</summary>
    [Id(1)]
    public required byte[] Message { get; init; }
}

/// <summary>Where a shard runs now, and what it holds.</summary>
[GenerateSerializer, Immutable]
public sealed class ShardStatus
{
    /// <summary>The shard.</summary>
    [Id(0)]
    public int Shard { get; init; }

    /// <summary>The node running it.</summary>
    [Id(1)]
    public required string Node { get; init; }

    /// <summary>The epoch its activation took.</summary>
    [Id(2)]
    public long Epoch { get; init; }

    /// <summary>Sessions restored when it was activated.</summary>
    [Id(3)]
    public int Restored { get; init; }

    /// <summary>Sessions established by this activation.</summary>
    [Id(4)]
    public long Established { get; init; }

    /// <summary>Messages this activation received.</summary>
    [Id(5)]
    public long Received { get; init; }

    /// <summary>Whether its host stopped (a newer activation took the shard, or the store failed).</summary>
    [Id(6)]
    public bool Faulted { get; init; }

    /// <summary>Messages dropped because its queue was full.</summary>
    [Id(7)]
    public long Dropped { get; init; }

    /// <summary>Of those, Session Requests refused with the congestion cause.</summary>
    [Id(8)]
    public long Refused { get; init; }

    /// <summary>Messages this activation sent.</summary>
    [Id(9)]
    public long Sent { get; init; }

    /// <summary>This activation's session events by the dashboard's kinds: the whole shard's.</summary>
    [Id(10)]
    public long[]? Events { get; init; }

    /// <summary>The same, per EAS Id.</summary>
    [Id(11)]
    public Dictionary<string, long[]>? EventsByEasId { get; init; }
}

/// <summary>A session's path, carried by a shard that moves: the node the device reached and that node's key for it.</summary>
[GenerateSerializer, Immutable]
public sealed class CarriedPath
{
    /// <summary>The session.</summary>
    [Id(0)]
    public uint SessionId { get; init; }

    /// <summary>The node the device reached.</summary>
    [Id(1)]
    public required string Node { get; init; }

    /// <summary>That node's key for the path.</summary>
    [Id(2)]
    public required string Key { get; init; }

    /// <summary>The device's address without its port (per-source limits).</summary>
    [Id(3)]
    public required string Source { get; init; }
}

/// <summary>A node's relay, carried by a shard that moves.</summary>
[GenerateSerializer, Immutable]
public sealed class CarriedRelay
{
    /// <summary>The node.</summary>
    [Id(0)]
    public required string Node { get; init; }

    /// <summary>Its relay.</summary>
    [Id(1)]
    public required INodeRelay Relay { get; init; }
}

/// <summary>A session's event a shard sends to the node that follows the session (its TLS conversion runs there).</summary>
[GenerateSerializer, Immutable]
public sealed class FollowedEvent
{
    /// <summary>The session.</summary>
    [Id(0)]
    public uint SessionId { get; init; }

    /// <summary>A user-plane payload (<see cref="DataReceived"/>), or null when the session ended (<see cref="SessionTerminated"/>).</summary>
    [Id(1)]
    public byte[]? Payload { get; init; }

    /// <summary>The payload's Key ID.</summary>
    [Id(2)]
    public byte KeyId { get; init; }

    /// <summary>The payload's counter.</summary>
    [Id(3)]
    public ulong Counter { get; init; }

    /// <summary>Whether the payload asked for an Ack.</summary>
    [Id(4)]
    public bool AckRequested { get; init; }

    /// <summary>What a followed session's event becomes on the wire between nodes, or null for one not followed.</summary>
    public static FollowedEvent? Of(SessionEvent e) => e switch
    {
        DataReceived d => new FollowedEvent { SessionId = d.SessionId, Payload = d.Payload.ToArray(), KeyId = d.KeyId, Counter = d.Counter, AckRequested = d.AckRequested },
        SessionTerminated t => new FollowedEvent { SessionId = t.SessionId },
        _ => null,
    };

    /// <summary>The event again.</summary>
    public SessionEvent ToEvent() => Payload is { } payload
        ? new DataReceived(SessionId, KeyId, Counter, payload, AckRequested)
        : new SessionTerminated(SessionId, null, ByPeer: false);
}

/// <summary>A node's way back to the devices it heard from: a shard's answers leave through it.</summary>
public interface INodeRelay : IGrainObserver
{
    /// <summary>Sends the answers on the node's paths.</summary>
    [OneWay]
    Task Send(RelayedMessage[] messages);

    /// <summary>Events of sessions the node follows (<see cref="IHseShardGrain.Follow"/>).</summary>
    [OneWay]
    Task Followed(FollowedEvent[] events);
}

/// <summary>One shard of the Session ID space: one activation at a time runs the state machines of its sessions.</summary>
[Alias("OpenBest.Hse.Cluster.IHseShardGrain")]
public interface IHseShardGrain : IGrainWithIntegerKey
{
    /// <summary>Messages received by <paramref name="node"/> for this shard; answers go back through <paramref name="relay"/>.</summary>
    [OneWay]
    Task Receive(string node, INodeRelay relay, RoutedMessage[] messages);

    /// <summary>Where the shard runs and what it holds (activates it when no node runs it).</summary>
    Task<ShardStatus> Status();

    /// <summary>A session of this shard, or null.</summary>
    Task<ShardSession?> Describe(uint sessionId);

    /// <summary>The established (or suspended) sessions of a subscriber of this shard that name <paramref name="easId"/>.</summary>
    Task<ShardSession[]> SessionsOf(string imsi, string easId);

    /// <summary>This shard's established (or suspended) UE-to-HSE sessions that name <paramref name="easId"/>.</summary>
    Task<ShardSession[]> SessionsNaming(string easId);

    /// <summary>Refreshes a session's keys (only while its current Key ID is <paramref name="ifKeyId"/>, unless that is -1); a <see cref="SessionOutcome"/>.</summary>
    Task<int> RefreshKeys(uint sessionId, int ifKeyId);

    /// <summary>Forwards a downlink message an EAS protected end to end; a <see cref="SessionOutcome"/>.</summary>
    Task<int> ForwardDownlinkFromEas(uint sessionId, byte[] message);

    /// <summary>Seals and sends (or queues) a downlink payload of a UE-to-HSE session (see <see cref="IHseSessions.SendDownlinkAsync"/>); a <see cref="SessionOutcome"/>.</summary>
    Task<int> SendDownlink(uint sessionId, byte[] payload, bool ackRequested, long token, bool page, TimeSpan? timeToLive);

    /// <summary>Sends stream frames on a UE-to-HSE session in one step (see <see cref="IHseSessions.SendStreamAsync"/>); a <see cref="SessionOutcome"/>.</summary>
    Task<int> SendStream(uint sessionId, byte[][] frames);

    /// <summary>Sends a session's user-plane payloads and its end to a node's <paramref name="relay"/> from now on, while this activation runs.</summary>
    Task Follow(uint sessionId, INodeRelay relay);

    /// <summary>Terminates a session with a <see cref="Protocol.Cause"/> (or none, -1); a <see cref="SessionOutcome"/>.</summary>
    Task<int> Terminate(uint sessionId, int cause);

    /// <summary>This shard's established (or suspended) sessions, all or those naming <paramref name="easId"/>.</summary>
    Task<ShardSession[]> List(string? easId);
}

/// <summary>The name of this node (unique per run: the name given plus the process and start time).</summary>
public sealed record NodeIdentity(string Name, string Incarnation);

/// <summary>
/// The grain of a shard: its activation takes the shard in the store (a new epoch), restores its sessions and runs them;
/// when a newer activation elsewhere takes the shard, this one's commits are refused and it deactivates.
/// </summary>
[KeepAlive]
[ShardPlacement]
internal sealed class HseShardGrain(ShardContext context, NodeIdentity node, IClusterMembershipService membership, ILocalSiloDetails local) : Grain, IHseShardGrain, IGrainMigrationParticipant
{
    private const string PathsKey = "paths";
    private const string RelaysKey = "relays";
    private readonly Dictionary<string, (INodeRelay Reference, ObserverRelay Relay)> _relays = new(StringComparer.Ordinal);
    /// <summary>How often a shard that waits to move checks for its pending sessions.</summary>
    private static readonly TimeSpan DrainCheck = TimeSpan.FromMilliseconds(250);

    /// <summary>How long a shard that waits to move puts new sessions off before it takes them again (and tries later).</summary>
    private static readonly TimeSpan DrainLimit = TimeSpan.FromSeconds(3);

    private ShardHost? _host;
    private CarriedPath[] _carried = [];
    private IGrainTimer? _draining;
    private long _drainingSince;
    private bool _newSessionsOff;

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var shard = (int)this.GetPrimaryKeyLong();
        _host = await Task.Run(() => ShardHost.Start(shard, context), cancellationToken).ConfigureAwait(true);
        if (_carried.Length > 0)
        {
            // A move (migration): the sessions keep the paths their devices reached, so downlink and pushes to sleeping
            // devices go on at once, not only after each device's next message.
            await _host.RestorePathsAsync(_carried, n => _relays.TryGetValue(n, out var r) ? r.Relay : null).ConfigureAwait(true);
            _carried = [];
        }

        _ = _host.Faulted.ContinueWith(_ => DeactivateOnIdle(), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Current);
        // A shard moves to the node that ranks first for it once that node is active (a node joined): this activation commits
        // what it ran and stops, and the next message activates the shard there.
        this.RegisterGrainTimer(_ => CheckPlacement(), new GrainTimerCreationOptions { DueTime = TimeSpan.FromSeconds(5), Period = TimeSpan.FromSeconds(5) });
    }

    private async Task CheckPlacement()
    {
        if (_host is not { } host)
        {
            return;
        }

        var preferred = ShardPlacement.Preferred(this.GetPrimaryKeyLong(), membership);
        var elsewhere = preferred is not null && !preferred.Equals(local.SiloAddress);
        try
        {
            if (!elsewhere)
            {
                if (_newSessionsOff)
                {
                    await StopDrainingAsync(host).ConfigureAwait(true);
                }

                return;
            }

            // A shard moves at a quiet moment: not while a Session Start waits for its confirmation (an unconfirmed session
            // lives in memory only, and its device would have to start again). New Session Requests are put off first, in the
            // same step on the engine as the count, so none can start a session between the count and the move; their
            // devices' retransmissions reach the next activation. The sessions already started get a few seconds to be
            // confirmed; past that the shard takes new sessions again and tries at its next check.
            _newSessionsOff = true;
            if (await host.Host.QueryAsync(e =>
                {
                    e.AcceptsNewSessions = false;
                    return e.PendingSessions;
                }).ConfigureAwait(true) == 0)
            {
                // Migration, not a plain deactivation: the runtime places the next activation (on the preferred node) and
                // hands calls that arrive meanwhile to it. A plain deactivation left a window in which such a call activated
                // the shard where it was again, and shards went back and forth.
                _draining?.Dispose();
                _draining = null;
                this.MigrateOnIdle();
            }
            else if (_draining is null)
            {
                _drainingSince = Stopwatch.GetTimestamp();
                _draining = this.RegisterGrainTimer(_ => CheckPlacement(), new GrainTimerCreationOptions { DueTime = DrainCheck, Period = DrainCheck });
            }
            else if (Stopwatch.GetElapsedTime(_drainingSince) > DrainLimit)
            {
                await StopDrainingAsync(host).ConfigureAwait(true);
            }
        }
        catch (InvalidOperationException)
        {
            // The host is stopping: the activation goes anyway.
        }
    }

    private async Task StopDrainingAsync(ShardHost host)
    {
        _draining?.Dispose();
        _draining = null;
        _newSessionsOff = false;
        await host.Host.QueryAsync(e => e.AcceptsNewSessions = true).ConfigureAwait(true);
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        if (_host is { } host)
        {
            _host = null;
            if (reason.ReasonCode == DeactivationReasonCode.Migrating && !host.Faulted.IsCompleted)
            {
                try
                {
                    _carried = await host.PathsAsync().ConfigureAwait(true);
                }
                catch (InvalidOperationException)
                {
                    // The host is stopping: the sessions learn their paths from their devices' next messages.
                }
            }

            await host.DisposeAsync().ConfigureAwait(true);
        }
    }

    /// <summary>A move: the sessions' paths and the relays of their nodes go with the shard.</summary>
    public void OnDehydrate(IDehydrationContext dehydrationContext)
    {
        ArgumentNullException.ThrowIfNull(dehydrationContext);
        var nodes = _carried.Select(p => p.Node).ToHashSet(StringComparer.Ordinal);
        dehydrationContext.TryAddValue(PathsKey, _carried);
        dehydrationContext.TryAddValue(RelaysKey, _relays.Where(r => nodes.Contains(r.Key)).Select(r => new CarriedRelay { Node = r.Key, Relay = r.Value.Reference }).ToArray());
    }

    /// <summary>The paths and relays the shard brought along; <see cref="OnActivateAsync"/> gives them to the restored sessions.</summary>
    public void OnRehydrate(IRehydrationContext rehydrationContext)
    {
        ArgumentNullException.ThrowIfNull(rehydrationContext);
        if (rehydrationContext.TryGetValue(RelaysKey, out CarriedRelay[]? relays) && rehydrationContext.TryGetValue(PathsKey, out CarriedPath[]? paths) && relays is not null && paths is not null)
        {
            foreach (var r in relays)
            {
                _relays[r.Node] = (r.Relay, new ObserverRelay(r.Relay));
            }

            _carried = paths;
        }
    }

    public Task Receive(string node, INodeRelay relay, RoutedMessage[] messages)
    {
        if (_host is not { } host || host.Faulted.IsCompleted)
        {
            return Task.CompletedTask;
        }

        if (!_relays.TryGetValue(node, out var known) || !known.Reference.Equals(relay))
        {
            _relays[node] = known = (relay, new ObserverRelay(relay));
        }

        foreach (var m in messages)
        {
            host.Deliver(m.Message, node, known.Relay, m.Key, m.Source);
        }

        return Task.CompletedTask;
    }

    public Task<ShardStatus> Status()
    {
        var counts = _host?.EventCounts;
        return Task.FromResult(new ShardStatus
        {
            Shard = (int)this.GetPrimaryKeyLong(),
            Node = node.Name,
            Epoch = _host?.Epoch ?? 0,
            Restored = _host?.Restored ?? 0,
            Established = _host?.Established ?? 0,
            Received = _host?.Host.Received ?? 0,
            Faulted = _host?.Faulted.IsCompleted ?? true,
            Dropped = _host?.Host.Overloaded ?? 0,
            Refused = _host?.Host.Refused ?? 0,
            Sent = _host?.Host.Sent ?? 0,
            Events = counts?.All,
            EventsByEasId = counts is null ? null : new Dictionary<string, long[]>(counts.ByEasId, StringComparer.Ordinal),
        });
    }

    public async Task<ShardSession?> Describe(uint sessionId) =>
        _host is { } host && await host.Sessions.DescribeAsync(sessionId).ConfigureAwait(true) is { } s
            ? new ShardSession { SessionId = sessionId, Imsi = s.Imsi, EasId = s.EasId, Mode = s.Mode is { } mode ? (int)mode : -1, CurrentKeyId = s.CurrentKeyId, EnterpriseKeyIdentifier = s.EnterpriseKeyIdentifier,
                Service = (int)(s.Overview?.Service ?? 0), Suite = s.Overview?.Suite, Suspended = s.Overview?.Suspended ?? false }
            : null;

    public async Task<ShardSession[]> SessionsOf(string imsi, string easId) => _host is { } host
        ? [.. (await host.Sessions.SessionsOfAsync(imsi, easId).ConfigureAwait(true)).Select(s => new ShardSession { SessionId = s.SessionId, Imsi = imsi, EasId = easId, Mode = (int)s.Mode })]
        : [];

    public async Task<ShardSession[]> SessionsNaming(string easId) => _host is { } host
        ? [.. (await host.Sessions.SessionsNamingAsync(easId).ConfigureAwait(true)).Select(s => new ShardSession { SessionId = s.SessionId, Imsi = s.Imsi, EasId = easId, Mode = (int)SessionMode.UeToHse, Service = (int)s.Service })]
        : [];

    public async Task<int> RefreshKeys(uint sessionId, int ifKeyId) =>
        (int)(_host is { } host ? await host.Sessions.RefreshKeysAsync(sessionId, ifKeyId < 0 ? null : (byte)ifKeyId).ConfigureAwait(true) : SessionOutcome.NotEstablished);

    public async Task<int> ForwardDownlinkFromEas(uint sessionId, byte[] message) =>
        (int)(_host is { } host ? await host.Sessions.ForwardDownlinkFromEasAsync(sessionId, message).ConfigureAwait(true) : SessionOutcome.NotEstablished);

    public async Task<int> SendDownlink(uint sessionId, byte[] payload, bool ackRequested, long token, bool page, TimeSpan? timeToLive) =>
        (int)(_host is { } host ? await host.Sessions.SendDownlinkAsync(sessionId, payload, ackRequested, token, page, timeToLive).ConfigureAwait(true) : SessionOutcome.NotEstablished);

    public async Task<int> SendStream(uint sessionId, byte[][] frames) =>
        (int)(_host is { } host ? await host.Sessions.SendStreamAsync(sessionId, frames).ConfigureAwait(true) : SessionOutcome.NotEstablished);

    public Task Follow(uint sessionId, INodeRelay relay)
    {
        _host?.Follow(sessionId, e =>
        {
            if (FollowedEvent.Of(e) is { } followed)
            {
                _ = relay.Followed([followed]);
            }
        });
        return Task.CompletedTask;
    }

    public async Task<int> Terminate(uint sessionId, int cause) =>
        (int)(_host is { } host ? await host.Sessions.TerminateAsync(sessionId, cause < 0 ? null : (Protocol.Cause)cause).ConfigureAwait(true) : SessionOutcome.NotEstablished);

    public async Task<ShardSession[]> List(string? easId) => _host is { } host
        ? [.. (await host.Sessions.ListAsync(easId).ConfigureAwait(true)).Select(ShardSession.Of)]
        : [];

    /// <summary>Answers to a node, as one-way calls on its observer.</summary>
    private sealed class ObserverRelay(INodeRelay reference) : IReplyRelay
    {
        public void Send(IReadOnlyList<(string Key, byte[] Message)> messages) =>
            _ = reference.Send([.. messages.Select(m => new RelayedMessage { Key = m.Key, Message = m.Message })]);
    }
}
