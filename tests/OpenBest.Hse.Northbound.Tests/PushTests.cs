using System.Collections.Concurrent;
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
/// The push service (seed 000 section 4): a device opens a channel naming urn:best:push at boot and keeps it
/// suspended; the HSE reaches it with a push message addressed by external identifier and application port, and a
/// device out of reach gets it when it next resumes, within its time to live. The management channel (section 3)
/// reaches the device while its user channel is suspended. "Request BEST-session" (seed 002) goes the same way.
/// </summary>
public sealed class PushTests
{
    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ASleepingDevice_IsReachedByPush_AndOneOutOfReach_GetsItWhenItResumes()
    {
        await using var hse = await NorthboundHse.StartAsync();
        await using var relay = new UdpRelay(hse.Udp);
        using var acme = await hse.TokenClientAsync("acme-app");
        await using var app = await CallbackApp.StartAsync();
        using (var r = await acme.PostAsJsonAsync($"/best/v1/{NorthboundHse.Acme}/subscriptions", new { notificationDestination = app.Url, kind = "EVENTS" }, Cancel))
        {
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        }

        await using var device = await hse.DeviceAsync(0, relay.EndPoint);
        await using var push = await BestPushChannel.OpenAsync(device, ct: Cancel);
        var received = new ConcurrentQueue<(ushort Port, string Text)>();
        push.Register(7, (m, _) => { received.Enqueue((m.Port, Encoding.UTF8.GetString(m.Body.Span))); return Task.CompletedTask; });
        push.Register(9, (m, _) => { received.Enqueue((m.Port, Encoding.UTF8.GetString(m.Body.Span))); return Task.CompletedTask; });
        await Eventually.True(async () => await SessionStateAsync(hse) == "SUSPENDED", "the push channel suspended at the HSE");

        // Asleep (suspended) but reachable: the push arrives on its port, and the sender's report says DELIVERED.
        var first = await PushAsync(acme, port: 7, "wake up: firmware 1.2");
        await Eventually.True(() => received.Contains(((ushort)7, "wake up: firmware 1.2")), "the push on port 7");
        await Eventually.True(async () => await StatusAsync(acme, first) == "DELIVERED", "the push DELIVERED");
        Assert.True(await push.IsSuspendedAsync(), "the push channel stays suspended after a push");
        Assert.Equal("SUSPENDED", await SessionStateAsync(hse));

        // Out of reach: the page is lost; the message waits (BUFFERED) and arrives once, when the device resumes.
        relay.Cut = true;
        var second = await PushAsync(acme, port: 9, "meter reading due");
        await Eventually.True(() => relay.DroppedDown > 0, "the page lost on the way to the device");
        Assert.Equal("BUFFERED", await StatusAsync(acme, second));
        relay.Cut = false;
        await push.Channel.ResumeAsync();
        await Eventually.True(() => received.Contains(((ushort)9, "meter reading due")), "the push on port 9 after the resume");
        await Eventually.True(async () => await StatusAsync(acme, second) == "DELIVERED", "the second push DELIVERED");
        Assert.Equal(2, received.Count);
        await Eventually.True(() => app.Received.Any(n => n["type"]!.GetValue<string>() == "DELIVERY_STATUS" && n["id"]!.GetValue<string>() == second && n["status"]!.GetValue<string>() == "DELIVERED"),
            "the DELIVERED notification of the second push");

        // A device with no push channel: FAILED, NO_PUSH_CHANNEL (the other enterprise's device is not even visible: 404).
        using var other = await hse.TokenClientAsync("other-app");
        using var none = await other.PostAsJsonAsync($"/best/v1/{NorthboundHse.Other}/pushes", new { externalId = NorthboundHse.OtherDevice, port = 7, payload = "aGk=" }, Cancel);
        Assert.Equal(HttpStatusCode.Created, none.StatusCode);
        Assert.Equal("NO_PUSH_CHANNEL", (await none.Content.ReadFromJsonAsync<JsonObject>(Cancel))!["cause"]!.GetValue<string>());
    }

    [Fact]
    public async Task ManagementChannel_ReachesTheDevice_WhileItsUserChannelIsSuspended()
    {
        await using var hse = await NorthboundHse.StartAsync();
        using var acme = await hse.TokenClientAsync("acme-app");
        await using var device = await hse.DeviceAsync(0);
        var user = (await device.OpenAsync(NorthboundHse.Channel(NorthboundHse.Acme), Cancel)).Channel!;
        await user.SuspendAsync();
        await using var management = await BestPushChannel.OpenAsync(device, PushMessage.ManagementEasId, ct: Cancel);
        var commands = new ConcurrentQueue<string>();
        management.Register(5683, (m, _) => { commands.Enqueue(Encoding.UTF8.GetString(m.Body.Span)); return Task.CompletedTask; });

        using var r = await acme.PostAsJsonAsync($"/best/v1/{NorthboundHse.Acme}/management", new { externalId = NorthboundHse.AcmeDevice, port = 5683, payload = Convert.ToBase64String("reboot at 02:00"u8) }, Cancel);
        Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        var id = (await r.Content.ReadFromJsonAsync<JsonObject>(Cancel))!["id"]!.GetValue<string>();
        await Eventually.True(() => commands.Contains("reboot at 02:00"), "the management command");
        await Eventually.True(async () => await StatusAsync(acme, id) == "DELIVERED", "the command DELIVERED");
        var sessions = await acme.GetFromJsonAsync<JsonArray>($"/best/v1/{NorthboundHse.Acme}/sessions", Cancel);
        Assert.Equal("SUSPENDED", sessions!.Single(s => s!["sessionId"]!.GetValue<uint>() == user.SessionId)!["state"]!.GetValue<string>());
    }

    [Fact]
    public async Task RequestBestSession_ReachesTheDeviceByPush_AndStartOfBestSession_IsNotified()
    {
        await using var hse = await NorthboundHse.StartAsync();
        using var acme = await hse.TokenClientAsync("acme-app");
        await using var app = await CallbackApp.StartAsync();
        using (var r = await acme.PostAsJsonAsync($"/best/v1/{NorthboundHse.Acme}/subscriptions", new { notificationDestination = app.Url, kind = "EVENTS" }, Cancel))
        {
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        }

        await using var device = await hse.DeviceAsync(0);
        await using var push = await BestPushChannel.OpenAsync(device, ct: Cancel);
        var opened = new TaskCompletionSource<BestChannel>(TaskCreationOptions.RunContinuationsAsynchronously);
        push.SessionRequested = async (easId, service, ct) =>
        {
            var result = await device.OpenAsync(NorthboundHse.Channel(easId, service), ct);
            opened.TrySetResult(result.Channel!);
        };

        string location;
        using (var r = await acme.PostAsJsonAsync($"/best/v1/{NorthboundHse.Acme}/session-requests", new { externalId = NorthboundHse.AcmeDevice, service = "integrity" }, Cancel))
        {
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
            location = r.Headers.Location!.OriginalString;
            Assert.Equal("REQUESTED", (await r.Content.ReadFromJsonAsync<JsonObject>(Cancel))!["status"]!.GetValue<string>());
        }

        var channel = await opened.Task.WaitAsync(Eventually.Deadline, Cancel);
        Assert.Equal(BestService.Integrity, channel.Service);
        await Eventually.True(async () => (await acme.GetFromJsonAsync<JsonObject>(location, Cancel))!["status"]!.GetValue<string>() == "STARTED", "the request STARTED");
        var started = await SessionControlTests.EventAsync(app, "SESSION_STARTED");
        Assert.Equal(channel.SessionId, started["sessionId"]!.GetValue<uint>());
        Assert.Equal(("integrity", "UE_TO_HSE"), (started["service"]!.GetValue<string>(), started["mode"]!.GetValue<string>()));
        Assert.Equal(channel.SessionId, (await acme.GetFromJsonAsync<JsonObject>(location, Cancel))!["sessionId"]!.GetValue<uint>());
    }

    [Fact]
    public async Task BestUePush_AsAProcess_AnswersASessionRequest_AndPrintsAPush()
    {
        await using var hse = await NorthboundHse.StartAsync();
        using var acme = await hse.TokenClientAsync("acme-app");
        await using var device = BestProcess.Start("ue", "push", "--imsi", NorthboundHse.Imsis[0], "--k", NorthboundHse.K, "--opc", NorthboundHse.Opc, "--hse", hse.Udp.ToString(),
            "--service", "integrity", "--usim-state", Path.Combine(hse.Data, "usim-process.json"), "--count", "1", "--timeout", "120");
        await device.WaitForAsync("waiting for push messages");

        using (var r = await acme.PostAsJsonAsync($"/best/v1/{NorthboundHse.Acme}/session-requests", new { externalId = NorthboundHse.AcmeDevice, service = "integrity" }, Cancel))
        {
            Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        }

        await device.WaitForAsync($"session request from {NorthboundHse.Acme}: session ");
        Assert.Matches(@"session request from acme\.example: session \d+ opened, Integrity", device.Output);
        await PushAsync(acme, port: 7, "hello device");
        await device.WaitForAsync("push port 7 (id ");
        Assert.Contains("): hello device", device.Output, StringComparison.Ordinal);
        var (code, _) = await device.ExitAsync();
        Assert.Equal(0, code);
    }

    private static async Task<string> PushAsync(HttpClient client, int port, string text)
    {
        using var r = await client.PostAsJsonAsync($"/best/v1/{NorthboundHse.Acme}/pushes", new { externalId = NorthboundHse.AcmeDevice, port, payload = Convert.ToBase64String(Encoding.UTF8.GetBytes(text)), timeToLive = 600 }, Cancel);
        Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        return (await r.Content.ReadFromJsonAsync<JsonObject>(Cancel))!["id"]!.GetValue<string>();
    }

    private static async Task<string> StatusAsync(HttpClient client, string id) =>
        (await client.GetFromJsonAsync<JsonObject>($"/best/v1/{NorthboundHse.Acme}/pushes/{id}", Cancel))!["status"]!.GetValue<string>();

    private static async Task<string?> SessionStateAsync(NorthboundHse hse)
    {
        // The push channel names urn:best:push, not the enterprise: the operator's view shows it.
        using var ops = hse.CertificateClient("operator-ops");
        var all = await ops.GetFromJsonAsync<JsonArray>($"/best/v1/{PushMessage.PushEasId}/sessions", Cancel);
        return all!.FirstOrDefault()?["state"]?.GetValue<string>();
    }
}
