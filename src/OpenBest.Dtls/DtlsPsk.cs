using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Org.BouncyCastle.Crypto.Tls;
using Org.BouncyCastle.Security;

namespace OpenBest.Dtls;

/// <summary>
/// DTLS 1.2 with a pre-shared key for the key-agreement-only service (profile section 5): the device uses the
/// K_EAS_PSK its BEST session agreed, under the PSK identity <c>&lt;external id&gt;#&lt;key identifier&gt;</c>; the EAS
/// gets the same key from the HSE. One cipher suite: TLS_PSK_WITH_AES_128_CCM_8 (RFC 6655), as constrained devices use.
/// </summary>
public static class DtlsPsk
{
    /// <summary>The only cipher suite offered and accepted.</summary>
    public const int CipherSuite = Org.BouncyCastle.Crypto.Tls.CipherSuite.TLS_PSK_WITH_AES_128_CCM_8;

    /// <summary>The OpenSSL name of <see cref="CipherSuite"/>.</summary>
    public const string OpenSslCipher = "PSK-AES128-CCM8";

    /// <summary>Connects to a DTLS-PSK server (the handshake includes its HelloVerifyRequest cookie, if any).</summary>
    /// <exception cref="IOException">The handshake failed or timed out (wrong key, no server).</exception>
    public static DtlsPskConnection Connect(IPEndPoint server, string identity, ReadOnlySpan<byte> psk, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(server);
        var socket = new Socket(server.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        socket.Connect(server);
        var transport = new SocketTransport(socket, (int)(timeout ?? TimeSpan.FromSeconds(10)).TotalMilliseconds);
        var key = psk.ToArray();
        try
        {
            var protocol = new DtlsClientProtocol(new SecureRandom());
            var dtls = protocol.Connect(new Client(new BasicTlsPskIdentity(identity, key), transport.TimeoutMillis), transport);
            return new DtlsPskConnection(dtls, socket);
        }
        catch (Exception e) when (e is TlsFatalAlert or TlsException or IOException or SocketException)
        {
            socket.Dispose();
            throw new IOException($"DTLS-PSK handshake with {server} failed ({e.GetType().Name}: {e.Message})", e);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    private sealed class Client(TlsPskIdentity identity, int timeoutMillis) : PskTlsClient(identity)
    {
        public override int GetHandshakeTimeoutMillis() => timeoutMillis;

        public override ProtocolVersion MinimumVersion => ProtocolVersion.DTLSv12;

        public override ProtocolVersion ClientVersion => ProtocolVersion.DTLSv12;

        public override int[] GetCipherSuites() => [CipherSuite];
    }

    internal sealed class Server(TlsPskIdentityManager keys) : PskTlsServer(keys)
    {
        /// <summary>A handshake not done within 10 s is abandoned (and its peer forgotten).</summary>
        public override int GetHandshakeTimeoutMillis() => 10_000;

        protected override ProtocolVersion MinimumVersion => ProtocolVersion.DTLSv12;

        protected override ProtocolVersion MaximumVersion => ProtocolVersion.DTLSv12;

        protected override int[] GetCipherSuites() => [CipherSuite];
    }

    /// <summary>A connected UDP socket as BouncyCastle's datagram transport.</summary>
    private sealed class SocketTransport(Socket socket, int handshakeTimeoutMillis) : DatagramTransport
    {
        public int TimeoutMillis => handshakeTimeoutMillis;

        public int GetReceiveLimit() => 1500;

        public int GetSendLimit() => 1400;

        public int Receive(byte[] buf, int off, int len, int waitMillis)
        {
            if (!socket.Poll(Math.Min(waitMillis, handshakeTimeoutMillis) * 1000, SelectMode.SelectRead))
            {
                return -1;
            }

            return socket.Receive(buf, off, len, SocketFlags.None);
        }

        public void Send(byte[] buf, int off, int len) => socket.Send(buf, off, len, SocketFlags.None);

        public void Close()
        {
        }
    }
}

/// <summary>An established DTLS-PSK association: application data in records of one datagram each.</summary>
public sealed class DtlsPskConnection : IDisposable
{
    private readonly DtlsTransport _dtls;
    private readonly IDisposable? _owned;

    internal DtlsPskConnection(DtlsTransport dtls, IDisposable? owned)
    {
        _dtls = dtls;
        _owned = owned;
    }

    /// <summary>Sends one record.</summary>
    public void Send(ReadOnlySpan<byte> data)
    {
        var buffer = data.ToArray();
        _dtls.Send(buffer, 0, buffer.Length);
    }

    /// <summary>Receives one record, or null when nothing came within <paramref name="timeout"/>.</summary>
    public byte[]? Receive(TimeSpan timeout)
    {
        var buffer = new byte[2048];
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            var n = _dtls.Receive(buffer, 0, buffer.Length, (int)Math.Max(1, (deadline - DateTime.UtcNow).TotalMilliseconds));
            if (n >= 0)
            {
                return buffer[..n];
            }
        }

        return null;
    }

    /// <summary>Sends close_notify and closes.</summary>
    public void Dispose()
    {
        try
        {
            _dtls.Close();
        }
        catch (IOException)
        {
        }

        _owned?.Dispose();
    }
}

/// <summary>
/// A DTLS-PSK server on one UDP port: the PSK named by the client's identity is looked up by <c>keys</c> (null refuses
/// the handshake). BouncyCastle 1.8.10's DTLS server does not send HelloVerifyRequest cookies (its VerifyRequests
/// switch has no effect in that version), so this server keeps per-peer state from the first ClientHello; see
/// docs/protocol.md. Each peer gets its own
/// association on its own thread; what it receives is handed to the handler, whose answer (if any) is sent back.
/// </summary>
public sealed class DtlsPskServer : IDisposable
{
    private readonly Socket _socket;
    private readonly Func<string, byte[]?> _keys;
    private readonly Func<string, byte[], byte[]?> _handler;
    private readonly ConcurrentDictionary<EndPoint, PeerTransport> _peers = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _dispatcher;
    private long _handshakes;
    private long _failures;

    /// <summary>Listens on <paramref name="endPoint"/> (port 0: any free one).</summary>
    /// <param name="endPoint">Where to listen.</param>
    /// <param name="keys">The PSK of an identity, or null for an unknown one.</param>
    /// <param name="handler">Called with (identity, record) for each record received; its answer is sent back.</param>
    public DtlsPskServer(IPEndPoint endPoint, Func<string, byte[]?> keys, Func<string, byte[], byte[]?> handler)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        _keys = keys;
        _handler = handler;
        _socket = new Socket(endPoint.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        _socket.Bind(endPoint);
        _dispatcher = new Thread(Dispatch) { IsBackground = true, Name = "dtls-psk-server" };
        _dispatcher.Start();
    }

    /// <summary>Associations (and handshakes) at most at once (256).</summary>
    public const int MaxPeers = 256;

    /// <summary>The address it listens on.</summary>
    public IPEndPoint LocalEndPoint => (IPEndPoint)_socket.LocalEndPoint!;

    /// <summary>Handshakes completed.</summary>
    public long Handshakes => Interlocked.Read(ref _handshakes);

    /// <summary>Handshakes refused or failed (unknown identity, wrong key, no cookie).</summary>
    public long Failures => Interlocked.Read(ref _failures);

    /// <summary>Stops listening.</summary>
    public void Dispose()
    {
        _stop.Cancel();
        _socket.Dispose();
        foreach (var peer in _peers.Values)
        {
            peer.Incoming.CompleteAdding();
        }

        _dispatcher.Join(TimeSpan.FromSeconds(2));
        _stop.Dispose();
    }

    private void Dispatch()
    {
        var buffer = new byte[2048];
        while (!_stop.IsCancellationRequested)
        {
            EndPoint from = new IPEndPoint(_socket.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0);
            int n;
            try
            {
                n = _socket.ReceiveFrom(buffer, ref from);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                if (_stop.IsCancellationRequested)
                {
                    return;
                }

                continue;
            }

            try
            {
                Route(from, buffer[..n]);
            }
            catch (Exception)
            {
                // The dispatcher never stops for one datagram (a thread that could not start, a full queue).
                Interlocked.Increment(ref _failures);
            }
        }
    }

    private void Route(EndPoint from, byte[] datagram)
    {
        var n = datagram.Length;
        if (!_peers.TryGetValue(from, out var peer))
        {
            // A new peer only with a ClientHello (record type 22, handshake type 1), and at most MaxPeers at once:
            // anything else from an unknown source costs nothing.
            if (n < 26 || datagram[0] != 22 || datagram[13] != 1 || _peers.Count >= MaxPeers)
            {
                Interlocked.Increment(ref _failures);
                return;
            }

            peer = new PeerTransport(_socket, from);
            _peers[from] = peer;
            new Thread(() => Serve(peer)) { IsBackground = true, Name = "dtls-psk-peer" }.Start();
        }

        try
        {
            peer.Incoming.TryAdd(datagram);
        }
        catch (InvalidOperationException)
        {
            // The peer's association just ended: the datagram is dropped.
        }
    }

    private void Serve(PeerTransport transport)
    {
        string? identity = null;
        try
        {
            var protocol = new DtlsServerProtocol(new SecureRandom());
            var dtls = protocol.Accept(new DtlsPsk.Server(new Keys(this, name => identity = name)), transport);
            Interlocked.Increment(ref _handshakes);
            var buffer = new byte[2048];
            while (!_stop.IsCancellationRequested)
            {
                var n = dtls.Receive(buffer, 0, buffer.Length, 60_000);
                if (n < 0)
                {
                    break; // idle
                }

                if (_handler(identity ?? string.Empty, buffer[..n]) is { } answer)
                {
                    dtls.Send(answer, 0, answer.Length);
                }
            }

            dtls.Close();
        }
        catch (Exception)
        {
            // Whatever a peer or the handler does ends only that association, never the server.
            Interlocked.Increment(ref _failures);
        }
        finally
        {
            _peers.TryRemove(transport.Remote, out _);
            transport.Incoming.CompleteAdding();
        }
    }

    private sealed class Keys(DtlsPskServer server, Action<string> seen) : TlsPskIdentityManager
    {
        public byte[] GetHint() => [];

        public byte[]? GetPsk(byte[] identity)
        {
            var name = Encoding.UTF8.GetString(identity);
            seen(name);
            return server._keys(name);
        }
    }

    private sealed class PeerTransport(Socket socket, EndPoint remote) : DatagramTransport
    {
        public EndPoint Remote { get; } = remote;

        public BlockingCollection<byte[]> Incoming { get; } = new(256);

        public int GetReceiveLimit() => 1500;

        public int GetSendLimit() => 1400;

        public int Receive(byte[] buf, int off, int len, int waitMillis)
        {
            if (!Incoming.TryTake(out var datagram, waitMillis))
            {
                if (Incoming.IsCompleted)
                {
                    throw new IOException("the server stopped");
                }

                return -1;
            }

            var n = Math.Min(len, datagram.Length);
            Array.Copy(datagram, 0, buf, off, n);
            return n;
        }

        public void Send(byte[] buf, int off, int len) => socket.SendTo(buf, off, len, SocketFlags.None, Remote);

        public void Close()
        {
        }
    }
}
