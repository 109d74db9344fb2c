using OpenBest.Sessions;

namespace OpenBest.Hse.Northbound.Dashboard;

/// <summary>One session event as the dashboard keeps it: which count, which session, and the EAS Id when the event names one.</summary>
/// <param name="SessionId">The session.</param>
/// <param name="Count">What it counts toward, or null when it only changes the sessions (suspended, resumed).</param>
/// <param name="EasId">The EAS Id the event names (<c>SessionEstablished</c>, <c>UplinkForwarded</c>), else null.</param>
internal readonly record struct DashboardEvent(uint SessionId, DashboardCount? Count, string? EasId)
{
    /// <summary>The number of <see cref="DashboardCount"/> values (the length of a counts array).</summary>
    public const int Kinds = (int)DashboardCount.Ended + 1;

    /// <summary>Whether the event changes the set or state of the sessions (the page's table refreshes soon after).</summary>
    public bool ChangesSessions => Count is null or DashboardCount.Started or DashboardCount.Ended;

    /// <summary>What the dashboard keeps of <paramref name="e"/> (never a payload, a key or a subscriber), or null for an event it ignores.</summary>
    public static DashboardEvent? Of(SessionEvent e) => e switch
    {
        SessionEstablished x => new DashboardEvent(x.SessionId, DashboardCount.Started, x.EasId),
        SessionTerminated x => new DashboardEvent(x.SessionId, DashboardCount.Ended, null),
        KeysRefreshed x => new DashboardEvent(x.SessionId, DashboardCount.Refreshes, null),
        SessionRejected x => new DashboardEvent(x.SessionId, DashboardCount.Rejects, null),
        MessageDropped x => new DashboardEvent(x.SessionId, DashboardCount.Drops, null),
        DataReceived x => new DashboardEvent(x.SessionId, DashboardCount.Uplink, null),
        UplinkForwarded x => new DashboardEvent(x.SessionId, DashboardCount.Uplink, x.EasId),
        DataAcknowledged x => new DashboardEvent(x.SessionId, DashboardCount.Acknowledged, null),
        SessionSuspended x => new DashboardEvent(x.SessionId, null, null),
        SessionResumed x => new DashboardEvent(x.SessionId, null, null),
        _ => null,
    };
}
