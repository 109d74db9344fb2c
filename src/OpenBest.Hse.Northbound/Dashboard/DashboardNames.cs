namespace OpenBest.Hse.Northbound.Dashboard;

/// <summary>How the dashboard names what it shows: the HSE's own channels, services, modes.</summary>
internal static class DashboardNames
{
    /// <summary>The prefix of the EAS Ids reserved for the HSE's own services; no enterprise has one.</summary>
    public const string ReservedPrefix = "urn:best:";

    /// <summary>Whether <paramref name="easId"/> is one of the HSE's own channels rather than an enterprise.</summary>
    public static bool IsChannel(string easId) => easId.StartsWith(ReservedPrefix, StringComparison.Ordinal);

    /// <summary>What the page calls <paramref name="easId"/>: the enterprise's EAS Id, or which of the HSE's channels it is.</summary>
    public static string Label(string easId) => easId switch
    {
        "urn:best:push" => "HSE push channel",
        "urn:best:mgmt" => "HSE management channel",
        "urn:best:ota" => "HSE OTA channel",
        _ when IsChannel(easId) => "HSE channel " + easId[ReservedPrefix.Length..],
        _ => easId,
    };
}
