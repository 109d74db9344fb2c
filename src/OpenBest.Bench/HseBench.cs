using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using OpenBest.Bearers;
using OpenBest.Hse;
using OpenBest.Sessions;
using OpenBest.Storage;
using OpenBest.Storage.Postgres;

namespace OpenBest.Bench;

/// <summary>What <see cref="HseBench"/> runs.</summary>
public sealed record HseBenchOptions
{
    /// <summary>Simulated devices, each with its own subscriber, session and keys, one UDP socket per 250 (2000).</summary>
    public int Devices { get; init; } = 2000;

    /// <summary>Seconds during which every device opens new sessions back to back (5).</summary>
    public int SessionSeconds { get; init; } = 5;

    /// <summary>Seconds of uplink load (10).</summary>
    public int UplinkSeconds { get; init; } = 10;

    /// <summary>Uplink messages per device in flight: W − 1 without an Ack, then one with (16).</summary>
    public int Window { get; init; } = 16;

    /// <summary>Also measure the HSE's memory per idle session over this many sessions (0: skip).</summary>
    public int IdleSessions { get; init; }

    /// <summary>A PostgreSQL connection string, or null for a fresh SQLite database in a temporary folder.</summary>
    public string? Postgres { get; init; }
}

/// <summary>What one phase of the bench is doing, for a progress display.</summary>
/// <param name="Phase">The phase: "sessions", "sustained sessions", "uplink", "idle sessions".</param>
/// <param name="Done">How far it got.</param>
/// <param name="Total">Where it ends.</param>
public readonly record struct BenchProgress(string Phase, double Done, double Total);

/// <summary>The figures of one bench run (every rate is per second of wall clock on this machine).</summary>
public sealed record HseBenchResult
{
    /// <summary>Devices that took part.</summary>
    public int Devices { get; init; }

    /// <summary>Devices whose first session opened.</summary>
    public int FirstSessionsEstablished { get; init; }

    /// <summary>First sessions per second: every device at once, each a subscriber the HSE had not seen (keys and a SEQ block loaded from the store).</summary>
    public double FirstSessionsPerSecond { get; init; }

    /// <summary>Setup latency of the first sessions, p50 and p99, in milliseconds.</summary>
    public (double P50, double P99) FirstSessionLatency { get; init; }

    /// <summary>Sessions confirmed at the HSE per second while every device opened new sessions back to back.</summary>
    public double SustainedSessionsPerSecond { get; init; }

    /// <summary>Processor time of this process (the HSE and the simulated devices together) per session of the sustained phase, in microseconds.</summary>
    public double CpuPerSessionMicroseconds { get; init; }

    /// <summary>Processor time of this process per stored uplink message, in microseconds.</summary>
    public double CpuPerMessageMicroseconds { get; init; }

    /// <summary>Setup latency during the sustained phase, p50 and p99, in milliseconds.</summary>
    public (double P50, double P99) SustainedSessionLatency { get; init; }

    /// <summary>Uplink messages the HSE accepted and stored per second.</summary>
    public double UplinkPerSecond { get; init; }

    /// <summary>Stored messages per group commit during the uplink phase.</summary>
    public double MessagesPerCommit { get; init; }

    /// <summary>Ack latency p50 and p99 during the uplink phase, in milliseconds.</summary>
    public (double P50, double P99) AckLatency { get; init; }

    /// <summary>Work refused because the HSE's queue was full.</summary>
    public long Overloaded { get; init; }

    /// <summary>Failures at the HSE (the store, a socket).</summary>
    public long Errors { get; init; }

    /// <summary>The HSE's managed heap per idle session, or null when not measured.</summary>
    public double? IdleSessionBytes { get; init; }

    /// <summary>"SQLite" or "PostgreSQL".</summary>
    public string Store { get; init; } = string.Empty;

    /// <summary>Whether every device got its first session and the HSE saw no error.</summary>
    public bool Ok => FirstSessionsEstablished == Devices && Errors == 0;
}

/// <summary>
/// <c>best bench</c>: K simulated devices over real UDP on loopback against an HSE host in this process, on a fresh SQLite
/// database (or PostgreSQL). It measures first sessions (all devices at once), sustained session setup (every device
/// opening new sessions back to back), and acknowledged-window uplink stored per second, with latency percentiles; and
/// optionally the memory an idle session costs the HSE. The devices run on the same cores as the HSE: the figures are a floor.
/// </summary>
public static class HseBench
{
    /// <summary>Runs the bench.</summary>
    public static async Task<HseBenchResult> RunAsync(HseBenchOptions options, IProgress<BenchProgress>? progress = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var directory = Directory.CreateTempSubdirectory("openbest-bench-");
        try
        {
            using var masterKey = MasterKey.FromBytes(RandomNumberGenerator.GetBytes(32));
            using ISubscriberStore store = string.IsNullOrWhiteSpace(options.Postgres)
                ? SqliteSubscriberStore.Open(directory.FullName, masterKey)
                : PostgresSubscriberStore.Open(options.Postgres, masterKey);
            var run = RandomNumberGenerator.GetInt32(100_000);
            // A few extra devices warm the code paths up first; they are not measured.
            var warmUp = Math.Min(100, options.Devices);
            var provisioned = Enumerable.Range(0, options.Devices + warmUp)
                .Select(i => new NewSubscriber(string.Create(CultureInfo.InvariantCulture, $"00102{run:D5}{i:D5}"), RandomNumberGenerator.GetBytes(16), RandomNumberGenerator.GetBytes(16)))
                .ToList();
            store.Add(provisioned);
            HseBenchResult result;
            try
            {
                result = await MeasureAsync(options, store, provisioned, warmUp, progress, cancel).ConfigureAwait(false);
            }
            finally
            {
                // A fresh SQLite database goes with its folder; a PostgreSQL one is left as it was found.
                if (!string.IsNullOrWhiteSpace(options.Postgres))
                {
                    foreach (var s in provisioned)
                    {
                        store.Remove(s.Imsi);
                    }
                }
            }

            if (options.IdleSessions > 0)
            {
                var bytes = await Task.Run(() => IdleSessionMemory.Measure(options.IdleSessions, done => progress?.Report(new BenchProgress("idle sessions", done, options.IdleSessions))), cancel).ConfigureAwait(false);
                result = result with { IdleSessionBytes = bytes };
            }

            return result with { Store = string.IsNullOrWhiteSpace(options.Postgres) ? "SQLite" : "PostgreSQL" };
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            directory.Delete(recursive: true);
        }
    }

    private static async Task<HseBenchResult> MeasureAsync(HseBenchOptions options, ISubscriberStore store, List<NewSubscriber> provisioned, int warmUp, IProgress<BenchProgress>? progress, CancellationToken cancel)
    {
        using var subscribers = new StoreSubscribers(store);
        await using var udp = UdpBearer.Bind(new IPEndPoint(IPAddress.Loopback, 0), queue: 1 << 16, socketBuffer: UdpBearer.ServerSocketBuffer);
        using var lease = ((IHseStateStore)store).AcquireHseLease();
        // The devices share one address and open sessions many times a minute each: the budgets that protect a real
        // subscriber (vectors per identity and source) are not what is measured here.
        var engineOptions = new HseOptions
        {
            MaxPendingSessions = 100_000,
            MaxVectorsPerIdentityPerMinute = int.MaxValue,
            MaxVectorsPerSourcePerIdentityPerMinute = int.MaxValue,
        };
        var host = new HseHost(new HseEngine(subscribers, engineOptions), [udp], state: (IHseStateStore)store);
        long delivered = 0, established = 0;
        host.Start();
        var counting = Task.Run(async () =>
        {
            await foreach (var e in host.Events.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
            {
                switch (e)
                {
                    case DataReceived:
                        Interlocked.Increment(ref delivered);
                        break;
                    case SessionEstablished:
                        Interlocked.Increment(ref established);
                        break;
                }
            }
        }, CancellationToken.None);

        // The devices share a few sockets (as devices behind a NAT share an address): 250 a socket, at least one.
        var sockets = Math.Max(1, options.Devices / 250);
        var timersStop = new CancellationTokenSource();
        using var warmers = new DeviceFarm(provisioned.Take(warmUp).ToList(), udp.LocalEndPoint, 1);
        using var farm = new DeviceFarm(provisioned.Skip(warmUp).ToList(), udp.LocalEndPoint, sockets);
        // One ticker runs every device's timers (retransmissions after a loss), instead of a timer per session.
        var timers = Task.Run(async () =>
        {
            using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(500));
            while (await timer.WaitForNextTickAsync(timersStop.Token).ConfigureAwait(false))
            {
                warmers.Tick();
                farm.Tick();
            }
        }, CancellationToken.None);
        try
        {
            // Warm-up: a few devices open sessions and send for a second; not measured.
            warmers.OpenAll();
            await WaitAsync(() => warmers.EstablishedDevices == warmers.Count, TimeSpan.FromSeconds(30), cancel).ConfigureAwait(false);
            warmers.Mode = FarmMode.Uplink;
            warmers.StartUplink();
            await Task.Delay(1000, cancel).ConfigureAwait(false);
            warmers.Mode = FarmMode.Idle;

            // First sessions: every device opens at once.
            var setup = Stopwatch.StartNew();
            farm.OpenAll();
            await WaitAsync(() =>
            {
                progress?.Report(new BenchProgress("sessions", farm.EstablishedDevices, farm.Count));
                return farm.EstablishedDevices == farm.Count;
            }, TimeSpan.FromSeconds(60), cancel).ConfigureAwait(false);
            setup.Stop();
            var firstEstablished = farm.EstablishedDevices;
            var firstLatency = farm.TakeSetupLatencies();
            firstLatency.Sort();

            // Sustained: every device opens new sessions back to back; the HSE counts those it confirmed.
            var sessionCpu = Environment.CpuUsage.TotalTime;
            var establishedBefore = Interlocked.Read(ref established);
            var sustained = Stopwatch.StartNew();
            farm.Mode = FarmMode.OpenBackToBack;
            farm.OpenAll();
            await Phase("sustained sessions", options.SessionSeconds, progress, cancel).ConfigureAwait(false);
            farm.Mode = FarmMode.Idle;
            sustained.Stop();
            var sessionsConfirmed = Interlocked.Read(ref established) - establishedBefore;
            sessionCpu = Environment.CpuUsage.TotalTime - sessionCpu;
            var sustainedLatency = farm.TakeSetupLatencies();
            sustainedLatency.Sort();

            // Uplink: every device with a session (one that was cut off by the end of the phase opens again first).
            farm.Mode = FarmMode.OpenOnce;
            farm.OpenAll(onlyWithout: true);
            await WaitAsync(() => farm.EstablishedDevices == farm.Count, TimeSpan.FromSeconds(60), cancel).ConfigureAwait(false);
            farm.TakeAckLatencies();
            var before = Interlocked.Read(ref delivered);
            var commitsBefore = host.Commits;
            var uplinkCpu = Environment.CpuUsage.TotalTime;
            var load = Stopwatch.StartNew();
            farm.Window = options.Window;
            farm.Mode = FarmMode.Uplink;
            farm.StartUplink();
            await Phase("uplink", options.UplinkSeconds, progress, cancel).ConfigureAwait(false);
            var messages = Interlocked.Read(ref delivered) - before;
            farm.Mode = FarmMode.Idle;
            load.Stop();
            uplinkCpu = Environment.CpuUsage.TotalTime - uplinkCpu;
            var ackLatency = farm.TakeAckLatencies();
            ackLatency.Sort();
            return new HseBenchResult
            {
                Devices = farm.Count,
                FirstSessionsEstablished = firstEstablished,
                FirstSessionsPerSecond = firstEstablished / setup.Elapsed.TotalSeconds,
                FirstSessionLatency = (Percentile(firstLatency, 0.5), Percentile(firstLatency, 0.99)),
                SustainedSessionsPerSecond = sessionsConfirmed / sustained.Elapsed.TotalSeconds,
                SustainedSessionLatency = (Percentile(sustainedLatency, 0.5), Percentile(sustainedLatency, 0.99)),
                CpuPerSessionMicroseconds = sessionCpu.TotalMicroseconds / Math.Max(1, sessionsConfirmed),
                CpuPerMessageMicroseconds = uplinkCpu.TotalMicroseconds / Math.Max(1, messages),
                UplinkPerSecond = messages / load.Elapsed.TotalSeconds,
                MessagesPerCommit = messages / (double)Math.Max(1, host.Commits - commitsBefore),
                AckLatency = (Percentile(ackLatency, 0.5), Percentile(ackLatency, 0.99)),
                Overloaded = host.Overloaded,
                Errors = host.Errors,
            };
        }
        finally
        {
            await timersStop.CancelAsync().ConfigureAwait(false);
            await timers.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            timersStop.Dispose();
            await host.DisposeAsync().ConfigureAwait(false);
            await counting.ConfigureAwait(false);
        }
    }

    private static async Task Phase(string phase, int seconds, IProgress<BenchProgress>? progress, CancellationToken cancel)
    {
        for (var second = 0; second < seconds; second++)
        {
            await Task.Delay(1000, cancel).ConfigureAwait(false);
            progress?.Report(new BenchProgress(phase, second + 1, seconds));
        }
    }

    private static async Task WaitAsync(Func<bool> condition, TimeSpan within, CancellationToken cancel)
    {
        var deadline = Stopwatch.StartNew();
        while (!condition() && deadline.Elapsed < within)
        {
            await Task.Delay(10, cancel).ConfigureAwait(false);
        }
    }

    private static double Percentile(List<double> sorted, double p) => sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)(p * sorted.Count))];
}
