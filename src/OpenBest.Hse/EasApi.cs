using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenBest.Crypto.Kdf;
using OpenBest.EasInterface;
using OpenBest.Protocol;
using OpenBest.Sessions;
using OpenBest.Storage;

namespace OpenBest.Hse;

/// <summary>
/// The HSE's side of the HSE–EAS interface (TS 33.163 annex: RESTful HTTP, XML bodies, mutually authenticated TLS).
/// Every request must present a client certificate issued by the interface's CA; its common name is the caller's EAS
/// Id, and an EAS only ever reaches sessions and keys that name its own EAS Id. Every body is validated against the
/// schema; a malformed one gets 400 with a Problem body and changes nothing.
/// </summary>
public static class EasApi
{
    /// <summary>Starts the interface on <paramref name="endPoint"/> (port 0 picks a free one); dispose the result to stop it.</summary>
    public static Task<WebApplication> StartAsync(HseHost host, IHseStateStore store, X509Certificate2 serverCertificate, X509Certificate2 ca, IPEndPoint endPoint, CancellationToken cancellationToken = default) =>
        StartAsync(host, store, serverCertificate, ca, endPoint, TimeProvider.System, cancellationToken);

    /// <summary>Starts the interface on <paramref name="endPoint"/> with <paramref name="time"/> as the clock of its rate limits.</summary>
    public static Task<WebApplication> StartAsync(HseHost host, IHseStateStore store, X509Certificate2 serverCertificate, X509Certificate2 ca, IPEndPoint endPoint, TimeProvider time, CancellationToken cancellationToken = default) =>
        StartAsync(host, store, serverCertificate, ca, endPoint, new EasApiHooks(), time, cancellationToken);

    /// <summary>
    /// Starts the interface with <paramref name="hooks"/>: more services and endpoints on the same port (the northbound API
    /// and the dashboard). With <see cref="EasApiHooks.CertificateOptional"/> a client may come without a certificate (a
    /// foreign one still fails the handshake); the EAS interface's own resources still answer such a client 401.
    /// </summary>
    public static Task<WebApplication> StartAsync(HseHost host, IHseStateStore store, X509Certificate2 serverCertificate, X509Certificate2 ca, IPEndPoint endPoint, EasApiHooks hooks, TimeProvider time, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(host);
        return StartAsync(IHseSessions.ForHost(host), store, serverCertificate, ca, endPoint, hooks, time, cancellationToken);
    }

    /// <summary>
    /// Starts the interface over <paramref name="sessions"/>: one HSE's host, or a cluster's shards (every node of a cluster
    /// serves the interface, and each operation runs where its session runs).
    /// </summary>
    public static async Task<WebApplication> StartAsync(IHseSessions sessions, IHseStateStore store, X509Certificate2 serverCertificate, X509Certificate2 ca, IPEndPoint endPoint, EasApiHooks hooks, TimeProvider time, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(hooks);
        ArgumentNullException.ThrowIfNull(sessions);
        ArgumentNullException.ThrowIfNull(store);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddOpenApi();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(endPoint, listen => listen.UseHttps(new HttpsConnectionAdapterOptions
        {
            ServerCertificate = serverCertificate,
            ClientCertificateMode = hooks.CertificateOptional ? ClientCertificateMode.AllowCertificate : ClientCertificateMode.RequireCertificate,
            // Only certificates of the interface's CA: a missing or foreign client certificate fails the handshake.
            ClientCertificateValidation = (certificate, _, _) => DevelopmentPki.IsIssuedBy(certificate, ca),
        })));
        hooks.ConfigureServices?.Invoke(builder);
        var app = builder.Build();
        hooks.Configure?.Invoke(app);
        app.MapPost("/eas/v1/registrations", (Func<HttpContext, Task<IResult>>)(context => Handle(context, async (easId, message) =>
        {
            if (message is not EasSessionRegister register)
            {
                return Problem(400, "expected EasSessionRegister");
            }

            if (register.EasId != easId)
            {
                return Problem(403, "the EAS Id is not the client certificate's", $"the certificate is for {easId}");
            }

            if (register.Endpoint.Scheme != Uri.UriSchemeHttps)
            {
                return Problem(400, "the endpoint must be https");
            }

            var registration = new EasRegistration(easId, Convert.ToHexString(RandomNumberGenerator.GetBytes(16)).ToLowerInvariant(), register.Endpoint.ToString(), DateTimeOffset.UtcNow);
            store.RegisterEas(registration);
            store.Audit("eas-registered", easId, registration.Endpoint, 0);
            context.Response.Headers.Location = $"/eas/v1/registrations/{registration.RegistrationId}";
            return Xml(201, new EasSessionRegistered(registration.RegistrationId, easId));
        })));
        app.MapDelete("/eas/v1/registrations/{id}", (HttpContext context, string id) => Handle(context, async (easId, _) =>
        {
            var own = store.EasRegistrations().FirstOrDefault(r => r.EasId == easId);
            if (own is null || !CryptographicOperations.FixedTimeEquals(System.Text.Encoding.ASCII.GetBytes(own.RegistrationId), System.Text.Encoding.ASCII.GetBytes(id)))
            {
                return Problem(404, "no such registration of this EAS");
            }

            store.DeregisterEas(easId);
            store.Audit("eas-deregistered", easId, own.Endpoint, 0);
            return Results.StatusCode(204);
        }, bodyless: true));
        app.MapPost("/eas/v1/keys", (Func<HttpContext, Task<IResult>>)(context => Handle(context, async (easId, message) =>
        {
            if (message is not EasSessionRequest request || request.Keys is not null)
            {
                return Problem(400, "expected EasSessionRequest without keys");
            }

            // Only keys of sessions that named this EAS: the PSKs are kept per UE and per EAS Id.
            var imsi = store.ImsiOf(easId, request.ExternalId);
            var kept = imsi is null ? [] : store.Psks(imsi, easId);
            var psk = kept.FirstOrDefault(p => p.KeyIdentifier == request.KeyIdentifier);
            foreach (var other in kept.Where(p => !ReferenceEquals(p, psk)))
            {
                CryptographicOperations.ZeroMemory(other.Psk);
            }

            if (psk is null)
            {
                store.Audit("key-refused", easId, request.ExternalId, request.KeyIdentifier);
                return Problem(404, "no such key for this EAS", $"{request.ExternalId} has no key {request.KeyIdentifier:x8} for {easId}");
            }

            var keys = KeysOf(psk, request.ExternalId);
            if (request.EndpointId is { } endpoint)
            {
                // One endpoint of the enterprise (seed 004): its own key, derived from K_EAS_PSK, which does not leave.
                var own = new byte[BestKeys.IntermediateSize];
                BestKeys.KEndpointPsk(keys.KEasPsk, endpoint, own);
                CryptographicOperations.ZeroMemory(keys.KEasPsk);
                keys = keys with { KEasPsk = own };
            }

            store.Audit("key-delivered", easId, request.ExternalId, request.KeyIdentifier);
            return Xml(200, new EasSessionStart(request.ExternalId, request.KeyIdentifier, keys), zero: keys.KEasPsk);
        })));
        // EAS-triggered refreshes: one per UE and EAS every 10 s at most (each costs the device a vector and an AKA run).
        var refreshed = new RecentKeys<(string EasId, string Imsi)>(TimeSpan.FromSeconds(10), pruneAbove: 100_000, time);
        app.MapPost("/eas/v1/refresh", (Func<HttpContext, Task<IResult>>)(context => Handle(context, async (easId, message) =>
        {
            if (message is not EasKeyRefresh refresh)
            {
                return Problem(400, "expected EasKeyRefresh");
            }

            if (refresh.EnterpriseKeyIdentifier is not null && !hooks.EnterpriseKeysAllowed)
            {
                store.Audit("enterprise-key-refused", easId, refresh.ExternalId, 0);
                return Problem(403, "Enterprise Keys are refused by this operator's policy", "lawful interception: this operator must be able to open UE-to-EAS traffic, so end-to-end keys may not be bound to a key it never sees (EnterpriseKeys = refuse)");
            }

            var imsi = store.ImsiOf(easId, refresh.ExternalId);
            if (imsi is not null && refresh.EnterpriseKeyIdentifier is { } chosen)
            {
                // The new keys name this Enterprise Key to the UE, and so do its later sessions with this EAS (even when
                // it has none now: the EAS can choose before the device's first session).
                store.SetEnterpriseKeyIdentifier(imsi, easId, chosen);
                store.Audit("enterprise-key-chosen", easId, refresh.ExternalId, 0);
            }

            var live = imsi is null ? [] : await sessions.SessionsOfAsync(imsi, easId).ConfigureAwait(false);
            if (live.Count == 0)
            {
                return refresh.EnterpriseKeyIdentifier is not null && imsi is not null
                    ? Results.StatusCode(202)
                    : Problem(404, "no live session of that UE with this EAS");
            }

            // Seed 001 4.4.4: an EAS triggers a refresh of the UE-to-EAS mode only. For key agreement only "there is no
            // provision for the application layer to trigger generation of the new EAS PSK" (also seed 004, key refresh);
            // and UE-to-HSE sessions carry no keys of the EAS's.
            var toRefresh = live.Where(s => s.Mode == SessionMode.UeToEas).Select(s => s.SessionId).ToList();
            if (toRefresh.Count == 0)
            {
                var keyAgreementOnly = live.Any(s => s.Mode == SessionMode.KeyAgreementOnly);
                store.Audit("refresh-refused", easId, refresh.ExternalId, 0);
                return Problem(409, "no UE-to-EAS session to refresh", keyAgreementOnly
                    ? "key agreement only: the application layer cannot trigger a new EAS PSK (TS 33.163 4.4.4); the EAS gets the new PSK when the HSE or the UE refreshes, pushed to it or by a key request"
                    : "the UE's sessions with this EAS are in UE-to-HSE mode: an EAS refreshes only UE-to-EAS mode sessions");
            }

            if (!refreshed.TryMark((easId, imsi!)))
            {
                return Problem(429, "too many refreshes", $"one refresh of {refresh.ExternalId} every 10 s at most");
            }

            foreach (var sessionId in toRefresh)
            {
                // A session that ended meanwhile is passed over: the others are refreshed all the same.
                await sessions.RefreshKeysAsync(sessionId).ConfigureAwait(false);
            }

            store.Audit("refresh-requested", easId, refresh.ExternalId, 0);
            return Results.StatusCode(202);
        })));
        app.MapPost("/eas/v1/downlink", (Func<HttpContext, Task<IResult>>)(context => Handle(context, async (easId, message) =>
        {
            if (message is not EasDownlink downlink)
            {
                return Problem(400, "expected EasDownlink");
            }

            var owner = await sessions.DescribeAsync(downlink.SessionId).ConfigureAwait(false);
            if (owner?.EasId != easId)
            {
                return Problem(404, "no session of this EAS with that id");
            }

            return await sessions.ForwardDownlinkFromEasAsync(downlink.SessionId, downlink.Message.ToArray()).ConfigureAwait(false) switch
            {
                SessionOutcome.NotEstablished => Problem(404, "the session is not established"),
                SessionOutcome.Dropped => Problem(409, "the message does not fit the session (plane, Session ID or Key ID)"),
                _ => Results.StatusCode(202),
            };
        })));
        NorthboundApi.Map(app, sessions, store);
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        return app;
    }

    /// <summary>The keys of a kept PSK, as the interface carries them (PSK identity of profile section 5).</summary>
    public static EasSessionKeys KeysOf(PastPsk psk, string externalId)
    {
        ArgumentNullException.ThrowIfNull(psk);
        return new EasSessionKeys(psk.SessionId, psk.KeyId, psk.Suite, psk.Service, psk.CounterLength, psk.UeToEasMode, EasXml.PskIdentity(externalId, psk.KeyIdentifier), psk.Psk)
        {
            EnterpriseKeyIdentifier = psk.EnterpriseKeyIdentifier,
        };
    }

    private static async Task<IResult> Handle(HttpContext context, Func<string, EasMessage?, Task<IResult>> handler, bool bodyless = false)
    {
        var certificate = await context.Connection.GetClientCertificateAsync(context.RequestAborted).ConfigureAwait(false);
        if (certificate is null)
        {
            return Problem(401, "a client certificate is required");
        }

        var easId = DevelopmentPki.IdentityOf(certificate);
        if (!DevelopmentPki.IsEasIdentity(easId))
        {
            return Problem(403, "the client certificate names no EAS");
        }

        EasMessage? message = null;
        if (!bodyless)
        {
            if (context.Request.ContentLength is > EasXml.MaxBody)
            {
                return Problem(413, "the body is too large");
            }

            using var body = await ReceivedBody.ReadAsync(context.Request.Body, context.RequestAborted).ConfigureAwait(false);
            var error = "the body is too large";
            if (body.TooLarge || !EasXml.TryRead(body.Span, out message, out error))
            {
                return Problem(400, "the body is not a valid HSE–EAS message", error);
            }
        }

        try
        {
            return await handler(easId, message).ConfigureAwait(false);
        }
        finally
        {
            EasXml.Zero(message);
        }
    }

    private static EasXmlResult Xml(int status, EasMessage message, byte[]? zero = null)
    {
        var result = new EasXmlResult(status, message);
        if (zero is not null)
        {
            CryptographicOperations.ZeroMemory(zero);
        }

        return result;
    }

    private static EasXmlResult Problem(int status, string title, string? detail = null) => Xml(status, new EasProblem(title, detail));
}
