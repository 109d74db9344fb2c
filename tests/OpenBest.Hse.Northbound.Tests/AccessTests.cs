using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using OpenBest.EasInterface;
using OpenBest.Testing;

namespace OpenBest.Hse.Northbound.Tests;

/// <summary>
/// The API "secured in its own right" (seed 002): certificates or OAuth 2.0 client-credentials tokens, least privilege
/// (an enterprise reaches only its own devices and resources), rate limits with 429 and Retry-After, every call
/// audited, and the operator's lawful-interception switch on Enterprise Keys.
/// </summary>
public sealed class AccessTests
{
    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    [Fact]
    public async Task AnotherEnterprise_ByTokenOrCertificate_Gets403Or404_OnEveryResource()
    {
        await using var hse = await NorthboundHse.StartAsync();
        await using var app = await CallbackApp.StartAsync();
        var acme = $"/best/v1/{NorthboundHse.Acme}";

        // Acme's resources, made by Acme.
        using var owner = await hse.TokenClientAsync("acme-app");
        await using var device = await hse.DeviceAsync(0);
        var channel = (await device.OpenAsync(NorthboundHse.Channel(NorthboundHse.Acme), Cancel)).Channel!;
        string subscription, downlink;
        using (var r = await owner.PostAsJsonAsync($"{acme}/subscriptions", new { notificationDestination = app.Url, kind = "EVENTS" }, Cancel))
        {
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
            subscription = r.Headers.Location!.OriginalString;
        }

        using (var r = await owner.PostAsJsonAsync($"{acme}/downlinks", new { externalId = NorthboundHse.AcmeDevice, payload = "aGk=" }, Cancel))
        {
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
            downlink = r.Headers.Location!.OriginalString;
        }

        var reads = new[] { $"{acme}/subscriptions", subscription, $"{acme}/uplink", $"{acme}/sessions", downlink };
        var writes = new (HttpMethod Method, string Path, object? Body)[]
        {
            (HttpMethod.Post, $"{acme}/subscriptions", new { notificationDestination = app.Url, kind = "UPLINK" }),
            (HttpMethod.Delete, subscription, null),
            (HttpMethod.Post, $"{acme}/downlinks", new { externalId = NorthboundHse.AcmeDevice, payload = "aGk=" }),
            (HttpMethod.Post, $"{acme}/pushes", new { externalId = NorthboundHse.AcmeDevice, port = 7, payload = "aGk=" }),
            (HttpMethod.Post, $"{acme}/management", new { externalId = NorthboundHse.AcmeDevice, port = 7, payload = "aGk=" }),
            (HttpMethod.Post, $"{acme}/session-requests", new { externalId = NorthboundHse.AcmeDevice }),
            (HttpMethod.Delete, $"{acme}/sessions/{channel.SessionId}", null),
            (HttpMethod.Post, $"{acme}/sessions/{channel.SessionId}/key-refresh", null),
        };

        // The other enterprise, by token and by certificate: 403 on every resource under Acme's scsAsId.
        using var otherToken = await hse.TokenClientAsync("other-app");
        using var otherCertificate = hse.CertificateClient("eas-" + NorthboundHse.Other);
        foreach (var intruder in new[] { otherToken, otherCertificate })
        {
            foreach (var path in reads)
            {
                using var r = await intruder.GetAsync(path, Cancel);
                Assert.True(r.StatusCode == HttpStatusCode.Forbidden, $"GET {path}: {r.StatusCode}");
                Assert.Equal("application/problem+json", r.Content.Headers.ContentType!.MediaType);
            }

            foreach (var (method, path, body) in writes)
            {
                using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
                using var r = await intruder.SendAsync(request, Cancel);
                Assert.True(r.StatusCode == HttpStatusCode.Forbidden, $"{method} {path}: {r.StatusCode}");
            }

            // Under its own scsAsId, Acme's resources and devices do not exist for it: 404.
            var own = $"/best/v1/{NorthboundHse.Other}";
            var id = subscription[(subscription.LastIndexOf('/') + 1)..];
            foreach (var path in new[] { $"{own}/subscriptions/{id}", $"{own}/downlinks/{downlink[(downlink.LastIndexOf('/') + 1)..]}" })
            {
                using var r = await intruder.GetAsync(path, Cancel);
                Assert.True(r.StatusCode == HttpStatusCode.NotFound, $"GET {path}: {r.StatusCode}");
            }

            using (var r = await intruder.DeleteAsync($"{own}/subscriptions/{id}", Cancel))
            {
                Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
            }

            foreach (var (method, path, body) in new (HttpMethod, string, object?)[]
            {
                (HttpMethod.Post, $"{own}/downlinks", new { externalId = NorthboundHse.AcmeDevice, payload = "aGk=" }),
                (HttpMethod.Post, $"{own}/pushes", new { externalId = NorthboundHse.AcmeDevice, port = 7, payload = "aGk=" }),
                (HttpMethod.Post, $"{own}/session-requests", new { externalId = NorthboundHse.AcmeDevice }),
                (HttpMethod.Delete, $"{own}/sessions/{channel.SessionId}", null),
                (HttpMethod.Post, $"{own}/sessions/{channel.SessionId}/key-refresh", null),
            })
            {
                using var request = new HttpRequestMessage(method, path) { Content = body is null ? null : JsonContent.Create(body) };
                using var r = await intruder.SendAsync(request, Cancel);
                Assert.True(r.StatusCode == HttpStatusCode.NotFound, $"{method} {path}: {r.StatusCode}");
            }

            var sessions = await intruder.GetFromJsonAsync<JsonArray>($"{own}/sessions", Cancel);
            Assert.Empty(sessions!);
        }

        // Nobody: 401. A forged or foreign token: 401. The operator reads every enterprise, changes none.
        using var anonymous = hse.CertificateClient(null);
        using (var r = await anonymous.GetAsync($"{acme}/sessions", Cancel))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
        }

        anonymous.DefaultRequestHeaders.Authorization = new("Bearer", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhY21lLmV4YW1wbGUifQ.c2lnbmF0dXJl");
        using (var r = await anonymous.GetAsync($"{acme}/sessions", Cancel))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
        }

        using var operatorUser = hse.CertificateClient("operator-ops");
        var seen = await operatorUser.GetFromJsonAsync<JsonArray>($"{acme}/sessions", Cancel);
        Assert.Contains(seen!, s => s!["sessionId"]!.GetValue<uint>() == channel.SessionId);
        using (var r = await operatorUser.PostAsJsonAsync($"{acme}/downlinks", new { externalId = NorthboundHse.AcmeDevice, payload = "aGk=" }, Cancel))
        {
            Assert.Equal(HttpStatusCode.Forbidden, r.StatusCode);
        }

        // A removed client's token stops working at once.
        using (var sink = new StringWriter())
        {
            Assert.Equal(0, OpenBest.Cli.BestApp.Run(["hse", "client", "remove", "--id", "other-app", "--data-dir", hse.Data], sink, sink));
        }

        await Eventually.True(async () =>
        {
            using var r = await otherToken.GetAsync($"/best/v1/{NorthboundHse.Other}/sessions", Cancel);
            return r.StatusCode == HttpStatusCode.Unauthorized;
        }, "the removed client's token refused");
    }

    [Fact]
    public async Task TokenEndpoint_RefusesWrongSecretsAndGrants_AndEveryCallIsAudited()
    {
        await using var hse = await NorthboundHse.StartAsync();
        using var client = hse.CertificateClient(null);
        async Task<(HttpStatusCode, string)> TokenAsync(Dictionary<string, string> form)
        {
            using var content = new FormUrlEncodedContent(form);
            using var r = await client.PostAsync("/oauth2/token", content, Cancel);
            return (r.StatusCode, (await r.Content.ReadFromJsonAsync<JsonObject>(Cancel))!["error"]?.GetValue<string>() ?? "none");
        }

        Assert.Equal((HttpStatusCode.Unauthorized, "invalid_client"), await TokenAsync(new() { ["grant_type"] = "client_credentials", ["client_id"] = "acme-app", ["client_secret"] = "wrong" }));
        Assert.Equal((HttpStatusCode.Unauthorized, "invalid_client"), await TokenAsync(new() { ["grant_type"] = "client_credentials", ["client_id"] = "nobody", ["client_secret"] = "x" }));
        Assert.Equal((HttpStatusCode.BadRequest, "unsupported_grant_type"), await TokenAsync(new() { ["grant_type"] = "password", ["client_id"] = "acme-app", ["client_secret"] = hse.Secret("acme-app") }));

        // HTTP Basic works as well as the form.
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/oauth2/token") { Content = new FormUrlEncodedContent(new Dictionary<string, string> { ["grant_type"] = "client_credentials" }) })
        {
            request.Headers.Authorization = new("Basic", Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes("acme-app:" + hse.Secret("acme-app"))));
            using var r = await client.SendAsync(request, Cancel);
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            Assert.Equal("no-store", r.Headers.CacheControl!.ToString());
        }

        using var acme = await hse.TokenClientAsync("acme-app");
        using (var r = await acme.GetAsync($"/best/v1/{NorthboundHse.Acme}/sessions", Cancel))
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }

        // The OpenAPI document lists every resource of the liaison and both ways in.
        var openApi = await client.GetFromJsonAsync<JsonObject>("/openapi/v1.json", Cancel);
        foreach (var path in new[] { "subscriptions", "uplink", "sessions", "sessions/{sessionId}", "sessions/{sessionId}/key-refresh", "downlinks", "pushes", "management", "session-requests" })
        {
            Assert.True(openApi!["paths"]!.AsObject().ContainsKey("/best/v1/{scsAsId}/" + path), path);
        }

        Assert.Equal("/oauth2/token", openApi!["components"]!["securitySchemes"]!["oauth2"]!["flows"]!["clientCredentials"]!["tokenUrl"]!.GetValue<string>());
        Assert.Equal("mutualTLS", openApi["components"]!["securitySchemes"]!["mutualTLS"]!["type"]!.GetValue<string>());

        // The audit log names the caller, the route template and the status; never a device's identifier. The operator reads it.
        using var operatorUser = hse.CertificateClient("operator-ops");
        async Task<bool> AuditedAsync(string caller, string detail)
        {
            var snapshot = await operatorUser.GetFromJsonAsync<JsonObject>("/dashboard/api/snapshot?event=api", Cancel);
            return snapshot!["audit"]!.AsArray().Any(a => a!["enterprise"]?.GetValue<string>() == caller && a["detail"]?.GetValue<string>() == detail);
        }

        await Eventually.True(() => AuditedAsync(NorthboundHse.Acme, "GET /best/v1/{scsAsId}/sessions 200"), "the enterprise's call audited");
        await Eventually.True(() => AuditedAsync("urn:best:anonymous", "POST /oauth2/token 401"), "the refused token request audited");
        await Eventually.True(() => AuditedAsync(NorthboundHse.Acme, "POST /oauth2/token 200"), "the token audited");
    }

    [Fact]
    public async Task RateLimit_PerEnterprise_Answers429WithRetryAfter_AndLeavesOtherEnterprisesAlone()
    {
        await using var hse = await NorthboundHse.StartAsync("--northbound-rate", "2");
        using var acme = await hse.TokenClientAsync("acme-app");
        using var other = await hse.TokenClientAsync("other-app");
        var statuses = new List<HttpStatusCode>();
        string? retryAfter = null;
        for (var i = 0; i < 1200 && !statuses.Contains(HttpStatusCode.TooManyRequests); i++)
        {
            using var r = await acme.GetAsync($"/best/v1/{NorthboundHse.Acme}/sessions", Cancel);
            statuses.Add(r.StatusCode);
            retryAfter ??= r.StatusCode == HttpStatusCode.TooManyRequests ? r.Headers.RetryAfter?.ToString() : null;
        }

        Assert.Contains(HttpStatusCode.TooManyRequests, statuses);
        Assert.All(statuses, s => Assert.True(s is HttpStatusCode.OK or HttpStatusCode.TooManyRequests, s.ToString()));
        Assert.True(int.TryParse(retryAfter, out var seconds) && seconds >= 1, $"Retry-After: {retryAfter}");

        // Another enterprise has its own bucket.
        using (var r = await other.GetAsync($"/best/v1/{NorthboundHse.Other}/sessions", Cancel))
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }
    }

    [Fact]
    public async Task LawfulInterceptionSwitch_Refuse_RefusesAnEnterpriseKey_AndSaysWhy_AndCallbacksAreHttpsByDefault()
    {
        await using var hse = await NorthboundHse.StartAsync(httpCallbacks: false, "--enterprise-keys", "refuse");
        using var eas = hse.CertificateClient("eas-" + NorthboundHse.Acme);
        using var content = new ByteArrayContent(EasXml.Write(new EasKeyRefresh(NorthboundHse.AcmeDevice, [0x61, 0x63, 0x6d, 0x65])));
        content.Headers.ContentType = new(EasXml.MediaType);
        using var r = await eas.PostAsync("/eas/v1/refresh", content, Cancel);
        Assert.Equal(HttpStatusCode.Forbidden, r.StatusCode);
        Assert.True(EasXml.TryRead(await r.Content.ReadAsByteArrayAsync(Cancel), out var problem, out _));
        Assert.Contains("lawful interception", ((EasProblem)problem!).Detail, StringComparison.Ordinal);

        // By default a callback must be https: plain http, even on loopback, would let an enterprise reach the HSE's own loopback services.
        using var acme = await hse.TokenClientAsync("acme-app");
        using var http = await acme.PostAsJsonAsync($"/best/v1/{NorthboundHse.Acme}/subscriptions", new { notificationDestination = "http://127.0.0.1:9/notify", kind = "UPLINK" }, Cancel);
        Assert.Equal(HttpStatusCode.BadRequest, http.StatusCode);
        Assert.Contains("https", (await http.Content.ReadFromJsonAsync<JsonObject>(Cancel))!["title"]!.GetValue<string>(), StringComparison.Ordinal);

        // Nor https to the HSE's own loopback or a link-local address (cloud metadata).
        foreach (var destination in new[] { "https://127.0.0.1:9/notify", "https://[::1]:9/notify", "https://localhost/notify", "https://169.254.169.254/latest" })
        {
            using var refused = await acme.PostAsJsonAsync($"/best/v1/{NorthboundHse.Acme}/subscriptions", new { notificationDestination = destination, kind = "EVENTS" }, Cancel);
            Assert.True(refused.StatusCode == HttpStatusCode.BadRequest, $"{destination}: {refused.StatusCode}");
        }
    }
}
