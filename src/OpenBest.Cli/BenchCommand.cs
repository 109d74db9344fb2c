using System.Collections.Concurrent;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using OpenBest.Bearers;
using OpenBest.Crypto;
using OpenBest.Crypto.Aka;
using OpenBest.Hse;
using OpenBest.Protocol;
using OpenBest.Sessions;
using OpenBest.Storage;
using Spectre.Console;

namespace OpenBest.Cli;

/// <summary>
/// <c>best bench</c>: K simulated devices over real UDP on loopback against an HSE running in this process on a fresh
/// SQLite database (or PostgreSQL): new sessions per second, then acknowledged-window uplink per second, with
/// latency percentiles; optionally the memory an idle session costs the HSE.
/// </summary>
internal static class BenchCommand
{
    private static readonly ServingNetwork Network = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org");

    public static Command Create()
    {
        var devices = new Option<int>("--devices") { Description = "simulated devices, each with its own UDP socket and session, 1..10000", DefaultValueFactory = _ => 2000, HelpName = "K" };
        var seconds = new Option<int>("--duration") { Description = "seconds of uplink load, 1..600", DefaultValueFactory = _ => 10, HelpName = "SECONDS" };
        var window = new Option<int>("--window") { Description = "uplink messages per device in flight: W − 1 unacknowledged, then one acknowledged, 1..256", DefaultValueFactory = _ => 16, HelpName = "W" };
        var idle = new Option<int>("--idle-sessions") { Description = "also measure the HSE's memory per idle session over this many sessions (0: skip), up to 1000000", DefaultValueFactory = _ => 0, HelpName = "N" };
        devices.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 1 or > 10_000) { r.AddError("--devices must be 1..10000"); } });
        seconds.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 1 or > 600) { r.AddError("--duration must be 1..600 seconds"); } });
        window.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 1 or > 256) { r.AddError("--window must be 1..256"); } });
        idle.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 0 or > 1_000_000) { r.AddError("--idle-sessions must be 0..1000000"); } });
        // Never from $BEST_POSTGRES: the bench writes sessions and uplink, so it runs only on a database named here.
        var postgres = new Option<string>("--postgres") { Description = "run on this PostgreSQL database instead of a fresh SQLite one; use a database of its own (the bench takes the HSE lease and removes its subscribers and their data at the end)", HelpName = "CONNECTION" };
        var command = new Command("bench",
            "Measure the HSE: K simulated devices over UDP on loopback open sessions at once (new sessions/s), then send uplink for\n" +
            "--duration seconds (messages/s delivered and stored, Ack latency). The HSE runs in this process on a fresh SQLite\n" +
            "database in a temporary folder, or on --postgres. --idle-sessions N adds the HSE's memory per idle session.");
        foreach (var option in new Option[] { devices, seconds, window, idle, postgres })
        {
            command.Options.Add(option);
        }

        command.SetAction((result, cancel) => RunAsync(result.GetValue(devices), result.GetValue(seconds), result.GetValue(window), result.GetValue(idle), result.GetValue(postgres), result.InvocationConfiguration.Output, cancel));
        return command;
    }

    private static async Task<int> RunAsync(int deviceCount, int seconds, int window, int idleSessions, string? postgres, TextWriter output, CancellationToken cancel)
    {
        var terminal = ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected;
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output),
            Ansi = terminal ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = terminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = terminal ? InteractionSupport.Detect : InteractionSupport.No,
        });
        var table = new Table().AddColumn("measure").AddColumn("value");
        var directory = Directory.CreateTempSubdirectory("openbest-bench-");
        var ok = true;
        try
        {
            using var masterKey = MasterKey.FromBytes(RandomNumberGenerator.GetBytes(32));
            using var store = StoreFactory.Open(directory.FullName, postgres, masterKey);
            var run = RandomNumberGenerator.GetInt32(100_000);
            // A few extra devices warm the code paths up first; they are not measured.
            var warmUp = Math.Min(100, deviceCount);
            var provisioned = Enumerable.Range(0, deviceCount + warmUp)
                .Select(i => new NewSubscriber(string.Create(CultureInfo.InvariantCulture, $"00102{run:D5}{i:D5}"), RandomNumberGenerator.GetBytes(16), RandomNumberGenerator.GetBytes(16)))
                .ToList();
            store.Add(provisioned);
            try
            {
                using var subscribers = new StoreSubscribers(store);
                await using var udp = UdpBearer.Bind(new IPEndPoint(IPAddress.Loopback, 0), queue: 1 << 16, socketBuffer: UdpBearer.ServerSocketBuffer);
                using var lease = ((IHseStateStore)store).AcquireHseLease();
                var host = new HseHost(new HseEngine(subscribers, new HseOptions { MaxPendingSessions = 100_000 }), [udp], state: (IHseStateStore)store);
                var delivered = 0L;
                host.Start();
                var counting = Task.Run(async () =>
                {
                    await foreach (var e in host.Events.ReadAllAsync(CancellationToken.None))
                    {
                        if (e is DataReceived)
                        {
                            Interlocked.Increment(ref delivered);
                        }
                    }
                }, CancellationToken.None);

                var devices = new List<BenchDevice>();
                var warmers = new List<BenchDevice>();
                try
                {
                    foreach (var s in provisioned)
                    {
                        (warmers.Count < warmUp ? warmers : devices).Add(new BenchDevice(s.Imsi, s.K, s.Opc, udp.LocalEndPoint));
                    }

                    await Task.WhenAll(warmers.Select(d => d.OpenAsync(cancel)));
                    using (var warm = new CancellationTokenSource(TimeSpan.FromSeconds(1)))
                    {
                        await Task.WhenAll(warmers.Where(d => d.Established).Select(d => d.UplinkAsync(window, [], warm.Token)));
                    }

                    // Sessions: every device opens at once.
                    var setup = Stopwatch.StartNew();
                    var opened = await console.Progress().StartAsync(async progress =>
                    {
                        var task = progress.AddTask("sessions", maxValue: deviceCount);
                        return await Task.WhenAll(devices.Select(d => Task.Run(async () =>
                        {
                            var latency = await d.OpenAsync(cancel);
                            task.Increment(1);
                            return latency;
                        }, cancel)));
                    });
                    setup.Stop();
                    var established = opened.Count(l => l is not null);
                    ok &= established == deviceCount;
                    var setupLatency = opened.Where(l => l is not null).Select(l => l!.Value).Order().ToList();
                    table.AddRow("devices / sessions established", $"{deviceCount} / {established}");
                    table.AddRow("new sessions per second", Invariant($"{established / setup.Elapsed.TotalSeconds:N0}"));
                    table.AddRow("session setup latency p50 / p99 (ms)", Invariant($"{Percentile(setupLatency, 0.5):0.0} / {Percentile(setupLatency, 0.99):0.0}"));

                    // Uplink: each device keeps W messages in flight (W − 1 without Ack, then one with).
                    var before = Interlocked.Read(ref delivered);
                    var commitsBefore = host.Commits;
                    var load = Stopwatch.StartNew();
                    using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancel);
                    stop.CancelAfter(TimeSpan.FromSeconds(seconds));
                    var ackLatency = new ConcurrentBag<double>();
                    await console.Progress().StartAsync(async progress =>
                    {
                        var task = progress.AddTask("uplink", maxValue: seconds);
                        var ticker = Task.Run(async () =>
                        {
                            while (!stop.IsCancellationRequested)
                            {
                                await Task.Delay(1000, CancellationToken.None);
                                task.Increment(1);
                            }
                        }, CancellationToken.None);
                        await Task.WhenAll(devices.Where(d => d.Established).Select(d => d.UplinkAsync(window, ackLatency, stop.Token)));
                        await ticker;
                    });
                    load.Stop();
                    await Task.Delay(500, CancellationToken.None); // the last acknowledged windows settle
                    var messages = Interlocked.Read(ref delivered) - before;
                    var latencies = ackLatency.Order().ToList();
                    table.AddRow("uplink messages stored per second", Invariant($"{messages / load.Elapsed.TotalSeconds:N0}"));
                    table.AddRow("messages per commit (group commit)", Invariant($"{messages / (double)Math.Max(1, host.Commits - commitsBefore):0.0}"));
                    table.AddRow("Ack latency p50 / p99 (ms)", Invariant($"{Percentile(latencies, 0.5):0.0} / {Percentile(latencies, 0.99):0.0}"));
                    table.AddRow("overloaded / errors at the HSE", Invariant($"{host.Overloaded} / {host.Errors}"));
                    ok &= host.Errors == 0;
                }
                finally
                {
                    foreach (var d in devices.Concat(warmers))
                    {
                        await d.DisposeAsync();
                    }

                    await host.DisposeAsync();
                    await counting;
                }
            }
            finally
            {
                foreach (var s in provisioned)
                {
                    store.Remove(s.Imsi);
                }
            }

            if (idleSessions > 0)
            {
                var perSession = await console.Progress().StartAsync(async progress =>
                {
                    var task = progress.AddTask("idle sessions", maxValue: idleSessions);
                    return await Task.Run(() => MeasureIdleSessionBytes(idleSessions, () => task.Increment(1000)), cancel);
                });
                table.AddRow(Invariant($"HSE memory per idle session ({idleSessions:N0} sessions)"), Invariant($"{perSession:N0} B"));
            }

            table.AddRow("store", StoreFactory.Describe(postgres));
            table.AddRow("machine", Invariant($"{Environment.ProcessorCount} cores, {Environment.OSVersion.VersionString}, .NET {Environment.Version}"));
            console.Write(table);
            return ok ? ExitCodes.Success : ExitCodes.CheckFailed;
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            directory.Delete(recursive: true);
        }
    }

    /// <summary>
    /// The HSE's managed heap per established, idle session: N sessions set up through the real engines in memory
    /// (no sockets), after the answer caches expired, minus the same engine with its subscribers and no sessions.
    /// </summary>
    private static double MeasureIdleSessionBytes(int count, Action progress)
    {
        var time = new BenchTime();
        using var subscribers = new InMemorySubscribers();
        var keys = new (string Imsi, byte[] K, byte[] Opc)[count];
        for (var i = 0; i < count; i++)
        {
            keys[i] = (string.Create(CultureInfo.InvariantCulture, $"00103{i:D10}"), RandomNumberGenerator.GetBytes(16), RandomNumberGenerator.GetBytes(16));
            subscribers.Add(keys[i].Imsi, keys[i].K, keys[i].Opc);
        }

        using var hse = new HseEngine(subscribers, new HseOptions { MaxVectorsPerIdentityPerMinute = int.MaxValue, MaxPendingSessions = int.MaxValue }, time);
        var before = HeapBytes();
        for (var i = 0; i < count; i++)
        {
            using var milenage = new Milenage(keys[i].K, keys[i].Opc);
            using var ue = new UeEndpoint(new Usim(milenage, new UsimSequenceState(SqnScheme.Default)), new UeOptions { Imsi = keys[i].Imsi }, time);
            var queue = new Queue<(bool Uplink, ReadOnlyMemory<byte> Message)>(ue.Open(new UeChannelOptions { EasId = "eas.example.com", ServingNetwork = Network }, out _).Send.Select(s => (true, s.Message)));
            while (queue.TryDequeue(out var item))
            {
                var next = item.Uplink ? hse.Receive(item.Message.Span, "ue") : ue.Receive(item.Message.Span);
                foreach (var send in next.Send)
                {
                    queue.Enqueue((!item.Uplink, send.Message));
                }
            }

            if (i % 1000 == 999)
            {
                progress();
            }
        }

        // Idle: the retransmission caches expired; what is left is what an established session costs.
        time.Advance(TimeSpan.FromMinutes(2));
        hse.Tick();
        hse.TakeChanges(new List<HseSessionSnapshot>(), new List<uint>());
        var after = HeapBytes();
        if (hse.EstablishedCount != count)
        {
            throw new InvalidOperationException($"only {hse.EstablishedCount} of {count} sessions were established");
        }

        GC.KeepAlive(hse);
        return (after - before) / (double)count;
    }

    private static long HeapBytes()
    {
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        return GC.GetTotalMemory(forceFullCollection: true);
    }

    private static double Percentile(List<double> sorted, double p) => sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)(p * sorted.Count))];

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    private sealed class BenchTime : TimeProvider
    {
        private DateTimeOffset _now = DateTimeOffset.UtcNow;

        public override DateTimeOffset GetUtcNow() => _now;

        public void Advance(TimeSpan by) => _now += by;
    }

    /// <summary>One simulated device: a software USIM, a UE endpoint and its own UDP socket.</summary>
    private sealed class BenchDevice : IAsyncDisposable
    {
        private readonly Milenage _milenage;
        private readonly UeEndpoint _ue;
        private readonly UdpBearer _bearer;
        private readonly BearerPath _hse;
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _reader;
        private TaskCompletionSource? _established;
        private TaskCompletionSource? _acked;
        private int _channel;

        public BenchDevice(string imsi, byte[] k, byte[] opc, IPEndPoint hse)
        {
            _milenage = new Milenage(k, opc);
            _ue = new UeEndpoint(new Usim(_milenage, new UsimSequenceState(SqnScheme.Default)), new UeOptions { Imsi = imsi });
            _bearer = UdpBearer.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            _hse = _bearer.PathTo(hse);
            _reader = Task.Run(ReadAsync);
        }

        public bool Established { get; private set; }

        public async Task<double?> OpenAsync(CancellationToken cancel)
        {
            var watch = Stopwatch.StartNew();
            _established = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            await RunAsync(ue => ue.Open(new UeChannelOptions { EasId = "eas.example.com", ServingNetwork = Network, CounterSchemes = CounterSchemes.TwoOctets | CounterSchemes.FourOctets }, out _channel));
            for (var attempt = 0; attempt < 60 && !_established.Task.IsCompleted; attempt++)
            {
                await Task.WhenAny(_established.Task, Task.Delay(500, cancel));
                await RunAsync(ue => ue.Tick());
            }

            Established = _established.Task.IsCompleted;
            return Established ? watch.Elapsed.TotalMilliseconds : null;
        }

        public async Task UplinkAsync(int window, ConcurrentBag<double> latencies, CancellationToken stop)
        {
            var payload = new byte[32];
            while (!stop.IsCancellationRequested)
            {
                for (var i = 0; i < window - 1; i++)
                {
                    await RunAsync(ue => ue.Send(_channel, payload));
                }

                var watch = Stopwatch.StartNew();
                _acked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                await RunAsync(ue => ue.Send(_channel, payload, ackRequested: true));
                while (!_acked.Task.IsCompleted && !stop.IsCancellationRequested)
                {
                    await Task.WhenAny(_acked.Task, Task.Delay(250, CancellationToken.None));
                    await RunAsync(ue => ue.Tick());
                }

                if (_acked.Task.IsCompleted)
                {
                    latencies.Add(watch.Elapsed.TotalMilliseconds);
                }
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await _bearer.DisposeAsync();
            await _reader.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            _ue.Dispose();
            _milenage.Dispose();
            _stop.Dispose();
        }

        private async Task RunAsync(Func<UeEndpoint, StepResult> operation)
        {
            StepResult step;
            lock (_ue)
            {
                step = operation(_ue);
            }

            foreach (var e in step.Events)
            {
                switch (e)
                {
                    case SessionEstablished:
                        _established?.TrySetResult();
                        break;
                    case DataAcknowledged:
                        _acked?.TrySetResult();
                        break;
                }
            }

            foreach (var send in step.Send)
            {
                try
                {
                    await _hse.SendAsync(send.Message, _stop.Token);
                }
                catch (System.Net.Sockets.SocketException)
                {
                    // Lost, as on a network: retransmission covers it.
                }
            }
        }

        private async Task ReadAsync()
        {
            try
            {
                await foreach (var received in _bearer.Received.ReadAllAsync(_stop.Token))
                {
                    var message = received.Message;
                    await RunAsync(ue => ue.Receive(message.Span));
                }
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
            }
        }
    }
}
