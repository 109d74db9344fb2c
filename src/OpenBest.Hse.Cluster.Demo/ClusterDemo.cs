using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using OpenBest.Client;
using OpenBest.EasInterface;
using OpenBest.Sessions;
using OpenBest.Storage;
using OpenBest.Storage.Postgres;

namespace OpenBest.Hse.Cluster.Demo;

/// <summary>What <c>best cluster demo</c> runs.</summary>
public sealed record ClusterDemoOptions
{
    /// <summary>HSE nodes, 2..9 (one is killed), or 1..9 without a kill.</summary>
    public required int Nodes { get; init; }

    /// <summary>The PostgreSQL database the nodes share; null starts a throw-away server on this machine (<see cref="LocalPostgres"/>).</summary>
    public string? Postgres { get; init; }

    /// <summary>Simulated devices.</summary>
    public int Devices { get; init; } = 30;

    /// <summary>Seconds after the devices' sessions are up when a node is killed (SIGKILL).</summary>
    public int KillAfterSeconds { get; init; } = 10;

    /// <summary>
    /// Devices in UE-to-EAS mode besides <see cref="Devices"/> (not with the baseline): their messages go through the HSE's
    /// outbox to the reference EAS, registered with the cluster; with a kill, the node delivering that outbox is the one killed.
    /// </summary>
    public int EasDevices { get; init; } = 4;

    /// <summary>Whether to kill a node (false: a throughput run of <see cref="KillAfterSeconds"/> seconds, as for <c>best bench cluster</c>).</summary>
    public bool Kill { get; init; } = true;

    /// <summary>Seconds the devices go on sending after the kill.</summary>
    public int AfterKillSeconds { get; init; } = 20;

    /// <summary>Each device's pause between two acknowledged messages.</summary>
    public TimeSpan MessageInterval { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>How to start <c>best</c>: the program, and the arguments before the command (the assembly, under dotnet).</summary>
    public required (string FileName, IReadOnlyList<string> Prefix) Best { get; init; }

    /// <summary>Run one plain <c>best hse</c> (no cluster) instead of the nodes: the baseline of the cluster's cost (no kill).</summary>
    public bool Baseline { get; init; }

    /// <summary>The nginx program.</summary>
    public string Nginx { get; init; } = "/usr/sbin/nginx";
}

/// <summary>One node as the demo saw it.</summary>
/// <param name="Name">Its name.</param>
/// <param name="Address">Its UDP and TCP address.</param>
/// <param name="ShardsBefore">Shards it ran just before the kill.</param>
/// <param name="ShardsAfter">Shards it ran at the end.</param>
/// <param name="Killed">Whether it was the node killed.</param>
public sealed record ClusterDemoNode(string Name, string Address, int ShardsBefore, int ShardsAfter, bool Killed);

/// <summary>What the demo measured and checked.</summary>
public sealed record ClusterDemoResult
{
    /// <summary>The nodes.</summary>
    public required IReadOnlyList<ClusterDemoNode> Nodes { get; init; }

    /// <summary>Shards the killed node ran, which survivors took.</summary>
    public int ShardsMoved { get; init; }

    /// <summary>Seconds from the kill until the membership table said the node was dead, or null when it did not in time.</summary>
    public double? DeclaredDeadSeconds { get; init; }

    /// <summary>Seconds from the kill until nginx ran without the node, or null.</summary>
    public double? FrontUpdatedSeconds { get; init; }

    /// <summary>Devices whose session was on a moved shard.</summary>
    public int SessionsMoved { get; init; }

    /// <summary>Longest time a device of a moved session waited, from the kill to its first acknowledged message after it.</summary>
    public double FailoverSeconds { get; init; }

    /// <summary>Devices.</summary>
    public int Devices { get; init; }

    /// <summary>Devices whose session came up.</summary>
    public int Established { get; init; }

    /// <summary>Devices that had to run AKA again (a new session) after the kill.</summary>
    public int NewAkaRuns { get; init; }

    /// <summary>Acknowledged messages sent.</summary>
    public long Sent { get; init; }

    /// <summary>Messages the HSE acknowledged.</summary>
    public long Acknowledged { get; init; }

    /// <summary>Messages waiting more than a second for their Ack.</summary>
    public long Delayed { get; init; }

    /// <summary>The longest wait for an Ack.</summary>
    public double MaxDelaySeconds { get; init; }

    /// <summary>99th percentile Ack latency, ms.</summary>
    public double P99Ms { get; init; }

    /// <summary>How long the devices sent.</summary>
    public double SendingSeconds { get; init; }

    /// <summary>CPU seconds the nodes used while the devices sent (a killed node's until it died are not counted).</summary>
    public double NodeCpuSeconds { get; init; }

    /// <summary>The nodes' CPU time per acknowledged message, µs.</summary>
    public double CpuMicrosecondsPerMessage => Acknowledged > 0 ? NodeCpuSeconds * 1e6 / Acknowledged : 0;

    /// <summary>Acknowledged messages per second over the sending time.</summary>
    public double PerSecond => SendingSeconds > 0 ? Acknowledged / SendingSeconds : 0;

    /// <summary>Median Ack latency, ms.</summary>
    public double MedianMs { get; init; }

    /// <summary>Acknowledged messages found exactly once in the store.</summary>
    public long StoredOnce { get; init; }

    /// <summary>Extra copies of a message in the store.</summary>
    public long Duplicates { get; init; }

    /// <summary>Acknowledged messages missing from the store.</summary>
    public long Missing { get; init; }

    /// <summary>Messages of the UE-to-EAS devices the HSE acknowledged (forwarded).</summary>
    public long AcknowledgedToEas { get; init; }

    /// <summary>Of those, how many the EAS's application got (each once: the EAS drops a repeat).</summary>
    public long EasDelivered { get; init; }

    /// <summary>Messages the EAS got out of their device's order.</summary>
    public long EasOutOfOrder { get; init; }

    /// <summary>The nodes that delivered the EAS's outbox, in the order they took it.</summary>
    public IReadOnlyList<string> EasDeliverers { get; init; } = [];

    /// <summary>Whether the run was to kill a node.</summary>
    public bool KillRequested { get; init; } = true;

    /// <summary>Whether a node was killed.</summary>
    public bool Killed => Nodes.Any(n => n.Killed);

    /// <summary>
    /// Every message delivered (stored once, or at the EAS once and in order), every session up and kept, with a node killed
    /// midway.
    /// </summary>
    public bool Success => (Killed || !KillRequested) && Established == Devices && Acknowledged == Sent && Sent > 0 && StoredOnce == Acknowledged - AcknowledgedToEas
        && Duplicates == 0 && Missing == 0 && NewAkaRuns == 0 && EasDelivered == AcknowledgedToEas && EasOutOfOrder == 0;
}

/// <summary>
/// The HSE cluster demo: the nodes (<c>best hse --cluster</c> processes) on one PostgreSQL database, nginx in front of them
/// (the configuration <c>best cluster nginx-config</c> writes), simulated devices through nginx over UDP sending acknowledged
/// messages, one node killed with SIGKILL midway, and afterwards the store read back: every acknowledged message once.
/// </summary>
public static class ClusterDemo
{
    /// <summary>Runs the demo; <paramref name="progress"/> hears what happens.</summary>
    /// <exception cref="InvalidOperationException">A part could not start (nginx missing, a node that did not come up); the message says which.</exception>
    public static async Task<ClusterDemoResult> RunAsync(ClusterDemoOptions options, IProgress<string> progress, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(progress);
        if (options.Baseline && (options.Nodes != 1 || options.Kill))
        {
            throw new ArgumentException("the baseline is one plain HSE, without a kill", nameof(options));
        }

        if (!File.Exists(options.Nginx) || !File.Exists(NginxFront.DebianStreamModule))
        {
            throw new InvalidOperationException($"nginx with its stream module is needed ({options.Nginx}, {NginxFront.DebianStreamModule}): apt-get install nginx libnginx-mod-stream");
        }

        using var local = options.Postgres is null ? StartPostgres(progress) : null;
        var postgres = options.Postgres ?? local!.CreateDatabase();
        var directory = Directory.CreateTempSubdirectory("openbest-cluster-demo-");
        var nodes = new List<(string Name, int Port, ChildProcess Process)>();
        ChildProcess? nginx = null;
        var failed = true;
        using var masterKey = MasterKey.Load(directory.FullName);
        using var store = PostgresSubscriberStore.Open(postgres, masterKey);
        var run = RandomNumberGenerator.GetInt32(100_000);
        var easId = string.Create(CultureInfo.InvariantCulture, $"cluster-demo-{run:D5}.example");
        var toEas = options.Baseline ? 0 : options.EasDevices;
        var enterpriseId = string.Create(CultureInfo.InvariantCulture, $"cluster-demo-{run:D5}-eas.example");
        var subscribers = Enumerable.Range(0, options.Devices + toEas)
            .Select(i => new NewSubscriber(string.Create(CultureInfo.InvariantCulture, $"00101{run:D5}{i:D5}"), RandomNumberGenerator.GetBytes(16), RandomNumberGenerator.GetBytes(16)))
            .ToList();
        store.Add(subscribers);
        for (var i = options.Devices; i < subscribers.Count; i++)
        {
            store.SetExternalId(enterpriseId, string.Create(CultureInfo.InvariantCulture, $"device-{i}"), subscribers[i].Imsi);
        }

        if (toEas > 0)
        {
            DevelopmentPki.Init(directory.FullName, [enterpriseId]);
        }

        var easPorts = new List<int>();
        DemoEas? enterprise = null;
        try
        {
            progress.Report($"starting {options.Nodes} HSE nodes on one PostgreSQL database");
            for (var i = 0; i < options.Nodes; i++)
            {
                var name = string.Create(CultureInfo.InvariantCulture, $"node-{i + 1}");
                var port = LoopbackPorts.Free(udpToo: true);
                string[] cluster = options.Baseline ? [] : ["--cluster", "--node-name", name, "--silo-port", Text(LoopbackPorts.Free()), "--gateway-port", Text(LoopbackPorts.Free())];
                // With UE-to-EAS devices each node serves the HSE–EAS interface, and says (at Information) when it takes the EAS's outbox.
                easPorts.Add(toEas > 0 ? LoopbackPorts.Free() : -1);
                var process = ChildProcess.Start(options.Best.FileName,
                    [.. options.Best.Prefix, "hse", .. cluster, "--postgres", postgres, "--data-dir", directory.FullName, "--udp-port", Text(port), "--tcp-port", Text(port),
                        "--eas-port", Text(easPorts[^1]), "--log-level", toEas > 0 ? "Information" : "Warning"],
                    new Dictionary<string, string> { ["BEST_SQN_IND"] = Text(i + 1) });
                nodes.Add((name, port, process));
            }

            foreach (var (name, _, process) in nodes)
            {
                if (!await process.WaitForAsync(options.Baseline ? "HSE listening" : "HSE node", TimeSpan.FromSeconds(90), cancellationToken).ConfigureAwait(false))
                {
                    throw new InvalidOperationException($"{name} did not start: {Last(process.Output)}");
                }
            }

            var listen = LoopbackPorts.Free(udpToo: true);
            var config = Path.Combine(directory.FullName, "nginx.conf");
            await File.WriteAllTextAsync(config, NginxFront.Render([.. nodes.Select(n => new IPEndPoint(IPAddress.Loopback, n.Port))], listen), cancellationToken).ConfigureAwait(false);
            nginx = ChildProcess.Start(options.Nginx, ["-c", config, "-p", directory.FullName, "-e", "stderr", "-g", $"daemon off; pid {directory.FullName}/nginx.pid; error_log stderr notice;"]);
            if (!await nginx.WaitForAsync("start worker process", TimeSpan.FromSeconds(30), cancellationToken).ConfigureAwait(false))
            {
                throw new InvalidOperationException($"nginx did not start: {Last(nginx.Output)}");
            }

            progress.Report($"nginx on udp 127.0.0.1:{listen} in front of {string.Join(", ", nodes.Select(n => $"{n.Name} ({n.Port})"))}; opening {options.Devices} device sessions through it");
            var front = new IPEndPoint(IPAddress.Loopback, listen);
            if (toEas > 0)
            {
                enterprise = await DemoEas.StartAsync(directory.FullName, enterpriseId, easPorts[0], cancellationToken).ConfigureAwait(false);
                progress.Report($"the reference EAS {enterpriseId} registered with node-1's HSE–EAS interface; {toEas} more devices talk to it end to end");
            }

            var devices = await OpenDevicesAsync(subscribers.Take(options.Devices), front, easId, ueToEas: false, cancellationToken).ConfigureAwait(false);
            var easDevices = await OpenDevicesAsync(subscribers.Skip(options.Devices), front, enterpriseId, ueToEas: true, cancellationToken).ConfigureAwait(false);
            devices.AddRange(easDevices);
            try
            {
                var established = devices.Count(d => d.Channel is not null) - easDevices.Count(d => d.Channel is not null);
                foreach (var refusal in devices.Where(d => d.Refusal is not null).GroupBy(d => d.Refusal))
                {
                    progress.Report($"{refusal.Count()} device(s) got no session: {refusal.Key}");
                }
                progress.Report(options.Kill
                    ? $"{established} of {options.Devices} sessions up; devices send acknowledged messages; a node is killed in {options.KillAfterSeconds} s"
                    : $"{established} of {options.Devices} sessions up; devices send acknowledged messages for {options.KillAfterSeconds} s");
                using var stopSending = new CancellationTokenSource();
                var clock = Stopwatch.StartNew();
                var cpuBefore = nodes.Sum(n => n.Process.Cpu.TotalSeconds);
                var senders = devices.Select(d => Task.Run(() => d.SendUntilAsync(options.MessageInterval, clock, stopSending.Token), CancellationToken.None)).ToList();
                await Task.Delay(TimeSpan.FromSeconds(options.KillAfterSeconds), cancellationToken).ConfigureAwait(false);
                var before = store.ShardOwners();
                var byNode = before.GroupBy(o => o.Node).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
                string? victimName = null;
                var killedAt = clock.Elapsed;
                var sendUntil = clock.Elapsed;
                double? declaredDead = null;
                double? frontUpdated = null;
                if (options.Kill)
                {
                    // The node delivering the EAS's outbox (with UE-to-EAS devices), else the one running the most shards.
                    var deliverer = Deliverers(nodes, enterpriseId).FirstOrDefault();
                    var victim = nodes.OrderByDescending(n => n.Name == deliverer).ThenByDescending(n => byNode.GetValueOrDefault(n.Name)).ThenBy(n => n.Name, StringComparer.Ordinal).First();
                    killedAt = clock.Elapsed;
                    victim.Process.Kill();
                    progress.Report(string.Create(CultureInfo.InvariantCulture, $"{victim.Name} killed (SIGKILL) at {killedAt.TotalSeconds:F1} s, running {byNode.GetValueOrDefault(victim.Name)} shards; devices go on for {options.AfterKillSeconds} s"));
                    sendUntil = killedAt + TimeSpan.FromSeconds(options.AfterKillSeconds);

                    // nginx has no health checks for UDP in its open-source build: the membership table is the health check. Once
                    // the cluster declared the node dead, the front is rewritten without it and reloaded (what an operator's
                    // configuration manager does), so no device's datagrams go on to a dead node.
                    using (var membership = Npgsql.NpgsqlDataSource.Create(postgres))
                    {
                        while (clock.Elapsed < sendUntil && declaredDead is null)
                        {
                            var members = await PostgresMembershipTable.NodesAsync(membership, "openbest-hse").ConfigureAwait(false);
                            if (members.FirstOrDefault(m => m.Node == victim.Name).Status == "Dead")
                            {
                                declaredDead = (clock.Elapsed - killedAt).TotalSeconds;
                                break;
                            }

                            await Task.Delay(200, cancellationToken).ConfigureAwait(false);
                        }
                    }

                    if (declaredDead is not null)
                    {
                        var survivors = nodes.Where(n => n.Name != victim.Name).Select(n => new IPEndPoint(IPAddress.Loopback, n.Port)).ToList();
                        await File.WriteAllTextAsync(config, NginxFront.Render(survivors, listen), cancellationToken).ConfigureAwait(false);
                        await using (var reload = ChildProcess.Start(options.Nginx, ["-c", config, "-p", directory.FullName, "-e", "stderr", "-g", $"pid {directory.FullName}/nginx.pid;", "-s", "reload"]))
                        {
                            await reload.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
                        }

                        frontUpdated = (clock.Elapsed - killedAt).TotalSeconds;
                        progress.Report(string.Create(CultureInfo.InvariantCulture, $"the cluster declared {victim.Name} dead {declaredDead:F1} s after the kill; nginx reloaded without it"));
                    }
                    victimName = victim.Name;
                }

                var rest = sendUntil - clock.Elapsed;
                if (rest > TimeSpan.Zero)
                {
                    await Task.Delay(rest, cancellationToken).ConfigureAwait(false);
                }

                await stopSending.CancelAsync().ConfigureAwait(false);
                await Task.WhenAll(senders).ConfigureAwait(false);
                var sendingSeconds = clock.Elapsed.TotalSeconds;
                var nodeCpu = nodes.Sum(n => n.Process.Cpu.TotalSeconds) - cpuBefore;

                var shardCount = store.ClusterShards(ClusterRouting.DefaultShards);
                var moved = before.Where(o => o.Node == victimName).Select(o => o.Shard).ToHashSet();
                var after = store.ShardOwners();
                var movedDevices = devices.Where(d => d.Channel is not null && moved.Contains((int)(d.FirstSessionId % (uint)shardCount))).ToList();
                var failover = movedDevices.Select(d => d.FirstAckAfter(killedAt) is { } first ? (first - killedAt).TotalSeconds : double.NaN).Where(s => !double.IsNaN(s)).DefaultIfEmpty(0).Max();
                var latencies = devices.SelectMany(d => d.Latencies).OrderBy(l => l).ToList();

                var toEasAcknowledged = easDevices.SelectMany(d => d.Acknowledged).ToHashSet(StringComparer.Ordinal);
                var (easDelivered, easOutOfOrder) = (0, 0);
                if (enterprise is not null)
                {
                    progress.Report("waiting for the EAS to get every message the HSE acknowledged as forwarded");
                    var deadline = Stopwatch.StartNew();
                    while ((easDelivered = enterprise.Check(toEasAcknowledged).Delivered) < toEasAcknowledged.Count && deadline.Elapsed < TimeSpan.FromSeconds(90))
                    {
                        await Task.Delay(200, cancellationToken).ConfigureAwait(false);
                    }

                    (easDelivered, easOutOfOrder) = enterprise.Check(toEasAcknowledged);
                }

                progress.Report("reading the store back");
                var acknowledged = devices.Except(easDevices).SelectMany(d => d.Acknowledged).ToHashSet(StringComparer.Ordinal);
                var stored = new Dictionary<string, int>(StringComparer.Ordinal);
                for (long seq = 0; ;)
                {
                    var page = store.Uplinks(seq, 10_000, easId);
                    if (page.Count == 0)
                    {
                        break;
                    }

                    foreach (var row in page)
                    {
                        var text = Encoding.UTF8.GetString(row.Payload);
                        stored[text] = stored.GetValueOrDefault(text) + 1;
                    }

                    seq = page[^1].Seq;
                }

                var result = new ClusterDemoResult
                {
                    Nodes = [.. nodes.Select(n => new ClusterDemoNode(n.Name, string.Create(CultureInfo.InvariantCulture, $"127.0.0.1:{n.Port}"), byNode.GetValueOrDefault(n.Name), after.Count(o => o.Node == n.Name), n.Name == victimName))],
                    KillRequested = options.Kill,
                    ShardsMoved = moved.Count,
                    DeclaredDeadSeconds = declaredDead,
                    FrontUpdatedSeconds = frontUpdated,
                    SessionsMoved = movedDevices.Count,
                    FailoverSeconds = failover,
                    Devices = options.Devices,
                    AcknowledgedToEas = toEasAcknowledged.Count,
                    EasDelivered = easDelivered,
                    EasOutOfOrder = easOutOfOrder,
                    EasDeliverers = Deliverers(nodes, enterpriseId),
                    Established = established,
                    NewAkaRuns = devices.Count(d => d.Channel is not null && d.Channel.SessionId != d.FirstSessionId),
                    Sent = devices.Sum(d => d.Sent),
                    Acknowledged = devices.Sum(d => d.Acknowledged.Count),
                    Delayed = latencies.Count(l => l > 1000),
                    MaxDelaySeconds = latencies.Count == 0 ? 0 : latencies[^1] / 1000,
                    MedianMs = latencies.Count == 0 ? 0 : latencies[latencies.Count / 2],
                    P99Ms = latencies.Count == 0 ? 0 : latencies[Math.Min(latencies.Count - 1, (int)(latencies.Count * 0.99))],
                    SendingSeconds = sendingSeconds,
                    NodeCpuSeconds = nodeCpu,
                    StoredOnce = acknowledged.Count(a => stored.GetValueOrDefault(a) == 1),
                    Duplicates = stored.Values.Sum(c => Math.Max(0, c - 1)),
                    Missing = acknowledged.Count(a => !stored.ContainsKey(a)),
                };
                failed = !result.Success;
                return result;
            }
            finally
            {
                foreach (var device in devices)
                {
                    await device.DisposeAsync().ConfigureAwait(false);
                }
            }
        }
        finally
        {
            if (enterprise is not null)
            {
                await enterprise.DisposeAsync().ConfigureAwait(false);
            }

            if (nginx is not null)
            {
                await nginx.StopAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
                await nginx.DisposeAsync().ConfigureAwait(false);
            }

            await Task.WhenAll(nodes.Select(n => n.Process.StopAsync(TimeSpan.FromSeconds(30)))).ConfigureAwait(false);
            if (failed)
            {
                // What the nodes said, for the operator to see why.
                foreach (var (name, _, process) in nodes)
                {
                    foreach (var line in process.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries).TakeLast(5))
                    {
                        progress.Report($"{name}: {line}");
                    }
                }
            }
            foreach (var node in nodes)
            {
                await node.Process.DisposeAsync().ConfigureAwait(false);
            }

            foreach (var s in subscribers)
            {
                store.Remove(s.Imsi);
            }

            directory.Delete(recursive: true);
        }
    }

    /// <summary>A throw-away PostgreSQL server for a run without a database of the operator's.</summary>
    private static LocalPostgres StartPostgres(IProgress<string> progress)
    {
        progress.Report("starting a PostgreSQL server of its own (initdb in a temporary folder, removed at the end)");
        var server = new LocalPostgres();
        if (server.Unavailable is { } why)
        {
            server.Dispose();
            throw new InvalidOperationException($"no --postgres, and no PostgreSQL server here to start: {why}");
        }

        return server;
    }

    /// <summary>The nodes that said they deliver <paramref name="easId"/>'s outbox, in the order they said it.</summary>
    private static List<string> Deliverers(IEnumerable<(string Name, int Port, ChildProcess Process)> nodes, string easId)
    {
        var line = $"this node delivers the outbox of EAS {easId}";
        return [.. nodes.Select(n => (n.Name, At: n.Process.Output.Split('\n').FirstOrDefault(l => l.Contains(line, StringComparison.Ordinal))))
            .Where(n => n.At is not null).OrderBy(n => n.At, StringComparer.Ordinal).Select(n => n.Name)];
    }

    private static async Task<List<DemoDevice>> OpenDevicesAsync(IEnumerable<NewSubscriber> subscribers, IPEndPoint front, string easId, bool ueToEas, CancellationToken cancellationToken)
    {
        var devices = new ConcurrentBag<DemoDevice>();
        await Parallel.ForEachAsync(subscribers, new ParallelOptions { MaxDegreeOfParallelism = 16, CancellationToken = cancellationToken }, async (s, cancel) =>
        {
            var client = await BestClient.CreateAsync(new BestClientOptions
            {
                Imsi = s.Imsi,
                K = s.K,
                Opc = s.Opc,
                Transport = new BestTransport.Udp(front),
                // Retransmissions back off from 0.5 s (0.5, 1.5, 3.5, 7.5, 15.5 s) before a device would run AKA again at
                // 31.5 s: more than a node's death takes to detect and its shards to move.
                RetransmissionInterval = TimeSpan.FromMilliseconds(500),
                MaxRetransmissions = 5,
                OperationTimeout = TimeSpan.FromSeconds(120),
            }, cancel).ConfigureAwait(false);
            var opened = await client.OpenAsync(new UeChannelOptions { EasId = easId, UeToEasMode = ueToEas, ServingNetwork = Protocol.ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org") }, cancel).ConfigureAwait(false);
            devices.Add(new DemoDevice(client, opened.Channel) { Refusal = opened.Established ? null : opened.Rejected?.ToString() ?? "no answer" });
        }).ConfigureAwait(false);
        return [.. devices];
    }

    private static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);

    private static string Last(string output) => output.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault() ?? "no output";

    /// <summary>A device of the demo: one channel, acknowledged messages "d-SESSION-m-N", their Ack latencies.</summary>
    private sealed class DemoDevice(BestClient client, BestChannel? channel) : IAsyncDisposable
    {
        private readonly List<(TimeSpan At, double Ms)> _acks = [];

        public BestChannel? Channel => channel;

        public string? Refusal { get; init; }

        public uint FirstSessionId { get; } = channel?.SessionId ?? 0;

        public List<string> Acknowledged { get; } = [];

        public long Sent { get; private set; }


        public IEnumerable<double> Latencies => _acks.Select(a => a.Ms);

        public TimeSpan? FirstAckAfter(TimeSpan moment) => _acks.Where(a => a.At > moment).Select(a => (TimeSpan?)a.At).FirstOrDefault();

        public async Task SendUntilAsync(TimeSpan interval, Stopwatch clock, CancellationToken stop)
        {
            if (channel is null)
            {
                return;
            }

            for (var n = 0; !stop.IsCancellationRequested; n++)
            {
                var payload = string.Create(CultureInfo.InvariantCulture, $"d-{FirstSessionId}-m-{n}");
                var started = clock.Elapsed;
                Sent++;
                var status = await channel.SendAsync(Encoding.UTF8.GetBytes(payload), acknowledged: true, CancellationToken.None).ConfigureAwait(false);
                if (status == SendStatus.Acknowledged)
                {
                    Acknowledged.Add(payload);
                    _acks.Add((clock.Elapsed, (clock.Elapsed - started).TotalMilliseconds));
                }

                try
                {
                    await Task.Delay(interval, stop).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }

        public async ValueTask DisposeAsync() => await client.DisposeAsync().ConfigureAwait(false);
    }
}
