using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using OpenBest.Client;
using OpenBest.Protocol;
using OpenBest.Sessions;
using OpenBest.Testing;

namespace OpenBest.Hse.Web.Tests;

/// <summary>
/// A real <c>best hse</c> with its EAS port (the dashboard's), sampling every second; three real devices (the device SDK
/// over UDP) holding sessions with two enterprises; audit lines whose subjects are the devices' external identifiers;
/// and Debian's Chromium driven by Playwright. Shared by the dashboard's tests, which run one after another.
/// </summary>
public sealed partial class DashboardFixture : IAsyncLifetime
{
    public const string Chromium = "/usr/bin/chromium";
    public const string Acme = "acme.example";
    public const string Globex = "globex.example";
    public const string Operator = "ops";
    public const string PushEasId = "urn:best:push";
    private const string K = "465b5ce8b199b49faa5f0a2ee238a6bc";
    private const string Opc = "cd63cb71954a9f4e48a5994e37a02baf";
    private static readonly ServingNetwork Network = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org");

    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-dashboard-");
    private readonly List<BestClient> _devices = [];
    private BestProcess? _hse;

    /// <summary>The devices: IMSI, external identifier, enterprise.</summary>
    public static readonly (string Imsi, string ExternalId, string EasId)[] Devices =
    [
        ("001010000004242", "meter-7@acme", Acme),
        ("001010000004343", "gateway-3@acme", Acme),
        ("001010000004444", "sensor-9@globex", Globex),
    ];

    /// <summary>Every subscriber identity and external identifier: none may ever reach the page.</summary>
    public static IEnumerable<string> Secrets => Devices.SelectMany(d => new[] { d.Imsi, d.ExternalId });

    public string Data => _directory.FullName;

    public int Port { get; private set; }

    /// <summary>When the HSE was started (a <see cref="System.Diagnostics.Stopwatch"/> timestamp).</summary>
    public long Started { get; private set; }

    public string Origin => "https://127.0.0.1:" + Port.ToString(CultureInfo.InvariantCulture);

    /// <summary>acme's channel with confidentiality (UE-to-HSE), the one the tests send on.</summary>
    public BestChannel AcmeMeter { get; private set; } = null!;

    /// <summary>acme's key-agreement-only session.</summary>
    public BestChannel AcmeGateway { get; private set; } = null!;

    /// <summary>globex's channel with integrity only.</summary>
    public BestChannel GlobexSensor { get; private set; } = null!;

    /// <summary>globex's device's channel of the HSE's push service (EAS Id urn:best:push): the HSE's own, no enterprise's.</summary>
    public BestChannel PushChannel { get; private set; } = null!;

    public IPlaywright Playwright { get; private set; } = null!;

    public IBrowser Browser { get; private set; } = null!;

    /// <summary>Where the screenshots go: artifacts/dashboard beside the test binaries.</summary>
    public static string Artifacts { get; } = Path.Combine(AppContext.BaseDirectory, "artifacts", "dashboard");

    public string HseOutput => _hse is null ? string.Empty : _hse.Output + _hse.Error;

    public async ValueTask InitializeAsync()
    {
        // Never skipped: CI installs Chromium, and a developer is told how.
        Assert.True(File.Exists(Chromium), $"{Chromium} is missing: the dashboard's browser tests use Debian's Chromium (apt-get install chromium)");
        Directory.CreateDirectory(Artifacts);

        // As an operator provisions it: best subscriber add / external-id, best pki init.
        foreach (var (imsi, externalId, easId) in Devices)
        {
            await RunAsync("subscriber", "add", "--imsi", imsi, "--k", K, "--opc", Opc, "--data-dir", Data);
            await RunAsync("subscriber", "external-id", "--imsi", imsi, "--eas", easId, "--id", externalId, "--data-dir", Data);
        }

        // The last certificate names one of the HSE's own channels: the PKI issues it, the dashboard must refuse it.
        await RunAsync("pki", "init", "--eas", Acme, "--eas", Globex, "--operator", Operator, "--eas", PushEasId, "--data-dir", Data);
        await StartHseAsync();
        var udp = IPEndPoint.Parse(UdpAddress().Match(_hse!.Output).Groups[1].Value);

        AcmeMeter = await OpenAsync(0, udp, BestService.Confidential);
        AcmeGateway = await OpenAsync(1, udp, BestService.KeyAgreementOnly);
        GlobexSensor = await OpenAsync(2, udp, BestService.Integrity);
        PushChannel = await OpenAsync(2, udp, BestService.Confidential, PushEasId);
        Assert.Equal(SendStatus.Acknowledged, await AcmeMeter.SendAsync("meter 42.1 kWh"u8.ToArray(), acknowledged: true, Cancel));
        Assert.Equal(SendStatus.Acknowledged, await GlobexSensor.SendAsync("21.5 C"u8.ToArray(), acknowledged: true, Cancel));

        // The enterprises fetch keys: the audit lines' subjects are the devices' external identifiers (never shown).
        var buffer = new byte[32];
        Assert.True(AcmeGateway.TryGetPsk(buffer, out var keyIdentifier));
        await FetchPskAsync(Acme, BestChannel.PskIdentity(Devices[1].ExternalId, keyIdentifier));
        await FetchPskAsync(Globex, BestChannel.PskIdentity(Devices[2].ExternalId, 0x1234abcd));

        Playwright = await Microsoft.Playwright.Playwright.CreateAsync();
        Browser = await Playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = Chromium,
            Headless = true,
            // As root (CI, containers) Chromium's sandbox cannot start; /dev/shm may be small in a container.
            Args = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        });
    }

    public async ValueTask DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.DisposeAsync();
        }

        Playwright?.Dispose();
        foreach (var device in _devices)
        {
            await device.DisposeAsync();
        }

        if (_hse is not null)
        {
            await _hse.DisposeAsync();
        }

        _directory.Delete(recursive: true);
    }

    /// <summary>A browser context that presents the client certificate of <paramref name="pkiName"/> (pki/NAME.crt and .key), or none.</summary>
    public async Task<IBrowserContext> ContextAsync(string? pkiName)
    {
        var options = new BrowserNewContextOptions { IgnoreHTTPSErrors = true, ViewportSize = new ViewportSize { Width = 1400, Height = 1000 } };
        if (pkiName is not null)
        {
            options.ClientCertificates = [new ClientCertificate { Origin = Origin, CertPath = Path.Combine(Data, "pki", pkiName + ".crt"), KeyPath = Path.Combine(Data, "pki", pkiName + ".key") }];
        }

        var context = await Browser.NewContextAsync(options);
        context.SetDefaultTimeout((float)TimeSpan.FromSeconds(60).TotalMilliseconds);
        return context;
    }

    /// <summary>Saves a full-page screenshot as artifacts/dashboard/NAME.png and says where.</summary>
    public static async Task ScreenshotAsync(IPage page, string name)
    {
        var path = Path.Combine(Artifacts, name + ".png");
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = path, FullPage = true });
        TestContext.Current.TestOutputHelper?.WriteLine($"screenshot: {path}");
    }

    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    private async Task StartHseAsync()
    {
        var environment = new Dictionary<string, string> { ["BEST_DASHBOARD_SAMPLE_SECONDS"] = "1" };
        for (var attempt = 1; ; attempt++)
        {
            Port = FreeTcpPort();
            Started = System.Diagnostics.Stopwatch.GetTimestamp();
            _hse = BestProcess.Start(environment, "hse", "--data-dir", Data, "--udp-port", "0", "--tcp-port", "-1", "--eas-port", Port.ToString(CultureInfo.InvariantCulture));
            try
            {
                await _hse.WaitForAsync("EAS interface on https://");
                return;
            }
            catch (Exception) when (attempt < 3)
            {
                // The port was taken between the probe and the HSE's bind: another one.
                await _hse.DisposeAsync();
            }
        }
    }

    private async Task<BestChannel> OpenAsync(int device, IPEndPoint udp, BestService service, string? channelEasId = null)
    {
        var (imsi, _, deviceEasId) = Devices[device];
        var easId = channelEasId ?? deviceEasId;
        var client = await BestClient.CreateAsync(new BestClientOptions
        {
            Imsi = imsi, K = Convert.FromHexString(K), Opc = Convert.FromHexString(Opc), Transport = new BestTransport.Udp(udp),
            UsimStateFile = Path.Combine(Data, $"usim-{imsi}.json"), OperationTimeout = Eventually.Deadline,
        }, Cancel);
        _devices.Add(client);
        var opened = await client.OpenAsync(new UeChannelOptions { EasId = easId, Service = service, MinimumService = service, ServingNetwork = Network }, Cancel);
        return opened.Channel ?? throw new InvalidOperationException($"{imsi}: no session with {easId} ({opened.Rejected}); HSE: {HseOutput}");
    }

    /// <summary><c>best eas psk</c> as <paramref name="easId"/>: the HSE writes an audit line naming the device's external identifier, delivered or refused.</summary>
    private async Task FetchPskAsync(string easId, string identity)
    {
        var (code, output, error) = await BestProcess.RunAsync(["eas", "psk", "--eas-id", easId, "--identity", identity, "--hse", Origin + "/", "--data-dir", Data]);
        Assert.True(code is 0 or 1, $"best eas psk: {code} {output} {error}");
    }

    private static async Task RunAsync(params string[] arguments)
    {
        var (code, output, error) = await BestProcess.RunAsync(arguments);
        Assert.True(code == 0, $"best {string.Join(' ', arguments)}: {code} {output} {error}");
    }

    private static int FreeTcpPort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    [GeneratedRegex(@"udp (\S+?)( and|,)")]
    private static partial Regex UdpAddress();
}
