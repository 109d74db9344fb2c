using System.Net;
using System.Net.Sockets;

namespace OpenBest.Hse.Cluster.Demo;

/// <summary>Loopback ports nothing listens on, for the processes a demo (or a test) starts.</summary>
public static class LoopbackPorts
{
    /// <summary>A port free for TCP, and for UDP too when <paramref name="udpToo"/> (a node listens on both with one number).</summary>
    public static int Free(bool udpToo = false)
    {
        for (var attempt = 0; ; attempt++)
        {
            using var tcp = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            tcp.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            var port = ((IPEndPoint)tcp.LocalEndPoint!).Port;
            if (!udpToo)
            {
                return port;
            }

            try
            {
                using var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
                udp.Bind(new IPEndPoint(IPAddress.Loopback, port));
                return port;
            }
            catch (SocketException) when (attempt < 50)
            {
            }
        }
    }
}
