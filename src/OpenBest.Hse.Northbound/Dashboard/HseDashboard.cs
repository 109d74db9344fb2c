using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace OpenBest.Hse.Northbound.Dashboard;

/// <summary>The operator dashboard at <c>/dashboard</c> (the page comes in the dashboard's own change).</summary>
public static class HseDashboard
{
    /// <summary>Maps the dashboard's page and live feed; the caller is <see cref="NorthboundCaller.Of"/> (401 without one).</summary>
    public static void Map(IEndpointRouteBuilder app, DashboardFeed feed)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(feed);
        app.MapGet("/dashboard", (HttpContext context) => NorthboundCaller.Of(context) is null ? Results.Unauthorized() : Results.Text("dashboard", "text/plain"));
    }
}
