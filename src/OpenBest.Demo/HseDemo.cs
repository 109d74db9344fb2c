using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using OpenBest.Bearers;
using OpenBest.Hse;
using OpenBest.Protocol;
using OpenBest.Sessions;
using OpenBest.Storage;
using OpenBest.Storage.Postgres;

namespace OpenBest.Demo;

/// <summary>What <c>best demo</c> runs.</summary>
public sealed record HseDemoOptions
{
    /// <summary>Simulated devices (UE-to-HSE), 1..2000.</summary>
    public int Devices { get; init; } = 100;

    /// <summary>Acknowledged uplink messages per device.</summary>
    public int Messages { get; init; } = 5;

    /// <summary>Keep the devices sending acknowledged messages this long (0: just <see cref="Messages"/> each).</summary>
    public int Seconds { get; init; }

    /// <summary>A PostgreSQL database to run on instead of a fresh SQLite one (its subscribers of this run are removed at the end).</summary>
    public string? Postgres { get; init; }

    /// <summary>The enterprise side's devices of each kind (UE-to-EAS, key agreement only): a tenth of <see cref="Devices"/>, at least one.</summary>
    public int EnterpriseDevices => Math.Max(1, Devices / 10);

    /// <summary>The steps the devices take in all (for a progress bar): each opens, sends, refreshes, suspends and ends.</summary>
    public int DeviceSteps => Devices * (Messages + 4);
}

/// <summary>What a run of <c>best demo</c> saw.</summary>
public sealed record HseDemoResult
{
    /// <summary>Devices of every kind.</summary>
    public int Devices { get; init; }

    /// <summary>Sessions the HSE established.</summary>
    public int Established { get; init; }

    /// <summary>Uplink messages the HSE delivered and verified, and how many there should have been.</summary>
    public (int Delivered, int Expected) Uplink { get; init; }

    /// <summary>Messages the devices had acknowledged.</summary>
    public int Acknowledged { get; init; }

    /// <summary>Key refreshes at the HSE.</summary>
    public int Refreshes { get; init; }

    /// <summary>Sessions resumed (each had a downlink queued while suspended).</summary>
    public int Resumed { get; init; }

    /// <summary>Octets on the wire per session set-up, and of overhead per uplink message: "n" or "min..max".</summary>
    public (string Setup, string Overhead) Octets { get; init; } = ("-", "-");

    /// <summary>Ack latency p50 and p99 in ms, or null without acknowledged messages.</summary>
    public (double P50, double P99)? AckLatencyMs { get; init; }

    /// <summary>UE-to-EAS: devices, messages expected at the EAS, messages the EAS opened, devices on the EAS's Enterprise Key.</summary>
    public (int Devices, int Expected, int AtEas, int NamedKeys) EndToEnd { get; init; }

    /// <summary>Key agreement only: devices, and DTLS-PSK handshakes with the EAS.</summary>
    public (int Devices, int Handshakes) KeyAgreementOnly { get; init; }

    /// <summary>Rejects and drops at the HSE.</summary>
    public (int Rejects, int Drops) Refused { get; init; }

    /// <summary>"SQLite" or "PostgreSQL".</summary>
    public string Store { get; init; } = "SQLite";

    /// <summary>How long the devices ran.</summary>
    public TimeSpan Elapsed { get; init; }

    /// <summary>What went wrong (devices that timed out or failed).</summary>
    public IReadOnlyList<string> Failures { get; init; } = [];

    /// <summary>Whether every message was delivered and verified.</summary>
    public bool Ok { get; init; }
}

/// <summary>
/// <c>best demo</c>: an HSE on a fresh SQLite database in a temporary folder (or on PostgreSQL) and simulated devices over
/// real UDP on loopback, each running a whole session (services and suites mixed: acknowledged messages, a key refresh, a
/// downlink queued while suspended, resume, end), beside UE-to-EAS devices whose messages reach the reference EAS and key
/// agreement only devices that run DTLS-PSK with it.
/// </summary>
public static class HseDemo
{
    /// <summary>Runs the demo; <paramref name="deviceStep"/> and <paramref name="enterpriseDone"/> report progress.</summary>
    public static async Task<HseDemoResult> RunAsync(HseDemoOptions options, Action? deviceStep = null, Action? enterpriseDone = null, CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var directory = Directory.CreateTempSubdirectory("openbest-demo-");
        try
        {
            using var masterKey = MasterKey.FromBytes(RandomNumberGenerator.GetBytes(32));
            using ISubscriberStore store = string.IsNullOrWhiteSpace(options.Postgres)
                ? SqliteSubscriberStore.Open(directory.FullName, masterKey)
                : PostgresSubscriberStore.Open(options.Postgres, masterKey);
            var state = (IHseStateStore)store;

            // IMSIs of this run only (test PLMN 001/01), removed at the end, so a shared database stays clean.
            var run = RandomNumberGenerator.GetInt32(100_000);
            var deviceCount = options.Devices;
            var enterpriseShare = options.EnterpriseDevices;
            var all = Enumerable.Range(0, deviceCount + (2 * enterpriseShare))
                .Select(i => new NewSubscriber(string.Create(CultureInfo.InvariantCulture, $"00101{run:D5}{i:D5}"), RandomNumberGenerator.GetBytes(16), RandomNumberGenerator.GetBytes(16)))
                .ToList();
            var provisioned = all.Take(deviceCount).ToList();
            var endToEnd = all.Skip(deviceCount).Take(enterpriseShare).ToList();
            var keyAgreementOnly = all.Skip(deviceCount + enterpriseShare).ToList();
            store.Add(all);
            for (var i = 0; i < endToEnd.Count + keyAgreementOnly.Count; i++)
            {
                state.SetExternalId(DemoEnterprise.EasId, DemoEnterprise.ExternalId(i), (i < endToEnd.Count ? endToEnd[i] : keyAgreementOnly[i - endToEnd.Count]).Imsi);
            }

            try
            {
                return await RunHseAsync(options, store, directory.FullName, provisioned, endToEnd, keyAgreementOnly, deviceStep, enterpriseDone, cancel).ConfigureAwait(false);
            }
            finally
            {
                foreach (var s in all)
                {
                    store.Remove(s.Imsi);
                }
            }
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            directory.Delete(recursive: true);
        }
    }

    private static async Task<HseDemoResult> RunHseAsync(HseDemoOptions options, ISubscriberStore store, string directory, List<NewSubscriber> provisioned, List<NewSubscriber> endToEnd, List<NewSubscriber> keyAgreementOnly,
        Action? deviceStep, Action? enterpriseDone, CancellationToken cancel)
    {
        var state = (IHseStateStore)store;
        var (deviceCount, messageCount) = (options.Devices, options.Messages);
        using var subscribers = new StoreSubscribers(store);
        await using var bearer = UdpBearer.Bind(new IPEndPoint(IPAddress.Loopback, 0), queue: 65_536, socketBuffer: UdpBearer.ServerSocketBuffer);
        using var lease = state.AcquireHseLease();
        var host = new HseHost(new HseEngine(subscribers, new HseOptions { EnterpriseKeyIdentifier = state.EnterpriseKeyIdentifierOf }), [bearer], state: state);
        host.Start();

        var suspended = new ConcurrentDictionary<uint, TaskCompletionSource>();
        var hseStats = new HseStats();
        await using var enterprise = await DemoEnterprise.StartAsync(directory, host, state, endToEnd.Select((_, i) => DemoEnterprise.ExternalId(i)), cancel).ConfigureAwait(false);
        var pump = Task.Run(async () =>
        {
            await foreach (var e in host.Events.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
            {
                hseStats.Count(e);
                enterprise.OnEvent(e);
                if (e is SessionSuspended s)
                {
                    suspended.GetOrAdd(s.SessionId, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
                }
            }
        }, cancel);

        async Task DownlinkWhileSuspended(uint sessionId)
        {
            // Wait until the HSE has the session suspended, so the downlink really is queued and sealed later.
            await suspended.GetOrAdd(sessionId, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task.WaitAsync(TimeSpan.FromSeconds(20), cancel).ConfigureAwait(false);
            await host.InvokeAsync(engine => engine.SendDownlink(sessionId, "downlink while suspended"u8, ackRequested: true)).ConfigureAwait(false);
        }

        var devices = new List<DemoDevice>();
        var failures = new ConcurrentBag<string>();
        var started = DateTimeOffset.UtcNow;
        try
        {
            foreach (var s in provisioned)
            {
                devices.Add(new DemoDevice(s.Imsi, s.K, s.Opc, bearer.LocalEndPoint));
            }

            var enterpriseRuns = endToEnd.Select((s, i) => (s, i, dtls: false)).Concat(keyAgreementOnly.Select((s, i) => (s, i: i + endToEnd.Count, dtls: true))).Select(d => Task.Run(async () =>
            {
                try
                {
                    if (d.dtls)
                    {
                        await enterprise.RunKeyAgreementOnlyAsync(d.s, DemoEnterprise.ExternalId(d.i), bearer.LocalEndPoint, cancel).ConfigureAwait(false);
                    }
                    else
                    {
                        await enterprise.RunEndToEndAsync(d.s, DemoEnterprise.ExternalId(d.i), bearer.LocalEndPoint, messageCount, cancel).ConfigureAwait(false);
                    }

                    enterpriseDone?.Invoke();
                }
                catch (Exception e) when (e is InvalidOperationException or IOException or OperationCanceledException or TimeoutException or System.Net.Http.HttpRequestException)
                {
                    failures.Add($"{DemoEnterprise.ExternalId(d.i)}: {e.Message}");
                }
            }, cancel)).ToList();
            await Task.WhenAll(enterpriseRuns.Concat(devices.Select((device, i) => Task.Run(async () =>
            {
                var channel = new UeChannelOptions
                {
                    EasId = "demo.example.com",
                    Service = i % 2 == 0 ? BestService.Confidential : BestService.Integrity,
                    Suites = (byte)(1 << (i % 4)),
                    ServingNetwork = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org"),
                };
                try
                {
                    await device.RunAsync(channel, messageCount, DownlinkWhileSuspended, () => deviceStep?.Invoke(), options.Seconds > 0 ? started.AddSeconds(options.Seconds) : null).ConfigureAwait(false);
                }
                catch (Exception e) when (e is OperationCanceledException or TimeoutException)
                {
                    failures.Add($"device {i} timed out");
                }
                catch (Exception e) when (e is InvalidOperationException or System.Net.Sockets.SocketException)
                {
                    failures.Add($"device {i}: {e.GetType().Name}");
                }
            }, cancel)))).ConfigureAwait(false);
        }
        finally
        {
            foreach (var device in devices)
            {
                await device.DisposeAsync().ConfigureAwait(false);
            }
        }

        // Stop the host, then let the event pump count everything it had produced.
        var elapsed = DateTimeOffset.UtcNow - started;
        await host.DisposeAsync().ConfigureAwait(false);
        await pump.ConfigureAwait(false);
        var latencies = devices.SelectMany(d => d.AckLatenciesMs).Order().ToList();
        var expectedUplink = devices.Sum(d => d.MessagesSent + 1);
        var all = deviceCount + endToEnd.Count + keyAgreementOnly.Count;
        return new HseDemoResult
        {
            Devices = all,
            Established = hseStats.Established,
            Uplink = (hseStats.Uplink, expectedUplink),
            Acknowledged = latencies.Count + deviceCount,
            Refreshes = hseStats.Refreshes,
            Resumed = hseStats.Resumed,
            Octets = (Range(devices.Select(d => d.SetupOctets)), Range(devices.Select(d => d.UplinkOverhead))),
            AckLatencyMs = latencies.Count == 0 ? null : (Percentile(latencies, 0.50), Percentile(latencies, 0.99)),
            EndToEnd = (endToEnd.Count, endToEnd.Count * messageCount, enterprise.UplinkAtEas, enterprise.NamedEnterpriseKeys),
            KeyAgreementOnly = (keyAgreementOnly.Count, enterprise.DtlsHandshakes),
            Refused = (hseStats.Rejects, hseStats.Drops),
            Store = string.IsNullOrWhiteSpace(options.Postgres) ? "SQLite" : "PostgreSQL",
            Elapsed = elapsed,
            Failures = [.. failures],
            Ok = failures.IsEmpty && hseStats.Established == all && hseStats.Uplink == expectedUplink && hseStats.Resumed == deviceCount
                && enterprise.UplinkAtEas == endToEnd.Count * messageCount && enterprise.DtlsHandshakes >= keyAgreementOnly.Count
                && enterprise.NamedEnterpriseKeys == endToEnd.Count,
        };
    }

    private static string Range(IEnumerable<int> values)
    {
        var list = values.ToList();
        return list.Count == 0 ? "-" : list.Min() == list.Max() ? list.Min().ToString(CultureInfo.InvariantCulture) : string.Create(CultureInfo.InvariantCulture, $"{list.Min()}..{list.Max()}");
    }

    private static double Percentile(List<double> sorted, double p) => sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];

    private sealed class HseStats
    {
        public int Established { get; private set; }

        public int Uplink { get; private set; }

        public int Refreshes { get; private set; }

        public int Resumed { get; private set; }

        public int Rejects { get; private set; }

        public int Drops { get; private set; }

        public void Count(SessionEvent e)
        {
            switch (e)
            {
                case SessionEstablished: Established++; break;
                case DataReceived: Uplink++; break;
                case KeysRefreshed: Refreshes++; break;
                case SessionResumed: Resumed++; break;
                case SessionRejected: Rejects++; break;
                case MessageDropped: Drops++; break;
            }
        }
    }
}
