using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using OpenBest.Cli;
using OpenBest.Client;
using OpenBest.EasInterface;
using OpenBest.Protocol;
using OpenBest.Sessions;
using OpenBest.Testing;

namespace OpenBest.Hse.Northbound.Tests;

/// <summary>
/// A real <c>best hse</c> process with its enterprise port, provisioned as an operator would with the CLI: two
/// devices, each known to one enterprise by an external identifier, the development PKI (two enterprises, one
/// operator user) and one OAuth client per enterprise and for the operator.
/// </summary>
internal sealed partial class NorthboundHse : IAsyncDisposable
{
    public const string Acme = "acme.example";
    public const string Other = "other.example";
    public const string AcmeDevice = "meter-1@acme";
    public const string OtherDevice = "meter-2@other";
    public const string K = "465b5ce8b199b49faa5f0a2ee238a6bc";
    public const string Opc = "cd63cb71954a9f4e48a5994e37a02baf";
    public static readonly string[] Imsis = ["001010000000801", "001010000000802"];

    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-nb-");
    private readonly Dictionary<string, string> _secrets = [];
    private readonly string[] _extra;
    private BestProcess? _hse;

    private NorthboundHse(string[] extra) => _extra = extra;

    /// <summary>Whether the HSE accepts plain http callbacks on loopback (the test applications use them).</summary>
    public bool HttpCallbacks { get; init; } = true;

    public string Data => _directory.FullName;

    public int EasPort { get; private set; }

    public IPEndPoint Udp { get; private set; } = new(IPAddress.Loopback, 0);

    public BestProcess Process => _hse!;

    public Uri Base => new($"https://127.0.0.1:{EasPort}/");

    public static Task<NorthboundHse> StartAsync(params string[] extra) => StartAsync(httpCallbacks: true, extra);

    public static async Task<NorthboundHse> StartAsync(bool httpCallbacks, params string[] extra)
    {
        var hse = new NorthboundHse(extra) { HttpCallbacks = httpCallbacks };
        using (var sink = new StringWriter())
        {
            for (var i = 0; i < Imsis.Length; i++)
            {
                Run(sink, "subscriber", "add", "--imsi", Imsis[i], "--k", K, "--opc", Opc, "--data-dir", hse.Data);
            }

            Run(sink, "subscriber", "external-id", "--imsi", Imsis[0], "--eas", Acme, "--id", AcmeDevice, "--data-dir", hse.Data);
            Run(sink, "subscriber", "external-id", "--imsi", Imsis[1], "--eas", Other, "--id", OtherDevice, "--data-dir", hse.Data);
            Run(sink, "pki", "init", "--eas", Acme, "--eas", Other, "--operator", "ops", "--data-dir", hse.Data);
        }

        foreach (var (id, role) in new[] { ("acme-app", "--enterprise=" + Acme), ("other-app", "--enterprise=" + Other), ("ops-app", "--operator=ops") })
        {
            using var output = new StringWriter();
            Run(output, "hse", "client", "add", "--id", id, role.Split('=')[0], role.Split('=')[1], "--data-dir", hse.Data);
            hse._secrets[id] = SecretLine().Match(output.ToString()).Groups[1].Value;
        }

        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        hse.EasPort = FreeTcpPort();
        await hse.StartProcessAsync();
        return hse;
    }

    /// <summary>Starts (or starts again, after <see cref="KillAsync"/>) the HSE on the same data folder and ports.</summary>
    public async Task StartProcessAsync()
    {
        string[] udpPort = Udp.Port == 0 ? ["--udp-port", "0"] : ["--udp-port", Udp.Port.ToString(CultureInfo.InvariantCulture)];
        // The test application's callbacks are plain http on loopback, which the HSE refuses unless told otherwise.
        _hse = BestProcess.Start(new Dictionary<string, string> { ["BEST_NORTHBOUND_HTTP_CALLBACKS"] = HttpCallbacks ? "true" : "false" },
            ["hse", "--data-dir", Data, .. udpPort, "--tcp-port", "-1", "--eas-port", EasPort.ToString(CultureInfo.InvariantCulture), .. _extra]);
        await _hse.WaitForAsync("Ctrl+C stops it");
        Udp = IPEndPoint.Parse(UdpLine().Match(_hse.Output).Groups[1].Value);
    }

    /// <summary>kill -9.</summary>
    public async Task KillAsync()
    {
        if (_hse is not null)
        {
            await _hse.DisposeAsync();
            _hse = null;
        }
    }

    /// <summary>An HTTP client that presents the certificate of <paramref name="who"/> ("eas-ID" or "operator-NAME"), or none.</summary>
    public HttpClient CertificateClient(string? who)
    {
        var handler = new SocketsHttpHandler();
        using var ca = X509CertificateLoader.LoadCertificateFromFile(DevelopmentPki.Ca(Data).Certificate);
        var caCopy = X509CertificateLoader.LoadCertificate(ca.RawData);
        handler.SslOptions.RemoteCertificateValidationCallback = (_, server, _, _) => DevelopmentPki.IsIssuedBy(server as X509Certificate2, caCopy);
        if (who is not null)
        {
            var pair = new DevelopmentPki.Pair(Path.Combine(Data, "pki", who + ".crt"), Path.Combine(Data, "pki", who + ".key"));
            var certificate = DevelopmentPki.LoadPair(pair);
            handler.SslOptions.ClientCertificates = [certificate];
            handler.SslOptions.LocalCertificateSelectionCallback = (_, _, _, _, _) => certificate;
        }

        return new HttpClient(handler) { BaseAddress = Base, Timeout = TimeSpan.FromSeconds(60) };
    }

    /// <summary>An HTTP client with a bearer token of the OAuth client <paramref name="clientId"/> (no certificate).</summary>
    public async Task<HttpClient> TokenClientAsync(string clientId)
    {
        var client = CertificateClient(null);
        using var form = new FormUrlEncodedContent(new Dictionary<string, string> { ["grant_type"] = "client_credentials", ["client_id"] = clientId, ["client_secret"] = _secrets[clientId] });
        using var response = await client.PostAsync("/oauth2/token", form, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var token = (await response.Content.ReadFromJsonAsync<JsonObject>(TestContext.Current.CancellationToken))!["access_token"]!.GetValue<string>();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    public string Secret(string clientId) => _secrets[clientId];

    /// <summary>A device (the SDK in this process) over real UDP, to <paramref name="to"/> or the HSE.</summary>
    public async Task<BestClient> DeviceAsync(int index, IPEndPoint? to = null) => await BestClient.CreateAsync(new BestClientOptions
    {
        Imsi = Imsis[index],
        K = Convert.FromHexString(K),
        Opc = Convert.FromHexString(Opc),
        Transport = new BestTransport.Udp(to ?? Udp),
        UsimStateFile = Path.Combine(Data, $"usim-{index}.json"),
        OperationTimeout = TimeSpan.FromSeconds(30),
    }, TestContext.Current.CancellationToken);

    public static UeChannelOptions Channel(string easId, BestService service = BestService.Integrity) => new() { EasId = easId, Service = service, MinimumService = BestService.Integrity };

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _directory.Delete(recursive: true);
    }

    private static void Run(TextWriter sink, params string[] args) => Assert.True(BestApp.Run(args, sink, sink) == 0, $"best {string.Join(' ', args)}: {sink}");

    private static int FreeTcpPort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    [GeneratedRegex(@"client_secret:\s+(\S+)")]
    private static partial Regex SecretLine();

    [GeneratedRegex(@"udp (\S+?)( and|,)")]
    private static partial Regex UdpLine();
}
