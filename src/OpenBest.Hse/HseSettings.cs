using System.Globalization;
using System.Net;
using Microsoft.Extensions.Logging;
using OpenBest.EasInterface;
using OpenBest.Sessions;

namespace OpenBest.Hse;

/// <summary>A setting that is wrong: the message names the setting and where it came from, never a secret.</summary>
public sealed class SettingsException(string message) : InvalidOperationException(message);

/// <summary>
/// The settings of <c>best hse</c>, from (weakest first) the defaults, <c>appsettings.json</c> (section "Hse"),
/// <c>BEST_</c>-prefixed environment variables (<c>BEST_DATA_DIR</c>, <c>BEST_UDP_PORT</c>, ...) and the command
/// line. <see cref="Load"/> validates everything before anything starts.
/// </summary>
public sealed record HseSettings
{
    /// <summary>Every setting: its name in appsettings.json, and its default as text.</summary>
    public static IReadOnlyList<(string Name, string Default, string Description)> Catalogue { get; } =
    [
        ("DataDir", "openbest-data", "the data folder (SQLite database, master key)"),
        ("Postgres", "", "a PostgreSQL connection string instead of SQLite"),
        ("Bind", "127.0.0.1", "the address the listeners bind"),
        ("UdpPort", "3163", "the UDP port (0: any free one)"),
        ("TcpPort", "3163", "the TCP port (0: any free one; -1: no TCP)"),
        ("MetricsPort", "-1", "the HTTP port of /metrics and /health (-1: none)"),
        ("NonIp", "", "a non-IP stream bearer: a serial device path, or - for stdin/stdout"),
        ("EasPort", "-1", "the HTTPS port of the HSE–EAS interface (mutual TLS; -1: none)"),
        ("EasCertificate", "", "the HSE's certificate (PEM) for the EAS interface; DataDir/pki/hse.crt by default"),
        ("EasKey", "", "its private key (PEM); DataDir/pki/hse.key by default"),
        ("EasCa", "", "the CA (PEM) EAS certificates must chain to; DataDir/pki/ca.crt by default"),
        ("AllowNoSecurity", "false", "whether the no-security service may be selected"),
        ("ConfidentialityForbiddenIn", "", "serving networks (names or PLMN IDs, comma separated) where confidentiality is not allowed"),
        ("RejectWhereConfidentialityForbidden", "false", "reject (cause 0x09) instead of selecting integrity there"),
        ("RequireCookie", "false", "ask every new device for a cookie first"),
        ("HideUnknownSubscribers", "true", "answer unknown identities with a decoy Session Start"),
        ("KeyLifetimeSeconds", "0", "refresh keys after this many seconds (0: never by age)"),
        ("MaxPendingSessions", "10000", "unconfirmed sessions at most"),
        ("MaxSessions", "1000000", "sessions held at most"),
        ("WorkQueue", "65536", "work items queued at most (admission control)"),
        ("SqnInd", "31", "the IND of this node's SQNs, 0..31 (give each HSE node sharing a database its own)"),
        ("SeqBlock", "16", "SEQs reserved per subscriber per database write"),
        ("StoreOutageSeconds", "30", "how long the HSE holds a batch and tries its commit again while the database is away (a PostgreSQL failover) before it stops, 1..600"),
        ("ClusterShards", "16", "shards of the Session ID space of a new cluster database, 1..256 (best hse --cluster: the first node records the number; later nodes follow the database)"),
        ("Auc", "", "gsup://HOST:PORT: vectors from the operator's HLR over GSUP instead of the local store (the HSE never holds K or OPc)"),
        ("GsupName", "OpenBest-HSE", "this node's name towards the HLR (unique per HLR client; a cluster node adds -NODENAME)"),
        ("TlsServices", "", "the converter's TLS services, ID=HOST:PORT[,ca=PEMFILE] separated by ';': a channel naming ID is relayed to that TLS server"),
        ("TlsInbound", "", "the converter the other way, PORT=EASID separated by ';': TLS clients on PORT (the HSE's EasCertificate) reach the device their SNI names, over its channel naming EASID"),
        ("EnterpriseKeys", "allow", "allow or refuse: whether an EAS may bind a device's end-to-end keys to an Enterprise Key the operator never sees (UE-to-EAS mode); refuse where lawful interception requires the operator to be able to open the traffic"),
        ("NorthboundRate", "100", "requests per second each northbound API caller (enterprise, operator user, or unauthenticated address) may make"),
        ("NorthboundBurst", "200", "requests a northbound API caller may make at once above its rate"),
        ("NorthboundHttpCallbacks", "false", "whether a subscription's notificationDestination may be plain http on a loopback address (development and tests; https otherwise)"),
        ("LogFormat", "text", "text or json (structured logs on stderr)"),
        ("LogLevel", "Information", "Trace, Debug, Information, Warning, Error or None"),
    ];

    /// <summary>The data folder.</summary>
    public string DataDir { get; init; } = "openbest-data";

    /// <summary>The PostgreSQL connection string, or empty for SQLite.</summary>
    public string Postgres { get; init; } = string.Empty;

    /// <summary>The listeners' address.</summary>
    public IPAddress Bind { get; init; } = IPAddress.Loopback;

    /// <summary>The UDP port.</summary>
    public int UdpPort { get; init; } = 3163;

    /// <summary>The TCP port, or −1.</summary>
    public int TcpPort { get; init; } = 3163;

    /// <summary>The metrics port, or −1.</summary>
    public int MetricsPort { get; init; } = -1;

    /// <summary>The non-IP bearer: a device path, "-" for stdin/stdout, or empty.</summary>
    public string NonIp { get; init; } = string.Empty;

    /// <summary>The HSE–EAS interface's port, or −1.</summary>
    public int EasPort { get; init; } = -1;

    /// <summary>The HSE's certificate for the EAS interface (PEM).</summary>
    public string EasCertificate { get; init; } = string.Empty;

    /// <summary>Its private key (PEM).</summary>
    public string EasKey { get; init; } = string.Empty;

    /// <summary>The CA EAS certificates must chain to (PEM).</summary>
    public string EasCa { get; init; } = string.Empty;

    /// <summary>The converter's TLS services, by the EAS Id a device's channel names.</summary>
    public IReadOnlyDictionary<string, TlsService> TlsServices { get; init; } = new Dictionary<string, TlsService>();

    /// <summary>The converter's inbound TLS listeners: port and the EAS Id of the devices' channels they reach.</summary>
    public IReadOnlyList<(int Port, string EasId)> TlsInbound { get; init; } = [];

    /// <summary>Whether an EAS may bind end-to-end keys to an Enterprise Key (the per-operator lawful-interception switch).</summary>
    public bool EnterpriseKeysAllowed { get; init; } = true;

    /// <summary>Northbound API requests per second per caller.</summary>
    public int NorthboundRate { get; init; } = 100;

    /// <summary>Northbound API burst per caller.</summary>
    public int NorthboundBurst { get; init; } = 200;

    /// <summary>Whether callbacks may be plain http on a loopback address.</summary>
    public bool NorthboundHttpCallbacks { get; init; }

    /// <summary>The engine's options these settings give.</summary>
    public HseOptions Engine { get; init; } = new();

    /// <summary>Work items queued at most.</summary>
    public int WorkQueue { get; init; } = 65_536;

    /// <summary>How long a batch is held and its commit tried again while the store fails, before the HSE stops.</summary>
    public TimeSpan StoreOutage { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Shards of a new cluster database (the database's recorded number wins).</summary>
    public int ClusterShards { get; init; } = 16;

    /// <summary>The IND of this node's SQNs.</summary>
    public int SqnInd { get; init; } = 31;

    /// <summary>SEQs reserved per subscriber per database write.</summary>
    public int SeqBlock { get; init; } = 16;

    /// <summary>The operator's HLR, or null for vectors from the local store.</summary>
    public Gsup.GsupEndpoint? Auc { get; init; }

    /// <summary>This node's name towards the HLR.</summary>
    public string GsupName { get; init; } = "OpenBest-HSE";

    /// <summary>Whether logs are JSON lines.</summary>
    public bool JsonLogs { get; init; }

    /// <summary>The minimum log level.</summary>
    public LogLevel LogLevel { get; init; } = LogLevel.Information;

    /// <summary>Where each setting came from, for the start-up log (never values of secrets: there are none here).</summary>
    public string Sources { get; init; } = "defaults";

    /// <summary>
    /// Loads and validates the settings: <paramref name="jsonFile"/> (or appsettings.json in the current folder,
    /// when present), then the environment, then <paramref name="commandLine"/> (setting name → value).
    /// </summary>
    /// <exception cref="SettingsException">A setting is unknown or invalid; the message names it.</exception>
    public static HseSettings Load(string? jsonFile, IReadOnlyDictionary<string, string?> commandLine, IDictionary<string, string?>? environment = null)
    {
        var (section, sources) = LayeredSettings.Read("Hse", [.. Catalogue.Select(c => c.Name)], EnvironmentName, jsonFile, commandLine, environment, message => new SettingsException(message));

        string Text(string name) => section[name] ?? Catalogue.First(c => c.Name == name).Default;
        int Integer(string name, int min, int max)
        {
            var text = Text(name);
            return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v >= min && v <= max
                ? v
                : throw new SettingsException($"{Describe(name)}: '{text}' is not an integer in {min}..{max}");
        }

        bool Flag(string name) => bool.TryParse(Text(name), out var v) ? v : throw new SettingsException($"{Describe(name)}: '{Text(name)}' is not true or false");

        var dataDir = Text("DataDir");
        if (string.IsNullOrWhiteSpace(dataDir))
        {
            throw new SettingsException($"{Describe("DataDir")}: must not be empty");
        }

        if (!IPAddress.TryParse(Text("Bind"), out var bind))
        {
            throw new SettingsException($"{Describe("Bind")}: '{Text("Bind")}' is not an IP address, e.g. 127.0.0.1");
        }

        var nonIp = Text("NonIp");
        if (nonIp.Length > 0 && nonIp != "-" && !File.Exists(nonIp))
        {
            throw new SettingsException($"{Describe("NonIp")}: '{nonIp}' is neither - (stdin/stdout) nor an existing device");
        }

        var format = Text("LogFormat");
        if (format is not ("text" or "json"))
        {
            throw new SettingsException($"{Describe("LogFormat")}: '{format}' is not text or json");
        }

        if (!Enum.TryParse<LogLevel>(Text("LogLevel"), ignoreCase: true, out var level) || !Enum.IsDefined(level))
        {
            throw new SettingsException($"{Describe("LogLevel")}: '{Text("LogLevel")}' is not Trace, Debug, Information, Warning, Error or None");
        }

        var lifetime = Integer("KeyLifetimeSeconds", 0, int.MaxValue);
        var enterpriseKeys = Text("EnterpriseKeys");
        if (enterpriseKeys is not ("allow" or "refuse"))
        {
            throw new SettingsException($"{Describe("EnterpriseKeys")}: '{enterpriseKeys}' is not allow or refuse");
        }

        Gsup.GsupEndpoint? auc = null;
        if (Text("Auc") is { Length: > 0 } aucText)
        {
            if (!Gsup.GsupEndpoint.TryParse(aucText, out var endpoint, out var error))
            {
                throw new SettingsException($"{Describe("Auc")}: {error}");
            }

            auc = endpoint;
        }

        if (Text("GsupName") is not { Length: >= 1 and <= 64 })
        {
            throw new SettingsException($"{Describe("GsupName")}: 1..64 characters");
        }
        var tlsServices = new Dictionary<string, TlsService>(StringComparer.Ordinal);
        foreach (var entry in Text("TlsServices").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!TlsService.TryParse(entry, out var service, out var why))
            {
                throw new SettingsException($"{Describe("TlsServices")}: '{entry}': {why}");
            }

            if (!tlsServices.TryAdd(service.Id, service))
            {
                throw new SettingsException($"{Describe("TlsServices")}: '{service.Id}' is given twice");
            }
        }

        var inbound = new List<(int Port, string EasId)>();
        foreach (var entry in Text("TlsInbound").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!Hse.TlsInbound.TryParse(entry, out var listener, out var why))
            {
                throw new SettingsException($"{Describe("TlsInbound")}: '{entry}': {why}");
            }

            inbound.Add(listener);
        }

        var forbidden = Text("ConfidentialityForbiddenIn").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return new HseSettings
        {
            DataDir = dataDir,
            Postgres = Text("Postgres"),
            Bind = bind,
            UdpPort = Integer("UdpPort", 0, 65535),
            TcpPort = Integer("TcpPort", -1, 65535),
            MetricsPort = Integer("MetricsPort", -1, 65535),
            NonIp = nonIp,
            EasPort = Integer("EasPort", -1, 65535),
            EasCertificate = Text("EasCertificate") is { Length: > 0 } c ? c : Path.Combine(dataDir, "pki", "hse.crt"),
            EasKey = Text("EasKey") is { Length: > 0 } k ? k : Path.Combine(dataDir, "pki", "hse.key"),
            EasCa = Text("EasCa") is { Length: > 0 } a ? a : Path.Combine(dataDir, "pki", "ca.crt"),
            WorkQueue = Integer("WorkQueue", 16, 16_777_216),
            SqnInd = Integer("SqnInd", 0, 31),
            SeqBlock = Integer("SeqBlock", 1, 1024),
            ClusterShards = Integer("ClusterShards", 1, 256),
            StoreOutage = TimeSpan.FromSeconds(Integer("StoreOutageSeconds", 1, 600)),
            JsonLogs = format == "json",
            LogLevel = level,
            Sources = sources,
            Auc = auc,
            GsupName = Text("GsupName"),
            TlsServices = tlsServices,
            TlsInbound = inbound,
            EnterpriseKeysAllowed = enterpriseKeys == "allow",
            NorthboundRate = Integer("NorthboundRate", 1, 1_000_000),
            NorthboundBurst = Integer("NorthboundBurst", 1, 1_000_000),
            NorthboundHttpCallbacks = Flag("NorthboundHttpCallbacks"),
            Engine = new HseOptions
            {
                AllowNoSecurity = Flag("AllowNoSecurity"),
                ConfidentialityForbiddenIn = new HashSet<string>(forbidden, StringComparer.Ordinal),
                DowngradeToIntegrityWhereConfidentialityForbidden = !Flag("RejectWhereConfidentialityForbidden"),
                RequireCookie = Flag("RequireCookie"),
                HideUnknownSubscribers = Flag("HideUnknownSubscribers"),
                KeyLifetime = lifetime == 0 ? null : TimeSpan.FromSeconds(lifetime),
                MaxPendingSessions = Integer("MaxPendingSessions", 1, 10_000_000),
                MaxSessions = Integer("MaxSessions", 1, 100_000_000),
            },
        };
    }

    /// <summary>The environment variable of a setting: DataDir → BEST_DATA_DIR.</summary>
    public static string EnvironmentName(string name) => LayeredSettings.EnvironmentName("BEST_", name);

    private static string Describe(string name) => $"{name} ({EnvironmentName(name)})";
}
