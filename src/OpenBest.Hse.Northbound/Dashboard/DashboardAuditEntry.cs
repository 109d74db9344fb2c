using OpenBest.Storage;

namespace OpenBest.Hse.Northbound.Dashboard;

/// <summary>
/// An audit line as the dashboard may show it: time, event and EAS Id, and the subject only of an "api" line (method,
/// route template and status). Every other line's subject is a device's external identifier and its key identifier
/// names a key: neither is ever taken from the store's entry.
/// </summary>
/// <param name="Seq">The line's sequence number.</param>
/// <param name="At">When it was written.</param>
/// <param name="Event">The event ("api", "key-delivered", …).</param>
/// <param name="EasId">The enterprise it concerns (for "api": the caller's name).</param>
/// <param name="Detail">For "api": "METHOD /route/template STATUS"; otherwise null.</param>
internal sealed record DashboardAuditEntry(long Seq, DateTimeOffset At, string Event, string EasId, string? Detail)
{
    /// <summary>The northbound middleware's event for a call of the API or the dashboard.</summary>
    public const string ApiEvent = "api";

    /// <summary>What may be shown of <paramref name="entry"/>.</summary>
    public static DashboardAuditEntry From(AuditEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        return new DashboardAuditEntry(entry.Seq, entry.At, entry.Event, entry.EasId, entry.Event == ApiEvent ? entry.Subject : null);
    }
}
