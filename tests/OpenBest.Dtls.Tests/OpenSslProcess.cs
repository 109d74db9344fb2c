using System.Globalization;
using OpenBest.Testing;

namespace OpenBest.Dtls.Tests;

/// <summary>
/// <c>openssl</c> as a test's peer: a <see cref="PeerProcess"/> (output gathered, standard input open, process tree killed
/// on dispose), and <c>s_server</c> started on a free loopback port once it listens (it prints ACCEPT).
/// </summary>
internal static class OpenSslProcess
{
    public static PeerProcess Start(params string[] args) => PeerProcess.Start("openssl", args);

    /// <summary>Starts <c>openssl s_server</c> on a free loopback port and waits until it listens; a port taken in between is replaced.</summary>
    public static async Task<(PeerProcess Server, int Port)> StartServerAsync(params string[] args)
    {
        var server = await PeerProcess.StartServerAsync("openssl", port => ["s_server", "-accept", "127.0.0.1:" + port.ToString(CultureInfo.InvariantCulture), .. args], "ACCEPT");
        return (server, server.Port);
    }
}
