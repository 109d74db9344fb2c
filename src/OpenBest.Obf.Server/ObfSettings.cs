using System.Globalization;
using System.Net;
using Microsoft.Extensions.Logging;
using OpenBest.EasInterface;
using OpenBest.Gsup;

namespace OpenBest.Obf.Server;

/// <summary>A setting that is wrong: the message names the setting and where it came from, never a secret.</summary>
public sealed class ObfSettingsException(string message) : InvalidOperationException(message);

/// <summary>
/// The settings of <c>best obf serve</c>, from (weakest first) the defaults, <c>appsettings.json</c> (section "Obf"),
/// <c>BEST_OBF_</c> environment variables (and <c>BEST_DATA_DIR</c>, <c>BEST_POSTGRES</c> as the HSE reads them) and the
/// command line. <see cref="Load"/> validates everything before anything starts.
/// </summary>
public sealed record ObfSettings
{
    /// <summary>Every setting: its name, its default as text, what it is.</summary>
    public static IReadOnlyList<(string Name, string Default, string Description)> Catalogue { get; } =
    [
        ("DataDir", "openbest-data", "the data folder (obf.db, master key, pki/)"),
        ("Postgres", "", "a PostgreSQL connection string instead of SQLite"),
        ("Bind", "127.0.0.1", "the address the endpoints bind"),
        ("UbPort", "8443", "the port of Ub (RPB: bootstrapping at /), 0 for any free one"),
        ("RpoPort", "8444", "the port of the key service (RPO, Nbsp_GBA) and the registry API, mutual TLS, 0 for any free one"),
        ("MetricsPort", "-1", "the HTTP port of /metrics and /health (-1: none)"),
        ("Domain", "bsf.obf.local", "the server's domain: the realm of Ub and the part of each B-TID after @"),
        ("InsecureHttp", "false", "serve Ub over plain HTTP (loopback tests only)"),
        ("KeyLifetimeSeconds", "86400", "the lifetime of Ks by local policy"),
        ("MaxBootstrapsPerIdentityPerMinute", "20", "challenges per identity per minute at most (each costs the card a SEQ); beyond it 429"),
        ("Auc", "", "gsup://HOST:PORT: vectors for secure elements whose keys this server does not hold, from the operator's HLR"),
        ("GsupName", "OpenBest-OBF", "this server's name towards the HLR (unique per HLR client)"),
        ("LogFormat", "text", "text or json (structured logs on stderr)"),
        ("LogLevel", "Information", "Trace, Debug, Information, Warning, Error or None"),
    ];

    /// <summary>The data folder.</summary>
    public string DataDir { get; init; } = "openbest-data";

    /// <summary>The PostgreSQL connection string, or empty for SQLite.</summary>
    public string Postgres { get; init; } = string.Empty;

    /// <summary>The endpoints' address.</summary>
    public IPAddress Bind { get; init; } = IPAddress.Loopback;

    /// <summary>Ub's port.</summary>
    public int UbPort { get; init; } = 8443;

    /// <summary>The key service's port.</summary>
    public int RpoPort { get; init; } = 8444;

    /// <summary>The metrics port, or −1.</summary>
    public int MetricsPort { get; init; } = -1;

    /// <summary>The server's domain.</summary>
    public string Domain { get; init; } = "bsf.obf.local";

    /// <summary>Whether Ub is plain HTTP.</summary>
    public bool InsecureHttp { get; init; }

    /// <summary>The lifetime of Ks.</summary>
    public TimeSpan KeyLifetime { get; init; } = TimeSpan.FromDays(1);

    /// <summary>Challenges per identity per minute at most.</summary>
    public int MaxBootstrapsPerIdentityPerMinute { get; init; } = 20;

    /// <summary>The operator's HLR, or null.</summary>
    public GsupEndpoint? Auc { get; init; }

    /// <summary>The name towards the HLR.</summary>
    public string GsupName { get; init; } = "OpenBest-OBF";

    /// <summary>Whether logs are JSON lines.</summary>
    public bool JsonLogs { get; init; }

    /// <summary>The minimum log level.</summary>
    public LogLevel LogLevel { get; init; } = LogLevel.Information;

    /// <summary>Where the settings came from.</summary>
    public string Sources { get; init; } = "defaults";

    /// <summary>The environment variable of a setting: UbPort → BEST_OBF_UB_PORT (DataDir and Postgres are shared with the HSE: BEST_DATA_DIR, BEST_POSTGRES).</summary>
    public static string EnvironmentName(string name) => LayeredSettings.EnvironmentName(name is "DataDir" or "Postgres" ? "BEST_" : "BEST_OBF_", name);

    /// <summary>Loads and validates: <paramref name="jsonFile"/> (or ./appsettings.json when present), the environment, then <paramref name="commandLine"/>.</summary>
    /// <exception cref="ObfSettingsException">A setting is unknown or invalid; the message names it.</exception>
    public static ObfSettings Load(string? jsonFile, IReadOnlyDictionary<string, string?> commandLine, IDictionary<string, string?>? environment = null)
    {
        var (section, sources) = LayeredSettings.Read("Obf", [.. Catalogue.Select(c => c.Name)], EnvironmentName, jsonFile, commandLine, environment, message => new ObfSettingsException(message));

        string Text(string name) => section[name] ?? Catalogue.First(c => c.Name == name).Default;
        string Describe(string name) => $"{name} ({EnvironmentName(name)})";
        int Integer(string name, int min, int max)
        {
            var text = Text(name);
            return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v >= min && v <= max
                ? v
                : throw new ObfSettingsException($"{Describe(name)}: '{text}' is not an integer in {min}..{max}");
        }

        var dataDir = Text("DataDir");
        if (string.IsNullOrWhiteSpace(dataDir))
        {
            throw new ObfSettingsException($"{Describe("DataDir")}: must not be empty");
        }

        if (!IPAddress.TryParse(Text("Bind"), out var bind))
        {
            throw new ObfSettingsException($"{Describe("Bind")}: '{Text("Bind")}' is not an IP address, e.g. 127.0.0.1");
        }

        var domain = Text("Domain");
        if (!KeyService.IsFqdn(domain))
        {
            throw new ObfSettingsException($"{Describe("Domain")}: '{domain}' is not a DNS name, e.g. bsf.example.org");
        }

        if (!bool.TryParse(Text("InsecureHttp"), out var insecure))
        {
            throw new ObfSettingsException($"{Describe("InsecureHttp")}: '{Text("InsecureHttp")}' is not true or false");
        }

        GsupEndpoint? auc = null;
        if (Text("Auc") is { Length: > 0 } aucText)
        {
            if (!GsupEndpoint.TryParse(aucText, out var endpoint, out var error))
            {
                throw new ObfSettingsException($"{Describe("Auc")}: {error}");
            }

            auc = endpoint;
        }

        var format = Text("LogFormat");
        if (format is not ("text" or "json"))
        {
            throw new ObfSettingsException($"{Describe("LogFormat")}: '{format}' is not text or json");
        }

        if (!Enum.TryParse<LogLevel>(Text("LogLevel"), ignoreCase: true, out var level) || !Enum.IsDefined(level))
        {
            throw new ObfSettingsException($"{Describe("LogLevel")}: '{Text("LogLevel")}' is not Trace, Debug, Information, Warning, Error or None");
        }

        var gsupName = Text("GsupName");
        if (gsupName.Length is 0 or > 64)
        {
            throw new ObfSettingsException($"{Describe("GsupName")}: 1..64 characters");
        }

        return new ObfSettings
        {
            DataDir = dataDir,
            Postgres = Text("Postgres"),
            Bind = bind,
            UbPort = Integer("UbPort", 0, 65535),
            RpoPort = Integer("RpoPort", 0, 65535),
            MetricsPort = Integer("MetricsPort", -1, 65535),
            Domain = domain.ToLowerInvariant(),
            InsecureHttp = insecure,
            KeyLifetime = TimeSpan.FromSeconds(Integer("KeyLifetimeSeconds", 60, 365 * 86400)),
            MaxBootstrapsPerIdentityPerMinute = Integer("MaxBootstrapsPerIdentityPerMinute", 1, int.MaxValue),
            Auc = auc,
            GsupName = gsupName,
            JsonLogs = format == "json",
            LogLevel = level,
            Sources = sources,
        };
    }
}
