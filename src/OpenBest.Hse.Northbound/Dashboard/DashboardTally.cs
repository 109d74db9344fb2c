using OpenBest.Sessions;

namespace OpenBest.Hse.Northbound.Dashboard;

/// <summary>
/// The counts of the sample interval in progress, for the whole HSE and per EAS Id, and which EAS Id each session
/// belongs to (from <c>SessionEstablished</c> and from the sessions' overview), so that events naming only a Session ID
/// count for their enterprise. Not thread-safe: <see cref="DashboardFeed"/> holds a lock around it.
/// </summary>
internal sealed class DashboardTally
{
    /// <summary>Sessions whose EAS Id is remembered at most (one million: far above an HSE's sessions; past it, new sessions' events count for the HSE only).</summary>
    public const int MaxSessions = 1_000_000;

    /// <summary>EAS Ids counted per interval at most (10 000; past it, the others' events count for the HSE only).</summary>
    public const int MaxEnterprises = 10_000;

    // A session that left the overview is forgotten after this many refreshes: its last events (terminated) can still
    // arrive after the overview that no longer lists it.
    private const long Grace = 3;

    private readonly Dictionary<uint, (string EasId, long Seen)> _sessions = [];
    private long[] _all = new long[DashboardEvent.Kinds];
    private Dictionary<string, long[]> _byEnterprise = new(StringComparer.Ordinal);
    private long _generation;

    /// <summary>Sessions whose EAS Id is known.</summary>
    public int KnownSessions => _sessions.Count;

    /// <summary>Counts one event; returns whether it changes the sessions.</summary>
    public bool Add(DashboardEvent e)
    {
        string? easId = e.EasId;
        if (e.Count == DashboardCount.Started && easId is not null && (_sessions.Count < MaxSessions || _sessions.ContainsKey(e.SessionId)))
        {
            _sessions[e.SessionId] = (easId, _generation);
        }
        else if (easId is null && _sessions.TryGetValue(e.SessionId, out var known))
        {
            easId = known.EasId;
        }

        if (e.Count is { } count)
        {
            _all[(int)count]++;
            if (easId is not null && For(easId) is { } counts)
            {
                counts[(int)count]++;
            }

            if (count == DashboardCount.Ended)
            {
                _sessions.Remove(e.SessionId);
            }
        }

        return e.ChangesSessions;
    }

    /// <summary>Learns the EAS Id of every session in <paramref name="overview"/> and forgets sessions long gone.</summary>
    public void See(IReadOnlyList<SessionOverview> overview)
    {
        _generation++;
        foreach (var session in overview)
        {
            if (_sessions.Count < MaxSessions || _sessions.ContainsKey(session.SessionId))
            {
                _sessions[session.SessionId] = (session.EasId, _generation);
            }
        }

        List<uint>? gone = null;
        foreach (var (id, known) in _sessions)
        {
            if (known.Seen < _generation - Grace)
            {
                (gone ??= []).Add(id);
            }
        }

        foreach (var id in gone ?? [])
        {
            _sessions.Remove(id);
        }
    }

    /// <summary>Takes the interval's counts (the HSE's, and each EAS Id's that counted something) and starts a new interval.</summary>
    public (long[] All, Dictionary<string, long[]> ByEnterprise) Take()
    {
        var taken = (_all, _byEnterprise);
        _all = new long[DashboardEvent.Kinds];
        _byEnterprise = new Dictionary<string, long[]>(StringComparer.Ordinal);
        return taken;
    }

    private long[]? For(string easId)
    {
        if (!_byEnterprise.TryGetValue(easId, out var counts) && _byEnterprise.Count < MaxEnterprises)
        {
            counts = new long[DashboardEvent.Kinds];
            _byEnterprise[easId] = counts;
        }

        return counts;
    }
}
