using System.Globalization;
using System.Net;
using OpenBest.Client;
using OpenBest.Hse.Cluster.Demo;
using OpenBest.Testing;

namespace OpenBest.Hse.Cluster.Tests;

/// <summary>A cluster node as the tests run it: <c>best hse --cluster</c> in a process of its own, on free silo and gateway ports.</summary>
internal static class NodeProcess
{
    /// <summary>Starts node <paramref name="name"/> on <paramref name="database"/> with <paramref name="data"/>'s master key, and <paramref name="extra"/> options (ports, services).</summary>
    public static BestProcess Start(string name, string database, string data, params string[] extra) => Start(name, database, data, new Dictionary<string, string>(), extra);

    /// <summary>The same, with environment variables.</summary>
    public static BestProcess Start(string name, string database, string data, IReadOnlyDictionary<string, string> environment, params string[] extra) => BestProcess.Start(environment,
        ["hse", "--cluster", "--postgres", database, "--data-dir", data, "--node-name", name,
        "--silo-port", LoopbackPorts.Free().ToString(CultureInfo.InvariantCulture), "--gateway-port", LoopbackPorts.Free().ToString(CultureInfo.InvariantCulture), .. extra]);

    /// <summary>
    /// A device reaching a node's UDP <paramref name="port"/>. It retransmits long enough for a shard whose node died to
    /// answer again once the cluster declared the death and a survivor took the shard; <paramref name="asInTheField"/>, it
    /// retransmits as a device in the field does instead: backing off from 0.5 s (0.5, 1.5, 3.5, 7.5, 15.5 s), so that after
    /// 31.5 s without an answer it would run AKA again.
    /// </summary>
    public static Task<BestClient> DeviceAsync(string imsi, string k, string opc, int port, bool asInTheField = false)
    {
        var options = new BestClientOptions
        {
            Imsi = imsi,
            K = Convert.FromHexString(k),
            Opc = Convert.FromHexString(opc),
            Transport = new BestTransport.Udp(new IPEndPoint(IPAddress.Loopback, port)),
            TickInterval = TimeSpan.FromMilliseconds(50),
            MaxRetransmissions = 30,
        };
        return BestClient.CreateAsync(
            asInTheField ? options with { RetransmissionInterval = TimeSpan.FromMilliseconds(500), MaxRetransmissions = 5, OperationTimeout = TimeSpan.FromSeconds(120) } : options,
            TestContext.Current.CancellationToken);
    }

    /// <summary>The options of a UDP port and no TCP listener.</summary>
    public static string[] Udp(int port) => ["--udp-port", port.ToString(CultureInfo.InvariantCulture), "--tcp-port", "-1"];
}
