using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using OpenBest.Crypto;
using OpenBest.Crypto.Aka;
using OpenBest.EasInterface;
using OpenBest.Obf;
using OpenBest.Obf.Server;
using OpenBest.Storage;

namespace OpenBest.Bench;

/// <summary>What <see cref="ObfBench"/> runs.</summary>
public sealed record ObfBenchOptions
{
    /// <summary>Secure elements registered and bootstrapped (1000).</summary>
    public int SecureElements { get; init; } = 1000;

    /// <summary>Requests in flight at once (64).</summary>
    public int Concurrency { get; init; } = 64;

    /// <summary>Seconds of each phase (5).</summary>
    public int Seconds { get; init; } = 5;

    /// <summary>A PostgreSQL connection string, or null for SQLite in a temporary folder.</summary>
    public string? Postgres { get; init; }
}

/// <summary>The figures of an OBF bench run.</summary>
/// <param name="Bootstraps">Bootstrappings completed (two Ub round trips, AKA on the software USIM, Ks stored).</param>
/// <param name="BootstrapsPerSecond">Per second.</param>
/// <param name="BootstrapLatency">p50 and p99 in milliseconds.</param>
/// <param name="Retrievals">Key retrievals completed (Nbsp_GBA over mutual TLS, rights checked, release audited).</param>
/// <param name="RetrievalsPerSecond">Per second.</param>
/// <param name="RetrievalLatency">p50 and p99 in milliseconds.</param>
/// <param name="Failures">Requests that did not end as expected.</param>
/// <param name="Store">"SQLite" or "PostgreSQL".</param>
public sealed record ObfBenchResult(long Bootstraps, double BootstrapsPerSecond, (double P50, double P99) BootstrapLatency, long Retrievals, double RetrievalsPerSecond, (double P50, double P99) RetrievalLatency, long Failures, string Store);

/// <summary>
/// <c>best obf bench</c>: an OBF server in this process (its own certificates, SQLite in a temporary folder or
/// PostgreSQL), software USIMs that bootstrap over HTTPS on loopback as fast as they can (full Ub round trips, Ks stored
/// before the 200), then an application that fetches Ks_NAF for the B-TIDs over mutual TLS (rights checked, every
/// release audited). The clients run on the same cores as the server.
/// </summary>
public static class ObfBench
{
    private const string Naf = "naf.bench.example";

    /// <summary>Runs the bench.</summary>
    public static async Task<ObfBenchResult> RunAsync(ObfBenchOptions options, IProgress<BenchProgress>? progress = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var directory = Directory.CreateTempSubdirectory("openbest-obf-bench-");
        try
        {
            DevelopmentPki.Init(directory.FullName, [], [Naf]);
            var settings = new ObfSettings { DataDir = directory.FullName, Postgres = options.Postgres ?? string.Empty, UbPort = 0, RpoPort = 0, Domain = "bsf.bench.example",
                // Each card bootstraps many times a minute here: the budget that protects a real card's SEQs is not what is measured.
                MaxBootstrapsPerIdentityPerMinute = int.MaxValue };
            var run = RandomNumberGenerator.GetInt32(100_000);
            var elements = Enumerable.Range(0, options.SecureElements)
                .Select(i => (Impi: string.Create(CultureInfo.InvariantCulture, $"00104{run:D5}{i:D5}@ims.mnc004.mcc001.3gppnetwork.org"), K: RandomNumberGenerator.GetBytes(16), Opc: RandomNumberGenerator.GetBytes(16)))
                .ToList();
            await using var server = await ObfServer.StartAsync(settings, cancellationToken: cancel).ConfigureAwait(false);
            server.Store.AddSecureElements([.. elements.Select(e => new NewSecureElement(e.Impi, e.K, e.Opc))]);
            if (server.Store.Application(Naf) is null)
            {
                server.Store.AddApplication(new ObfApplication(Naf, null, null, false, DateTimeOffset.UtcNow));
            }

            foreach (var e in elements)
            {
                server.Store.Grant(new ResourceRight(e.Impi, Naf, "telemetry", DateTimeOffset.UtcNow));
            }

            using var ca = DevelopmentPki.LoadCertificate(DevelopmentPki.Ca(directory.FullName).Certificate);
            using var nafCertificate = DevelopmentPki.LoadPair(DevelopmentPki.Naf(directory.FullName, Naf));
            var milenages = elements.Select(e => new Milenage(e.K, e.Opc)).ToArray();
            var usims = milenages.Select(m => new Usim(m, new UsimSequenceState(SqnScheme.Default))).ToArray();
            try
            {
                using var ub = Client(ca, null, server.UbAddress, options.Concurrency);
                using var rpo = Client(ca, nafCertificate, server.RpoAddress, options.Concurrency);
                var btids = new string?[elements.Count];
                long failures = 0;

                // Bootstrapping: each worker takes the next secure element, round robin.
                var next = -1L;
                var bootLatency = new List<double>();
                var (boots, bootSeconds) = await PhaseAsync("bootstraps", options, progress, async stop =>
                {
                    var i = (int)(Interlocked.Increment(ref next) % elements.Count);
                    var watch = Stopwatch.StartNew();
                    using var bootstrap = await new GbaClient(ub, usims[i]).BootstrapAsync(elements[i].Impi, stop).ConfigureAwait(false);
                    var btid = bootstrap.BTid;
                    if (bootstrap.Status != GbaBootstrapStatus.Bootstrapped || btid is null)
                    {
                        Interlocked.Increment(ref failures);
                        return false;
                    }

                    btids[i] = btid;
                    lock (bootLatency)
                    {
                        bootLatency.Add(watch.Elapsed.TotalMilliseconds);
                    }

                    return true;
                }, cancel).ConfigureAwait(false);

                // Key retrievals: the application asks for the keys of the B-TIDs the devices got.
                var known = btids.Where(b => b is not null).Select(b => b!).ToArray();
                var keyLatency = new List<double>();
                var pick = -1L;
                var (keys, keySeconds) = await PhaseAsync("key retrievals", options, progress, async stop =>
                {
                    if (known.Length == 0)
                    {
                        return false;
                    }

                    var btid = known[(int)(Interlocked.Increment(ref pick) % known.Length)];
                    var watch = Stopwatch.StartNew();
                    using var response = await rpo.PostAsJsonAsync("/nbsp-gba/v1/bootstrapping-info-retrieval", new BootstrappingInfoRequest(btid, new NafIdentifier(Naf, "0100000002")), stop).ConfigureAwait(false);
                    if (response.StatusCode != HttpStatusCode.OK)
                    {
                        Interlocked.Increment(ref failures);
                        return false;
                    }

                    await response.Content.ReadAsByteArrayAsync(stop).ConfigureAwait(false);
                    lock (keyLatency)
                    {
                        keyLatency.Add(watch.Elapsed.TotalMilliseconds);
                    }

                    return true;
                }, cancel).ConfigureAwait(false);

                bootLatency.Sort();
                keyLatency.Sort();
                return new ObfBenchResult(boots, boots / bootSeconds, (Percentile(bootLatency, 0.5), Percentile(bootLatency, 0.99)), keys, keys / keySeconds,
                    (Percentile(keyLatency, 0.5), Percentile(keyLatency, 0.99)), failures, string.IsNullOrWhiteSpace(options.Postgres) ? "SQLite" : "PostgreSQL");
            }
            finally
            {
                foreach (var milenage in milenages)
                {
                    milenage.Dispose();
                }

                if (!string.IsNullOrWhiteSpace(options.Postgres))
                {
                    foreach (var e in elements)
                    {
                        server.Store.Remove(e.Impi);
                    }
                }
            }
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            directory.Delete(recursive: true);
        }
    }

    private static async Task<(long Count, double Seconds)> PhaseAsync(string name, ObfBenchOptions options, IProgress<BenchProgress>? progress, Func<CancellationToken, Task<bool>> one, CancellationToken cancel)
    {
        long done = 0;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        stop.CancelAfter(TimeSpan.FromSeconds(options.Seconds));
        var watch = Stopwatch.StartNew();
        var ticker = Task.Run(async () =>
        {
            for (var second = 1; second <= options.Seconds && !stop.IsCancellationRequested; second++)
            {
                await Task.Delay(1000, CancellationToken.None).ConfigureAwait(false);
                progress?.Report(new BenchProgress(name, second, options.Seconds));
            }
        }, CancellationToken.None);
        var workers = Enumerable.Range(0, options.Concurrency).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    if (await one(stop.Token).ConfigureAwait(false))
                    {
                        Interlocked.Increment(ref done);
                    }
                }
                catch (OperationCanceledException)
                {
                }
                catch (HttpRequestException)
                {
                }
            }
        }, CancellationToken.None));
        await Task.WhenAll(workers).ConfigureAwait(false);
        var seconds = watch.Elapsed.TotalSeconds;
        await ticker.ConfigureAwait(false);
        return (Interlocked.Read(ref done), seconds);
    }

    private static HttpClient Client(X509Certificate2 ca, X509Certificate2? certificate, string address, int connections)
    {
        var handler = new SocketsHttpHandler { MaxConnectionsPerServer = connections, PooledConnectionLifetime = Timeout.InfiniteTimeSpan, EnableMultipleHttp2Connections = true };
        DevelopmentPki.UseFor(handler.SslOptions, ca, certificate);

        // HTTP/2 where the server offers it (ALPN): many requests in flight share a few TLS connections.
        return new HttpClient(handler) { BaseAddress = new Uri(address), Timeout = TimeSpan.FromSeconds(30), DefaultRequestVersion = HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionOrLower };
    }

    private static double Percentile(List<double> sorted, double p) => sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)(p * sorted.Count))];
}
