using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using OpenBest.Client;
using OpenBest.Testing;

namespace OpenBest.Hse.Northbound.Tests;

/// <summary>
/// Uplink to the application (seed 002 "Uplink Request from MTC UE"): notifications to its callback from a durable
/// queue, at least once and in order, with sequence numbers for de-duplication — through a failing callback and an
/// HSE killed and started again.
/// </summary>
public sealed class UplinkNotificationTests
{
    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Callbacks_ThroughAFailingApplicationAndAnHseKill_LoseNothing_AndRepeatOnlyBySequenceNumber()
    {
        await using var hse = await NorthboundHse.StartAsync();
        await using var app = await CallbackApp.StartAsync();
        using var acme = await hse.TokenClientAsync("acme-app");

        using (var created = await acme.PostAsJsonAsync($"/best/v1/{NorthboundHse.Acme}/subscriptions", new { notificationDestination = app.Url, kind = "UPLINK" }, Cancel))
        {
            Assert.Equal(HttpStatusCode.Created, created.StatusCode);
            Assert.StartsWith($"/best/v1/{NorthboundHse.Acme}/subscriptions/", created.Headers.Location!.OriginalString, StringComparison.Ordinal);
        }

        var device = await hse.DeviceAsync(0);
        var opened = await device.OpenAsync(NorthboundHse.Channel(NorthboundHse.Acme), Cancel);
        var channel = opened.Channel ?? throw new InvalidOperationException($"no session: {opened.Rejected}");
        var sent = new List<string>();
        async Task SendAsync(int from, int to)
        {
            for (var i = from; i < to; i++)
            {
                var text = $"reading {i}";
                Assert.Equal(SendStatus.Acknowledged, await channel.SendAsync(Encoding.UTF8.GetBytes(text), acknowledged: true, Cancel));
                sent.Add(text);
            }
        }

        await SendAsync(0, 5);
        await Eventually.True(() => Distinct(app).Count == 5, "the first five uplink notifications");

        // The application goes down; the device goes on (each message acknowledged: stored by the HSE).
        app.Failing = true;
        var failedBefore = app.Requests;
        await SendAsync(5, 10);
        await Eventually.True(() => app.Requests > failedBefore, "a callback attempt while the application is down");

        // kill -9 of the HSE, then the same HSE again: the queue and each subscription's cursor are durable.
        await hse.KillAsync();
        await hse.StartProcessAsync();
        await device.DisposeAsync();
        app.Failing = false;
        await Eventually.True(() => Distinct(app).Count == 10, "all ten uplink notifications after the restart", TimeSpan.FromSeconds(90));

        var byDistinct = Distinct(app);
        Assert.Equal(sent, byDistinct.Select(n => Encoding.UTF8.GetString(Convert.FromBase64String(n["payload"]!.GetValue<string>()))).ToList());
        Assert.All(byDistinct, n => Assert.Equal(NorthboundHse.AcmeDevice, n["externalId"]!.GetValue<string>()));
        // In order: sequence numbers only grow in what the application received, each repeat carries the same sequence and payload.
        var sequences = app.Received.Select(n => n["sequence"]!.GetValue<long>()).ToList();
        Assert.Equal(sequences.Distinct().Order(), sequences.Distinct());
        foreach (var group in app.Received.GroupBy(n => n["sequence"]!.GetValue<long>()))
        {
            Assert.Single(group.Select(n => n["payload"]!.GetValue<string>()).Distinct());
        }

        // Pull, as before: the same messages by sequence number.
        var pulled = await acme.GetFromJsonAsync<JsonArray>($"/best/v1/{NorthboundHse.Acme}/uplink?after=0", Cancel);
        Assert.Equal(byDistinct.Select(n => n["sequence"]!.GetValue<long>()), pulled!.Select(n => n!["sequence"]!.GetValue<long>()));
    }

    private static List<JsonObject> Distinct(CallbackApp app) =>
        [.. app.Received.Where(n => n["type"]!.GetValue<string>() == "UPLINK").GroupBy(n => n["sequence"]!.GetValue<long>()).OrderBy(g => g.Key).Select(g => g.First())];
}
