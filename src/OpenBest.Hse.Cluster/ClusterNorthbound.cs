using Orleans;

namespace OpenBest.Hse.Cluster;

/// <summary>
/// The cluster's northbound lead: the node running this grain posts the notifications to the enterprises' callbacks and
/// expires deliveries at their deadlines (every node serves the API, and tracks the deliveries whose Data Acks its shards
/// see). When that node dies, the nodes' keepers activate the grain on a survivor, which goes on from the stored cursors.
/// </summary>
[Alias("OpenBest.Hse.Cluster.INorthboundLeadGrain")]
public interface INorthboundLeadGrain : IGrainWithIntegerKey
{
    /// <summary>The node that leads (activates the grain when no node runs it).</summary>
    Task<string> Node();
}

/// <summary>Whether this node leads the northbound service now.</summary>
public sealed class NorthboundLead
{
    private volatile bool _held;

    /// <summary>Whether this node runs the lead grain.</summary>
    public bool Held => _held;

    /// <summary>Told when this node starts leading.</summary>
    public Action? Taken { get; set; }

    internal void Hold()
    {
        _held = true;
        Taken?.Invoke();
    }

    internal void Release() => _held = false;
}

/// <summary>
/// The lead grain. Two activations at once (a partition) would both post: a notification may then reach a callback twice,
/// which delivery at least once allows (the application drops a sequence number it has seen).
/// </summary>
[KeepAlive]
internal sealed class NorthboundLeadGrain(NorthboundLead lead, NodeIdentity node) : Grain, INorthboundLeadGrain
{
    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        lead.Hold();
        return Task.CompletedTask;
    }

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        lead.Release();
        return Task.CompletedTask;
    }

    public Task<string> Node() => Task.FromResult(node.Name);
}
