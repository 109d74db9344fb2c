using System.Globalization;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using OpenBest.EasInterface;
using OpenBest.Storage;

namespace OpenBest.Hse.Northbound;

/// <summary>
/// The northbound API's security, in its own right: who calls (a client certificate of the interface's CA, or an
/// access token the HSE issued), least privilege (<see cref="NorthboundCaller"/>), a rate limit per caller with 429
/// and Retry-After, and an audit entry for every call (method, route template and status, never a path value).
/// </summary>
public static class NorthboundSecurity
{
    /// <summary>The paths the northbound security covers (the HSE–EAS interface's /eas/v1 keeps its own rules).</summary>
    public static bool Covers(PathString path) =>
        // Routing ignores case, so must this: /OAuth2/Token reaches the token endpoint too.
        path.StartsWithSegments("/best", StringComparison.OrdinalIgnoreCase) || path.StartsWithSegments("/api", StringComparison.OrdinalIgnoreCase)
        || path.StartsWithSegments("/dashboard", StringComparison.OrdinalIgnoreCase) || path.StartsWithSegments("/oauth2", StringComparison.OrdinalIgnoreCase);

    /// <summary>Adds the token validation and the rate limiter, and names both ways in to the OpenAPI document.</summary>
    public static void AddServices(IServiceCollection services, NorthboundTokens tokens, double requestsPerSecond, int burst)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        services.Configure<Microsoft.AspNetCore.OpenApi.OpenApiOptions>("v1", o => o.AddDocumentTransformer((document, _, _) =>
        {
            document.Components ??= new Microsoft.OpenApi.OpenApiComponents();
            document.Components.SecuritySchemes ??= new Dictionary<string, Microsoft.OpenApi.IOpenApiSecurityScheme>();
            document.Components.SecuritySchemes["oauth2"] = new Microsoft.OpenApi.OpenApiSecurityScheme
            {
                Type = Microsoft.OpenApi.SecuritySchemeType.OAuth2,
                Description = "Client-credentials tokens the HSE issues to registered clients (best hse client add).",
                Flows = new Microsoft.OpenApi.OpenApiOAuthFlows { ClientCredentials = new Microsoft.OpenApi.OpenApiOAuthFlow { TokenUrl = new Uri("/oauth2/token", UriKind.Relative) } },
            };
            document.Components.SecuritySchemes["mutualTLS"] = new Microsoft.OpenApi.OpenApiSecurityScheme
            {
                Type = Microsoft.OpenApi.SecuritySchemeType.MutualTLS,
                Description = "A client certificate of the interface's CA: common name = the enterprise's EAS Id, or operator:NAME.",
            };
            document.Security ??= [];
            document.Security.Add(new Microsoft.OpenApi.OpenApiSecurityRequirement { [new Microsoft.OpenApi.OpenApiSecuritySchemeReference("oauth2", document)] = [] });
            document.Security.Add(new Microsoft.OpenApi.OpenApiSecurityRequirement { [new Microsoft.OpenApi.OpenApiSecuritySchemeReference("mutualTLS", document)] = [] });
            return Task.CompletedTask;
        }));
        services.AddAuthentication(JwtBearerDefaults.AuthenticationScheme).AddJwtBearer(o =>
        {
            o.MapInboundClaims = false;
            o.TokenValidationParameters = tokens.ValidationParameters;
        });
        services.AddRateLimiter(o =>
        {
            o.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(context =>
            {
                if (!Covers(context.Request.Path) || context.Request.Path.StartsWithSegments("/dashboard/events", StringComparison.OrdinalIgnoreCase))
                {
                    return RateLimitPartition.GetNoLimiter(string.Empty);
                }

                // One bucket per caller; callers not (yet) known share one per remote address (the token endpoint among them).
                var key = NorthboundCaller.Of(context) is { } caller ? (caller.IsOperator ? "operator:" : "enterprise:") + caller.Name : "address:" + context.Connection.RemoteIpAddress;
                return RateLimitPartition.GetTokenBucketLimiter(key, _ => new TokenBucketRateLimiterOptions
                {
                    TokenLimit = burst,
                    // Refilled ten times a second, or once per token below 10 per second.
                    TokensPerPeriod = requestsPerSecond >= 10 ? (int)Math.Round(requestsPerSecond / 10) : 1,
                    ReplenishmentPeriod = requestsPerSecond >= 10 ? TimeSpan.FromMilliseconds(100) : TimeSpan.FromSeconds(1 / requestsPerSecond),
                    QueueLimit = 0,
                    AutoReplenishment = true,
                });
            });
            o.OnRejected = async (context, cancel) =>
            {
                var retry = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? Math.Max(1, (int)Math.Ceiling(after.TotalSeconds)) : 1;
                context.HttpContext.Response.StatusCode = StatusCodes.Status429TooManyRequests;
                context.HttpContext.Response.Headers.RetryAfter = retry.ToString(CultureInfo.InvariantCulture);
                await Results.Problem(title: "too many requests", detail: $"this caller's rate limit is {requestsPerSecond.ToString(CultureInfo.InvariantCulture)} requests per second (bursts of {burst}); try again after {retry} s", statusCode: 429)
                    .ExecuteAsync(context.HttpContext).ConfigureAwait(false);
            };
        });
    }

    /// <summary>Adds the middleware: caller, rate limit, audit.</summary>
    public static void Use(WebApplication app, NorthboundStore store, NorthboundAudit audit)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.Use(async (context, next) =>
        {
            if (Covers(context.Request.Path) && await CallerAsync(context, store).ConfigureAwait(false) is { } caller)
            {
                NorthboundCaller.Set(context, caller);
            }

            await next(context).ConfigureAwait(false);
        });
        app.UseRouting();
        app.UseRateLimiter();
        app.Use(async (context, next) =>
        {
            try
            {
                await next(context).ConfigureAwait(false);
            }
            finally
            {
                // The dashboard's script, styles and snapshots would drown the log: its page load and live feed stand for them.
                if (Covers(context.Request.Path) && !(HttpMethods.IsGet(context.Request.Method)
                    && context.Request.Path.Value is "/dashboard/dashboard.js" or "/dashboard/dashboard.css" or "/dashboard/api/snapshot"))
                {
                    Audit(context, audit);
                }
            }
        });
    }

    private static void Audit(HttpContext context, NorthboundAudit audit)
    {
        // The route template, never the path's values (external identifiers are the enterprise's data).
        var route = (context.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "(no route)";
        var caller = NorthboundCaller.Of(context);
        // Operators as operator:NAME and unauthenticated callers as urn:best:anonymous: prefixes no enterprise's EAS Id can have.
        var who = caller is null ? DevelopmentPki.ReservedPrefix + "anonymous" : caller.IsOperator ? DevelopmentPki.OperatorPrefix + caller.Name : caller.Name;
        audit.Add(who, $"{context.Request.Method} {route} {context.Response.StatusCode.ToString(CultureInfo.InvariantCulture)}");
    }

    private static async Task<NorthboundCaller?> CallerAsync(HttpContext context, NorthboundStore store)
    {
        // A client certificate (Kestrel accepted only the interface CA's) names an enterprise or an operator user.
        var certificate = await context.Connection.GetClientCertificateAsync(context.RequestAborted).ConfigureAwait(false);
        if (certificate is not null)
        {
            var identity = DevelopmentPki.IdentityOf(certificate);
            if (identity.StartsWith(DevelopmentPki.OperatorPrefix, StringComparison.Ordinal) && identity.Length > DevelopmentPki.OperatorPrefix.Length)
            {
                return new NorthboundCaller(identity[DevelopmentPki.OperatorPrefix.Length..], IsOperator: true);
            }

            return DevelopmentPki.IsEasIdentity(identity) ? new NorthboundCaller(identity, IsOperator: false) : null;
        }

        if (!context.Request.Headers.Authorization.ToString().StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        var result = await context.AuthenticateAsync(JwtBearerDefaults.AuthenticationScheme).ConfigureAwait(false);
        if (!result.Succeeded || result.Principal is null)
        {
            return null;
        }

        // A removed client's tokens stop working within a second (the registry is read at most once a second per client).
        var clientId = result.Principal.FindFirst("client_id")?.Value;
        return clientId is null ? null : store.CachedClient(clientId) is { } registered ? new NorthboundCaller(registered.Name, registered.IsOperator) : null;
    }
}
