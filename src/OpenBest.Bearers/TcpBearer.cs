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
    private readonly Socket? _listener;
    private readonly Channel<ReceivedMessage> _received;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _loops = [];
    private readonly Lock _gate = new();
    private readonly List<Connection> _connections = [];
    private long _dropped;

    private TcpBearer(Socket? listener, int queue)
    {
        _listener = listener;
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

    /// <summary>Listens on <paramref name="endPoint"/>.</summary>
    public static TcpBearer Listen(IPEndPoint endPoint, int queue = 4096)
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

        var bearer = new TcpBearer(socket, queue);
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
    public async ValueTask SendAsync(ReadOnlyMemory<byte> message, BearerPath path, CancellationToken cancellationToken = default)
    {
        if (path is not Connection connection || !ReferenceEquals(connection.Bearer, this))
        {
            throw new ArgumentException("The path belongs to another bearer.", nameof(path));
        }

        var framed = new byte[message.Length + 2];
        StreamFraming.Write(message.Span, framed);
        await connection.SendLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await connection.Socket.SendAsync(framed, SocketFlags.None, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            Interlocked.Increment(ref _dropped); // the connection is gone; the session waits for the UE
        }
        finally
        {
            connection.SendLock.Release();
        }
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
            loops = [.. _loops];
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
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
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
            _loops.Add(Task.Run(() => ReadLoopAsync(connection)));
        }

        return connection;
    }

    private async Task ReadLoopAsync(Connection connection)
    {
        var reader = PipeReader.Create(new NetworkStream(connection.Socket, ownsSocket: false));
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var read = await reader.ReadAsync(_stop.Token).ConfigureAwait(false);
                var buffer = read.Buffer;
                FrameStatus status;
                while ((status = StreamFraming.TryRead(ref buffer, out var message)) == FrameStatus.Ok)
                {
                    _received.Writer.TryWrite(new ReceivedMessage(message.ToArray(), connection));
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
            connection.Socket.Dispose();
            lock (_gate)
            {
                _connections.Remove(connection);
            }
        }
    }

    private sealed class Connection(TcpBearer bearer, Socket socket) : BearerPath
    {
        public override IBearer Bearer => bearer;

        public Socket Socket { get; } = socket;

        public SemaphoreSlim SendLock { get; } = new(1, 1);

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
