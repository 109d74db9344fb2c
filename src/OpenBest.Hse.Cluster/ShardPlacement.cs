using Orleans;
using Orleans.Placement;
using Orleans.Runtime;
using Orleans.Runtime.Placement;

namespace OpenBest.Hse.Cluster;

/// <summary>
/// Where a shard runs: the active node that ranks first for it by rendezvous hashing (highest hash of shard and node). Every
/// node computes the same answer from the same membership, shards spread evenly, and when a node joins or leaves only the
/// shards that rank it first (or ranked it first) move.
/// </summary>
[GenerateSerializer, Immutable]
public sealed class ShardPlacement : PlacementStrategy
{
    /// <summary>The one instance.</summary>
    public static ShardPlacement Instance { get; } = new();

    /// <summary>
    /// The node that ranks first for <paramref name="shard"/> among the active nodes of <paramref name="membership"/>: what
    /// placement and the shards' own check both ask, so they never disagree; null while no node is active.
    /// </summary>
    public static SiloAddress? Preferred(long shard, IClusterMembershipService membership)
    {
        ArgumentNullException.ThrowIfNull(membership);
        var active = membership.CurrentSnapshot.Members.Values.Where(m => m.Status == SiloStatus.Active).Select(m => m.SiloAddress).ToList();
        return active.Count == 0 ? null : Preferred(shard, active);
    }

    /// <summary>The node that ranks first for <paramref name="shard"/> among <paramref name="silos"/>.</summary>
    public static SiloAddress Preferred(long shard, IEnumerable<SiloAddress> silos)
    {
        ArgumentNullException.ThrowIfNull(silos);
        SiloAddress? best = null;
        var bestRank = 0ul;
        foreach (var silo in silos)
        {
            var rank = Rank(shard, silo);
            if (best is null || rank > bestRank)
            {
                best = silo;
                bestRank = rank;
            }
        }

        return best ?? throw new InvalidOperationException("No node to run the shard on.");
    }

    /// <summary>FNV-1a (64 bits) of the shard and the node's address and generation, finished with a 64-bit mix.</summary>
    private static ulong Rank(long shard, SiloAddress silo)
    {
        var hash = 14695981039346656037ul;
        foreach (var c in string.Concat(shard.ToString(System.Globalization.CultureInfo.InvariantCulture), "|", silo.ToParsableString()))
        {
            hash = (hash ^ c) * 1099511628211ul;
        }

        hash ^= hash >> 33;
        hash *= 0xff51afd7ed558ccdul;
        hash ^= hash >> 33;
        return hash;
    }
}

/// <summary>Places shard grains with <see cref="ShardPlacement"/>.</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class ShardPlacementAttribute : PlacementAttribute
{
    /// <summary>Places by <see cref="ShardPlacement"/>.</summary>
    public ShardPlacementAttribute()
        : base(ShardPlacement.Instance)
    {
    }
}

/// <summary>
/// Orleans' side of <see cref="ShardPlacement"/>: the same membership view the shards check themselves against (a silo's list
/// of compatible silos can lag the membership, and then a shard that moves for a new node would be placed back where it was).
/// </summary>
internal sealed class ShardPlacementDirector(IClusterMembershipService membership) : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var shard = target.GrainIdentity.GetIntegerKey();
        return Task.FromResult(ShardPlacement.Preferred(shard, membership) ?? ShardPlacement.Preferred(shard, context.GetCompatibleSilos(target)));
    }
}
