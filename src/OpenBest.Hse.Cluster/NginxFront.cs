using System.Globalization;
using System.Net;
using System.Text;

namespace OpenBest.Hse.Cluster;

/// <summary>
/// The nginx stream configuration that puts one UDP and TCP address in front of several HSE nodes (nginx with its
/// stream module: Debian's nginx and libnginx-mod-stream).
/// </summary>
public static class NginxFront
{
    /// <summary>Where Debian installs the stream module.</summary>
    public const string DebianStreamModule = "/usr/lib/nginx/modules/ngx_stream_module.so";

    /// <summary>
    /// A complete nginx.conf: the stream module, and a UDP and a TCP server on <paramref name="listen"/> that spread
    /// devices over <paramref name="nodes"/> (each node's UDP and TCP port are the same number, as <c>best hse</c>'s
    /// default). The process settings a service manager owns (pid file, daemon, error log) are left to it.
    /// </summary>
    /// <exception cref="ArgumentException">No node, or a port out of range.</exception>
    public static string Render(IReadOnlyList<IPEndPoint> nodes, int listen, string streamModule = DebianStreamModule)
    {
        ArgumentNullException.ThrowIfNull(nodes);
        if (nodes.Count == 0)
        {
            throw new ArgumentException("at least one node is needed", nameof(nodes));
        }

        if (listen is < 1 or > 65_535)
        {
            throw new ArgumentException("the listening port must be 1..65535", nameof(listen));
        }

        var text = new StringBuilder();
        void Line(string line) => text.Append(line).Append('\n');
        Line(string.Create(CultureInfo.InvariantCulture, $"# The BEST front of {nodes.Count} HSE node(s), written by best cluster nginx-config."));
        Line("# Run it with: nginx -c THIS_FILE (the pid file, daemon mode and error log are the service manager's).");
        Line($"load_module {streamModule};");
        Line("worker_processes auto;");
        Line("events { worker_connections 8192; }");
        Line(string.Empty);
        Line("stream {");
        Line("    # A device keeps its node while the node lives: the same source address and port hash to the same node (the port");
        Line("    # too, so devices behind one NAT address spread over the nodes). Any node forwards a message to its session's shard.");
        foreach (var (name, weights) in new[] { ("best_udp", "max_fails=1 fail_timeout=10s"), ("best_tcp", "max_fails=1 fail_timeout=10s") })
        {
            Line($"    upstream {name} {{");
            Line("        hash $remote_addr$remote_port consistent;");
            foreach (var node in nodes)
            {
                Line($"        server {Address(node)} {weights};");
            }

            Line("    }");
            Line(string.Empty);
        }

        Line("    # EMSDP over UDP. proxy_responses is left unset on purpose: a device's datagram may be answered by none, one or");
        Line("    # several (a retransmitted answer, downlink, a push to a suspended channel), so nginx keeps each device's UDP");
        Line("    # session, and its socket towards the node, for proxy_timeout after the last datagram either way. Answers and");
        Line("    # downlink leave through the node and socket the device reached. A suspended push channel is silent: its");
        Line("    # device keeps the path alive with any message within proxy_timeout, or a push after that waits for its resume.");
        Line("    # nginx's open-source build has no health checks, and a dead node's UDP errors do not mark it failed: when the");
        Line("    # cluster declares a node dead (hse_cluster_members), write this file without it and run nginx -s reload.");
        Line("    server {");
        Line(string.Create(CultureInfo.InvariantCulture, $"        listen {listen} udp reuseport;"));
        Line("        proxy_pass best_udp;");
        Line("        proxy_timeout 24h;");
        Line("    }");
        Line(string.Empty);
        Line("    # EMSDP over TCP (length-prefixed frames): one connection per device, kept while it is open.");
        Line("    server {");
        Line(string.Create(CultureInfo.InvariantCulture, $"        listen {listen};"));
        Line("        proxy_pass best_tcp;");
        Line("        proxy_connect_timeout 5s;");
        Line("        proxy_timeout 1h;");
        Line("    }");
        Line("}");
        return text.ToString();
    }

    private static string Address(IPEndPoint node) => node.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6
        ? string.Create(CultureInfo.InvariantCulture, $"[{node.Address}]:{node.Port}")
        : string.Create(CultureInfo.InvariantCulture, $"{node.Address}:{node.Port}");
}
