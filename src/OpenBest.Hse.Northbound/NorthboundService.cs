using System.Security.Cryptography.X509Certificates;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenBest.Hse.Northbound.Dashboard;
using OpenBest.Sessions;
using OpenBest.Storage;

namespace OpenBest.Hse.Northbound;

/// <summary>The northbound API's settings.</summary>
public sealed record NorthboundOptions
{
    /// <summary>Requests per second per caller.</summary>
    public int RequestsPerSecond { get; init; } = 100;

    /// <summary>Requests a caller may make at once above its rate.</summary>
    public int Burst { get; init; } = 200;

    /// <summary>Whether an EAS may bind end-to-end keys to an Enterprise Key (the lawful-interception switch).</summary>
    public bool EnterpriseKeysAllowed { get; init; } = true;

    /// <summary>
    /// Whether a callback may be plain http on a loopback address (development and tests). Off by default: an enterprise
    /// could otherwise make the HSE post to services that listen only on the HSE's own loopback.
    /// </summary>
    public bool HttpLoopbackCallbacks { get; init; }

    /// <summary>How long an access token is valid.</summary>
    public TimeSpan TokenLifetime { get; init; } = TimeSpan.FromHours(1);

    /// <summary>How often the dashboard samples the HSE.</summary>
    public TimeSpan DashboardSample { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The clock.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>
    /// Whether this HSE sends the notifications and expires deliveries now: null for one HSE (always); a cluster's node
    /// while it runs the cluster's notifications grain, so that one node posts each subscription's callbacks.
    /// </summary>
    public Func<bool>? Leads { get; init; }

    /// <summary>Whether this HSE is a node of a cluster: it sees the events of its own shards only, and its start does not orphan the others' deliveries.</summary>
    public bool Cluster { get; init; }
}

/// <summary>
/// The northbound API, its security, notifications, push service and dashboard, on the HSE–EAS interface's port:
/// give <see cref="Hooks"/> to <see cref="EasApi"/>, feed it the HSE's events with <see cref="OnEvent"/>.
/// </summary>
public sealed class NorthboundService : IAsyncDisposable
{
    private readonly IHseSessions _hse;
    private readonly IHseStateStore _state;
    private readonly NorthboundOptions _options;
    private readonly NorthboundTokens _tokens;
    private readonly DashboardFeed _feed;
    private readonly NorthboundEvents _events;
    private readonly NotificationSender _sender;
    private readonly NorthboundAudit _audit;

    /// <summary>Opens the northbound store and loads the token key; nothing runs until the web application starts.</summary>
    public NorthboundService(HseHost host, IHseStateStore state, NorthboundStore store, MasterKey masterKey, X509Certificate2 hseCertificate, X509Certificate2 ca, NorthboundOptions options, ILogger log)
        : this(IHseSessions.ForHost(host ?? throw new ArgumentNullException(nameof(host))), state, store, masterKey, hseCertificate, ca, options, log)
    {
    }

    /// <summary>The service over an HSE's sessions: one host's, or a cluster's shards (<see cref="NorthboundOptions.Cluster"/>).</summary>
    public NorthboundService(IHseSessions hse, IHseStateStore state, NorthboundStore store, MasterKey masterKey, X509Certificate2 hseCertificate, X509Certificate2 ca, NorthboundOptions options, ILogger log)
    {
        ArgumentNullException.ThrowIfNull(hse);
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(options);
        _hse = hse;
        _state = state;
        Store = store;
        _options = options;
        _tokens = new NorthboundTokens(store, masterKey, options.TokenLifetime, options.Time);
        _feed = new DashboardFeed(hse, state, options.DashboardSample, options.Time);
        _sender = new NotificationSender(store, state, hseCertificate, ca, log, options.Time, options.Leads);
        _events = new NorthboundEvents(hse, state, store, _sender, options.Time, options.Leads, cluster: options.Cluster);
        _audit = new NorthboundAudit(state);
    }

    /// <summary>The northbound store.</summary>
    public NorthboundStore Store { get; }

    /// <summary>What the EAS interface's web application gets: optional certificates, the services and the endpoints.</summary>
    public EasApiHooks Hooks => new()
    {
        CertificateOptional = true,
        EnterpriseKeysAllowed = _options.EnterpriseKeysAllowed,
        ConfigureServices = builder => NorthboundSecurity.AddServices(builder.Services, _tokens, _options.RequestsPerSecond, _options.Burst),
        Configure = app =>
        {
            NorthboundSecurity.Use(app, Store, _audit);
            app.MapPost("/oauth2/token", (Func<HttpContext, Task<IResult>>)TokenAsync).WithTags("oauth2").WithName("IssueToken")
                .WithSummary("OAuth 2.0 client-credentials grant (RFC 6749 4.4): client_id and client_secret in the form or HTTP Basic; a bearer token for the northbound API and the dashboard.");
            NorthboundResources.Map(app, _hse, _state, _events, _sender, _options);
            HseDashboard.Map(app, _feed);
        },
    };

    /// <summary>Starts the notifications and the deliveries' timers.</summary>
    public void Start()
    {
        _events.Start();
        _sender.Start();
    }

    /// <summary>Takes one of the HSE's session events (called from its event loop; never blocks).</summary>
    public void OnEvent(SessionEvent e)
    {
        _feed.OnEvent(e);
        _events.OnEvent(e);
    }

    /// <summary>Stops the notifications and the dashboard.</summary>
    public async ValueTask DisposeAsync()
    {
        await _events.DisposeAsync().ConfigureAwait(false);
        await _sender.DisposeAsync().ConfigureAwait(false);
        await _feed.DisposeAsync().ConfigureAwait(false);
        await _audit.DisposeAsync().ConfigureAwait(false);
    }

    private async Task<IResult> TokenAsync(HttpContext context)
    {
        static IResult Error(int status, string error, string description) =>
            Results.Json(new Dictionary<string, string> { ["error"] = error, ["error_description"] = description }, statusCode: status);

        if (!context.Request.HasFormContentType)
        {
            return Error(400, "invalid_request", "the body must be application/x-www-form-urlencoded");
        }

        var form = await context.Request.ReadFormAsync(context.RequestAborted).ConfigureAwait(false);
        if (form["grant_type"] != "client_credentials")
        {
            return Error(400, "unsupported_grant_type", "only client_credentials is served");
        }

        string? id = form["client_id"], secret = form["client_secret"];
        var basic = context.Request.Headers.Authorization.ToString();
        if (basic.StartsWith("Basic ", StringComparison.OrdinalIgnoreCase))
        {
            try
            {
                var pair = Encoding.UTF8.GetString(Convert.FromBase64String(basic[6..].Trim()));
                var colon = pair.IndexOf(':', StringComparison.Ordinal);
                (id, secret) = colon < 0 ? (null, null) : (Uri.UnescapeDataString(pair[..colon]), Uri.UnescapeDataString(pair[(colon + 1)..]));
            }
            catch (FormatException)
            {
                (id, secret) = (null, null);
            }
        }

        var client = string.IsNullOrEmpty(id) || string.IsNullOrEmpty(secret) ? null : _tokens.Authenticate(id, secret);
        if (client is null)
        {
            context.Response.Headers.WWWAuthenticate = "Basic realm=\"openbest-hse\"";
            return Error(401, "invalid_client", "unknown client or wrong secret");
        }

        NorthboundCaller.Set(context, new NorthboundCaller(client.Name, client.IsOperator));
        context.Response.Headers.CacheControl = "no-store";
        return Results.Json(new Dictionary<string, object>
        {
            ["access_token"] = _tokens.Issue(client),
            ["token_type"] = "Bearer",
            ["expires_in"] = (int)_tokens.Lifetime.TotalSeconds,
        });
    }
}
