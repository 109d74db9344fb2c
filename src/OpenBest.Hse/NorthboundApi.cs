using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using OpenBest.EasInterface;
using OpenBest.Sessions;
using OpenBest.Storage;

namespace OpenBest.Hse;

/// <summary>A UE-to-HSE session as the enterprise sees it (never the IMSI).</summary>
/// <param name="SessionId">The Session ID.</param>
/// <param name="ExternalId">The UE's identifier for this enterprise, or null when none is provisioned.</param>
/// <param name="Service">"confidential", "integrity", or "none" (the no-security channel: nothing is protected).</param>
public sealed record NorthboundSession(uint SessionId, string? ExternalId, string Service);

/// <summary>An uplink message the HSE received and stored for the enterprise.</summary>
public sealed record NorthboundUplink(long Sequence, uint SessionId, string? ExternalId, int KeyId, long Counter, string Payload, DateTimeOffset ReceivedAt);

/// <summary>A downlink message from the enterprise: the payload in base64; sealed by the HSE (queued while the device is suspended).</summary>
public sealed record NorthboundDownlink(string Payload, bool AckRequested = false);

/// <summary>
/// The HSE's northbound API for enterprise applications (UE-to-HSE mode, where the HSE terminates the user plane):
/// JSON over the same mutually authenticated TLS as the EAS interface. The client certificate's common name is the
/// enterprise's EAS Id, and every call sees only sessions and messages that name it. The OpenAPI document is at
/// <c>/openapi/v1.json</c>.
/// </summary>
public static class NorthboundApi
{
    /// <summary>Maps the API onto <paramref name="app"/>.</summary>
    public static void Map(IEndpointRouteBuilder app, HseHost host, IHseStateStore store)
    {
        ArgumentNullException.ThrowIfNull(host);
        Map(app, IHseSessions.ForHost(host), store);
    }

    /// <summary>Maps the API onto <paramref name="app"/> over <paramref name="sessions"/> (one HSE's host, or a cluster's shards).</summary>
    public static void Map(IEndpointRouteBuilder app, IHseSessions sessions, IHseStateStore store)
    {
        ArgumentNullException.ThrowIfNull(app);
        var api = app.MapGroup("/api/v1").WithTags("enterprise");
        api.MapGet("/sessions", async (HttpContext context) =>
        {
            var easId = await IdentityAsync(context).ConfigureAwait(false);
            var named = await sessions.SessionsNamingAsync(easId).ConfigureAwait(false);
            return Results.Ok(named.Select(s => new NorthboundSession(s.SessionId, store.ExternalIdOf(easId, s.Imsi), HseHost.ServiceName(s.Service))).ToList());
        }).WithName("ListSessions").WithSummary("The live UE-to-HSE sessions that name this enterprise (not UE-to-EAS or key-agreement-only sessions), with their services.");
        api.MapGet("/uplink", async (HttpContext context, long? after, int? limit) =>
        {
            var easId = await IdentityAsync(context).ConfigureAwait(false);
            var rows = store.Uplinks(after ?? 0, Math.Clamp(limit ?? 100, 1, 1000), easId);
            return Results.Ok(rows.Select(u => new NorthboundUplink(u.Seq, u.SessionId, store.ExternalIdOf(easId, u.Imsi), u.KeyId, (long)u.Counter, Convert.ToBase64String(u.Payload), u.ReceivedAt)).ToList());
        }).WithName("ReadUplink").WithSummary("Uplink messages stored for this enterprise after a sequence number, oldest first (read again with after = the last sequence).");
        api.MapPost("/sessions/{sessionId}/downlink", async (HttpContext context, uint sessionId, NorthboundDownlink downlink) =>
        {
            var easId = await IdentityAsync(context).ConfigureAwait(false);
            byte[] payload;
            try
            {
                payload = Convert.FromBase64String(downlink.Payload);
            }
            catch (FormatException)
            {
                return Results.Problem(title: "payload is not base64", statusCode: 400);
            }

            if (payload.Length > 1024)
            {
                return Results.Problem(title: "payload is longer than 1024 octets", statusCode: 400);
            }

            // Only the sessions the list shows: UE-to-HSE sessions of this enterprise (the others' user plane is not the HSE's).
            var facts = await sessions.DescribeAsync(sessionId).ConfigureAwait(false);
            if (facts?.EasId != easId || facts.Mode != SessionMode.UeToHse)
            {
                return Results.Problem(title: "no UE-to-HSE session of this enterprise with that id", statusCode: 404);
            }

            return await sessions.SendDownlinkAsync(sessionId, payload, downlink.AckRequested).ConfigureAwait(false) == SessionOutcome.NotEstablished
                ? Results.Problem(title: "the session is not established", statusCode: 409)
                : Results.Accepted();
        }).WithName("SendDownlink").WithSummary("Seal and send (or, while the device is suspended, queue) a downlink message.");
        app.MapOpenApi();
    }

    private static async Task<string> IdentityAsync(HttpContext context)
    {
        var certificate = await context.Connection.GetClientCertificateAsync(context.RequestAborted).ConfigureAwait(false)
            ?? throw new BadHttpRequestException("a client certificate is required", 401);
        var identity = DevelopmentPki.IdentityOf(certificate);
        // An empty identity would match no filter at all: refused, as is the HSE's own.
        return DevelopmentPki.IsEasIdentity(identity) ? identity : throw new BadHttpRequestException("the client certificate names no enterprise", 403);
    }
}
