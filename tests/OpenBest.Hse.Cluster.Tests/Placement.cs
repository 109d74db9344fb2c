using System.Diagnostics;
using System.Globalization;
using OpenBest.Storage;
using OpenBest.Storage.Postgres;
using OpenBest.Testing;

namespace OpenBest.Hse.Cluster.Tests;

/// <summary>Where a cluster's shards run, as its database records them.</summary>
internal static class Placement
{
    /// <summary>
    /// Waits until <paramref name="nodes"/> nodes hold shards and no shard moved for 7 s (a shard checks its placement every
    /// 5 s, so each is then where it belongs); the owners then.
    /// </summary>
    public static async Task<IReadOnlyList<ShardOwner>> SettledAsync(string database, string data, int nodes = 2)
    {
        using var key = MasterKey.Load(data);
        using var store = PostgresSubscriberStore.Open(database, key);
        string Owners() => string.Join(",", store.ShardOwners().Select(o => string.Create(CultureInfo.InvariantCulture, $"{o.Shard}:{o.Node}/{o.Epoch}")));
        await Eventually.True(() => store.ShardOwners().Select(o => o.Node).Distinct().Count() == nodes, $"shards on {nodes} nodes", TimeSpan.FromSeconds(90));
        var last = Owners();
        var since = Stopwatch.StartNew();
        await Eventually.True(() =>
        {
            var now = Owners();
            if (now != last)
            {
                (last, since) = (now, Stopwatch.StartNew());
            }

            return since.Elapsed > TimeSpan.FromSeconds(7);
        }, "the shards' placement settled", TimeSpan.FromSeconds(120));
        return store.ShardOwners();
    }

    /// <summary>One subscriber per shard (a subscriber's sessions live in the shard of its IMSI), by shard.</summary>
    public static string[] OneImsiPerShard(int shards) =>
        [.. Enumerable.Range(0, 100_000).Select(i => string.Create(CultureInfo.InvariantCulture, $"00101{i:D10}"))
            .GroupBy(imsi => ClusterRouting.ShardOfSubscriber(imsi, shards)).OrderBy(g => g.Key).Select(g => g.First())];
}
