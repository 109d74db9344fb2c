using System.Globalization;
using Microsoft.Extensions.Logging;

namespace OpenBest.Hse.Cluster;

/// <summary>Runs a cluster node as a command: starts it, says where it listens, waits for the stop, stops it gracefully.</summary>
public static partial class ClusterNodeRunner
{
    /// <summary>Runs until <paramref name="stopping"/> completes; 0 when it stopped cleanly.</summary>
    public static async Task<int> RunAsync(HseSettings settings, ClusterNodeOptions options, TextWriter output, ILogger log, Task stopping)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(stopping);
        var node = await ClusterNode.StartAsync(settings, options, log).ConfigureAwait(false);
        await using (node.ConfigureAwait(false))
        {
            var nodes = node.ActiveNodes;
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"HSE node {options.NodeName} listening on udp {node.UdpEndPoint}{(node.TcpEndPoint is { } tcp ? $" and tcp {tcp}" : string.Empty)}{(node.EasAddress is { } eas ? $", EAS interface on {eas}" : string.Empty)}, silo port {options.SiloPort}, gateway port {options.GatewayPort}; cluster {options.ClusterId}: {nodes} active node(s), {node.ShardCount} shards; Ctrl+C stops it"));
            output.Flush();
            LogStarted(log, options.NodeName, node.UdpEndPoint?.ToString() ?? "none", nodes);
            await stopping.ConfigureAwait(false);
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"stopping: {node.Forwarded} messages forwarded to shards, {node.Relayed} answers sent"));
            output.Flush();
        }

        output.WriteLine("stopped");
        output.Flush();
        return 0;
    }

    [LoggerMessage(1, LogLevel.Information, "HSE node {Node} started: udp {Udp}, {Nodes} node(s) in the cluster")]
    private static partial void LogStarted(ILogger log, string node, string udp, int nodes);
}
