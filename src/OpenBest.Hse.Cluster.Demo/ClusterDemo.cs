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

            // From now on nginx follows the membership: whichever node the cluster declares dead leaves the front.
            var runClock = Stopwatch.StartNew();
            await using var keeper = FrontKeeper.Start(postgres, options.Nginx, config, directory.FullName, listen, [.. nodes.Select(n => (n.Name, n.Port))], runClock);

            progress.Report($"nginx on udp 127.0.0.1:{listen} in front of {string.Join(", ", nodes.Select(n => $"{n.Name} ({n.Port})"))}; opening {options.Devices} device sessions through it");
            var front = new IPEndPoint(IPAddress.Loopback, listen);
            if (toEas > 0)
            {
                enterprise = await DemoEas.StartAsync(directory.FullName, enterpriseId, easPorts[0], cancellationToken).ConfigureAwait(false);
                progress.Report($"the reference EAS {enterpriseId} registered with node-1's HSE–EAS interface; {toEas} more devices talk to it end to end");
            }

            // Nodes start one by one and shards move to the node that ranks first for them: the devices start once every node
            // holds shards and none moved for 6 s (a shard checks its placement every 5 s), at most 60 s, so that the kill
            // is the run's only move.
            await PlacementSettledAsync(store, nodes.Count, cancellationToken).ConfigureAwait(false);
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
                var killed = options.Kill
                    ? await KillANodeAsync(keeper, runClock, nodes, byNode, enterpriseId, clock, TimeSpan.FromSeconds(options.AfterKillSeconds), progress, cancellationToken).ConfigureAwait(false)
                    : null;
                var victimName = killed?.Victim;
                var killedAt = killed?.At ?? clock.Elapsed;
                var sendUntil = killed is null ? clock.Elapsed : killedAt + TimeSpan.FromSeconds(options.AfterKillSeconds);
                var declaredDead = killed?.DeclaredDead;
                var frontUpdated = killed?.FrontUpdated;

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

                // A node that stopped on its own (or that the cluster declared dead) is a failure of the cluster: say so.
                var died = nodes.Where(n => n.Name != victimName && (n.Process.HasExited || keeper.Dead(n.Name) is not null)).Select(n => n.Name).ToHashSet(StringComparer.Ordinal);
                foreach (var name in died)
                {
                    progress.Report(keeper.Dead(name) is { } dead
                        ? string.Create(CultureInfo.InvariantCulture, $"{name} stopped on its own: the cluster declared it dead at {dead.DeclaredDead.TotalSeconds:F1} s of the run")
                        : $"{name} stopped on its own");
                }

                progress.Report("reading the store back");
                var acknowledged = devices.Except(easDevices).SelectMany(d => d.Acknowledged).ToHashSet(StringComparer.Ordinal);
                var stored = StoredUplink(store, easId);

                var result = new ClusterDemoResult
                {
                    Nodes = [.. nodes.Select(n => new ClusterDemoNode(n.Name, string.Create(CultureInfo.InvariantCulture, $"127.0.0.1:{n.Port}"), byNode.GetValueOrDefault(n.Name), after.Count(o => o.Node == n.Name), n.Name == victimName) { Died = died.Contains(n.Name) })],
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
                // What the nodes said, for the operator to see why: their errors and last lines here, all of it in a folder kept.
                var logs = Directory.CreateTempSubdirectory("openbest-cluster-demo-logs-");
                foreach (var (name, _, process) in nodes)
                {
                    var lines = process.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
                    await File.WriteAllTextAsync(Path.Combine(logs.FullName, name + ".log"), process.Output, CancellationToken.None).ConfigureAwait(false);
                    foreach (var line in lines.Where(l => l.Contains(" fail: ", StringComparison.Ordinal) || l.Contains(" crit: ", StringComparison.Ordinal)).Take(5).Union(lines.TakeLast(5)))
                    {
                        progress.Report($"{name}: {line}");
                    }
                }

                progress.Report($"the nodes' output is in {logs.FullName}");
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

    /// <summary>What the kill did: the node killed, when, and after how long the cluster declared it dead and nginx left it out.</summary>
    private sealed record KillOutcome(string Victim, TimeSpan At, double? DeclaredDead, double? FrontUpdated);

    /// <summary>
    /// Kills the node delivering the EAS's outbox (with UE-to-EAS devices), else the one running the most shards, with SIGKILL;
    /// waits (within <paramref name="window"/>) until the cluster declares it dead and <paramref name="keeper"/> took it out of
    /// nginx.
    /// </summary>
    private static async Task<KillOutcome> KillANodeAsync(FrontKeeper keeper, Stopwatch runClock, List<(string Name, int Port, ChildProcess Process)> nodes, Dictionary<string, int> byNode,
        string enterpriseId, Stopwatch clock, TimeSpan window, IProgress<string> progress, CancellationToken cancellationToken)
    {
        var deliverer = Deliverers(nodes, enterpriseId).FirstOrDefault();
        var victim = nodes.Where(n => !n.Process.HasExited && keeper.Dead(n.Name) is null)
            .OrderByDescending(n => n.Name == deliverer).ThenByDescending(n => byNode.GetValueOrDefault(n.Name)).ThenBy(n => n.Name, StringComparer.Ordinal).First();
        var killedAt = clock.Elapsed;
        var killedInRun = runClock.Elapsed;
        victim.Process.Kill();
        progress.Report(string.Create(CultureInfo.InvariantCulture, $"{victim.Name} killed (SIGKILL) at {killedAt.TotalSeconds:F1} s, running {byNode.GetValueOrDefault(victim.Name)} shards; devices go on for {window.TotalSeconds:F0} s"));
        while (clock.Elapsed < killedAt + window && keeper.Dead(victim.Name) is null)
        {
            await Task.Delay(100, cancellationToken).ConfigureAwait(false);
        }

        if (keeper.Dead(victim.Name) is not { } dead)
        {
            return new KillOutcome(victim.Name, killedAt, null, null);
        }

        var declared = (dead.DeclaredDead - killedInRun).TotalSeconds;
        progress.Report(string.Create(CultureInfo.InvariantCulture, $"the cluster declared {victim.Name} dead {declared:F1} s after the kill; nginx reloaded without it"));
        return new KillOutcome(victim.Name, killedAt, declared, (dead.FrontUpdated - killedInRun).TotalSeconds);
    }

    /// <summary>How often each uplink payload of <paramref name="easId"/> is in the store.</summary>
    private static Dictionary<string, int> StoredUplink(PostgresSubscriberStore store, string easId)
    {
        var stored = new Dictionary<string, int>(StringComparer.Ordinal);
        for (long seq = 0; ;)
        {
            var page = store.Uplinks(seq, 10_000, easId);
            if (page.Count == 0)
            {
                return stored;
            }

            foreach (var row in page)
            {
                var text = Encoding.UTF8.GetString(row.Payload);
                stored[text] = stored.GetValueOrDefault(text) + 1;
            }

            seq = page[^1].Seq;
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

    private static async Task PlacementSettledAsync(PostgresSubscriberStore store, int nodes, CancellationToken cancellationToken)
    {
        static string Placed(IEnumerable<ShardOwner> owners) => string.Join(",", owners.Select(o => string.Create(CultureInfo.InvariantCulture, $"{o.Shard}:{o.Node}/{o.Epoch}")));
        var deadline = Stopwatch.StartNew();
        var last = Placed(store.ShardOwners());
        var since = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(60))
        {
            await Task.Delay(TimeSpan.FromMilliseconds(500), cancellationToken).ConfigureAwait(false);
            var owners = store.ShardOwners();
            var now = Placed(owners);
            if (now != last || owners.Select(o => o.Node).Distinct().Count() < nodes)
            {
                (last, since) = (now, Stopwatch.StartNew());
            }
            else if (since.Elapsed >= TimeSpan.FromSeconds(6))
            {
                return;
            }
        }
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
            var options = new UeChannelOptions { EasId = easId, UeToEasMode = ueToEas, ServingNetwork = Protocol.ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org") };
            var opened = await client.OpenAsync(options, cancel).ConfigureAwait(false);
            for (var again = 0; again < 3 && opened.Rejected == Protocol.Cause.UnknownSession; again++)
            {
                // The session's shard moved (a node joined) between the Session Start and its confirmation: an unconfirmed
                // session lives in memory only, so the device starts again, as docs/protocol.md says devices do.
                opened = await client.OpenAsync(options, cancel).ConfigureAwait(false);
            }

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
