using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using OpenBest.Client;
using OpenBest.EasInterface;
using OpenBest.Hse;
using OpenBest.Hse.Northbound;
using OpenBest.Hse.Server;
using OpenBest.Protocol;
using OpenBest.Sessions;
using OpenBest.Storage;

namespace OpenBest.Bench;

/// <summary>What <see cref="NorthboundBench"/> runs.</summary>
public sealed record NorthboundBenchOptions
{
    /// <summary>Devices with a UE-to-HSE session (20).</summary>
    public int Devices { get; init; } = 20;

    /// <summary>Uplink messages stored before the callback phase (5000).</summary>
    public int Uplink { get; init; } = 5000;

    /// <summary>Downlink requests (2000).</summary>
    public int Downlinks { get; init; } = 2000;

    /// <summary>Downlink requests in flight at once (16).</summary>
    public int Concurrency { get; init; } = 16;
}

/// <summary>The figures of one northbound bench run.</summary>
public sealed record NorthboundBenchResult
{
    /// <summary>Uplink notifications delivered to the callback per second (the queue was full when the subscription began).</summary>
    public double CallbacksPerSecond { get; init; }

    /// <summary>Callback requests (batches) per second.</summary>
    public double CallbackRequestsPerSecond { get; init; }

    /// <summary>Downlink requests answered 201 per second.</summary>
    public double DownlinkRequestsPerSecond { get; init; }

    /// <summary>Downlink request latency p50 / p99 in milliseconds.</summary>
    public (double P50, double P99) DownlinkLatency { get; init; }

    /// <summary>Downlinks acknowledged by the devices (DELIVERED) per second, from the first request to the last DELIVERED notification.</summary>
    public double DeliveredPerSecond { get; init; }

    /// <summary>Uplink notifications received / expected.</summary>
    public (int Received, int Expected) Callbacks { get; init; }

    /// <summary>DELIVERED notifications received / downlinks requested.</summary>
    public (int Received, int Expected) Delivered { get; init; }

    /// <summary>Whether everything arrived.</summary>
    public bool Ok => Callbacks.Received == Callbacks.Expected && Delivered.Received == Delivered.Expected;
}

/// <summary>
/// <c>best bench northbound</c>: a real HSE (the same hosted service as <c>best hse</c>, in this process, on a fresh
/// SQLite folder) with its enterprise port, devices over loopback UDP, and an application on loopback HTTP. It measures
/// uplink notifications delivered to the application's callback per second (from a full durable queue), downlink
/// requests per second through the API (OAuth token, rate limit raised, every call audited), and downlinks delivered
/// (acknowledged by the devices) per second. Everything shares this machine's cores: the figures are a floor.
/// </summary>
public static class NorthboundBench
{
    private const string Enterprise = "bench.example";

    /// <summary>Runs the bench.</summary>
    public static async Task<NorthboundBenchResult> RunAsync(NorthboundBenchOptions options, IProgress<BenchProgress>? progress = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var directory = Directory.CreateTempSubdirectory("openbest-nbbench-");
        try
        {
            var data = directory.FullName;
            var run = RandomNumberGenerator.GetInt32(100_000);
            var subscribers = Enumerable.Range(0, options.Devices)
                .Select(i => new NewSubscriber(string.Create(CultureInfo.InvariantCulture, $"00103{run:D5}{i:D5}"), RandomNumberGenerator.GetBytes(16), RandomNumberGenerator.GetBytes(16))).ToList();
            using (var key = MasterKey.Load(data))
            using (var store = SqliteSubscriberStore.Open(data, key))
            {
                store.Add(subscribers);
                for (var i = 0; i < subscribers.Count; i++)
                {
                    ((IHseStateStore)store).SetExternalId(Enterprise, $"device-{i}@bench", subscribers[i].Imsi);
                }
            }

            DevelopmentPki.Init(data, [Enterprise]);
            string secret;
            using (var northbound = NorthboundStore.Open(data, null))
            {
                secret = NorthboundTokens.Register(northbound, "bench", Enterprise, isOperator: false);
            }

            var easPort = FreeTcpPort();
            var settings = HseSettings.Load(null, new Dictionary<string, string?>
            {
                ["DataDir"] = data, ["UdpPort"] = "0", ["TcpPort"] = "-1", ["EasPort"] = easPort.ToString(CultureInfo.InvariantCulture),
                ["NorthboundRate"] = "1000000", ["NorthboundBurst"] = "1000000", ["NorthboundHttpCallbacks"] = "true",
            }, new Dictionary<string, string?>());
            await using var hse = new HseService(settings, TextWriter.Null);
            await hse.StartAsync(cancel).ConfigureAwait(false);
            try
            {
                return await MeasureAsync(options, subscribers, hse, easPort, secret, data, progress, cancel).ConfigureAwait(false);
            }
            finally
            {
                await hse.StopAsync(CancellationToken.None).ConfigureAwait(false);
            }
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            directory.Delete(recursive: true);
        }
    }

    private static async Task<NorthboundBenchResult> MeasureAsync(NorthboundBenchOptions options, List<NewSubscriber> subscribers, HseService hse, int easPort, string secret, string data, IProgress<BenchProgress>? progress, CancellationToken cancel)
    {
        // The application: counts what it is sent.
        var uplink = 0;
        var delivered = 0;
        var batches = 0;
        var lastDelivered = Stopwatch.GetTimestamp();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        await using var application = builder.Build();
        application.MapPost("/notify", async (HttpContext context) =>
        {
            var body = await JsonNode.ParseAsync(context.Request.Body, cancellationToken: context.RequestAborted).ConfigureAwait(false);
            Interlocked.Increment(ref batches);
            foreach (var n in body!["notifications"]!.AsArray())
            {
                if (n!["type"]!.GetValue<string>() == "UPLINK")
                {
                    Interlocked.Increment(ref uplink);
                }
                else if (n["type"]!.GetValue<string>() == "DELIVERY_STATUS" && n["status"]!.GetValue<string>() == "DELIVERED")
                {
                    Interlocked.Increment(ref delivered);
                    Volatile.Write(ref lastDelivered, Stopwatch.GetTimestamp());
                }
            }

            return Results.NoContent();
        });
        await application.StartAsync(cancel).ConfigureAwait(false);
        var callback = application.Urls.First() + "/notify";

        // The devices: one UE-to-HSE session each, reading what they are sent.
        var devices = new List<(BestClient Client, BestChannel Channel)>();
        using var drain = new CancellationTokenSource();
        var drains = new List<Task>();
        try
        {
            foreach (var s in subscribers)
            {
                var client = await BestClient.CreateAsync(new BestClientOptions { Imsi = s.Imsi, K = s.K, Opc = s.Opc, Transport = new BestTransport.Udp(hse.UdpEndPoint!), UsimStateFile = Path.Combine(data, $"usim-{s.Imsi}.json") }, cancel).ConfigureAwait(false);
                var opened = await client.OpenAsync(new UeChannelOptions { EasId = Enterprise, Service = BestService.Integrity, MinimumService = BestService.Integrity }, cancel).ConfigureAwait(false);
                var channel = opened.Channel ?? throw new InvalidOperationException($"a bench device got no session ({opened.Rejected})");
                devices.Add((client, channel));
                drains.Add(Task.Run(async () =>
                {
                    await foreach (var _ in channel.Received.ReadAllAsync(drain.Token).ConfigureAwait(false))
                    {
                    }
                }, CancellationToken.None));
            }

            // Uplink stored first (every 16th acknowledged, as a device paces itself), then the subscription: the callback phase drains a full queue.
            var sent = 0;
            await Parallel.ForEachAsync(devices, cancel, async (device, ct) =>
            {
                var mine = options.Uplink / devices.Count + (devices.IndexOf(device) < options.Uplink % devices.Count ? 1 : 0);
                for (var i = 0; i < mine; i++)
                {
                    await device.Channel.SendAsync(new byte[24], acknowledged: i % 16 == 15 || i == mine - 1, ct).ConfigureAwait(false);
                    progress?.Report(new BenchProgress("uplink stored", Interlocked.Increment(ref sent), options.Uplink));
                }
            }).ConfigureAwait(false);

            using var http = Client(data, easPort);
            using (var form = new FormUrlEncodedContent(new Dictionary<string, string> { ["grant_type"] = "client_credentials", ["client_id"] = "bench", ["client_secret"] = secret }))
            using (var token = await http.PostAsync("/oauth2/token", form, cancel).ConfigureAwait(false))
            {
                var body = await token.Content.ReadFromJsonAsync<JsonObject>(cancel).ConfigureAwait(false);
                http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", body!["access_token"]!.GetValue<string>());
            }

            var started = Stopwatch.GetTimestamp();
            (await http.PostAsJsonAsync($"/best/v1/{Enterprise}/subscriptions", new { notificationDestination = callback, kind = "UPLINK" }, cancel).ConfigureAwait(false)).EnsureSuccessStatusCode();
            var deadline = Stopwatch.GetTimestamp() + Stopwatch.Frequency * 300;
            while (Volatile.Read(ref uplink) < options.Uplink && Stopwatch.GetTimestamp() < deadline)
            {
                progress?.Report(new BenchProgress("callbacks", Volatile.Read(ref uplink), options.Uplink));
                await Task.Delay(20, cancel).ConfigureAwait(false);
            }

            var callbackSeconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            var callbackBatches = Volatile.Read(ref batches);
            (await http.PostAsJsonAsync($"/best/v1/{Enterprise}/subscriptions", new { notificationDestination = callback, kind = "EVENTS" }, cancel).ConfigureAwait(false)).EnsureSuccessStatusCode();

            // Downlink requests by external identifier, C at a time.
            var latencies = new ConcurrentBag<double>();
            var requested = 0;
            var downStarted = Stopwatch.GetTimestamp();
            await Parallel.ForEachAsync(Enumerable.Range(0, options.Downlinks), new ParallelOptions { MaxDegreeOfParallelism = options.Concurrency, CancellationToken = cancel }, async (i, ct) =>
            {
                var at = Stopwatch.GetTimestamp();
                using var response = await http.PostAsJsonAsync($"/best/v1/{Enterprise}/downlinks", new { externalId = $"device-{i % devices.Count}@bench", payload = "AAECAwQFBgc=", maximumLatency = 600 }, ct).ConfigureAwait(false);
                if (response.StatusCode == HttpStatusCode.Created)
                {
                    latencies.Add(Stopwatch.GetElapsedTime(at).TotalMilliseconds);
                }

                progress?.Report(new BenchProgress("downlink requests", Interlocked.Increment(ref requested), options.Downlinks));
            }).ConfigureAwait(false);
            var requestSeconds = Stopwatch.GetElapsedTime(downStarted).TotalSeconds;
            deadline = Stopwatch.GetTimestamp() + Stopwatch.Frequency * 300;
            while (Volatile.Read(ref delivered) < options.Downlinks && Stopwatch.GetTimestamp() < deadline)
            {
                progress?.Report(new BenchProgress("downlinks delivered", Volatile.Read(ref delivered), options.Downlinks));
                await Task.Delay(20, cancel).ConfigureAwait(false);
            }

            var deliveredSeconds = (Volatile.Read(ref lastDelivered) - downStarted) / (double)Stopwatch.Frequency;
            var sorted = latencies.Order().ToList();
            return new NorthboundBenchResult
            {
                CallbacksPerSecond = options.Uplink / callbackSeconds,
                CallbackRequestsPerSecond = callbackBatches / callbackSeconds,
                DownlinkRequestsPerSecond = sorted.Count / requestSeconds,
                DownlinkLatency = (Percentile(sorted, 0.5), Percentile(sorted, 0.99)),
                DeliveredPerSecond = Volatile.Read(ref delivered) / Math.Max(deliveredSeconds, 1e-3),
                Callbacks = (Volatile.Read(ref uplink), options.Uplink),
                Delivered = (Volatile.Read(ref delivered), options.Downlinks),
            };
        }
        finally
        {
            await drain.CancelAsync().ConfigureAwait(false);
            await Task.WhenAll(drains).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            foreach (var (client, _) in devices)
            {
                await client.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    private static HttpClient Client(string data, int port)
    {
        var ca = X509CertificateLoader.LoadCertificateFromFile(DevelopmentPki.Ca(data).Certificate);
        var handler = new SocketsHttpHandler { MaxConnectionsPerServer = 64 };
        handler.SslOptions.RemoteCertificateValidationCallback = (_, server, _, _) => DevelopmentPki.IsIssuedBy(server as X509Certificate2, ca);
        return new HttpClient(handler) { BaseAddress = new Uri($"https://127.0.0.1:{port}/"), Timeout = TimeSpan.FromSeconds(60) };
    }

    private static double Percentile(List<double> sorted, double p) => sorted.Count == 0 ? 0 : sorted[Math.Min(sorted.Count - 1, (int)(p * sorted.Count))];

    private static int FreeTcpPort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }
}
