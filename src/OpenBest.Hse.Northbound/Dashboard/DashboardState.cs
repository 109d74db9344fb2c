using OpenBest.Sessions;

namespace OpenBest.Hse.Northbound.Dashboard;

/// <summary>
/// What the dashboard knows at one moment, for every caller alike (<see cref="DashboardView"/> cuts out what one caller
/// may see): the sessions, the samples of the last hour, the audit lines. Immutable: published whole, read by many.
/// </summary>
/// <param name="Version">Increases with every publication (the events stream's id).</param>
/// <param name="At">When it was taken.</param>
/// <param name="Interval">The sample interval.</param>
/// <param name="Sessions">Every established or suspended session (no subscriber, no key).</param>
/// <param name="Samples">The samples of the last hour, oldest first.</param>
/// <param name="Audit">The newest audit lines, newest first, already without subjects and key identifiers.</param>
/// <param name="Lost">Session events the dashboard could not count (its queue was full).</param>
/// <param name="AuditAvailable">False when the store could not be read at the last refresh (the lines are the previous ones).</param>
internal sealed record DashboardState(
    long Version,
    DateTimeOffset At,
    TimeSpan Interval,
    IReadOnlyList<SessionOverview> Sessions,
    IReadOnlyList<DashboardSample> Samples,
    IReadOnlyList<DashboardAuditEntry> Audit,
    long Lost,
    bool AuditAvailable);
