using System.Collections.Concurrent;
using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using OpenBest.Bearers;
using OpenBest.Hse;
using OpenBest.Protocol;
using OpenBest.Sessions;
using OpenBest.Storage;
using Spectre.Console;

namespace OpenBest.Cli;

/// <summary>
/// <c>best demo</c>: an HSE on a fresh SQLite database in a temporary folder and N simulated devices over
/// real UDP on loopback, each running a whole session. Exit 0 only if every message was delivered and verified.
/// </summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var devices = new Option<int>("--devices") { Description = "simulated devices, 1..2000", DefaultValueFactory = _ => 100, HelpName = "N" };
        var messages = new Option<int>("--messages") { Description = "acknowledged uplink messages per device, 1..1000", DefaultValueFactory = _ => 5, HelpName = "M" };
        devices.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 1 or > 2000) { r.AddError("--devices must be 1..2000"); } });
        messages.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 1 or > 1000) { r.AddError("--messages must be 1..1000"); } });
        var duration = new Option<int>("--duration") { Description = "keep the devices sending acknowledged messages for this many seconds (0: just --messages each), 0..3600", DefaultValueFactory = _ => 0, HelpName = "SECONDS" };
        duration.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 0 or > 3600) { r.AddError("--duration must be 0..3600 seconds"); } });
        var postgres = StoreFactory.PostgresOption();
        var command = new Command("demo",
            "Run an HSE on a fresh SQLite database and N simulated devices over UDP on loopback.\n" +
            "Each device opens a session (services and suites mixed), sends acknowledged messages, refreshes its keys,\n" +
            "suspends while the HSE queues a downlink message, resumes, receives it and terminates. Exit 0 only if all of it worked.");
        command.Options.Add(devices);
        command.Options.Add(messages);
        command.Options.Add(duration);
        command.Options.Add(postgres);
        command.SetAction((result, cancel) => RunAsync(result.GetValue(devices), result.GetValue(messages), result.GetValue(duration), result.GetValue(postgres), result.InvocationConfiguration.Output, cancel));
        return command;
    }

    private static async Task<int> RunAsync(int deviceCount, int messageCount, int seconds, string? postgres, TextWriter output, CancellationToken cancel)
    {
        // Colours and the live progress bar only on a terminal; plain text into pipes, files and tests.
        var console = Terminal.For(output);
        var directory = Directory.CreateTempSubdirectory("openbest-demo-");
        try
        {
            using var masterKey = MasterKey.FromBytes(RandomNumberGenerator.GetBytes(32));
            using var store = StoreFactory.Open(directory.FullName, postgres, masterKey);

            // IMSIs of this run only (test PLMN 001/01), removed at the end, so a shared database stays clean.
            var run = RandomNumberGenerator.GetInt32(100_000);
            // A tenth of the devices again, at least one each, for the enterprise side: UE-to-EAS and key agreement only.
            var enterpriseShare = Math.Max(1, deviceCount / 10);
            var all = Enumerable.Range(0, deviceCount + (2 * enterpriseShare))
                .Select(i => new NewSubscriber(string.Create(CultureInfo.InvariantCulture, $"00101{run:D5}{i:D5}"), RandomNumberGenerator.GetBytes(16), RandomNumberGenerator.GetBytes(16)))
                .ToList();
            var provisioned = all.Take(deviceCount).ToList();
            var endToEnd = all.Skip(deviceCount).Take(enterpriseShare).ToList();
            var keyAgreementOnly = all.Skip(deviceCount + enterpriseShare).ToList();
            store.Add(all);
            for (var i = 0; i < endToEnd.Count + keyAgreementOnly.Count; i++)
            {
                ((IHseStateStore)store).SetExternalId(DemoEnterprise.EasId, DemoEnterprise.ExternalId(i), (i < endToEnd.Count ? endToEnd[i] : keyAgreementOnly[i - endToEnd.Count]).Imsi);
            }

            using var cleanup = new Cleanup(() =>
            {
                foreach (var s in all)
                {
                    store.Remove(s.Imsi);
                }
            });

            using var subscribers = new StoreSubscribers(store);
            await using var bearer = UdpBearer.Bind(new IPEndPoint(IPAddress.Loopback, 0), queue: 65_536, socketBuffer: UdpBearer.ServerSocketBuffer);
            using var lease = ((IHseStateStore)store).AcquireHseLease();
            var host = new HseHost(new HseEngine(subscribers, new HseOptions { EnterpriseKeyIdentifier = ((IHseStateStore)store).EnterpriseKeyIdentifierOf }), [bearer], state: (IHseStateStore)store);
            host.Start();

            var suspended = new ConcurrentDictionary<uint, TaskCompletionSource>();
            var hseStats = new HseStats();
            await using var enterprise = await DemoEnterprise.StartAsync(directory.FullName, host, (IHseStateStore)store, endToEnd.Select((_, i) => DemoEnterprise.ExternalId(i)), cancel);
            var pump = Task.Run(async () =>
            {
                await foreach (var e in host.Events.ReadAllAsync(CancellationToken.None))
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
                await suspended.GetOrAdd(sessionId, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task.WaitAsync(TimeSpan.FromSeconds(20), cancel);
                await host.InvokeAsync(engine => engine.SendDownlink(sessionId, "downlink while suspended"u8, ackRequested: true));
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

                var stepsPerDevice = messageCount + 4;
                await console.Progress().AutoClear(false).StartAsync(async context =>
                {
                    var task = context.AddTask($"[green]{deviceCount} devices[/]", maxValue: deviceCount * stepsPerDevice);
                    var enterpriseTask = context.AddTask($"[green]{endToEnd.Count} UE-to-EAS and {keyAgreementOnly.Count} DTLS-PSK devices[/]", maxValue: endToEnd.Count + keyAgreementOnly.Count);
                    var enterpriseRuns = endToEnd.Select((s, i) => (s, i, dtls: false)).Concat(keyAgreementOnly.Select((s, i) => (s, i: i + endToEnd.Count, dtls: true))).Select(d => Task.Run(async () =>
                    {
                        try
                        {
                            if (d.dtls)
                            {
                                await enterprise.RunKeyAgreementOnlyAsync(d.s, DemoEnterprise.ExternalId(d.i), bearer.LocalEndPoint, cancel);
                            }
                            else
                            {
                                await enterprise.RunEndToEndAsync(d.s, DemoEnterprise.ExternalId(d.i), bearer.LocalEndPoint, messageCount, cancel);
                            }

                            enterpriseTask.Increment(1);
                        }
                        catch (Exception e) when (e is InvalidOperationException or IOException or OperationCanceledException or TimeoutException or System.Net.Http.HttpRequestException)
                        {
                            failures.Add($"{DemoEnterprise.ExternalId(d.i)}: {e.Message}");
                        }
                    }, cancel)).ToList();
                    await Task.WhenAll(enterpriseRuns.Concat(devices.Select((device, i) => Task.Run(async () =>
                    {
                        var options = new UeChannelOptions
                        {
                            EasId = "demo.example.com",
                            Service = i % 2 == 0 ? BestService.Confidential : BestService.Integrity,
                            Suites = (byte)(1 << (i % 4)),
                            ServingNetwork = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org"),
                        };
                        try
                        {
                            await device.RunAsync(options, messageCount, DownlinkWhileSuspended, () => task.Increment(1), seconds > 0 ? started.AddSeconds(seconds) : null);
                        }
                        catch (Exception e) when (e is OperationCanceledException or TimeoutException)
                        {
                            failures.Add($"device {i} timed out");
                        }
                        catch (Exception e) when (e is InvalidOperationException or System.Net.Sockets.SocketException)
                        {
                            failures.Add($"device {i}: {e.GetType().Name}");
                        }
                    }, cancel))));
                });
            }
            finally
            {
                foreach (var device in devices)
                {
                    await device.DisposeAsync();
                }
            }

            // Stop the host, then let the event pump count everything it had produced.
            var elapsed = DateTimeOffset.UtcNow - started;
            await host.DisposeAsync();
            await pump;
            var latencies = devices.SelectMany(d => d.AckLatenciesMs).Order().ToList();
            var expectedUplink = devices.Sum(d => d.MessagesSent + 1);
            var table = new Table().AddColumns("measure", "value");
            table.AddRow("devices / sessions established at the HSE", $"{deviceCount + endToEnd.Count + keyAgreementOnly.Count} / {hseStats.Established}");
            table.AddRow("uplink messages delivered and verified", $"{hseStats.Uplink} of {expectedUplink}");
            table.AddRow("acknowledged at the devices", $"{latencies.Count + deviceCount} of {expectedUplink}");
            table.AddRow("key refreshes / downlinks queued while suspended", $"{hseStats.Refreshes} / {hseStats.Resumed}");
            table.AddRow("octets on the wire per session setup", Range(devices.Select(d => d.SetupOctets)));
            table.AddRow("octets of overhead per uplink message", Range(devices.Select(d => d.UplinkOverhead)));
            table.AddRow("ack latency p50 / p99 (ms)", latencies.Count == 0 ? "-" : string.Create(CultureInfo.InvariantCulture, $"{Percentile(latencies, 0.50):F2} / {Percentile(latencies, 0.99):F2}"));
            table.AddRow("UE-to-EAS: uplink opened at the EAS", string.Create(CultureInfo.InvariantCulture, $"{enterprise.UplinkAtEas} of {endToEnd.Count * messageCount} from {endToEnd.Count} devices"));
            table.AddRow("UE-to-EAS: keys on the EAS's Enterprise Key", string.Create(CultureInfo.InvariantCulture, $"{enterprise.NamedEnterpriseKeys} of {endToEnd.Count} devices (named to them by the HSE)"));
            table.AddRow("key agreement only: DTLS-PSK handshakes", string.Create(CultureInfo.InvariantCulture, $"{enterprise.DtlsHandshakes} from {keyAgreementOnly.Count} devices"));
            table.AddRow("rejects / drops at the HSE", $"{hseStats.Rejects} / {hseStats.Drops}");
            table.AddRow("store", StoreFactory.Describe(postgres));
            table.AddRow("elapsed", string.Create(CultureInfo.InvariantCulture, $"{elapsed.TotalSeconds:F1} s"));
            console.Write(table);

            var ok = failures.IsEmpty && hseStats.Established == deviceCount + endToEnd.Count + keyAgreementOnly.Count && hseStats.Uplink == expectedUplink && hseStats.Resumed == deviceCount
                && enterprise.UplinkAtEas == endToEnd.Count * messageCount && enterprise.DtlsHandshakes >= keyAgreementOnly.Count
                && enterprise.NamedEnterpriseKeys == endToEnd.Count;
            console.MarkupLine(ok ? "[green]every message was delivered and verified[/]" : $"[red]FAILED[/]: {Markup.Escape(string.Join("; ", failures.Take(5)))}");
            return ok ? ExitCodes.Success : ExitCodes.CheckFailed;
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            directory.Delete(recursive: true);
        }
    }

    private sealed class Cleanup(Action action) : IDisposable
    {
        public void Dispose() => action();
    }

    private static string Range(IEnumerable<int> values)
    {
        var list = values.ToList();
        return list.Count == 0 ? "-" : list.Min() == list.Max() ? list.Min().ToString(CultureInfo.InvariantCulture) : $"{list.Min()}..{list.Max()}";
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
