using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using OpenBest.Protocol;

namespace OpenBest.Bearers;

/// <summary>
/// EMSDP over TCP (profile section 1): each message preceded by its 2-octet big-endian length. As a
/// listener it accepts many connections (each one a path; several sessions may share one); as a client
/// it holds one connection. A zero length closes the connection; when a connection closes, its sessions
/// wait for the UE to send again.
/// </summary>
public sealed class TcpBearer : IBearer
{
    /// <summary>The default largest frame accepted: a larger declared length closes the connection.</summary>
    public const int DefaultMaxFrame = 4096;

    /// <summary>The default cap on open connections of a listener.</summary>
    public const int DefaultMaxConnections = 10_000;

    private const int SendQueue = 256;
    private readonly Socket? _listener;
    private readonly Channel<ReceivedMessage> _received;
    private readonly int _maxFrame;
    private readonly int _maxConnections;
    private readonly TimeSpan _idleTimeout;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _loops = [];
    private readonly Lock _gate = new();
    private readonly List<Connection> _connections = [];
    private long _dropped;

    private TcpBearer(Socket? listener, int queue, int maxFrame = DefaultMaxFrame, int maxConnections = DefaultMaxConnections, TimeSpan? idleTimeout = null)
    {
        _listener = listener;
        _maxFrame = maxFrame;
        _maxConnections = maxConnections;
        _idleTimeout = idleTimeout ?? TimeSpan.FromMinutes(10);
        _received = Channel.CreateBounded<ReceivedMessage>(new BoundedChannelOptions(queue) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true },
            _ => Interlocked.Increment(ref _dropped));
    }

    /// <inheritdoc/>
    public ChannelReader<ReceivedMessage> Received => _received.Reader;

    /// <inheritdoc/>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>The listening endpoint (listeners only).</summary>
    public IPEndPoint? LocalEndPoint => (IPEndPoint?)_listener?.LocalEndPoint;

    /// <summary>The client's connection to its server (clients only).</summary>
    public BearerPath? ServerPath { get; private set; }

    /// <summary>Listens on <paramref name="endPoint"/>; a connection idle for <paramref name="idleTimeout"/> (default 10 min) is closed.</summary>
    public static TcpBearer Listen(IPEndPoint endPoint, int queue = 4096, TimeSpan? idleTimeout = null)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            socket.Bind(endPoint);
            socket.Listen(512);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var bearer = new TcpBearer(socket, queue, idleTimeout: idleTimeout);
        bearer._loops.Add(Task.Run(bearer.AcceptLoopAsync));
        return bearer;
    }

    /// <summary>Connects to a listener at <paramref name="remote"/>.</summary>
    public static async Task<TcpBearer> ConnectAsync(IPEndPoint remote, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(remote);
        var socket = new Socket(remote.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(remote, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var bearer = new TcpBearer(null, 4096);
        bearer.ServerPath = bearer.Start(socket);
        return bearer;
    }

    /// <inheritdoc/>
    public ValueTask SendAsync(ReadOnlyMemory<byte> message, BearerPath path, CancellationToken cancellationToken = default)
    {
        if (path is not Connection connection || !ReferenceEquals(connection.Bearer, this))
        {
            throw new ArgumentException("The path belongs to another bearer.", nameof(path));
        }

        // Never wait on the network here: the connection's writer sends; a peer that does not read fills its
        // own bounded queue and loses messages, nobody else's.
        var framed = new byte[message.Length + 2];
        StreamFraming.Write(message.Span, framed);
        if (!connection.Outgoing.Writer.TryWrite(framed))
        {
            CountDrop(); // the connection is closing
        }

        return ValueTask.CompletedTask;
    }

    /// <inheritdoc/>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener?.Dispose();
        lock (_gate)
        {
            foreach (var connection in _connections)
            {
                connection.Socket.Dispose();
            }
        }

        Task[] loops;
        lock (_gate)
        {
            loops = [.. _loops, .. _connections.SelectMany(c => new[] { c.Reader, c.Writer }).OfType<Task>()];
        }

        try
        {
            await Task.WhenAll(loops).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }

        _received.Writer.TryComplete();
        _stop.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener!.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException)
            {
                // Out of descriptors, a reset during the handshake: pause and keep listening.
                try
                {
                    await Task.Delay(100, _stop.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                continue;
            }

            int open;
            lock (_gate)
            {
                open = _connections.Count;
            }

            if (open >= _maxConnections)
            {
                Interlocked.Increment(ref _dropped);
                socket.Dispose();
                continue;
            }

            socket.NoDelay = true;
            Start(socket);
        }
    }

    private Connection Start(Socket socket)
    {
        var connection = new Connection(this, socket);
        lock (_gate)
        {
            _connections.Add(connection);
        }

        connection.Reader = Task.Run(() => ReadLoopAsync(connection));
        connection.Writer = Task.Run(() => WriteLoopAsync(connection));
        return connection;
    }

    private async Task WriteLoopAsync(Connection connection)
    {
        try
        {
            await foreach (var framed in connection.Outgoing.Reader.ReadAllAsync(_stop.Token).ConfigureAwait(false))
            {
                await connection.Socket.SendAsync(framed, SocketFlags.None, _stop.Token).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private async Task ReadLoopAsync(Connection connection)
    {
        var reader = PipeReader.Create(new NetworkStream(connection.Socket, ownsSocket: false));
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                // A connection that sends nothing for the idle time is closed (clients reconnect when they send).
                idle.CancelAfter(_idleTimeout);
                var read = await reader.ReadAsync(idle.Token).ConfigureAwait(false);
                var buffer = read.Buffer;
                if (buffer.Length >= 2 && DeclaredLength(buffer) > _maxFrame)
                {
                    // Refuse before buffering: a declared length beyond the limit closes the connection.
                    Interlocked.Increment(ref _dropped);
                    return;
                }

                FrameStatus status;
                while ((status = StreamFraming.TryRead(ref buffer, out var message)) == FrameStatus.Ok)
                {
                    _received.Writer.TryWrite(new ReceivedMessage(message.ToArray(), connection));
                    if (buffer.Length >= 2 && DeclaredLength(buffer) > _maxFrame)
                    {
                        Interlocked.Increment(ref _dropped);
                        return;
                    }
                }

                reader.AdvanceTo(buffer.Start, buffer.End);
                if (status == FrameStatus.Invalid || read.IsCompleted)
                {
                    if (status == FrameStatus.Invalid)
                    {
                        Interlocked.Increment(ref _dropped);
                    }

                    return;
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
        {
        }
        finally
        {
            await reader.CompleteAsync().ConfigureAwait(false);
            connection.Outgoing.Writer.TryComplete();
            connection.Socket.Dispose();
            lock (_gate)
            {
                _connections.Remove(connection);
            }
        }
    }

    private void CountDrop() => Interlocked.Increment(ref _dropped);

    private static int DeclaredLength(System.Buffers.ReadOnlySequence<byte> buffer)
    {
        Span<byte> prefix = stackalloc byte[2];
        buffer.Slice(0, 2).CopyTo(prefix);
        return (prefix[0] << 8) | prefix[1];
    }

    private sealed class Connection(TcpBearer bearer, Socket socket) : BearerPath
    {
        public override IBearer Bearer => bearer;

        public Socket Socket { get; } = socket;

        // Taken when the connection is accepted: the socket may be closed by the time a limit asks.
        public override string Source { get; } = socket.RemoteEndPoint is IPEndPoint remote ? Protocol.PeerSource.Of(remote.Address) : "unknown";

        public Channel<byte[]> Outgoing { get; } = Channel.CreateBounded<byte[]>(
            new BoundedChannelOptions(SendQueue) { SingleReader = true, FullMode = BoundedChannelFullMode.DropWrite },
            _ => bearer.CountDrop());

        public Task? Reader { get; set; }

        public Task? Writer { get; set; }

        public override string ToString()
        {
            try
            {
                return $"tcp:{Socket.RemoteEndPoint}";
            }
            catch (ObjectDisposedException)
            {
                return "tcp:closed";
            }
        }
    }
}
