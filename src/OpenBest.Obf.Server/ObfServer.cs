using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenBest.EasInterface;
using OpenBest.Gsup;
using OpenBest.Sessions;
using OpenBest.Storage;
using OpenBest.Storage.Postgres;

namespace OpenBest.Obf.Server;

/// <summary>
/// The Open Bootstrap Framework authentication server (Y.OBF_trust 7.1): Ub at <c>/</c> of its Ub port (HTTPS on its
/// certificate, plain HTTP only when asked), the key service (RPO, Nbsp_GBA) and the registry and rights API (RPR) on its
/// RPO port over mutual TLS with the development CA (<c>best pki init --naf</c>), and <c>/metrics</c>, <c>/health</c>.
/// It owns its store, writer and AuC; dispose it to stop (queued bootstrappings and audit entries are written first).
/// </summary>
public sealed partial class ObfServer : IAsyncDisposable
{
    private readonly List<WebApplication> _apps = [];
    private readonly List<IDisposable> _owned = [];
    private readonly CancellationTokenSource _stop = new();
    private Task _purge = Task.CompletedTask;
    private GsupAuc? _gsup;

    private ObfServer(ObfSettings settings, IObfStore store, MasterKey key, ILogger log)
    {
        Settings = settings;
        Store = store;
        MasterKey = key;
        Log = log;
        Writer = new ObfWriter(store);
        Cache = new BootstrapCache(store);
    }

    /// <summary>The settings it runs with.</summary>
    public ObfSettings Settings { get; }

    /// <summary>Its store.</summary>
    public IObfStore Store { get; }

    /// <summary>Its master key.</summary>
    public MasterKey MasterKey { get; }

    /// <summary>The group-commit writer.</summary>
    public ObfWriter Writer { get; }

    /// <summary>The bootstrappings held in memory.</summary>
    public BootstrapCache Cache { get; }

    /// <summary>The bootstrapping function.</summary>
    public UbServer Ub { get; private set; } = null!;

    /// <summary>The server's own key pair: it signs transfer records and receives transferred keys.</summary>
    public ObfServerKey ServerKey { get; private set; } = null!;

    /// <summary>The key service.</summary>
    public KeyService Keys { get; private set; } = null!;

    /// <summary>Ub's address once started, e.g. https://127.0.0.1:8443.</summary>
    public string UbAddress { get; private set; } = string.Empty;

    /// <summary>The key service's address once started.</summary>
    public string RpoAddress { get; private set; } = string.Empty;

    /// <summary>The metrics endpoint's address, or empty.</summary>
    public string MetricsAddress { get; private set; } = string.Empty;

    private ILogger Log { get; }

    /// <summary>Opens the store (SQLite in the data folder, or PostgreSQL), loads the certificates, and starts the endpoints.</summary>
    /// <exception cref="InvalidOperationException">A certificate is missing, a port is taken, the store cannot be opened: the message says which.</exception>
    public static async Task<ObfServer> StartAsync(ObfSettings settings, ILogger? log = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(settings);
        // Certificates first: nothing is written to the data folder when they are missing.
        var pki = settings.DataDir;
        var ca = DevelopmentPki.LoadCertificate(DevelopmentPki.Ca(pki).Certificate);
        var certificate = DevelopmentPki.LoadPair(DevelopmentPki.Obf(pki));
        var key = MasterKey.Load(settings.DataDir);
        IObfStore store;
        try
        {
            store = string.IsNullOrWhiteSpace(settings.Postgres) ? SqliteObfStore.Open(settings.DataDir, key) : PostgresObfStore.Open(settings.Postgres, key);
        }
        catch
        {
            key.Dispose();
            throw;
        }

        var server = new ObfServer(settings, store, key, log ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        server._owned.Add(ca);
        server._owned.Add(certificate);
        try
        {
            await server.StartCoreAsync(ca, certificate, cancellationToken).ConfigureAwait(false);
            return server;
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task StartCoreAsync(X509Certificate2 ca, X509Certificate2 certificate, CancellationToken cancellationToken)
    {
        IHseSubscribers? remote = null;
        if (Settings.Auc is { } endpoint)
        {
            _gsup = GsupAuc.Connect(new GsupClientOptions { Endpoint = endpoint, UnitName = Settings.GsupName });
            remote = _gsup;
        }

        var auc = new ObfAuc(Store, remote);
        _owned.Add(auc);
        _owned.Add(Cache);
        Ub = new UbServer(Store, auc, Writer, Cache, new UbOptions { Domain = Settings.Domain, KeyLifetime = Settings.KeyLifetime, MaxChallengesPerIdentityPerMinute = Settings.MaxBootstrapsPerIdentityPerMinute });
        Keys = new KeyService(Store, Cache, Writer);
        ServerKey = ObfServerKey.LoadOrCreate(Store);
        _owned.Add(ServerKey);

        // Ub (RPB): GET / with HTTP Digest AKA. HTTPS on the server's certificate; plain HTTP only for loopback tests.
        var ub = Slim();
        ub.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(new IPEndPoint(Settings.Bind, Settings.UbPort), listen =>
        {
            if (!Settings.InsecureHttp)
            {
                listen.UseHttps(certificate);
            }
        }));
        var ubApp = ub.Build();
        ubApp.Run(HandleUbAsync);
        await Start(ubApp, cancellationToken).ConfigureAwait(false);
        UbAddress = Address(ubApp);

        // RPO (Nbsp_GBA) and the registry/rights API (RPR): mutual TLS, certificates of the CA only.
        var rpo = Slim();
        rpo.Services.AddOpenApi();
        rpo.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(new IPEndPoint(Settings.Bind, Settings.RpoPort), listen => listen.UseHttps(new HttpsConnectionAdapterOptions
        {
            ServerCertificate = certificate,
            ClientCertificateMode = ClientCertificateMode.RequireCertificate,
            ClientCertificateValidation = (client, _, _) => DevelopmentPki.IsIssuedBy(client, ca),
        })));
        var rpoApp = rpo.Build();
        ObfApi.Map(rpoApp, this);
        rpoApp.MapOpenApi();
        await Start(rpoApp, cancellationToken).ConfigureAwait(false);
        RpoAddress = Address(rpoApp);

        if (Settings.MetricsPort >= 0)
        {
            var metrics = Slim();
            metrics.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(new IPEndPoint(Settings.Bind, Settings.MetricsPort)));
            var metricsApp = metrics.Build();
            metricsApp.MapGet("/metrics", () => Results.Text(Metrics(), "text/plain; version=0.0.4"));
            metricsApp.MapGet("/health", () => Writer.Errors == 0 ? Results.Text("ok\n", "text/plain") : Results.Text("degraded\n", "text/plain", statusCode: 503));
            await Start(metricsApp, cancellationToken).ConfigureAwait(false);
            MetricsAddress = Address(metricsApp);
        }

        // Expired bootstrappings go, from memory and from the store, once a minute.
        _purge = Task.Run(async () =>
        {
            using var timer = new PeriodicTimer(TimeSpan.FromMinutes(1));
            try
            {
                while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
                {
                    var now = DateTimeOffset.UtcNow;
                    Cache.Expire(now);
                    Store.PurgeBootstraps(now);
                }
            }
            catch (OperationCanceledException)
            {
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                LogPurgeFailed(Log, e.GetType().Name);
            }
        }, CancellationToken.None);
    }

    /// <summary>The Prometheus text of the server's counters (no identity in any label).</summary>
    public string Metrics()
    {
        var text = new StringBuilder();
        void Counter(string name, string help, long value) => text.Append(System.Globalization.CultureInfo.InvariantCulture, $"# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n");
        Counter("obf_bootstraps_total", "bootstrappings that succeeded (Ub)", Ub.Bootstrapped);
        Counter("obf_bootstraps_refused_total", "answers refused on Ub: digest, AUTS or identity", Ub.Refused);
        Counter("obf_resynchronisations_total", "SQN resynchronisations after AUTS", Ub.Resynchronised);
        Counter("obf_keys_released_total", "Ks_NAF released to applications (RPO)", Keys.Released);
        Counter("obf_keys_refused_total", "key retrievals refused (RPO)", Keys.Refused);
        Counter("obf_commits_total", "group commits written", Writer.Commits);
        Counter("obf_commit_errors_total", "group commits that failed", Writer.Errors);
        return text.ToString();
    }

    /// <summary>Stops the endpoints, writes what is queued, closes the store and zeroes the keys held.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        foreach (var app in _apps)
        {
            await app.DisposeAsync().ConfigureAwait(false);
        }

        _apps.Clear();
        await _purge.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await Writer.DisposeAsync().ConfigureAwait(false);
        if (_gsup is not null)
        {
            await _gsup.DisposeAsync().ConfigureAwait(false);
        }

        for (var i = _owned.Count - 1; i >= 0; i--)
        {
            _owned[i].Dispose();
        }

        _owned.Clear();
        Store.Dispose();
        MasterKey.Dispose();
        _stop.Dispose();
    }

    private async Task HandleUbAsync(HttpContext context)
    {
        // Ub bodies are empty (GET); anything larger than a few KB is refused before it is read.
        if (context.Request.ContentLength is > 4096)
        {
            context.Response.StatusCode = 413;
            return;
        }

        var body = Array.Empty<byte>();
        if (context.Request.ContentLength is > 0)
        {
            using var buffer = new MemoryStream();
            await context.Request.Body.CopyToAsync(buffer, context.RequestAborted).ConfigureAwait(false);
            body = buffer.ToArray();
        }

        UbAnswer answer;
        try
        {
            answer = await Ub.HandleAsync(context.Request.Method, context.Request.Path.Value ?? "/", context.Request.Headers.Authorization.ToString() is { Length: > 0 } a ? a : null, body, context.RequestAborted).ConfigureAwait(false);
        }
        catch (InvalidOperationException)
        {
            // The store failed (the writer says which type, never a subscriber): the device can try again later.
            answer = new UbAnswer(503, null, null, "text/plain; charset=utf-8", "the server cannot store the bootstrapping now\n"u8.ToArray());
        }

        context.Response.StatusCode = answer.Status;
        if (answer.WwwAuthenticate is { } challenge)
        {
            context.Response.Headers.WWWAuthenticate = challenge;
        }

        if (answer.AuthenticationInfo is { } info)
        {
            context.Response.Headers["Authentication-Info"] = info;
        }

        context.Response.Headers.Server = "OpenBest-OBF 3gpp-gba";
        if (answer.ContentType is { } type)
        {
            context.Response.ContentType = type;
        }

        context.Response.ContentLength = answer.Body.Length;
        await context.Response.Body.WriteAsync(answer.Body, context.RequestAborted).ConfigureAwait(false);
    }

    private static WebApplicationBuilder Slim()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        return builder;
    }

    private async Task Start(WebApplication app, CancellationToken cancellationToken)
    {
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            await app.DisposeAsync().ConfigureAwait(false);
            throw new InvalidOperationException($"cannot listen on {Settings.Bind}: {e.Message.ReplaceLineEndings(" ")}", e);
        }

        _apps.Add(app);
    }

    private static string Address(WebApplication app)
    {
        var server = app.Services.GetService(typeof(Microsoft.AspNetCore.Hosting.Server.IServer)) as Microsoft.AspNetCore.Hosting.Server.IServer;
        return server?.Features.Get<Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature>()?.Addresses.FirstOrDefault() ?? app.Urls.First();
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "purging expired bootstrappings failed ({Error}); it is tried again in a minute")]
    private static partial void LogPurgeFailed(ILogger log, string error);
}
