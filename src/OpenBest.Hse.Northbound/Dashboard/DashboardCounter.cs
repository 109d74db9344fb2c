using OpenBest.Sessions;

namespace OpenBest.Hse.Northbound.Dashboard;

/// <summary>
/// Counts session events by the dashboard's kinds, for the whole HSE and per EAS Id, from the start: what a cluster's shard
/// keeps of its own events, so that every node's dashboard shows the whole cluster's (summed over the shards). Thread-safe.
/// </summary>
public sealed class DashboardCounter
{
    private readonly DashboardTally _tally = new();
    private readonly long[] _all = new long[DashboardEvent.Kinds];
    private readonly Dictionary<string, long[]> _byEasId = new(StringComparer.Ordinal);

    /// <summary>Learns the EAS Id of sessions that exist already (restored), so their events count for their enterprise.</summary>
    public void See(IReadOnlyList<SessionOverview> sessions)
    {
        lock (_tally)
        {
            _tally.See(sessions);
        }
    }

    /// <summary>Counts one event (those the dashboard ignores are ignored).</summary>
    public void Add(SessionEvent e)
    {
        if (DashboardEvent.Of(e) is { } kept)
        {
            lock (_tally)
            {
                _tally.Add(kept);
            }
        }
    }

    /// <summary>The counts so far.</summary>
    public SessionEventCounts Totals()
    {
        lock (_tally)
        {
            var (all, byEasId) = _tally.Take();
            for (var i = 0; i < all.Length; i++)
            {
                _all[i] += all[i];
            }

            foreach (var (easId, kinds) in byEasId)
            {
                if (!_byEasId.TryGetValue(easId, out var total))
                {
                    if (_byEasId.Count >= DashboardTally.MaxEnterprises)
                    {
                        continue;
                    }

                    _byEasId[easId] = total = new long[DashboardEvent.Kinds];
                }

                for (var i = 0; i < kinds.Length; i++)
                {
                    total[i] += kinds[i];
                }
            }

            return new SessionEventCounts([.. _all], _byEasId.ToDictionary(p => p.Key, p => p.Value.ToArray(), StringComparer.Ordinal));
        }
    }
}
