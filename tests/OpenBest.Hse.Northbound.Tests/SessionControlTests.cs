using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using OpenBest.Client;
using OpenBest.Protocol;
using OpenBest.Sessions;
using OpenBest.Testing;

namespace OpenBest.Hse.Northbound.Tests;

/// <summary>
/// The liaison's commands end to end (seed 002): downlink by external identifier with its delivery status,
/// "Manage EMSDP keys" (not for key agreement only, seed 001 4.4.4) and "Terminate BEST session", each told to
/// the application as an event notification.
/// </summary>
public sealed class SessionControlTests
{
    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Downlink_ByExternalId_IsDelivered_KeysAreRefreshed_AndTheSessionTerminated_WithNotifications()
    {
        await using var hse = await NorthboundHse.StartAsync();
        await using var app = await CallbackApp.StartAsync();
        using var acme = await hse.TokenClientAsync("acme-app");
        var root = $"/best/v1/{NorthboundHse.Acme}";
        using (var r = await acme.PostAsJsonAsync($"{root}/subscriptions", new { notificationDestination = app.Url, kind = "EVENTS" }, Cancel))
        {
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        }

        await using var device = await hse.DeviceAsync(0);
        var channel = (await device.OpenAsync(NorthboundHse.Channel(NorthboundHse.Acme), Cancel)).Channel!;
        Assert.Equal(SendStatus.Acknowledged, await channel.SendAsync("hello"u8.ToArray(), acknowledged: true, Cancel));
        var started = await EventAsync(app, "SESSION_STARTED");
        Assert.Equal(channel.SessionId, started["sessionId"]!.GetValue<uint>());
        Assert.Equal(NorthboundHse.AcmeDevice, started["externalId"]!.GetValue<string>());
        Assert.Equal("UE_TO_HSE", started["mode"]!.GetValue<string>());
        Assert.Equal("integrity", started["service"]!.GetValue<string>());
        Assert.False(string.IsNullOrEmpty(started["suite"]!.GetValue<string>()));
        var firstKey = started["keyId"]!.GetValue<int>();

        // Downlink by external identifier: BUFFERED until the device's Data Ack, then DELIVERED (read and notified).
        string location;
        using (var r = await acme.PostAsJsonAsync($"{root}/downlinks", new { externalId = NorthboundHse.AcmeDevice, payload = Convert.ToBase64String("open valve"u8), maximumLatency = 60 }, Cancel))
        {
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
            location = r.Headers.Location!.OriginalString;
        }

        var message = await channel.Received.ReadAsync(Cancel).AsTask().WaitAsync(Eventually.Deadline, Cancel);
        Assert.Equal("open valve", Encoding.UTF8.GetString(message.Payload.Span));
        await Eventually.True(async () => (await acme.GetFromJsonAsync<JsonObject>(location, Cancel))!["status"]!.GetValue<string>() == "DELIVERED", "the downlink DELIVERED");
        var status = await EventAsync(app, "DELIVERY_STATUS");
        Assert.Equal("DELIVERED", status["status"]!.GetValue<string>());

        // Manage keys: the new keys are in use when the device's next message verifies under them; then KEYS_REFRESHED.
        using (var r = await acme.PostAsync($"{root}/sessions/{channel.SessionId}/key-refresh", null, Cancel))
        {
            Assert.Equal(HttpStatusCode.Accepted, r.StatusCode);
        }

        var refreshed = await EventAsync(app, "KEYS_REFRESHED");
        Assert.Equal(channel.SessionId, refreshed["sessionId"]!.GetValue<uint>());
        Assert.NotEqual(firstKey, refreshed["keyId"]!.GetValue<int>());
        Assert.Equal(SendStatus.Acknowledged, await channel.SendAsync("after refresh"u8.ToArray(), acknowledged: true, Cancel));

        // Terminate with a cause: the device's channel closes, the application is told.
        using (var r = await acme.DeleteAsync($"{root}/sessions/{channel.SessionId}?cause=None", Cancel))
        {
            Assert.Equal(HttpStatusCode.Accepted, r.StatusCode);
        }

        await Eventually.True(() => channel.IsClosed, "the device's channel closed by the HSE");
        var terminated = await EventAsync(app, "SESSION_TERMINATED");
        Assert.Equal(channel.SessionId, terminated["sessionId"]!.GetValue<uint>());
        Assert.False(terminated["byDevice"]!.GetValue<bool>());
        var sessions = await acme.GetFromJsonAsync<JsonArray>($"{root}/sessions", Cancel);
        Assert.DoesNotContain(sessions!, s => s!["sessionId"]!.GetValue<uint>() == channel.SessionId);

        // The event notifications carry increasing sequence numbers.
        var sequences = app.Received.Select(n => n["sequence"]!.GetValue<long>()).ToList();
        Assert.Equal(sequences.Order(), sequences);
    }

    [Fact]
    public async Task KeyRefresh_OfAKeyAgreementOnlySession_IsRefused_Citing4_4_4()
    {
        await using var hse = await NorthboundHse.StartAsync();
        using var acme = await hse.TokenClientAsync("acme-app");
        await using var device = await hse.DeviceAsync(0);
        var opened = await device.OpenAsync(new UeChannelOptions
        {
            EasId = NorthboundHse.Acme,
            Service = BestService.KeyAgreementOnly,
            MinimumService = BestService.KeyAgreementOnly,
            ServingNetwork = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org"),
        }, Cancel);
        var channel = opened.Channel ?? throw new InvalidOperationException($"no session: {opened.Rejected}");
        using var r = await acme.PostAsync($"/best/v1/{NorthboundHse.Acme}/sessions/{channel.SessionId}/key-refresh", null, Cancel);
        Assert.Equal(HttpStatusCode.Conflict, r.StatusCode);
        var problem = await r.Content.ReadFromJsonAsync<JsonObject>(Cancel);
        Assert.Contains("4.4.4", problem!["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("KEY_AGREEMENT_ONLY", (await acme.GetFromJsonAsync<JsonArray>($"/best/v1/{NorthboundHse.Acme}/sessions", Cancel))!.Single()!["mode"]!.GetValue<string>());
    }

    [Fact]
    public async Task Downlink_ToASuspendedDevice_ExpiresAfterItsMaximumLatency()
    {
        await using var hse = await NorthboundHse.StartAsync();
        using var acme = await hse.TokenClientAsync("acme-app");
        // A device without a session: FAILED with a cause, at once.
        using (var none = await acme.PostAsJsonAsync($"/best/v1/{NorthboundHse.Acme}/downlinks", new { externalId = NorthboundHse.AcmeDevice, payload = "aGk=" }, Cancel))
        {
            Assert.Equal(HttpStatusCode.Created, none.StatusCode);
            var failed = await none.Content.ReadFromJsonAsync<JsonObject>(Cancel);
            Assert.Equal(("FAILED", "NO_SESSION"), (failed!["status"]!.GetValue<string>(), failed["cause"]!.GetValue<string>()));
        }

        // An unknown external identifier: 404.
        using (var unknown = await acme.PostAsJsonAsync($"/best/v1/{NorthboundHse.Acme}/downlinks", new { externalId = "nobody@acme", payload = "aGk=" }, Cancel))
        {
            Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        }

        await using var device = await hse.DeviceAsync(0);
        var channel = (await device.OpenAsync(NorthboundHse.Channel(NorthboundHse.Acme), Cancel)).Channel!;
        Assert.Equal(SendStatus.Acknowledged, await channel.SendAsync("hello"u8.ToArray(), acknowledged: true, Cancel));
        await channel.SuspendAsync();
        await Eventually.True(async () => (await acme.GetFromJsonAsync<JsonArray>($"/best/v1/{NorthboundHse.Acme}/sessions", Cancel))!.Single()!["state"]!.GetValue<string>() == "SUSPENDED", "the session suspended");
        using var r = await acme.PostAsJsonAsync($"/best/v1/{NorthboundHse.Acme}/downlinks", new { externalId = NorthboundHse.AcmeDevice, payload = "aGk=", maximumLatency = 2 }, Cancel);
        Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        Assert.Equal("BUFFERED", (await r.Content.ReadFromJsonAsync<JsonObject>(Cancel))!["status"]!.GetValue<string>());
        var location = r.Headers.Location!.OriginalString;
        await Eventually.True(async () => (await acme.GetFromJsonAsync<JsonObject>(location, Cancel))!["status"]!.GetValue<string>() == "EXPIRED", "the downlink EXPIRED");
        Assert.Equal("MAX_LATENCY_EXCEEDED", (await acme.GetFromJsonAsync<JsonObject>(location, Cancel))!["cause"]!.GetValue<string>());
    }

    internal static async Task<JsonObject> EventAsync(CallbackApp app, string type) =>
        await Eventually.Value(() => app.Received.LastOrDefault(n => n["type"]?.GetValue<string>() == type), n => n is not null, $"a {type} notification") ?? throw new InvalidOperationException();
}
