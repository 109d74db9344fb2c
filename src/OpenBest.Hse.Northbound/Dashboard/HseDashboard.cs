using System.Buffers;
using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace OpenBest.Hse.Northbound.Dashboard;

/// <summary>
/// The operator dashboard at <c>/dashboard</c>: a page (with its script and style sheet, all served here), a JSON
/// snapshot at <c>/dashboard/api/snapshot</c> and the live feed at <c>/dashboard/events</c> (server-sent events: a
/// snapshot at each sample and soon after the sessions change). Every path needs a caller (<see cref="NorthboundCaller.Of"/>,
/// else 401), and each caller gets its own cut (<see cref="DashboardView"/>): an operator every enterprise, or the one it
/// picks with <c>?enterprise=EAS-ID</c>; an enterprise only its own EAS Id, whatever it asks for.
/// </summary>
public static class HseDashboard
{
    // A comment line now and then keeps proxies from closing a quiet stream, and finds a client that went away.
    private static readonly TimeSpan Heartbeat = TimeSpan.FromSeconds(15);

    /// <summary>Maps the dashboard's page and live feed; the caller is <see cref="NorthboundCaller.Of"/> (401 without one).</summary>
    public static void Map(IEndpointRouteBuilder app, DashboardFeed feed)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(feed);
        app.MapGet("/dashboard", (HttpContext context) => Asset(context, DashboardAssets.Page, "text/html; charset=utf-8")).ExcludeFromDescription();
        app.MapGet("/dashboard/dashboard.js", (HttpContext context) => Asset(context, DashboardAssets.Script, "text/javascript; charset=utf-8")).ExcludeFromDescription();
        app.MapGet("/dashboard/dashboard.css", (HttpContext context) => Asset(context, DashboardAssets.Style, "text/css; charset=utf-8")).ExcludeFromDescription();
        app.MapGet("/dashboard/api/snapshot", (HttpContext context) => Snapshot(context, feed)).WithTags("dashboard").WithName("DashboardSnapshot")
            .WithSummary("The dashboard as JSON for the caller: sessions, counts, the last hour's samples and the audit log (query: enterprise for an operator's pick, event and q to filter the audit lines).");
        app.MapGet("/dashboard/events", (Func<HttpContext, Task>)(context => StreamAsync(context, feed))).WithTags("dashboard").WithName("DashboardEvents")
            .WithSummary("Server-sent events: a 'snapshot' event with the caller's JSON snapshot at each sample and when the sessions change (query: enterprise for an operator's pick).");
    }

    private static IResult Asset(HttpContext context, byte[] content, string contentType)
    {
        if (Refusal(context, out _) is { } refused)
        {
            return refused;
        }

        Secure(context.Response);
        return Results.Bytes(content, contentType);
    }

    private static IResult Snapshot(HttpContext context, DashboardFeed feed)
    {
        if (Refusal(context, out var caller) is { } refused)
        {
            return refused;
        }

        var query = context.Request.Query;
        var json = new ArrayBufferWriter<byte>(16 * 1024);
        DashboardView.Write(json, feed.Current, caller, query["enterprise"], query["event"], query["q"]);
        Secure(context.Response);
        return Results.Bytes(json.WrittenMemory, "application/json");
    }

    private static async Task StreamAsync(HttpContext context, DashboardFeed feed)
    {
        if (Refusal(context, out var caller) is { } refused)
        {
            await refused.ExecuteAsync(context).ConfigureAwait(false);
            return;
        }

        // Operators and enterprises have separate name spaces: "operator:" cannot be an EAS Id.
        var key = (caller.IsOperator ? "operator:" : string.Empty) + caller.Name;
        if (!feed.Streams.TryOpen(key))
        {
            context.Response.Headers.RetryAfter = "10";
            await Results.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "too many dashboard streams",
                detail: string.Create(CultureInfo.InvariantCulture, $"at most {DashboardStreams.MaxStreamsPerCaller} events streams per caller and {DashboardStreams.MaxStreams} in all are open; close a dashboard, read /dashboard/api/snapshot, or try again later"))
                .ExecuteAsync(context).ConfigureAwait(false);
            return;
        }

        try
        {
            // The stream ends when the client goes, the dashboard stops or the web application stops.
            var stopping = context.RequestServices.GetService<IHostApplicationLifetime>()?.ApplicationStopping ?? CancellationToken.None;
            using var end = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, feed.Stopping, stopping);
            await StreamAsync(context, feed, caller, context.Request.Query["enterprise"], end.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException)
        {
            // The client went away, or the feed or the application stopped: the response simply ends.
        }
        finally
        {
            feed.Streams.Close(key);
        }
    }

    private static async Task StreamAsync(HttpContext context, DashboardFeed feed, NorthboundCaller caller, string? picked, CancellationToken cancel)
    {
        var response = context.Response;
        Secure(response);
        response.ContentType = "text/event-stream";
        response.Headers["X-Accel-Buffering"] = "no";
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        await response.WriteAsync("retry: 3000\n\n", cancel).ConfigureAwait(false);
        await response.Body.FlushAsync(cancel).ConfigureAwait(false);
        var buffer = new ArrayBufferWriter<byte>(16 * 1024);
        var state = feed.Current;
        while (true)
        {
            // One event per snapshot; the JSON is one line, as a data field must be.
            buffer.ResetWrittenCount();
            buffer.Write(Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"event: snapshot\nid: {state.Version}\ndata: ")));
            DashboardView.Write(buffer, state, caller, picked);
            buffer.Write("\n\n"u8);
            await response.Body.WriteAsync(buffer.WrittenMemory, cancel).ConfigureAwait(false);
            await response.Body.FlushAsync(cancel).ConfigureAwait(false);
            while (true)
            {
                try
                {
                    state = await feed.NextAsync(state.Version).WaitAsync(Heartbeat, cancel).ConfigureAwait(false);
                    break;
                }
                catch (TimeoutException)
                {
                    await response.Body.WriteAsync(": keep-alive\n\n"u8.ToArray(), cancel).ConfigureAwait(false);
                    await response.Body.FlushAsync(cancel).ConfigureAwait(false);
                }
            }
        }
    }

    /// <summary>Why the request is refused (401 without a caller; 403 for a certificate naming one of the HSE's own channels), or null.</summary>
    private static IResult? Refusal(HttpContext context, out NorthboundCaller caller)
    {
        caller = NorthboundCaller.Of(context)!;
        if (caller is null)
        {
            return Unauthorized(context);
        }

        // The urn:best: EAS Ids are the HSE's own services; no enterprise holds one, whatever a certificate says.
        return !caller.IsOperator && DashboardNames.IsChannel(caller.Name)
            ? Results.Problem(statusCode: StatusCodes.Status403Forbidden, title: "not an enterprise", detail: "EAS Ids starting with urn:best: are the HSE's own channels")
            : null;
    }

    private static IResult Unauthorized(HttpContext context)
    {
        context.Response.Headers.WWWAuthenticate = "Bearer realm=\"openbest-hse\"";
        return Results.Problem(statusCode: StatusCodes.Status401Unauthorized, title: "a client certificate or a bearer token is required",
            detail: "the dashboard needs a client certificate of the HSE's CA (an operator user's or an enterprise's) or a bearer token from /oauth2/token");
    }

    private static void Secure(HttpResponse response)
    {
        // Everything comes from the HSE itself; nothing is cached, framed or sent on as a referrer.
        response.Headers.ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
        response.Headers.XContentTypeOptions = "nosniff";
        response.Headers.XFrameOptions = "DENY";
        response.Headers["Referrer-Policy"] = "no-referrer";
        response.Headers.CacheControl = "no-store";
    }
}
