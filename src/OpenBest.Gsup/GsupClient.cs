using System.Buffers;
using System.Net.Sockets;
using System.Security.Cryptography;

namespace OpenBest.Gsup;

/// <summary>
/// A received GSUP answer: the message octets, owned by this object and zeroed by <see cref="Dispose"/> (an answer to
/// SEND AUTHENTICATION INFO carries CK, IK and RES).
/// </summary>
public sealed class GsupAnswer : IDisposable
{
    private readonly byte[] _message;

    internal GsupAnswer(byte[] message)
    {
        _message = message;
    }

    /// <summary>The message type (a result or an error of the request's procedure).</summary>
    public byte Type => _message[0];

    /// <summary>The whole GSUP message, message type first.</summary>
    public ReadOnlyMemory<byte> Message => _message;

    /// <summary>Zeroes the message.</summary>
    public void Dispose() => CryptographicOperations.ZeroMemory(_message);

    /// <summary>Never shows the content.</summary>
    public override string ToString() => $"GsupAnswer(0x{Type:x2}, {_message.Length} octets)";
}

/// <summary>
/// A GSUP client over one TCP connection to an HLR (GSUP specification, "Connection" and "Using IPA"), reconnecting
/// with back-off whenever it is lost. It answers the server's IPA ID_GET with its unit name and PING with PONG.
/// </summary>
/// <remarks>
/// GSUP has no transaction identifier: an answer names the IMSI and, by its type, the procedure. Answers are matched to
/// requests by (IMSI, procedure) in the order the requests were sent, which is right because an HLR handles one
/// connection's requests in order. A request that times out therefore resets the connection (its answer, if it ever
/// came, would be taken for the next request's), failing the requests in flight with a <see cref="GsupException"/>;
/// one cancelled by its caller leaves a placeholder that swallows its answer. While the HLR is down a request fails at
/// once rather than wait; the client keeps trying in the background. Thread-safe.
/// </remarks>
public sealed class GsupClient : IAsyncDisposable, IDisposable
{
    private readonly GsupClientOptions _options;
    private readonly IpaIdentity _identity;
    private readonly SemaphoreSlim _slots;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _gate = new();
    private readonly Task _loop;
    private TaskCompletionSource<Connection> _ready = NewAttempt();
    private Connection? _connection;
    private string? _lastError;
    private long _connects;
    private long _timeouts;
    private long _malformed;
    private int _disposed;

    /// <summary>Creates the client and starts connecting in the background.</summary>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    public GsupClient(GsupClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _identity = new IpaIdentity(options.UnitName);
        _slots = new SemaphoreSlim(options.MaxInFlight, options.MaxInFlight);
        _loop = Task.Run(RunAsync);
    }

    /// <summary>The HLR's address.</summary>
    public GsupEndpoint Endpoint => _options.Endpoint;

    /// <summary>Whether a connection is up and identified.</summary>
    public bool IsConnected => Volatile.Read(ref _connection) is not null;

    /// <summary>Why the last connection attempt failed or the last connection ended, or null while connected.</summary>
    public string? LastError
    {
        get
        {
            lock (_gate)
            {
                return _lastError;
            }
        }
    }

    /// <summary>Connections established so far.</summary>
    public long Connects => Interlocked.Read(ref _connects);

    /// <summary>Requests that timed out (each reset its connection).</summary>
    public long Timeouts => Interlocked.Read(ref _timeouts);

    /// <summary>Received GSUP messages that could not be read or matched, and were dropped.</summary>
    public long Malformed => Interlocked.Read(ref _malformed);

    /// <summary>Waits until a connection is up; false if none came within <paramref name="timeout"/>.</summary>
    public async Task<bool> WaitConnectedAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        using var limit = new CancellationTokenSource(timeout, _options.Time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(limit.Token, cancellationToken);
        while (!linked.IsCancellationRequested)
        {
            Task<Connection> ready;
            lock (_gate)
            {
                ready = _ready.Task;
            }

            try
            {
                await ready.WaitAsync(linked.Token).ConfigureAwait(false);
                return true;
            }
            catch (GsupException)
            {
                // A failed attempt: wait for the next one.
                await Task.Delay(TimeSpan.FromMilliseconds(20), _options.Time, linked.Token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
            catch (OperationCanceledException) when (limit.IsCancellationRequested)
            {
                break;
            }
        }

        cancellationToken.ThrowIfCancellationRequested();
        return false;
    }

    /// <summary>Sends SEND AUTHENTICATION INFO REQUEST and returns the HLR's result or error.</summary>
    /// <exception cref="GsupException">No connection, no answer within <see cref="GsupClientOptions.RequestTimeout"/>, or the connection was lost.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public Task<GsupAnswer> SendAuthInfoAsync(SendAuthInfoRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        return RequestAsync(request.Encode(), cancellationToken);
    }

    /// <summary>
    /// Sends a GSUP request (message type first; it must name an IMSI) and returns the answer of its procedure: the
    /// result or the error, matched by IMSI and message type. The caller disposes the answer.
    /// </summary>
    /// <exception cref="ArgumentException">The message is not a request with a valid IMSI.</exception>
    /// <exception cref="GsupException">No connection, no answer within <see cref="GsupClientOptions.RequestTimeout"/>, or the connection was lost.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    /// <exception cref="ObjectDisposedException">The client was disposed.</exception>
    public async Task<GsupAnswer> RequestAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        if (!GsupMessage.TryReadHeader(message.Span, out var type, out var imsi) || !GsupMessageTypes.IsRequest(type) || imsi is null)
        {
            throw new ArgumentException("A GSUP request starts with a request message type and names a valid IMSI.", nameof(message));
        }

        if (message.Length > _options.MaxFrameLength - 1)
        {
            throw new ArgumentException($"The request has {message.Length} octets; the frame limit is {_options.MaxFrameLength}.", nameof(message));
        }

        var frame = IpaFraming.EncodeOsmo(IpaOsmoExtension.Gsup, message.Span);
        var timeout = _options.RequestTimeout;
        using var limit = new CancellationTokenSource(timeout, _options.Time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(limit.Token, cancellationToken, _stop.Token);
        var token = linked.Token;
        try
        {
            await _slots.WaitAsync(token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (limit.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new GsupException($"{_options.MaxInFlight} requests to the HLR at {Endpoint} were in flight and none finished within {Seconds(timeout)}: raise GsupClientOptions.MaxInFlight or look at the HLR.");
        }

        Connection? connection = null;
        try
        {
            Task<Connection> ready;
            lock (_gate)
            {
                ready = _ready.Task;
            }

            connection = await ready.WaitAsync(token).ConfigureAwait(false);
            Pending? pending = null;
            try
            {
                pending = await connection.SendRequestAsync(imsi, GsupMessageTypes.RequestOf(type), frame, token).ConfigureAwait(false);
                return new GsupAnswer(await pending.Answer.Task.WaitAsync(token).ConfigureAwait(false));
            }
            catch (OperationCanceledException) when (limit.IsCancellationRequested && !cancellationToken.IsCancellationRequested && !_stop.IsCancellationRequested)
            {
                Interlocked.Increment(ref _timeouts);
                connection.Close($"a request had no answer within {Seconds(timeout)}");
                throw new GsupException($"No answer from the HLR at {Endpoint} within {Seconds(timeout)}; the connection is reset.");
            }
            catch (OperationCanceledException)
            {
                // Sent: a placeholder swallows the answer when it comes. Not sent: nothing was registered.
                if (pending is not null)
                {
                    connection.Abandon(pending);
                }

                throw;
            }
        }
        catch (OperationCanceledException) when (connection is null && limit.IsCancellationRequested && !cancellationToken.IsCancellationRequested && !_stop.IsCancellationRequested)
        {
            throw new GsupException($"No connection to the HLR at {Endpoint} within {Seconds(timeout)}{Because(LastError)}.");
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new ObjectDisposedException(nameof(GsupClient));
        }
        finally
        {
            _slots.Release();
        }
    }

    /// <summary>Closes the connection and stops reconnecting; requests in flight fail.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        Volatile.Read(ref _connection)?.Close("the client is closing");
        await _loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        lock (_gate)
        {
            _ready.TrySetException(new GsupException($"The GSUP client for {Endpoint} is closed."));
        }

        _stop.Dispose();
    }

    /// <summary>Closes the connection and stops reconnecting (waits for the background loop).</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    private static TaskCompletionSource<Connection> NewAttempt() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static string Seconds(TimeSpan span) => $"{span.TotalSeconds:0.###} s";

    private static string Because(string? error) => error is null ? string.Empty : $" ({error})";

    private async Task RunAsync()
    {
        var delay = _options.ReconnectDelay;
        while (!_stop.IsCancellationRequested)
        {
            TaskCompletionSource<Connection> attempt;
            lock (_gate)
            {
                if (_ready.Task.IsCompleted)
                {
                    _ready = NewAttempt();
                }

                attempt = _ready;
            }

            Connection connection;
            try
            {
                connection = await ConnectAsync().ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (!_stop.IsCancellationRequested)
            {
                var error = e switch
                {
                    OperationCanceledException => $"no connection within {Seconds(_options.ConnectTimeout)}",
                    SocketException s => s.SocketErrorCode == SocketError.ConnectionRefused ? "connection refused" : s.Message,
                    _ => e.Message,
                };
                lock (_gate)
                {
                    _lastError = error;
                }

                attempt.TrySetException(new GsupException($"No connection to the HLR at {Endpoint} ({error}); retrying in the background."));
                await Task.Delay(Jitter(delay), _options.Time, _stop.Token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, _options.MaxReconnectDelay.Ticks));
                continue;
            }

            lock (_gate)
            {
                _lastError = null;
                Volatile.Write(ref _connection, connection);
            }

            Interlocked.Increment(ref _connects);
            attempt.TrySetResult(connection);
            delay = _options.ReconnectDelay;
            var reason = await connection.Completion.ConfigureAwait(false);
            lock (_gate)
            {
                Volatile.Write(ref _connection, null);
                _lastError = reason;
                if (_ready.Task.IsCompleted)
                {
                    _ready = NewAttempt();
                }
            }

            connection.FailPending(new GsupException($"The connection to the HLR at {Endpoint} was lost ({reason})."));
            connection.Dispose();
        }
    }

    private async Task<Connection> ConnectAsync()
    {
        using var limit = new CancellationTokenSource(_options.ConnectTimeout, _options.Time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(limit.Token, _stop.Token);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            // Keep-alive finds a connection whose HLR host vanished even when no request is outstanding.
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
            await socket.ConnectAsync(Endpoint.Host, Endpoint.Port, linked.Token).ConfigureAwait(false);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var connection = new Connection(this, socket);
        try
        {
            // osmo-hlr routes answers by the name in ID_RESP: no request may go out before it.
            await connection.Identified.Task.WaitAsync(linked.Token).ConfigureAwait(false);
            return connection;
        }
        catch (OperationCanceledException) when (limit.IsCancellationRequested && !_stop.IsCancellationRequested)
        {
            connection.Close("no IPA ID_GET");
            connection.Dispose();
            throw new GsupException($"the server did not ask for the client's identity (IPA ID_GET) within {Seconds(_options.ConnectTimeout)}: is it a GSUP server?");
        }
        catch
        {
            connection.Close("connection attempt abandoned");
            connection.Dispose();
            throw;
        }
    }

    private static TimeSpan Jitter(TimeSpan delay) =>
        delay + TimeSpan.FromTicks((long)(delay.Ticks * 0.2 * RandomNumberGenerator.GetInt32(1000) / 1000.0));

    private sealed class Pending
    {
        public TaskCompletionSource<byte[]> Answer { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public bool Abandoned { get; set; }
    }

    /// <summary>One TCP connection: its reader, its write gate and its requests awaiting answers.</summary>
    private sealed class Connection : IDisposable
    {
        private readonly GsupClient _client;
        private readonly Socket _socket;
        private readonly NetworkStream _stream;
        private readonly SemaphoreSlim _writeGate = new(1, 1);
        private readonly Dictionary<(string Imsi, byte Procedure), Queue<Pending>> _pending = [];
        private readonly Lock _lock = new();
        private string? _closeReason;

        public Connection(GsupClient client, Socket socket)
        {
            _client = client;
            _socket = socket;
            _stream = new NetworkStream(socket, ownsSocket: true);
            Completion = Task.Run(ReadAsync);
        }

        /// <summary>Completed once ID_GET was answered.</summary>
        public TaskCompletionSource Identified { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>The reader's end, with the reason the connection closed.</summary>
        public Task<string> Completion { get; }

        /// <summary>
        /// Registers a request and writes its frame, both under the write gate, so requests await their answers in the
        /// order they went out. Waiting for the gate can be cancelled; the write itself cannot (a half-written frame
        /// would corrupt the stream), and a failed write closes the connection.
        /// </summary>
        public async Task<Pending> SendRequestAsync(string imsi, byte procedure, byte[] frame, CancellationToken cancellationToken)
        {
            await _writeGate.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                var pending = new Pending();
                lock (_lock)
                {
                    if (_closeReason is { } reason)
                    {
                        throw new GsupException($"The connection to the HLR at {_client.Endpoint} was lost ({reason}).");
                    }

                    if (!_pending.TryGetValue((imsi, procedure), out var queue))
                    {
                        _pending[(imsi, procedure)] = queue = new Queue<Pending>();
                    }

                    queue.Enqueue(pending);
                }

                await WriteAsync(frame).ConfigureAwait(false);
                return pending;
            }
            finally
            {
                _writeGate.Release();
            }
        }

        /// <summary>Marks a sent request whose caller gave up: its answer is zeroed and dropped when it comes.</summary>
        public void Abandon(Pending pending)
        {
            lock (_lock)
            {
                pending.Abandoned = true;
            }

            if (pending.Answer.Task.IsCompletedSuccessfully)
            {
                CryptographicOperations.ZeroMemory(pending.Answer.Task.Result);
            }
        }

        /// <summary>Writes a CCM frame (PONG, ID_RESP).</summary>
        public async Task SendCcmAsync(byte[] frame)
        {
            await _writeGate.WaitAsync().ConfigureAwait(false);
            try
            {
                await WriteAsync(frame).ConfigureAwait(false);
            }
            finally
            {
                _writeGate.Release();
            }
        }

        private async Task WriteAsync(byte[] frame)
        {
            try
            {
                await _stream.WriteAsync(frame, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException)
            {
                Close($"sending failed: {e.Message}");
                throw new GsupException($"Sending to the HLR at {_client.Endpoint} failed: {e.Message}", e);
            }
        }

        /// <summary>Closes the socket; the reader ends with <paramref name="reason"/>.</summary>
        public void Close(string reason)
        {
            lock (_lock)
            {
                _closeReason ??= reason;
            }

            try
            {
                _socket.Shutdown(SocketShutdown.Both);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
            }

            _socket.Close();
        }

        public void FailPending(GsupException error)
        {
            List<Pending> failed;
            lock (_lock)
            {
                _closeReason ??= "closed";
                failed = [.. _pending.Values.SelectMany(q => q)];
                _pending.Clear();
            }

            foreach (var pending in failed.Where(p => !p.Abandoned))
            {
                pending.Answer.TrySetException(error);
            }
        }

        // The write gate is not disposed: a request may still be leaving through it, and a SemaphoreSlim whose wait
        // handle was never asked for holds nothing to release.
        public void Dispose() => _stream.Dispose();

        private async Task<string> ReadAsync()
        {
            var max = _client._options.MaxFrameLength;
            var buffer = GC.AllocateArray<byte>(IpaFraming.HeaderLength + max, pinned: true);
            var filled = 0;
            try
            {
                while (true)
                {
                    var read = await _stream.ReadAsync(buffer.AsMemory(filled)).ConfigureAwait(false);
                    if (read == 0)
                    {
                        return CloseReason("closed by the HLR");
                    }

                    filled += read;
                    var sequence = new ReadOnlySequence<byte>(buffer, 0, filled);
                    while (true)
                    {
                        var status = IpaFraming.TryRead(ref sequence, max, out var stream, out var payload);
                        if (status == IpaFrameStatus.NeedMoreData)
                        {
                            break;
                        }

                        if (status == IpaFrameStatus.Invalid)
                        {
                            return CloseReason($"an IPA frame over {max} octets (GsupClientOptions.MaxFrameLength)");
                        }

                        if (!await OnFrameAsync(stream, payload.IsSingleSegment ? payload.First : payload.ToArray()).ConfigureAwait(false))
                        {
                            return CloseReason("a malformed IPA ID_GET");
                        }
                    }

                    // Keep what is left of a partial frame at the front, and zero the octets behind it.
                    var consumed = filled - (int)sequence.Length;
                    buffer.AsSpan(consumed, filled - consumed).CopyTo(buffer);
                    buffer.AsSpan(filled - consumed, consumed).Clear();
                    filled -= consumed;
                }
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
            {
                return CloseReason(e.InnerException is SocketException s ? s.Message : "the connection failed");
            }
            finally
            {
                CryptographicOperations.ZeroMemory(buffer);
                Identified.TrySetException(new GsupException($"the connection closed before the identity exchange ({_closeReason})"));
                try
                {
                    _socket.Close();
                }
                catch (ObjectDisposedException)
                {
                }
            }
        }

        private string CloseReason(string reason)
        {
            lock (_lock)
            {
                _closeReason ??= reason;
                return _closeReason;
            }
        }

        /// <summary>Handles one frame; false for a protocol error that closes the connection.</summary>
        private async ValueTask<bool> OnFrameAsync(byte stream, ReadOnlyMemory<byte> payload)
        {
            if (payload.IsEmpty)
            {
                return true;
            }

            if (stream == (byte)IpaStreamId.Ccm)
            {
                return await OnCcmAsync(payload).ConfigureAwait(false);
            }

            if (stream == (byte)IpaStreamId.Osmo && payload.Span[0] == (byte)IpaOsmoExtension.Gsup)
            {
                OnGsup(payload[1..].Span);
            }

            // Other streams and extensions (OAP) are not used and ignored.
            return true;
        }

        private async ValueTask<bool> OnCcmAsync(ReadOnlyMemory<byte> ccm)
        {
            IpaCcm.TryReadType(ccm.Span, out var type);
            switch (type)
            {
                case IpaCcmMessageType.Ping:
                    await SendCcmAsync(IpaFraming.EncodeCcm(IpaCcm.Pong)).ConfigureAwait(false);
                    return true;
                case IpaCcmMessageType.IdGet:
                    if (!IpaIdGet.TryRead(ccm.Span, out var request))
                    {
                        return false;
                    }

                    var response = IpaIdResponse.For(request!, _client._identity).Encode();
                    await SendCcmAsync(IpaFraming.EncodeCcm(response)).ConfigureAwait(false);
                    Identified.TrySetResult();
                    return true;
                default:
                    // PONG, ID_ACK and anything newer: nothing to do.
                    return true;
            }
        }

        private void OnGsup(ReadOnlySpan<byte> message)
        {
            if (!GsupMessage.TryReadHeader(message, out var type, out var imsi) || imsi is null || GsupMessageTypes.IsRequest(type))
            {
                // Unreadable, or a request of the HLR's (this client never registers a location, so none is expected).
                Interlocked.Increment(ref _client._malformed);
                return;
            }

            Pending? pending = null;
            lock (_lock)
            {
                var key = (imsi, GsupMessageTypes.RequestOf(type));
                if (_pending.TryGetValue(key, out var queue) && queue.TryDequeue(out pending) && queue.Count == 0)
                {
                    _pending.Remove(key);
                }
            }

            if (pending is null)
            {
                Interlocked.Increment(ref _client._malformed);
                return;
            }

            var copy = message.ToArray();
            lock (_lock)
            {
                if (!pending.Abandoned && pending.Answer.TrySetResult(copy))
                {
                    return;
                }
            }

            CryptographicOperations.ZeroMemory(copy);
        }
    }
}
