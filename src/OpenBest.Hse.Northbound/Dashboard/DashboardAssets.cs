namespace OpenBest.Hse.Northbound.Dashboard;

/// <summary>
/// The page, its script and its style sheet, embedded in this assembly (Dashboard/Assets): the HSE serves everything the
/// page needs, with no external script, style sheet or font (an operator's network may reach nothing else).
/// </summary>
internal static class DashboardAssets
{
    /// <summary>The page.</summary>
    public static readonly byte[] Page = Load("dashboard.html");

    /// <summary>Its script.</summary>
    public static readonly byte[] Script = Load("dashboard.js");

    /// <summary>Its style sheet.</summary>
    public static readonly byte[] Style = Load("dashboard.css");

    private static byte[] Load(string name)
    {
        var resource = typeof(DashboardAssets).Namespace + "." + name;
        using var stream = typeof(DashboardAssets).Assembly.GetManifestResourceStream(resource)
            ?? throw new InvalidOperationException($"the dashboard's {name} is not embedded ({resource})");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}
