using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;

namespace OpenBest.Bearers;

/// <summary>
/// EMSDP over UDP (profile section 1): one message per datagram, default port 3163, datagrams over
/// 1280 octets dropped unless configured otherwise.
/// </summary>
public sealed class UdpBearer : IBearer
{
    /// <summary>The default EMSDP port.</summary>
    public const int DefaultPort = 3163;

    /// <summary>The default largest datagram accepted (profile section 1).</summary>
    public const int DefaultMaxDatagram = 1280;

    /// <summary>The socket buffers a server asks for: 4 MB.</summary>
    public const int ServerSocketBuffer = 4 << 20;

    private readonly Socket _socket;
    private readonly Channel<ReceivedMessage> _received;
    private readonly int _maxDatagram;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _receiveLoop;
    private long _dropped;

    private readonly DatagramBatch? _sendBatch;
    private readonly Lock _sendGate = new();

    private UdpBearer(Socket socket, int maxDatagram, int queue, bool batched)
    {
        _socket = socket;
        _maxDatagram = maxDatagram;
        _received = Channel.CreateBounded<ReceivedMessage>(new BoundedChannelOptions(queue) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true },
            _ => Interlocked.Increment(ref _dropped));
        if (batched)
        {
            // A server on Linux: a thread of its own takes up to 64 datagrams per system call (recvmmsg), and SendMany sends
            // a host's answers in one (sendmmsg). The socket blocks; its receive timeout lets the thread see a stop.
            _socket.Blocking = true;
            _socket.ReceiveTimeout = 250;
            _sendBatch = new DatagramBatch(64, Math.Max(maxDatagram, 2048));
            var thread = new Thread(ReceiveLoopBatched) { IsBackground = true, Name = "udp-bearer " + socket.LocalEndPoint };
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _receiveLoop = done.Task;
            thread.Start(done);
        }
        else
        {
            _receiveLoop = Task.Run(ReceiveLoopAsync);
        }
    }

    /// <summary>Whether this bearer receives and sends in batches (recvmmsg/sendmmsg: a server bearer on Linux).</summary>
    public bool IsBatched => _sendBatch is not null;

    /// <summary>The local endpoint (with the port the system chose when bound to 0).</summary>
    public IPEndPoint LocalEndPoint => (IPEndPoint)_socket.LocalEndPoint!;

    /// <inheritdoc/>
    public ChannelReader<ReceivedMessage> Received => _received.Reader;

    /// <inheritdoc/>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Binds to <paramref name="endPoint"/> (loopback by default in the hosts).</summary>
    /// <param name="endPoint">The local address and port; port 0 picks a free one.</param>
    /// <param name="maxDatagram">Larger datagrams are dropped and counted (default 1280).</param>
    /// <param name="queue">Received messages held at most before the oldest is dropped (default 4096).</param>
    /// <param name="socketBuffer">The kernel's receive and send buffers in octets (0: the system default). A server
    /// that takes bursts from many devices wants several MB (Linux caps it at net.core.rmem_max). A bearer with server
    /// buffers also receives and sends in batches where the platform can (<see cref="IsBatched"/>).</param>
    public static UdpBearer Bind(IPEndPoint endPoint, int maxDatagram = DefaultMaxDatagram, int queue = 4096, int socketBuffer = 0)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        var socket = new Socket(endPoint.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        try
        {
            if (socketBuffer > 0)
            {
                socket.ReceiveBufferSize = socketBuffer;
                socket.SendBufferSize = socketBuffer;
            }

            socket.Bind(endPoint);
            return new UdpBearer(socket, maxDatagram, queue, batched: socketBuffer > 0 && DatagramBatch.IsSupported);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>The path of a remote address on this bearer.</summary>
    public BearerPath PathTo(IPEndPoint remote) => new UdpPath(this, remote);

    /// <inheritdoc/>
    public ValueTask SendAsync(ReadOnlyMemory<byte> message, BearerPath path, CancellationToken cancellationToken = default)
    {
        if (path is not UdpPath udp || !ReferenceEquals(udp.Bearer, this))
        {
            throw new ArgumentException("The path belongs to another bearer.", nameof(path));
        }

        if (_sendBatch is not null)
        {
            // A blocking socket: a datagram send completes at once (or the kernel drops it on a full buffer).
            try
            {
                _socket.SendTo(message.Span, SocketFlags.None, udp.Address);
            }
            catch (SocketException)
            {
                Interlocked.Increment(ref _dropped);
            }

            return ValueTask.CompletedTask;
        }

        // To the serialised address: no endpoint is encoded again for each datagram.
        return Sent(_socket.SendToAsync(message, SocketFlags.None, udp.Address, cancellationToken));
    }

    /// <summary>
    /// Sends several datagrams, each to its path, in as few system calls as the platform allows (sendmmsg on a batched
    /// bearer; one by one elsewhere). Datagrams the kernel does not take are counted as dropped, as on a network.
    /// </summary>
    public async ValueTask SendManyAsync(IReadOnlyList<(ReadOnlyMemory<byte> Message, BearerPath Path)> datagrams, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(datagrams);
        if (_sendBatch is null)
        {
            foreach (var (message, path) in datagrams)
            {
                await SendAsync(message, path, cancellationToken).ConfigureAwait(false);
            }

            return;
        }

        lock (_sendGate)
        {
            foreach (var (message, path) in datagrams)
            {
                if (path is not UdpPath udp || !ReferenceEquals(udp.Bearer, this))
                {
                    throw new ArgumentException("A path belongs to another bearer.", nameof(datagrams));
                }

                if (!_sendBatch.TryAdd(message.Span, udp.Address))
                {
                    Flush();
                    if (!_sendBatch.TryAdd(message.Span, udp.Address))
                    {
                        Interlocked.Increment(ref _dropped); // longer than any datagram this bearer sends
                    }
                }
            }

            Flush();
        }

        void Flush()
        {
            var count = _sendBatch.Count;
            var sent = _sendBatch.Send(_socket);
            if (sent < count)
            {
                Interlocked.Add(ref _dropped, count - sent);
            }
        }
    }

    /// <summary>A datagram send that completed at once (the usual case) costs no state machine.</summary>
    private static ValueTask Sent(ValueTask<int> send)
    {
        if (send.IsCompletedSuccessfully)
        {
            _ = send.Result;
            return ValueTask.CompletedTask;
        }

        return Awaited(send);

        static async ValueTask Awaited(ValueTask<int> pending) => await pending.ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        if (_sendBatch is not null)
        {
            try
            {
                // Wakes the receive thread at once (Linux shuts an unconnected UDP socket down and says ENOTCONN).
                _socket.Shutdown(SocketShutdown.Both);
            }
            catch (SocketException)
            {
            }

            await _receiveLoop.ConfigureAwait(false);
            lock (_sendGate)
            {
                _sendBatch.Dispose();
            }
        }

        _socket.Dispose();
        try
        {
            await _receiveLoop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        _stop.Dispose();
        _received.Writer.TryComplete();
    }

    private async Task ReceiveLoopAsync()
    {
        var buffer = GC.AllocateUninitializedArray<byte>(65536, pinned: true);
        var from = new SocketAddress(_socket.AddressFamily);
        // The path of each recent source, so a datagram costs no endpoint and no path object of its own (bounded: cleared
        // when full; a path is only an address, and an evicted one is made again).
        var paths = new Dictionary<SocketAddress, UdpPath>();
        while (!_stop.IsCancellationRequested)
        {
            int length;
            try
            {
                length = await _socket.ReceiveFromAsync(buffer, SocketFlags.None, from, _stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException)
            {
                // ICMP port unreachable from an earlier send, and the like: not fatal for a datagram listener.
                continue;
            }

            if (length == 0 || length > _maxDatagram)
            {
                Interlocked.Increment(ref _dropped);
                continue;
            }

            if (!paths.TryGetValue(from, out var path))
            {
                if (paths.Count >= MaxCachedPaths)
                {
                    paths.Clear();
                }

                path = new UdpPath(this, (IPEndPoint)new IPEndPoint(_socket.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0).Create(from));
                paths[path.Address] = path;
            }

            var message = buffer.AsSpan(0, length).ToArray();
            _received.Writer.TryWrite(new ReceivedMessage(message, path));
        }
    }

    private void ReceiveLoopBatched(object? done)
    {
        using var batch = new DatagramBatch(64, _maxDatagram + 1);
        var from = new SocketAddress(_socket.AddressFamily);
        var paths = new Dictionary<SocketAddress, UdpPath>();
        var any = new IPEndPoint(_socket.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0);
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                int count;
                try
                {
                    count = batch.Receive(_socket);
                }
                catch (SocketException)
                {
                    // ICMP port unreachable from an earlier send, and the like: not fatal for a datagram listener.
                    continue;
                }

                for (var i = 0; i < count; i++)
                {
                    var datagram = batch.Datagram(i);
                    if (datagram.Length == 0 || datagram.Length > _maxDatagram || batch.Truncated(i))
                    {
                        Interlocked.Increment(ref _dropped);
                        continue;
                    }

                    batch.Address(i, from);
                    if (!paths.TryGetValue(from, out var path))
                    {
                        if (paths.Count >= MaxCachedPaths)
                        {
                            paths.Clear();
                        }

                        path = new UdpPath(this, (IPEndPoint)any.Create(from));
                        paths[path.Address] = path;
                    }

                    _received.Writer.TryWrite(new ReceivedMessage(datagram.ToArray(), path));
                }
            }
        }
        catch (ObjectDisposedException)
        {
        }
        finally
        {
            ((TaskCompletionSource)done!).TrySetResult();
        }
    }

    private const int MaxCachedPaths = 65_536;

    private sealed class UdpPath(UdpBearer bearer, IPEndPoint remote) : BearerPath
    {
        public override IBearer Bearer => bearer;

        public IPEndPoint Remote { get; } = remote;

        /// <summary>The remote address serialised once, for sends and as the cache key.</summary>
        public SocketAddress Address { get; } = remote.Serialize();

        public override string Source => field ??= Protocol.PeerSource.Of(Remote.Address); // one sender over UDP and TCP alike

        public override bool Equals(object? obj) => obj is UdpPath other && ReferenceEquals(other.Bearer, Bearer) && other.Remote.Equals(Remote);

        public override int GetHashCode() => Remote.GetHashCode();

        public override string ToString() => $"udp:{Remote}";
    }
}
