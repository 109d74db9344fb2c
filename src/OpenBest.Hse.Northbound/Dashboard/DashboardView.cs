using System.Buffers;
using System.Text.Json;
using OpenBest.Protocol;
using OpenBest.Sessions;

namespace OpenBest.Hse.Northbound.Dashboard;

/// <summary>
/// One caller's snapshot of the dashboard as JSON, written field by field so that nothing the caller may not see can
/// slip in: an operator sees every enterprise (or the one it picked); an enterprise sees only its own EAS Id's sessions,
/// counts and audit lines, and never another enterprise's name, not even in a list to pick from.
/// </summary>
internal static class DashboardView
{
    /// <summary>Session rows sent at most (500; the counts always cover every session).</summary>
    public const int MaxSessionRows = 500;

    /// <summary>Audit lines sent at most (200, newest first).</summary>
    public const int MaxAuditLines = 200;

    private static readonly string[] CountNames = ["uplink", "acknowledged", "refreshes", "rejects", "drops", "started", "ended"];

    /// <summary>The enterprise <paramref name="caller"/> sees: its own, or for an operator the one it <paramref name="picked"/> (null: all).</summary>
    public static string? ScopeOf(NorthboundCaller caller, string? picked) =>
        caller.Enterprise ?? (string.IsNullOrWhiteSpace(picked) ? null : picked);

    /// <summary>Writes <paramref name="caller"/>'s snapshot of <paramref name="state"/> as one line of UTF-8 JSON.</summary>
    /// <param name="output">Where.</param>
    /// <param name="state">The dashboard's state.</param>
    /// <param name="caller">Who asks.</param>
    /// <param name="picked">The enterprise an operator picked (ignored for an enterprise).</param>
    /// <param name="auditEvent">Only audit lines of this event, or null.</param>
    /// <param name="auditText">Only audit lines whose event name contains this (case-insensitive), or null.</param>
    public static void Write(IBufferWriter<byte> output, DashboardState state, NorthboundCaller caller, string? picked = null, string? auditEvent = null, string? auditText = null)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(caller);
        var scope = ScopeOf(caller, picked);
        var sessions = scope is null ? state.Sessions : [.. state.Sessions.Where(s => s.EasId == scope)];
        using var json = new Utf8JsonWriter(output);
        json.WriteStartObject();
        json.WriteNumber("version", state.Version);
        json.WriteString("at", state.At);
        json.WriteNumber("intervalSeconds", state.Interval.TotalSeconds);
        json.WriteStartObject("caller");
        json.WriteString("kind", caller.IsOperator ? "operator" : "enterprise");
        json.WriteString("name", caller.Name);
        json.WriteEndObject();
        if (scope is null)
        {
            json.WriteNull("view");
        }
        else
        {
            json.WriteString("view", scope);
        }

        json.WriteString("viewLabel", scope is null ? "all enterprises" : DashboardNames.Label(scope));
        if (caller.IsOperator)
        {
            // The picker and the table of enterprises: only ever in an operator's snapshot.
            WriteEnterprises(json, state, scope is null);
            json.WriteNumber("lost", state.Lost);
        }

        var samples = state.Samples;
        WriteTotals(json, sessions, samples, scope);
        WriteCounts(json, sessions, scope is null);
        WriteSessions(json, sessions);
        WriteSeries(json, samples, scope);
        WriteAudit(json, state, scope, auditEvent, auditText);
        json.WriteEndObject();
    }

    private static void WriteEnterprises(Utf8JsonWriter json, DashboardState state, bool withTotals)
    {
        // Each enterprise's last hour in one pass over the (sparse) samples.
        var hour = new Dictionary<string, long[]>(StringComparer.Ordinal);
        foreach (var (easId, counts) in state.Samples.SelectMany(s => s.ByEnterprise))
        {
            if (!hour.TryGetValue(easId, out var sum))
            {
                hour[easId] = sum = new long[DashboardEvent.Kinds];
            }

            for (var i = 0; i < sum.Length; i++)
            {
                sum[i] += counts[i];
            }
        }

        var known = new SortedSet<string>(StringComparer.Ordinal);
        known.UnionWith(state.Sessions.Select(s => s.EasId));
        known.UnionWith(hour.Keys);
        // An "api" line's EAS Id is its caller, which may be an operator user: not an enterprise to pick.
        known.UnionWith(state.Audit.Where(a => a.Event != DashboardAuditEntry.ApiEvent).Select(a => a.EasId));
        var sessions = state.Sessions.GroupBy(s => s.EasId, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        json.WriteStartArray("enterprises");
        foreach (var easId in known)
        {
            json.WriteStartObject();
            json.WriteString("id", easId);
            json.WriteString("label", DashboardNames.Label(easId));
            json.WriteBoolean("channel", DashboardNames.IsChannel(easId));
            if (withTotals)
            {
                json.WriteNumber("sessions", sessions.GetValueOrDefault(easId));
                for (var i = 0; i < CountNames.Length; i++)
                {
                    json.WriteNumber(CountNames[i], hour.GetValueOrDefault(easId)?[i] ?? 0);
                }
            }

            json.WriteEndObject();
        }

        json.WriteEndArray();
    }

    private static void WriteTotals(Utf8JsonWriter json, IReadOnlyList<SessionOverview> sessions, IReadOnlyList<DashboardSample> samples, string? scope)
    {
        json.WriteStartObject("totals");
        json.WriteNumber("sessions", sessions.Count);
        json.WriteNumber("established", sessions.Count(s => !s.Suspended));
        json.WriteNumber("suspended", sessions.Count(s => s.Suspended));
        json.WriteNumber("received", samples.Sum(s => Received(s, scope)));
        json.WriteNumber("sent", samples.Sum(s => Sent(s, scope)));
        for (var i = 0; i < CountNames.Length; i++)
        {
            json.WriteNumber(CountNames[i], samples.Sum(s => CountsOf(s, scope)?[i] ?? 0));
        }

        json.WriteEndObject();
    }

    private static void WriteCounts(Utf8JsonWriter json, IReadOnlyList<SessionOverview> sessions, bool byEnterprise)
    {
        json.WriteStartObject("counts");
        WriteCount(json, "state", sessions.Select(s => s.Suspended ? "suspended" : "established"));
        WriteCount(json, "service", sessions.Select(s => ServiceName(s.Service)));
        WriteCount(json, "suite", sessions.Select(s => s.Suite));
        WriteCount(json, "mode", sessions.Select(s => ModeName(s.Mode)));
        if (byEnterprise)
        {
            WriteCount(json, "enterprise", sessions.Select(s => DashboardNames.Label(s.EasId)));
        }

        json.WriteEndObject();
    }

    private static void WriteCount(Utf8JsonWriter json, string name, IEnumerable<string> keys)
    {
        json.WriteStartArray(name);
        foreach (var group in keys.GroupBy(k => k, StringComparer.Ordinal).OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal))
        {
            json.WriteStartObject();
            json.WriteString("key", group.Key);
            json.WriteNumber("count", group.Count());
            json.WriteEndObject();
        }

        json.WriteEndArray();
    }

    private static void WriteSessions(Utf8JsonWriter json, IReadOnlyList<SessionOverview> sessions)
    {
        json.WriteNumber("sessionsShown", Math.Min(sessions.Count, MaxSessionRows));
        json.WriteStartArray("sessions");
        foreach (var s in sessions.Take(MaxSessionRows))
        {
            json.WriteStartObject();
            json.WriteNumber("id", s.SessionId);
            json.WriteString("state", s.Suspended ? "suspended" : "established");
            json.WriteString("service", ServiceName(s.Service));
            json.WriteString("suite", s.Suite);
            json.WriteString("mode", ModeName(s.Mode));
            json.WriteString("enterprise", s.EasId);
            json.WriteString("enterpriseLabel", DashboardNames.Label(s.EasId));
            json.WriteBoolean("channel", DashboardNames.IsChannel(s.EasId));
            json.WriteEndObject();
        }

        json.WriteEndArray();
    }

    private static void WriteSeries(Utf8JsonWriter json, IReadOnlyList<DashboardSample> samples, string? scope)
    {
        json.WriteStartObject("series");
        json.WriteStartArray("at");
        foreach (var s in samples)
        {
            json.WriteNumberValue(s.At.ToUnixTimeMilliseconds());
        }

        json.WriteEndArray();
        json.WriteStartArray("seconds");
        foreach (var s in samples)
        {
            json.WriteNumberValue(Math.Round(s.Seconds, 3));
        }

        json.WriteEndArray();
        WriteSeries(json, "received", samples.Select(s => Received(s, scope)));
        WriteSeries(json, "sent", samples.Select(s => Sent(s, scope)));
        for (var i = 0; i < CountNames.Length; i++)
        {
            var index = i;
            WriteSeries(json, CountNames[i], samples.Select(s => CountsOf(s, scope)?[index] ?? 0));
        }

        WriteSeries(json, "sessions", samples.Select(s => scope is null ? s.Sessions : (long)s.SessionsByEnterprise.GetValueOrDefault(scope)));
        json.WriteEndObject();

        // The HSE as a whole counts every EMSDP message; an enterprise's view counts its payloads (the HSE cannot tell
        // which enterprise an AKA or key-management message of a session not yet established is for).
        json.WriteStartObject("seriesLabels");
        json.WriteString("received", scope is null ? "EMSDP messages received" : "uplink payloads");
        json.WriteString("sent", scope is null ? "EMSDP messages sent" : "downlink acknowledged");
        json.WriteEndObject();
    }

    private static void WriteSeries(Utf8JsonWriter json, string name, IEnumerable<long> values)
    {
        json.WriteStartArray(name);
        foreach (var value in values)
        {
            json.WriteNumberValue(value);
        }

        json.WriteEndArray();
    }

    private static void WriteAudit(Utf8JsonWriter json, DashboardState state, string? scope, string? auditEvent, string? auditText)
    {
        var lines = state.Audit.Where(a => scope is null || a.EasId == scope).ToList();
        json.WriteBoolean("auditAvailable", state.AuditAvailable);
        json.WriteStartArray("auditEvents");
        foreach (var name in lines.Select(a => a.Event).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
        {
            json.WriteStringValue(name);
        }

        json.WriteEndArray();
        json.WriteStartArray("audit");
        var shown = lines.Where(a => (string.IsNullOrEmpty(auditEvent) || a.Event == auditEvent)
            && (string.IsNullOrEmpty(auditText) || a.Event.Contains(auditText, StringComparison.OrdinalIgnoreCase)));
        foreach (var line in shown.Take(MaxAuditLines))
        {
            json.WriteStartObject();
            json.WriteNumber("seq", line.Seq);
            json.WriteString("at", line.At);
            json.WriteString("event", line.Event);
            json.WriteString("enterprise", line.EasId);
            if (line.Detail is null)
            {
                json.WriteNull("detail");
            }
            else
            {
                json.WriteString("detail", line.Detail);
            }

            json.WriteEndObject();
        }

        json.WriteEndArray();
    }

    private static long[]? CountsOf(DashboardSample sample, string? scope) =>
        scope is null ? sample.All : sample.ByEnterprise.GetValueOrDefault(scope);

    private static long Received(DashboardSample sample, string? scope) =>
        scope is null ? sample.Received : CountsOf(sample, scope)?[(int)DashboardCount.Uplink] ?? 0;

    private static long Sent(DashboardSample sample, string? scope) =>
        scope is null ? sample.Sent : CountsOf(sample, scope)?[(int)DashboardCount.Acknowledged] ?? 0;

    private static string ServiceName(BestService service) => service switch
    {
        BestService.Confidential => "confidentiality",
        BestService.Integrity => "integrity",
        BestService.KeyAgreementOnly => "key agreement only",
        BestService.None => "no security",
        _ => service.ToString(),
    };

    private static string ModeName(SessionMode mode) => mode switch
    {
        SessionMode.UeToHse => "UE-to-HSE",
        SessionMode.UeToEas => "UE-to-EAS",
        SessionMode.KeyAgreementOnly => "key agreement only",
        _ => mode.ToString(),
    };
}
