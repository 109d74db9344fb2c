using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using OpenBest.Protocol;
using OpenBest.Sessions;
using OpenBest.Storage;

namespace OpenBest.Hse.Northbound;

/// <summary>A subscription request: where notifications go and which.</summary>
/// <param name="NotificationDestination">The callback (https; http on loopback only where the operator allows it).</param>
/// <param name="Kind">"UPLINK" (messages from devices) or "EVENTS" (session starts and ends, key refreshes, delivery statuses).</param>
/// <param name="After">UPLINK: deliver messages stored after this sequence number (0: everything stored for the enterprise).</param>
public sealed record SubscriptionRequest(string? NotificationDestination, string? Kind, long After = 0);

/// <summary>A downlink request, addressed by the device's external identifier.</summary>
/// <param name="ExternalId">The device's external identifier for this enterprise.</param>
/// <param name="Payload">The payload, base64 (at most 1024 octets).</param>
/// <param name="MaximumLatency">Seconds within which it must be delivered (acknowledged by the device); 1..604800, default 3600.</param>
public sealed record DownlinkRequest(string? ExternalId, string? Payload, int MaximumLatency = 3600);

/// <summary>A push (or management) message to a device's push (or management) channel, addressed by external identifier and application port.</summary>
/// <param name="ExternalId">The device's external identifier for this enterprise.</param>
/// <param name="Port">The application port on the device (2..65535; 1 is the session request's).</param>
/// <param name="Payload">The payload, base64 (at most 1000 octets).</param>
/// <param name="TimeToLive">Seconds a device that is not reachable may still get it when it next resumes; 1..604800, default 86400.</param>
public sealed record PushRequest(string? ExternalId, int Port, string? Payload, int TimeToLive = 86_400);

/// <summary>A request for a BEST session: the HSE asks the device over its push channel.</summary>
/// <param name="ExternalId">The device's external identifier for this enterprise.</param>
/// <param name="Service">"integrity" or "confidential" (default), the service the application asks for.</param>
/// <param name="TimeToLive">Seconds the request stands; 1..604800, default 300.</param>
public sealed record SessionStartRequest(string? ExternalId, string? Service, int TimeToLive = 300);

/// <summary>
/// The northbound resources in the style of the 3GPP exposure APIs (TS 29.122: resources under <c>/{scsAsId}</c>,
/// a notificationDestination per subscription, 201 with Location, problem details), under <c>/best/v1</c>, for every
/// command of the SA3 liaison (seed 002): uplink (notifications and pull), downlink by external identifier with its
/// delivery status, request of a BEST session, terminate, and manage keys; and the push and management channels
/// (seed 000 sections 3 and 4). The scsAsId is the enterprise's EAS Id: an enterprise reaches only its own (403
/// otherwise) and only its own devices and resources (404 otherwise); an operator may read every enterprise's.
/// </summary>
public static class NorthboundResources
{
    /// <summary>Subscriptions one enterprise may have (each is a worker posting to its callback).</summary>
    public const int MaxSubscriptions = 10;

    /// <summary>Maps the resources.</summary>
    public static void Map(WebApplication app, IHseSessions hse, IHseStateStore state, NorthboundEvents events, NotificationSender sender, NorthboundOptions options)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(options);
        var api = app.MapGroup("/best/v1/{scsAsId}").WithTags("northbound");
        var time = options.Time;
        var refreshed = new RecentKeys<uint>(TimeSpan.FromSeconds(10), pruneAbove: 100_000, time);

        api.MapPost("/subscriptions", (HttpContext context, string scsAsId, SubscriptionRequest request) => Guarded(context, scsAsId, write: true, _ =>
        {
            var kind = request.Kind?.ToUpperInvariant() ?? "UPLINK";
            if (kind is not ("UPLINK" or "EVENTS"))
            {
                return Problem(400, "kind must be UPLINK or EVENTS");
            }

            if (!NotificationSender.IsAcceptable(request.NotificationDestination, options.HttpLoopbackCallbacks, out var why))
            {
                return Problem(400, why);
            }

            if (events.Store.Subscriptions(scsAsId).Count >= MaxSubscriptions)
            {
                return Problem(409, $"this enterprise has {MaxSubscriptions} subscriptions, the most it may have");
            }

            var cursor = kind == "EVENTS" ? events.LastEvent() : Math.Max(0, request.After);
            var subscription = new NorthboundSubscription(NewId(), scsAsId, kind, request.NotificationDestination!, cursor, time.GetUtcNow());
            events.Store.AddSubscription(subscription);
            sender.Pulse();
            return Created(context, scsAsId, "subscriptions", subscription.Id, Show(subscription));
        })).WithName("CreateSubscription").WithSummary("Subscribe a callback (notificationDestination) to the enterprise's uplink messages or events; 201 with Location.");
        api.MapGet("/subscriptions", (HttpContext context, string scsAsId) => Guarded(context, scsAsId, write: false, _ =>
            Results.Ok(events.Store.Subscriptions(scsAsId).Select(Show).ToList()))).WithName("ListSubscriptions");
        api.MapGet("/subscriptions/{id}", (HttpContext context, string scsAsId, string id) => Guarded(context, scsAsId, write: false, _ =>
            events.Store.Subscriptions(scsAsId).FirstOrDefault(s => s.Id == id) is { } s ? Results.Ok(Show(s)) : Problem(404, "no such subscription of this enterprise"))).WithName("ReadSubscription");
        api.MapDelete("/subscriptions/{id}", (HttpContext context, string scsAsId, string id) => Guarded(context, scsAsId, write: true, _ =>
            events.Store.RemoveSubscription(scsAsId, id) ? Results.NoContent() : Problem(404, "no such subscription of this enterprise"))).WithName("DeleteSubscription");

        api.MapGet("/uplink", (HttpContext context, string scsAsId, long? after, int? limit) => Guarded(context, scsAsId, write: false, _ =>
        {
            var rows = state.Uplinks(after ?? 0, Math.Clamp(limit ?? 100, 1, 1000), scsAsId);
            return Results.Ok(rows.Select(u => new NorthboundUplink(u.Seq, u.SessionId, state.ExternalIdOf(scsAsId, u.Imsi), u.KeyId, (long)u.Counter, Convert.ToBase64String(u.Payload), u.ReceivedAt)).ToList());
        })).WithName("PullUplink").WithSummary("Uplink messages stored for the enterprise after a sequence number, oldest first.");

        api.MapGet("/sessions", (HttpContext context, string scsAsId) => GuardedAsync(context, scsAsId, write: false, async _ =>
        {
            var sessions = await hse.ListAsync(scsAsId).ConfigureAwait(false);
            return Results.Ok(sessions.Select(s => ShowSession(s.Overview, state.ExternalIdOf(scsAsId, s.Imsi), s.CurrentKeyId)).ToList());
        })).WithName("ListBestSessions").WithSummary("The enterprise's live BEST sessions (every mode): Session ID, external identifier, service, mode, suite, Key ID, state.");

        api.MapDelete("/sessions/{sessionId}", (HttpContext context, string scsAsId, uint sessionId, string? cause) => GuardedAsync(context, scsAsId, write: true, async _ =>
        {
            var session = await events.SessionAsync(sessionId).ConfigureAwait(false);
            if (session is null || session.EasId != scsAsId)
            {
                return Problem(404, "no live session of this enterprise with that id");
            }

            var reason = Cause.None;
            if (cause is not null && !Enum.TryParse(cause, ignoreCase: true, out reason))
            {
                return Problem(400, "cause is not a cause name of the profile (e.g. None)");
            }

            if (await hse.TerminateAsync(sessionId, reason == Cause.None ? null : reason).ConfigureAwait(false) == SessionOutcome.NotEstablished)
            {
                return Problem(404, "the session is not established");
            }

            return Results.Accepted(value: new JsonObject { ["sessionId"] = sessionId, ["status"] = "TERMINATING", ["cause"] = reason.ToString() });
        })).WithName("TerminateBestSession").WithSummary("Terminate a session: the device gets a Terminate Request with the cause; SESSION_TERMINATED follows.");

        api.MapPost("/sessions/{sessionId}/key-refresh", (HttpContext context, string scsAsId, uint sessionId) => GuardedAsync(context, scsAsId, write: true, async _ =>
        {
            var session = await events.SessionAsync(sessionId).ConfigureAwait(false);
            if (session is null || session.EasId != scsAsId)
            {
                return Problem(404, "no live session of this enterprise with that id");
            }

            if (session.Mode == SessionMode.KeyAgreementOnly)
            {
                return Problem(409, "key agreement only: the application layer cannot trigger new keys",
                    "TS 33.163 4.4.4 (seed 001): there is no provision for the application layer to trigger generation of a new EAS PSK; it gets the next one when the HSE or the device refreshes");
            }

            if (!refreshed.TryMark(sessionId))
            {
                return Problem(429, "too many refreshes", "one refresh of a session every 10 s at most");
            }

            if (await hse.RefreshKeysAsync(sessionId).ConfigureAwait(false) == SessionOutcome.NotEstablished)
            {
                return Problem(409, "the keys cannot be refreshed now", "the session is not established (or no longer)");
            }

            return Results.Accepted(value: new JsonObject { ["sessionId"] = sessionId, ["status"] = "REFRESHING" });
        })).WithName("ManageEmsdpKeys").WithSummary("Ask for new EMSDP keys (not for key agreement only, TS 33.163 4.4.4); KEYS_REFRESHED follows when they are in use.");

        api.MapPost("/downlinks", (HttpContext context, string scsAsId, DownlinkRequest request) => GuardedAsync(context, scsAsId, write: true, async _ =>
        {
            if (Payload(request.Payload, 1024, out var payload) is { } bad)
            {
                return bad;
            }

            if (request.MaximumLatency is < 1 or > 604_800)
            {
                return Problem(400, "maximumLatency must be 1..604800 seconds");
            }

            var imsi = request.ExternalId is null ? null : state.ImsiOf(scsAsId, request.ExternalId);
            if (imsi is null)
            {
                return Problem(404, "no device of this enterprise with that externalId");
            }

            var sessions = await hse.SessionsOfAsync(imsi, scsAsId).ConfigureAwait(false);
            var target = sessions.Where(s => s.Mode == SessionMode.UeToHse).Select(s => s.SessionId).DefaultIfEmpty(0u).Max();
            var now = time.GetUtcNow();
            var delivery = new NorthboundDelivery(NewId(), scsAsId, "DOWNLINK", request.ExternalId!, 0, target == 0 ? "FAILED" : "BUFFERED", target == 0 ? "NO_SESSION" : null, target, now, now.AddSeconds(request.MaximumLatency), now);
            events.Store.AddDelivery(delivery);
            if (target != 0)
            {
                var token = events.Track(delivery.Id, scsAsId, delivery.Kind);
                if (await hse.SendDownlinkAsync(target, payload, ackRequested: true, token, page: false, TimeSpan.FromSeconds(request.MaximumLatency)).ConfigureAwait(false) == SessionOutcome.NotEstablished)
                {
                    events.Finish(scsAsId, delivery.Id, "FAILED", "NO_SESSION");
                }
            }
            else
            {
                events.Notify(scsAsId, NorthboundEvents.DeliveryNotification(delivery));
            }

            return Created(context, scsAsId, "downlinks", delivery.Id, ShowDelivery(events.Store.Delivery(scsAsId, delivery.Id) ?? delivery));
        })).WithName("SendDownlinkByExternalId").WithSummary("Send a message to a device by its external identifier over its UE-to-HSE session; status BUFFERED until the device acknowledges (DELIVERED), EXPIRED after maximumLatency, or FAILED with a cause.");
        api.MapGet("/downlinks/{id}", (HttpContext context, string scsAsId, string id) => Guarded(context, scsAsId, write: false, _ =>
            events.Store.Delivery(scsAsId, id) is { Kind: "DOWNLINK" } d ? Results.Ok(ShowDelivery(d)) : Problem(404, "no such downlink of this enterprise"))).WithName("ReadDownlink");

        api.MapPost("/pushes", (HttpContext context, string scsAsId, PushRequest request) => PushAsync(context, scsAsId, request, PushMessage.PushEasId, "PUSH"))
            .WithName("Push").WithSummary("Push a message to an application port of a device over its push channel (urn:best:push), reaching it while suspended; a device not reachable gets it when it next resumes, within timeToLive.");
        api.MapPost("/management", (HttpContext context, string scsAsId, PushRequest request) => PushAsync(context, scsAsId, request, PushMessage.ManagementEasId, "MGMT"))
            .WithName("Manage").WithSummary("Send a device-management command to an application port over the device's management channel (urn:best:mgmt), beside its user channel.");
        api.MapGet("/pushes/{id}", (HttpContext context, string scsAsId, string id) => Guarded(context, scsAsId, write: false, _ =>
            events.Store.Delivery(scsAsId, id) is { Kind: "PUSH" or "MGMT" } d ? Results.Ok(ShowDelivery(d)) : Problem(404, "no such push of this enterprise"))).WithName("ReadPush");

        api.MapPost("/session-requests", (HttpContext context, string scsAsId, SessionStartRequest request) => GuardedAsync(context, scsAsId, write: true, async _ =>
        {
            var service = request.Service?.ToLowerInvariant() ?? "confidential";
            if (service is not ("integrity" or "confidential") || request.TimeToLive is < 1 or > 604_800)
            {
                return Problem(400, "service must be integrity or confidential, timeToLive 1..604800 seconds");
            }

            var body = PushMessage.SessionRequestBody(service == "integrity" ? BestService.Integrity : BestService.Confidential, scsAsId);
            return await SendPushAsync(context, scsAsId, request.ExternalId, PushMessage.SessionRequestPort, body, request.TimeToLive, PushMessage.PushEasId, "SESSION_REQUEST", "REQUESTED").ConfigureAwait(false);
        })).WithName("RequestBestSession").WithSummary("Ask a device to start a BEST session with this enterprise: the HSE reaches it over its push channel; SESSION_STARTED (service, mode, suite, Key ID) follows.");
        api.MapGet("/session-requests/{id}", (HttpContext context, string scsAsId, string id) => Guarded(context, scsAsId, write: false, _ =>
            events.Store.Delivery(scsAsId, id) is { Kind: "SESSION_REQUEST" } d ? Results.Ok(ShowDelivery(d)) : Problem(404, "no such session request of this enterprise"))).WithName("ReadSessionRequest");

        Task<IResult> PushAsync(HttpContext context, string scsAsId, PushRequest request, string channel, string kind) => GuardedAsync(context, scsAsId, write: true, async _ =>
        {
            if (request.Port is < 2 or > 65_535 || request.TimeToLive is < 1 or > 604_800)
            {
                return Problem(400, "port must be 2..65535 and timeToLive 1..604800 seconds");
            }

            if (Payload(request.Payload, 1000, out var payload) is { } bad)
            {
                return bad;
            }

            return await SendPushAsync(context, scsAsId, request.ExternalId, (ushort)request.Port, payload, request.TimeToLive, channel, kind, "BUFFERED").ConfigureAwait(false);
        });

        async Task<IResult> SendPushAsync(HttpContext context, string scsAsId, string? externalId, ushort port, byte[] body, int timeToLive, string channel, string kind, string status)
        {
            // A push reaches a device only through the enterprise's own identifier for it: no identifier, no push.
            var imsi = externalId is null ? null : state.ImsiOf(scsAsId, externalId);
            if (imsi is null)
            {
                return Problem(404, "no device of this enterprise with that externalId");
            }

            var sessions = await hse.SessionsOfAsync(imsi, channel).ConfigureAwait(false);
            var target = sessions.Select(s => s.SessionId).DefaultIfEmpty(0u).Max();
            var now = time.GetUtcNow();
            var noChannel = channel == PushMessage.PushEasId ? "NO_PUSH_CHANNEL" : "NO_MANAGEMENT_CHANNEL";
            var delivery = new NorthboundDelivery(NewId(), scsAsId, kind, externalId!, port, target == 0 ? "FAILED" : status, target == 0 ? noChannel : null, target, now, now.AddSeconds(timeToLive), now);
            events.Store.AddDelivery(delivery);
            if (target != 0)
            {
                var token = events.Track(delivery.Id, scsAsId, kind);
                var message = new PushMessage(port, BitConverter.ToUInt32(RandomNumberGenerator.GetBytes(4)), body).ToArray();
                if (await hse.SendDownlinkAsync(target, message, ackRequested: true, token, page: true, TimeSpan.FromSeconds(timeToLive)).ConfigureAwait(false) == SessionOutcome.NotEstablished)
                {
                    events.Finish(scsAsId, delivery.Id, "FAILED", noChannel);
                }
            }
            else
            {
                events.Notify(scsAsId, NorthboundEvents.DeliveryNotification(delivery));
            }

            var resource = kind == "SESSION_REQUEST" ? "session-requests" : "pushes";
            return Created(context, scsAsId, resource, delivery.Id, ShowDelivery(events.Store.Delivery(scsAsId, delivery.Id) ?? delivery));
        }
    }

    private static IResult Guarded(HttpContext context, string scsAsId, bool write, Func<NorthboundCaller, IResult> handler) =>
        Check(context, scsAsId, write) ?? handler(NorthboundCaller.Of(context)!);

    private static async Task<IResult> GuardedAsync(HttpContext context, string scsAsId, bool write, Func<NorthboundCaller, Task<IResult>> handler) =>
        Check(context, scsAsId, write) ?? await handler(NorthboundCaller.Of(context)!).ConfigureAwait(false);

    private static IResult? Check(HttpContext context, string scsAsId, bool write)
    {
        var caller = NorthboundCaller.Of(context);
        if (caller is null)
        {
            context.Response.Headers.WWWAuthenticate = "Bearer";
            return Problem(401, "a client certificate or a bearer token is required");
        }

        if (caller.Name.StartsWith(EasInterface.DevelopmentPki.ReservedPrefix, StringComparison.Ordinal))
        {
            return Problem(403, "the HSE's own services have no northbound resources", "urn:best: identities (the OTA server's urn:best:ota) are no enterprise");
        }

        if (!caller.MaySee(scsAsId))
        {
            return Problem(403, "this caller may not act for that scsAsId", "an enterprise reaches only the resources under its own EAS Id");
        }

        return write && caller.IsOperator ? Problem(403, "operator users read; only the enterprise changes its resources") : null;
    }

    private static IResult? Payload(string? text, int max, out byte[] payload)
    {
        payload = [];
        if (text is null)
        {
            return Problem(400, "payload is required (base64)");
        }

        try
        {
            payload = Convert.FromBase64String(text);
        }
        catch (FormatException)
        {
            return Problem(400, "payload is not base64");
        }

        return payload.Length > max ? Problem(400, $"payload is longer than {max} octets") : null;
    }

    private static IResult Created(HttpContext context, string scsAsId, string collection, string id, JsonObject body)
    {
        var location = $"/best/v1/{Uri.EscapeDataString(scsAsId)}/{collection}/{id}";
        body["self"] = location;
        return Results.Created(location, body);
    }

    private static JsonObject Show(NorthboundSubscription s) => new()
    {
        ["id"] = s.Id,
        ["kind"] = s.Kind,
        ["notificationDestination"] = s.Destination,
        ["cursor"] = s.Cursor,
        ["created"] = s.Created,
    };

    private static JsonObject ShowDelivery(NorthboundDelivery d)
    {
        var body = NorthboundEvents.DeliveryNotification(d);
        body.Remove("type");
        if (d.Port != 0 && d.Kind != "SESSION_REQUEST")
        {
            body["port"] = d.Port;
        }

        body["created"] = d.Created;
        body["deadline"] = d.Deadline;
        body["updated"] = d.Updated;
        return body;
    }

    private static JsonObject ShowSession(SessionOverview o, string? externalId, byte keyId) => new()
    {
        ["sessionId"] = o.SessionId,
        ["externalId"] = externalId,
        ["state"] = o.Suspended ? "SUSPENDED" : "ESTABLISHED",
        ["service"] = HseHost.ServiceName(o.Service),
        ["mode"] = NorthboundEvents.ModeName(o.Mode),
        ["suite"] = o.Suite,
        ["keyId"] = keyId,
    };

    private static string NewId() => Convert.ToHexString(RandomNumberGenerator.GetBytes(12)).ToLowerInvariant();

    private static IResult Problem(int status, string title, string? detail = null) => Results.Problem(title: title, detail: detail, statusCode: status);
}
