using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Org.BouncyCastle.Security;
using Org.BouncyCastle.Tls;
using Org.BouncyCastle.Tls.Crypto.Impl.BC;

namespace OpenBest.Dtls;

/// <summary>
/// DTLS 1.2 with a pre-shared key for the key-agreement-only service (profile section 5): the device uses the
/// K_EAS_PSK its BEST session agreed, under the PSK identity <c>&lt;external id&gt;#&lt;key identifier&gt;</c>; the EAS
/// gets the same key from the HSE. One cipher suite: TLS_PSK_WITH_AES_128_CCM_8 (RFC 6655), as constrained devices use.
/// </summary>
public static class DtlsPsk
{
    /// <summary>The only cipher suite offered and accepted.</summary>
    public const int CipherSuite = Org.BouncyCastle.Tls.CipherSuite.TLS_PSK_WITH_AES_128_CCM_8;

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
            var protocol = new DtlsClientProtocol();
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

    /// <summary>BouncyCastle's own primitives, with the system's random numbers.</summary>
    internal static BcTlsCrypto NewCrypto() => new(new SecureRandom());

    private sealed class Client(TlsPskIdentity identity, int timeoutMillis) : PskTlsClient(NewCrypto(), identity)
    {
        public override int GetHandshakeTimeoutMillis() => timeoutMillis;

        protected override ProtocolVersion[] GetSupportedVersions() => ProtocolVersion.DTLSv12.Only();

        protected override int[] GetSupportedCipherSuites() => [CipherSuite];
    }

    internal sealed class Server(TlsPskIdentityManager keys) : PskTlsServer(NewCrypto(), keys)
    {
        /// <summary>A handshake not done within 10 s is abandoned (and its peer forgotten).</summary>
        public override int GetHandshakeTimeoutMillis() => 10_000;

        protected override ProtocolVersion[] GetSupportedVersions() => ProtocolVersion.DTLSv12.Only();

        protected override int[] GetSupportedCipherSuites() => [CipherSuite];
    }

    /// <summary>A connected UDP socket as BouncyCastle's datagram transport.</summary>
    private sealed class SocketTransport(Socket socket, int handshakeTimeoutMillis) : DatagramTransport
    {
        public int TimeoutMillis => handshakeTimeoutMillis;

        public int GetReceiveLimit() => 1500;

        public int GetSendLimit() => 1400;

        public int Receive(byte[] buf, int off, int len, int waitMillis) => Receive(buf.AsSpan(off, len), waitMillis);

        public int Receive(Span<byte> buffer, int waitMillis)
        {
            if (!socket.Poll(Math.Min(waitMillis, handshakeTimeoutMillis) * 1000, SelectMode.SelectRead))
            {
                return -1;
            }

            return socket.Receive(buffer, SocketFlags.None);
        }

        public void Send(byte[] buf, int off, int len) => Send(buf.AsSpan(off, len));

        public void Send(ReadOnlySpan<byte> buffer) => socket.Send(buffer, SocketFlags.None);

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
/// the handshake). A new source first gets a HelloVerifyRequest cookie (RFC 6347 4.2.1) and costs no state until it
/// returns the cookie from its own address. Each verified peer gets its own
/// association on its own thread; what it receives is handed to the handler, whose answer (if any) is sent back.
/// </summary>
public sealed class DtlsPskServer : IDisposable
{
    private readonly Socket _socket;
    private readonly Func<string, IPEndPoint, byte[]?> _keys;
    private readonly Func<string, byte[], byte[]?> _handler;
    private readonly ConcurrentDictionary<EndPoint, PeerTransport> _peers = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread _dispatcher;
    private readonly DtlsVerifier _verifier = new(DtlsPsk.NewCrypto());
    private long _cookieChallenges;
    private long _handshakes;
    private long _failures;

    /// <summary>Listens on <paramref name="endPoint"/> (port 0: any free one).</summary>
    /// <param name="endPoint">Where to listen.</param>
    /// <param name="keys">The PSK of an identity, or null for an unknown one.</param>
    /// <param name="handler">Called with (identity, record) for each record received; its answer is sent back.</param>
    public DtlsPskServer(IPEndPoint endPoint, Func<string, byte[]?> keys, Func<string, byte[], byte[]?> handler)
        : this(endPoint, (identity, _) => keys(identity), handler)
    {
    }

    /// <summary>Listens on <paramref name="endPoint"/>; the key lookup also gets the peer's address (to limit lookups per source).</summary>
    /// <param name="endPoint">Where to listen.</param>
    /// <param name="keys">The PSK of (identity, peer), or null to refuse.</param>
    /// <param name="handler">Called with (identity, record) for each record received; its answer is sent back.</param>
    public DtlsPskServer(IPEndPoint endPoint, Func<string, IPEndPoint, byte[]?> keys, Func<string, byte[], byte[]?> handler)
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

    /// <summary>ClientHellos answered with a HelloVerifyRequest (no cookie, or not this source's), keeping no state.</summary>
    public long CookieChallenges => Interlocked.Read(ref _cookieChallenges);

    /// <summary>Peers with state: handshakes in progress and associations.</summary>
    public int Peers => _peers.Count;

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

            // RFC 6347 4.2.1: a ClientHello without the cookie of this source gets a HelloVerifyRequest, and the
            // server keeps nothing; only a ClientHello that returns the cookie creates the peer's state.
            var request = _verifier.VerifyRequest(ClientId(from), datagram, 0, n, new PeerSender(_socket, from));
            if (request is null)
            {
                Interlocked.Increment(ref _cookieChallenges);
                return;
            }

            var verified = new PeerTransport(_socket, from);
            _peers[from] = verified;
            new Thread(() => Serve(verified, request)) { IsBackground = true, Name = "dtls-psk-peer" }.Start();
            return; // the verified ClientHello is in the request, not in the peer's queue
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

    private static byte[] ClientId(EndPoint from)
    {
        var ip = (IPEndPoint)from;
        var address = ip.Address.GetAddressBytes();
        var id = new byte[address.Length + 2];
        address.CopyTo(id, 0);
        id[^2] = (byte)(ip.Port >> 8);
        id[^1] = (byte)ip.Port;
        return id;
    }

    private void Serve(PeerTransport transport, DtlsRequest request)
    {
        string? identity = null;
        try
        {
            var protocol = new DtlsServerProtocol();
            var dtls = protocol.Accept(new DtlsPsk.Server(new Keys(this, (IPEndPoint)transport.Remote, name => identity = name)), transport, request);
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

    private sealed class Keys(DtlsPskServer server, IPEndPoint peer, Action<string> seen) : TlsPskIdentityManager
    {
        public byte[] GetHint() => [];

        public byte[]? GetPsk(byte[] identity)
        {
            var name = Encoding.UTF8.GetString(identity);
            seen(name);
            return server._keys(name, peer);
        }
    }

    private sealed class PeerTransport(Socket socket, EndPoint remote) : PeerSender(socket, remote), DatagramTransport
    {

        public BlockingCollection<byte[]> Incoming { get; } = new(256);

        public int GetReceiveLimit() => 1500;

        public int Receive(byte[] buf, int off, int len, int waitMillis) => Receive(buf.AsSpan(off, len), waitMillis);

        public int Receive(Span<byte> buffer, int waitMillis)
        {
            if (!Incoming.TryTake(out var datagram, waitMillis))
            {
                if (Incoming.IsCompleted)
                {
                    throw new IOException("the server stopped");
                }

                return -1;
            }

            var n = Math.Min(buffer.Length, datagram.Length);
            datagram.AsSpan(0, n).CopyTo(buffer);
            return n;
        }

        public void Close()
        {
        }
    }

    /// <summary>Sends to one peer over the server's socket (the HelloVerifyRequest of a peer that has no state yet).</summary>
    private class PeerSender(Socket socket, EndPoint remote) : DatagramSender
    {
        public EndPoint Remote { get; } = remote;

        public int GetSendLimit() => 1400;

        public void Send(byte[] buf, int off, int len) => Send(buf.AsSpan(off, len));

        public void Send(ReadOnlySpan<byte> buffer) => socket.SendTo(buffer, SocketFlags.None, Remote);
    }
}
