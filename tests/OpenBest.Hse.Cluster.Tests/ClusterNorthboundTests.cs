using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using OpenBest.Client;
using OpenBest.EasInterface;
using OpenBest.Hse.Cluster.Demo;
using OpenBest.Hse.Northbound;
using OpenBest.Hse.Northbound.Tests;
using OpenBest.Protocol;
using OpenBest.Sessions;
using OpenBest.Storage;
using OpenBest.Storage.Postgres;
using OpenBest.Storage.Tests;
using OpenBest.Testing;

namespace OpenBest.Hse.Cluster.Tests;

/// <summary>
/// The northbound API on a cluster (docs/protocol.md, "HSE cluster"): two node processes on a real PostgreSQL serve the
/// same API. A token issued by one node works on the other; a push or downlink asked of one node reaches the device through
/// the node it talks to, and its DELIVERED status is found whichever node's shard saw the device's Data Ack; one node (the
/// lead) posts the notifications, and when it is killed a survivor goes on from the stored cursors.
/// </summary>
public sealed class ClusterNorthboundTests(PostgresServer server) : IClassFixture<PostgresServer>, IDisposable
{
    private const string Imsi = "001010000000401";
    private const string Acme = "acme.example";
    private const string Device = "meter-1@acme";
    private const string K = "000102030405060708090a0b0c0d0e0f";
    private const string Opc = "0f0e0d0c0b0a09080706050403020100";
    private const string Leading = "this node posts the northbound notifications";
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-cluster-nb-");

    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    public void Dispose() => _directory.Delete(recursive: true);

    [Fact]
    public async Task TokensPushesDownlinksAndSessionControl_OnEveryNode_AndNotificationsGoOn_WhenTheLeadingNodeIsKilled()
    {
        server.SkipIfUnavailable();

        var database = server.CreateDatabase();
        var data = _directory.FullName;
        DevelopmentPki.Init(data, [Acme]);
        using (var key = MasterKey.Load(data))
        using (var store = PostgresSubscriberStore.Open(database, key))
        {
            store.Add([new NewSubscriber(Imsi, Convert.FromHexString(K), Convert.FromHexString(Opc))]);
            store.SetExternalId(Acme, Device, Imsi);
        }

        string acmeSecret, opsSecret;
        using (var northbound = NorthboundStore.Open(data, database))
        {
            acmeSecret = NorthboundTokens.Register(northbound, "acme-app", Acme, isOperator: false);
            opsSecret = NorthboundTokens.Register(northbound, "ops-app", "ops", isOperator: true);
        }

        var udp = new[] { LoopbackPorts.Free(udpToo: true), LoopbackPorts.Free(udpToo: true) };
        var eas = new[] { LoopbackPorts.Free(), LoopbackPorts.Free() };
        var nodes = new[] { Node("node-1", udp[0], eas[0], database), Node("node-2", udp[1], eas[1], database) };
        await using var app = await CallbackApp.StartAsync();
        try
        {
            await nodes[0].WaitForAsync("HSE node node-1 listening");
            await nodes[1].WaitForAsync("HSE node node-2 listening");
            await Eventually.True(() => nodes.Any(n => n.Error.Contains(Leading, StringComparison.Ordinal)), "a node leads the northbound service", TimeSpan.FromSeconds(60));
            var lead = nodes[0].Error.Contains(Leading, StringComparison.Ordinal) ? 0 : 1;
            var other = 1 - lead;

            // Shards move to their preferred nodes in the first seconds (a move carries the sessions' paths, not the tokens of
            // messages in flight: those end at their deadlines). The test starts once placement settled.
            await Placement.SettledAsync(database, data);

            // A token from the leading node's endpoint is good on the other's (one key in the shared store).
            var token = await TokenAsync(eas[lead], "acme-app", acmeSecret);
            using var atLead = Client(eas[lead], token);
            using var atOther = Client(eas[other], token);
            using (var r = await atOther.PostAsJsonAsync($"/best/v1/{Acme}/subscriptions", new { notificationDestination = app.Url, kind = "EVENTS" }, Cancel))
            {
                Assert.Equal(HttpStatusCode.Created, r.StatusCode);
            }

            // The device talks to the node that will survive; its sessions' shards run wherever the cluster put them.
            await using var device = await NodeProcess.DeviceAsync(Imsi, K, Opc, udp[other]);
            await using var push = await BestPushChannel.OpenAsync(device, ct: Cancel);
            var pushed = new System.Collections.Concurrent.ConcurrentQueue<string>();
            push.Register(7, (m, _) =>
            {
                pushed.Enqueue(Encoding.UTF8.GetString(m.Body.Span));
                return Task.CompletedTask;
            });
            var opened = await device.OpenAsync(new UeChannelOptions { EasId = Acme, Service = BestService.Confidential, ServingNetwork = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org") }, Cancel);
            var user = opened.Channel ?? throw new InvalidOperationException($"no user channel: {opened}");
            await Eventually.True(() => Notified(app, "SESSION_STARTED", user.SessionId), "SESSION_STARTED of the user channel", TimeSpan.FromSeconds(60));

            // A push asked of the leading node reaches the device through the other; DELIVERED is seen on both nodes.
            var first = await PostAsync(atLead, "pushes", new { externalId = Device, port = 7, payload = Convert.ToBase64String("firmware 1.2"u8) });
            await Eventually.True(() => pushed.Contains("firmware 1.2"), "the push on port 7", TimeSpan.FromSeconds(60));
            await Eventually.True(async () => await StatusAsync(atOther, "pushes", first) == "DELIVERED", "the push DELIVERED", TimeSpan.FromSeconds(60));
            Assert.Equal("DELIVERED", await StatusAsync(atLead, "pushes", first));

            // A downlink by external identifier asked of each node: one of them is not the node running the session's shard,
            // which sees the device's Data Ack and finds the delivery by its stored token.
            foreach (var (asked, text) in new[] { (atOther, "setpoint 21"), (atLead, "setpoint 20") })
            {
                var setpoint = await PostAsync(asked, "downlinks", new { externalId = Device, payload = Convert.ToBase64String(Encoding.UTF8.GetBytes(text)), maximumLatency = 120 });
                var received = await user.Received.ReadAsync(Cancel).AsTask().WaitAsync(TimeSpan.FromSeconds(60), Cancel);
                Assert.Equal(text, Encoding.UTF8.GetString(received.Payload.Span));
                await Eventually.True(async () => await StatusAsync(atLead, "downlinks", setpoint) == "DELIVERED", $"'{text}' DELIVERED", TimeSpan.FromSeconds(60));
            }

            // Sessions are listed from every shard, on either node, for the enterprise and on the operator's dashboard.
            var listed = await atLead.GetFromJsonAsync<JsonArray>($"/best/v1/{Acme}/sessions", Cancel);
            Assert.Contains(listed!, s => s!["sessionId"]!.GetValue<uint>() == user.SessionId && s["externalId"]!.GetValue<string>() == Device);
            // The operator's dashboard on either node shows the whole cluster: every shard's sessions, and the session events
            // counted by the shards wherever they ran (the sessions' shard runs on one of the two nodes).
            var opsToken = await TokenAsync(eas[other], "ops-app", opsSecret);
            foreach (var port in eas)
            {
                using var ops = Client(port, opsToken);
                await Eventually.True(async () =>
                {
                    var snapshot = await ops.GetFromJsonAsync<JsonObject>("/dashboard/api/snapshot", Cancel);
                    var ids = snapshot!["sessions"]!.AsArray().Select(s => s!["id"]!.GetValue<uint>()).ToList();
                    var totals = snapshot["totals"]!;
                    return ids.Contains(user.SessionId) && ids.Contains(push.Channel.SessionId)
                        && totals["started"]!.GetValue<long>() >= 2 && totals["acknowledged"]!.GetValue<long>() >= 3 && totals["received"]!.GetValue<long>() > 0;
                }, $"the dashboard on port {port} shows both sessions and the cluster's events", TimeSpan.FromSeconds(60));
            }

            // The leading node is killed; a survivor takes the lead and posts what follows.
            Process.GetProcessById(nodes[lead].Id).Kill();
            await Eventually.True(() => nodes[other].Error.Contains(Leading, StringComparison.Ordinal), "the survivor leads", TimeSpan.FromSeconds(90));
            Assert.Equal(SendStatus.Acknowledged, await user.SendAsync("still here"u8.ToArray(), acknowledged: true, Cancel));
            var second = await PostAsync(atOther, "downlinks", new { externalId = Device, payload = Convert.ToBase64String("setpoint 22"u8), maximumLatency = 120 });
            var down = await user.Received.ReadAsync(Cancel).AsTask().WaitAsync(TimeSpan.FromSeconds(60), Cancel);
            Assert.Equal("setpoint 22"u8.ToArray(), down.Payload.ToArray());
            await Eventually.True(() => app.Received.Any(n => n["type"]!.GetValue<string>() == "DELIVERY_STATUS" && n["id"]!.GetValue<string>() == second && n["status"]!.GetValue<string>() == "DELIVERED"),
                "the survivor posts the second downlink's DELIVERED", TimeSpan.FromSeconds(60));

            // Session control through the survivor: new keys, then the end, both notified.
            using (var refresh = await atOther.PostAsync(new Uri($"/best/v1/{Acme}/sessions/{user.SessionId}/key-refresh", UriKind.Relative), null, Cancel))
            {
                Assert.Equal(HttpStatusCode.Accepted, refresh.StatusCode);
            }

            await Eventually.True(() => Notified(app, "KEYS_REFRESHED", user.SessionId), "KEYS_REFRESHED", TimeSpan.FromSeconds(60));
            using (var end = await atOther.DeleteAsync(new Uri($"/best/v1/{Acme}/sessions/{user.SessionId}", UriKind.Relative), Cancel))
            {
                Assert.Equal(HttpStatusCode.Accepted, end.StatusCode);
            }

            await Eventually.True(() => Notified(app, "SESSION_TERMINATED", user.SessionId), "SESSION_TERMINATED", TimeSpan.FromSeconds(60));

            // Each subscription's notifications carry one event outbox in order: the earlier ones are all there.
            Assert.True(Notified(app, "SESSION_STARTED", user.SessionId));
            Assert.Contains(app.Received, n => n["type"]!.GetValue<string>() == "DELIVERY_STATUS" && n["id"]!.GetValue<string>() == first && n["status"]!.GetValue<string>() == "DELIVERED");
        }
        finally
        {
            foreach (var node in nodes)
            {
                await node.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task AShardThatMoves_TakesItsDevicesPathsAlong_SoAPushStillReachesASleepingDevice()
    {
        server.SkipIfUnavailable();

        // One sleeping device in every shard (a subscriber's sessions live in the shard of its IMSI), so whichever shards
        // move when a second node joins, some devices' sessions move with them.
        const int Shards = 16;
        var imsis = Placement.OneImsiPerShard(Shards);
        Assert.Equal(Shards, imsis.Length);
        var database = server.CreateDatabase();
        var data = _directory.FullName;
        DevelopmentPki.Init(data, [Acme]);
        using (var key = MasterKey.Load(data))
        using (var store = PostgresSubscriberStore.Open(database, key))
        {
            store.Add([.. imsis.Select(imsi => new NewSubscriber(imsi, Convert.FromHexString(K), Convert.FromHexString(Opc)))]);
            foreach (var imsi in imsis)
            {
                store.SetExternalId(Acme, "dev-" + imsi, imsi);
            }
        }

        string secret;
        using (var northbound = NorthboundStore.Open(data, database))
        {
            secret = NorthboundTokens.Register(northbound, "acme-app", Acme, isOperator: false);
        }

        var udp = LoopbackPorts.Free(udpToo: true);
        var eas = LoopbackPorts.Free();
        var nodes = new List<BestProcess> { Node("node-1", udp, eas, database) };
        var devices = new List<(BestClient Device, BestPushChannel Push)>();
        var pushed = new System.Collections.Concurrent.ConcurrentDictionary<string, string>(StringComparer.Ordinal);
        try
        {
            await nodes[0].WaitForAsync("HSE node node-1 listening");
            foreach (var imsi in imsis)
            {
                var device = await NodeProcess.DeviceAsync(imsi, K, Opc, udp);
                var push = await BestPushChannel.OpenAsync(device, ct: Cancel);
                var id = imsi;
                push.Register(7, (m, _) =>
                {
                    pushed[id] = Encoding.UTF8.GetString(m.Body.Span);
                    return Task.CompletedTask;
                });
                devices.Add((device, push));
            }

            // node-2 joins: about half the shards migrate to it, with their suspended push channels.
            nodes.Add(Node("node-2", LoopbackPorts.Free(udpToo: true), LoopbackPorts.Free(), database));
            await nodes[1].WaitForAsync("HSE node node-2 listening");
            await Placement.SettledAsync(database, data);

            // Every sleeping device gets a push through node-1, the node it reached, without sending anything first.
            var token = await TokenAsync(eas, "acme-app", secret);
            using var api = Client(eas, token);
            foreach (var imsi in imsis)
            {
                await PostAsync(api, "pushes", new { externalId = "dev-" + imsi, port = 7, payload = Convert.ToBase64String("wake up"u8), timeToLive = 3600 });
            }

            await Eventually.True(() => pushed.Count == imsis.Length, "every sleeping device gets its push", TimeSpan.FromSeconds(60))
                .ContinueWith(t => Assert.True(t.IsCompletedSuccessfully, $"{pushed.Count} of {imsis.Length} got it; missing shards: {string.Join(", ", imsis.Where(i => !pushed.ContainsKey(i)).Select(i => ClusterRouting.ShardOfSubscriber(i, Shards)))}"), TaskScheduler.Default);
        }
        finally
        {
            foreach (var (device, push) in devices)
            {
                await push.DisposeAsync();
                await device.DisposeAsync();
            }

            foreach (var node in nodes)
            {
                await node.DisposeAsync();
            }
        }
    }

    private static bool Notified(CallbackApp app, string type, uint sessionId) =>
        app.Received.Any(n => n["type"]!.GetValue<string>() == type && n["sessionId"]?.GetValue<uint>() == sessionId);

    private static async Task<string> PostAsync(HttpClient client, string resource, object body)
    {
        using var r = await client.PostAsJsonAsync($"/best/v1/{Acme}/{resource}", body, Cancel);
        Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        return (await r.Content.ReadFromJsonAsync<JsonObject>(Cancel))!["id"]!.GetValue<string>();
    }

    private static async Task<string?> StatusAsync(HttpClient client, string resource, string id) =>
        (await client.GetFromJsonAsync<JsonObject>($"/best/v1/{Acme}/{resource}/{id}", Cancel))!["status"]?.GetValue<string>();

    private async Task<string> TokenAsync(int port, string clientId, string secret)
    {
        using var client = Client(port, null);
        using var form = new FormUrlEncodedContent(new Dictionary<string, string> { ["grant_type"] = "client_credentials", ["client_id"] = clientId, ["client_secret"] = secret });
        using var response = await client.PostAsync(new Uri("/oauth2/token", UriKind.Relative), form, Cancel);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<JsonObject>(Cancel))!["access_token"]!.GetValue<string>();
    }

    private HttpClient Client(int port, string? token)
    {
        var handler = new SocketsHttpHandler();
        var ca = DevelopmentPki.LoadCertificate(DevelopmentPki.Ca(_directory.FullName).Certificate);
        handler.SslOptions.RemoteCertificateValidationCallback = (_, presented, _, _) => DevelopmentPki.IsIssuedBy(presented as System.Security.Cryptography.X509Certificates.X509Certificate2, ca);
        var client = new HttpClient(handler) { BaseAddress = new Uri(string.Create(CultureInfo.InvariantCulture, $"https://127.0.0.1:{port}")), Timeout = TimeSpan.FromSeconds(60) };
        if (token is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        return client;
    }

    private BestProcess Node(string name, int udp, int eas, string database) => NodeProcess.Start(name, database, _directory.FullName,
        // The test application's callback is plain http on loopback; the dashboard samples every second.
        new Dictionary<string, string> { ["BEST_NORTHBOUND_HTTP_CALLBACKS"] = "true", ["BEST_DASHBOARD_SAMPLE_SECONDS"] = "1" },
        [.. NodeProcess.Udp(udp), "--eas-port", eas.ToString(CultureInfo.InvariantCulture)]);
}
