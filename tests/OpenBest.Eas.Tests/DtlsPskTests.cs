using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using OpenBest.Dtls;
using OpenBest.Testing;

namespace OpenBest.Eas.Tests;

/// <summary>
/// DTLS 1.2 PSK (TLS_PSK_WITH_AES_128_CCM_8) for the key-agreement-only service, against OpenSSL as a real peer on
/// loopback in both roles, and between our own client and server.
/// </summary>
public sealed class DtlsPskTests
{
    private static readonly byte[] Psk = Convert.FromHexString("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    private const string Identity = "meter-7@acme#0a0b0c0d";

    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    private static int FreeUdpPort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }

    private static Process OpenSsl(params string[] args)
    {
        var info = new ProcessStartInfo("openssl") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        return Process.Start(info)!;
    }

    /// <summary>
    /// Connects to a server that may not listen yet (a process still starting): a refused attempt (ICMP port unreachable
    /// on the connected socket) is tried again until <see cref="Eventually.Deadline"/>.
    /// </summary>
    private static async Task<DtlsPskConnection> ConnectWhenListeningAsync(IPEndPoint server)
    {
        var started = Stopwatch.GetTimestamp();
        while (true)
        {
            try
            {
                return await Task.Run(() => DtlsPsk.Connect(server, Identity, Psk, Eventually.Deadline), Cancel);
            }
            catch (IOException e) when (Refused(e) && Stopwatch.GetElapsedTime(started) < Eventually.Deadline)
            {
                await Task.Delay(100, Cancel);
            }
        }

        static bool Refused(Exception? e)
        {
            for (; e is not null; e = e.InnerException)
            {
                if (e is SocketException { SocketErrorCode: SocketError.ConnectionRefused or SocketError.ConnectionReset })
                {
                    return true;
                }
            }

            return false;
        }
    }

    [Fact]
    public async Task OurClient_TalksToOpenSslServer()
    {
        var port = FreeUdpPort();
        using var server = OpenSsl("s_server", "-dtls1_2", "-accept", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-nocert", "-psk", Convert.ToHexString(Psk).ToLowerInvariant(),
            "-psk_identity", Identity, "-cipher", DtlsPsk.OpenSslCipher, "-quiet");
        try
        {
            // s_server listens once it has started: until then a ClientHello is refused, and the client tries again.
            using var connection = await ConnectWhenListeningAsync(new IPEndPoint(IPAddress.Loopback, port));
            connection.Send("reading=42\n"u8);
            var line = await server.StandardOutput.ReadLineAsync(Cancel).AsTask().WaitAsync(Eventually.Deadline, Cancel);
            Assert.Equal("reading=42", line);
            await server.StandardInput.WriteLineAsync("ack from openssl".AsMemory(), Cancel);
            await server.StandardInput.FlushAsync(Cancel);
            var answer = await Task.Run(() => connection.Receive(Eventually.Deadline), Cancel);
            Assert.Equal("ack from openssl\n", Encoding.UTF8.GetString(answer!));
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task OpenSslClient_TalksToOurServer()
    {
        string? seenIdentity = null;
        using var server = new DtlsPskServer(new IPEndPoint(IPAddress.Loopback, 0), id => id == Identity ? Psk.ToArray() : null, (id, data) =>
        {
            seenIdentity = id;
            return Encoding.UTF8.GetBytes("echo:" + Encoding.UTF8.GetString(data));
        });
        using var client = OpenSsl("s_client", "-dtls1_2", "-connect", $"127.0.0.1:{server.LocalEndPoint.Port}", "-psk", Convert.ToHexString(Psk).ToLowerInvariant(),
            "-psk_identity", Identity, "-cipher", DtlsPsk.OpenSslCipher, "-quiet");
        try
        {
            // s_client reads its input only once the handshake is done: the line can be written at once.
            await client.StandardInput.WriteLineAsync("hello".AsMemory(), Cancel);
            await client.StandardInput.FlushAsync(Cancel);
            var output = new StringBuilder();
            string? line;
            while ((line = await client.StandardOutput.ReadLineAsync(Cancel).AsTask().WaitAsync(Eventually.Deadline, Cancel)) is not null)
            {
                output.AppendLine(line);
                if (line.Contains("echo:hello", StringComparison.Ordinal))
                {
                    break;
                }
            }

            Assert.Contains("echo:hello", output.ToString(), StringComparison.Ordinal);
            Assert.Equal(Identity, seenIdentity);
            Assert.Equal(1, server.Handshakes);

            // The server completes a handshake only for a ClientHello that returns its cookie, so OpenSSL answered a
            // HelloVerifyRequest with it. At least one: OpenSSL sends its first ClientHello again when the answer is
            // slow (its 1 s retransmission timer), and each copy gets its own HelloVerifyRequest.
            Assert.True(server.CookieChallenges >= 1);
        }
        finally
        {
            client.Kill(entireProcessTree: true);
            await client.WaitForExitAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task OurClientAndServer_AgreeOnlyWithTheSameKey()
    {
        using var server = new DtlsPskServer(new IPEndPoint(IPAddress.Loopback, 0), id => id == Identity ? Psk.ToArray() : null, (_, data) => data);
        using (var connection = await Task.Run(() => DtlsPsk.Connect(server.LocalEndPoint, Identity, Psk), Cancel))
        {
            connection.Send("ping"u8);
            Assert.Equal("ping"u8.ToArray(), await Task.Run(() => connection.Receive(Eventually.Deadline), Cancel));
        }

        var wrong = Psk.ToArray();
        wrong[0] ^= 1;
        await Assert.ThrowsAsync<IOException>(() => Task.Run(() => DtlsPsk.Connect(server.LocalEndPoint, Identity, wrong, TimeSpan.FromSeconds(3)), Cancel));
        await Assert.ThrowsAsync<IOException>(() => Task.Run(() => DtlsPsk.Connect(server.LocalEndPoint, "stranger#00000000", Psk, TimeSpan.FromSeconds(3)), Cancel));
    }

    [Fact]
    public async Task Junk_AndFailedHandshakes_CostNoPeers_AndNeverStopTheServer()
    {
        using var server = new DtlsPskServer(new IPEndPoint(IPAddress.Loopback, 0), id => id == Identity ? Psk.ToArray() : null, (_, data) => data);
        // Short datagrams that are no ClientHello, from many source ports.
        for (var i = 0; i < 100; i++)
        {
            using var junk = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            await junk.SendToAsync(new byte[] { 1, 2, 3 }, server.LocalEndPoint, Cancel);
        }

        // A handshake refused (unknown identity). Every junk datagram is counted as a failure (the dispatcher reads them
        // in order, but the refused handshake may also end by the client's timeout on a busy machine: wait for the count).
        await Assert.ThrowsAsync<IOException>(() => Task.Run(() => DtlsPsk.Connect(server.LocalEndPoint, "stranger#00000000", Psk, TimeSpan.FromSeconds(3)), Cancel));
        await Eventually.True(() => server.Failures >= 100, "each junk datagram is counted as a failure");

        // The server still serves.
        using var connection = await Task.Run(() => DtlsPsk.Connect(server.LocalEndPoint, Identity, Psk), Cancel);
        connection.Send("still here"u8);
        Assert.Equal("still here"u8.ToArray(), await Task.Run(() => connection.Receive(Eventually.Deadline), Cancel));
    }

    /// <summary>RFC 6347 4.2.1: a ClientHello without a cookie gets a HelloVerifyRequest and costs the server no state.</summary>
    [Fact]
    public async Task ClientHelloWithoutCookie_GetsHelloVerifyRequest_AndNoState()
    {
        // A real first ClientHello, taken from our client talking to a socket that never answers.
        using var catcher = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        catcher.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var attempt = Task.Run(() => DtlsPsk.Connect((IPEndPoint)catcher.LocalEndPoint!, Identity, Psk, TimeSpan.FromSeconds(2)), Cancel);
        var hello = new byte[2048];
        var n = await catcher.ReceiveAsync(hello, Cancel).AsTask().WaitAsync(Eventually.Deadline, Cancel);
        await Assert.ThrowsAsync<IOException>(() => attempt);
        Assert.Equal(22, hello[0]); // handshake record
        Assert.Equal(1, hello[13]); // client_hello

        using var server = new DtlsPskServer(new IPEndPoint(IPAddress.Loopback, 0), id => id == Identity ? Psk.ToArray() : null, (_, data) => data);
        using var sender = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        sender.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        for (var i = 0; i < 3; i++)
        {
            await sender.SendToAsync(hello.AsMemory(0, n), server.LocalEndPoint, Cancel);
            var answer = new byte[2048];
            var m = await sender.ReceiveAsync(answer, Cancel).AsTask().WaitAsync(Eventually.Deadline, Cancel);
            Assert.True(m > 25);
            Assert.Equal(22, answer[0]);
            Assert.Equal(3, answer[13]); // hello_verify_request
        }

        Assert.Equal(0, server.Peers);
        Assert.Equal(3, server.CookieChallenges);
        Assert.Equal(0, server.Handshakes);

        // A client that returns the cookie is served: challenged first (once, or again for each copy of its first
        // ClientHello that its 1 s retransmission timer sends while the answer is slow), then one handshake.
        using var connection = await Task.Run(() => DtlsPsk.Connect(server.LocalEndPoint, Identity, Psk), Cancel);
        connection.Send("after the cookie"u8);
        Assert.Equal("after the cookie"u8.ToArray(), await Task.Run(() => connection.Receive(Eventually.Deadline), Cancel));
        Assert.True(server.CookieChallenges >= 4);
        Assert.Equal(1, server.Handshakes);
    }

    [Fact]
    public async Task ClientTimeout_IsKept_AgainstASilentServer()
    {
        using var silent = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        silent.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        // Without the timeout the client would go on retransmitting for ever: it gives up (IOException) well within the
        // deadline, instead of the deadline's TimeoutException.
        await Assert.ThrowsAsync<IOException>(() => Task.Run(() => DtlsPsk.Connect((IPEndPoint)silent.LocalEndPoint!, Identity, Psk, TimeSpan.FromSeconds(2)), Cancel).WaitAsync(Eventually.Deadline, Cancel));
    }
}
