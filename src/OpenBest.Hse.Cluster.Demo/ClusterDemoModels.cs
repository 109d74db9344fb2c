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
public sealed record ClusterDemoNode(string Name, string Address, int ShardsBefore, int ShardsAfter, bool Killed)
{
    /// <summary>Whether it stopped on its own (or the cluster declared it dead) although it was not the node killed.</summary>
    public bool Died { get; init; }
}

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
    /// midway and no other node lost.
    /// </summary>
    public bool Success => Problem is null;

    /// <summary>What went wrong first, in a few words, or null for a run that checked out.</summary>
    public string? Problem => (KillRequested && !Killed) ? "no node was killed"
        : Nodes.FirstOrDefault(n => n.Died) is { } died ? $"{died.Name} stopped on its own"
        : Established != Devices ? $"{Devices - Established} device(s) got no session"
        : Sent == 0 ? "no message was sent"
        : Acknowledged != Sent ? $"{Sent - Acknowledged} message(s) not acknowledged"
        : NewAkaRuns > 0 ? $"{NewAkaRuns} device(s) ran AKA again"
        : Missing > 0 || Duplicates > 0 || StoredOnce != Acknowledged - AcknowledgedToEas ? $"{Missing} acknowledged message(s) missing from the store, {Duplicates} stored twice"
        : EasDelivered != AcknowledgedToEas ? $"{AcknowledgedToEas - EasDelivered} forwarded message(s) not at the EAS"
        : EasOutOfOrder > 0 ? $"{EasOutOfOrder} message(s) at the EAS out of order"
        : null;
}
