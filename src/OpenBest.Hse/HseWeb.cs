using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace OpenBest.Hse;

/// <summary>The HSE's operations endpoints: <c>/metrics</c> (Prometheus text) and <c>/health</c>.</summary>
public static class HseWeb
{
    /// <summary>Starts the endpoints on <paramref name="endPoint"/> (port 0 picks a free one); dispose the result to stop them.</summary>
    public static async Task<WebApplication> StartAsync(HseHost host, HseMetrics metrics, IPEndPoint endPoint, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(host);
        ArgumentNullException.ThrowIfNull(metrics);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(endPoint));
        var app = builder.Build();
        app.MapGet("/metrics", () => Results.Text(metrics.Render(), "text/plain; version=0.0.4"));
        app.MapGet("/health", () => host.Errors == 0 || host.Received > 0
            ? Results.Text("ok\n", "text/plain")
            : Results.Text("degraded\n", "text/plain", statusCode: StatusCodes.Status503ServiceUnavailable));
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        return app;
    }

    /// <summary>The address the endpoints listen on, once started.</summary>
    public static string Address(WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var server = app.Services.GetService(typeof(Microsoft.AspNetCore.Hosting.Server.IServer)) as Microsoft.AspNetCore.Hosting.Server.IServer;
        return server?.Features.Get<Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature>()?.Addresses.FirstOrDefault() ?? app.Urls.First();
    }
}
