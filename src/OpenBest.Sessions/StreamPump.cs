namespace OpenBest.Sessions;

/// <summary>
/// Runs a <see cref="StreamEndpoint"/> for one end of a converter stream: frames from the peer go in with
/// <see cref="OnFrameAsync"/>, its timers run on a task of their own, and every frame it makes is handed, in order, to the
/// sender given (a BEST channel's user plane on the device, the HSE's downlink on the converter). Readers and writers wait
/// asynchronously; a writer waits while <see cref="MaxUnacknowledged"/> octets are unacknowledged. Thread-safe.
/// </summary>
public sealed class StreamPump : IAsyncDisposable
{
    private readonly StreamEndpoint _end;
    private readonly Func<IReadOnlyList<byte[]>, Task> _send;
    private readonly Lock _gate = new();
    private readonly SemaphoreSlim _sending = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _timers;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Runs <paramref name="end"/>; <paramref name="send"/> sends frames (one message each), called one batch at a time.</summary>
    public StreamPump(StreamEndpoint end, Func<IReadOnlyList<byte[]>, Task> send, int maxUnacknowledged = 32 * 1024)
    {
        ArgumentNullException.ThrowIfNull(end);
        ArgumentNullException.ThrowIfNull(send);
        _end = end;
        _send = send;
        MaxUnacknowledged = maxUnacknowledged;
        _timers = Task.Run(TimersAsync);
    }

    /// <summary>Octets written and not yet acknowledged at most before a writer waits.</summary>
    public int MaxUnacknowledged { get; }

    /// <summary>Why the stream failed, or None.</summary>
    public StreamFailure Failure
    {
        get
        {
            lock (_gate)
            {
                return _end.Failure;
            }
        }
    }

    /// <summary>Whether both directions finished, or the stream failed.</summary>
    public bool Closed
    {
        get
        {
            lock (_gate)
            {
                return _end.Closed;
            }
        }
    }

    /// <summary>Frames handed to the sender.</summary>
    public long FramesSent { get; private set; }

    /// <summary>Frames taken from the peer.</summary>
    public long FramesReceived { get; private set; }

    /// <summary>Frames the endpoint dropped as malformed.</summary>
    public long Dropped
    {
        get
        {
            lock (_gate)
            {
                return _end.Dropped;
            }
        }
    }

    /// <summary>Takes a frame from the peer (never throws on its content) and sends what it calls for.</summary>
    public Task OnFrameAsync(ReadOnlyMemory<byte> frame)
    {
        lock (_gate)
        {
            FramesReceived++;
            _end.OnFrame(frame.Span, Environment.TickCount64);
            _end.Pump(Environment.TickCount64);
        }

        Changed();
        return FlushAsync();
    }

    /// <summary>Reads what arrived in order: waits for data; 0 at the end of the peer's direction.</summary>
    /// <exception cref="IOException">The stream failed (the message says why).</exception>
    public async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            Task changed;
            int read;
            lock (_gate)
            {
                read = _end.Read(buffer.Span);
                if (read == 0 && _end.Failure != StreamFailure.None)
                {
                    throw new IOException($"BEST stream: {Describe(_end.Failure)}");
                }

                changed = read > 0 || _end.RemoteFinished || buffer.IsEmpty ? Task.CompletedTask : _changed.Task;
            }

            if (changed.IsCompleted)
            {
                await FlushAsync().ConfigureAwait(false); // a read may have opened the window
                return read;
            }

            await changed.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Writes, waiting while too much is unacknowledged.</summary>
    /// <exception cref="IOException">The stream failed or this direction was finished.</exception>
    public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            Task changed;
            lock (_gate)
            {
                if (_end.Failure != StreamFailure.None)
                {
                    throw new IOException($"BEST stream: {Describe(_end.Failure)}");
                }

                if (_end.Unacknowledged < MaxUnacknowledged)
                {
                    try
                    {
                        _end.Write(data.Span);
                    }
                    catch (InvalidOperationException e)
                    {
                        throw new IOException($"BEST stream: {e.Message}", e);
                    }

                    _end.Pump(Environment.TickCount64);
                    break;
                }

                changed = _changed.Task;
            }

            await changed.WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        Changed();
        await FlushAsync().ConfigureAwait(false);
    }

    /// <summary>Ends this direction (FIN) once what was written is sent.</summary>
    public Task FinishAsync()
    {
        lock (_gate)
        {
            _end.Finish();
            _end.Pump(Environment.TickCount64);
        }

        Changed();
        return FlushAsync();
    }

    /// <summary>Aborts the stream; the peer gets an RST with <paramref name="cause"/>.</summary>
    public Task AbortAsync(StreamFailure cause)
    {
        lock (_gate)
        {
            _end.Abort(cause);
        }

        Changed();
        return FlushAsync();
    }

    /// <summary>Waits until this direction's FIN was acknowledged, or the stream failed (false).</summary>
    public async Task<bool> WaitFinishedAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            Task changed;
            lock (_gate)
            {
                if (_end.LocalFinished || _end.Failure != StreamFailure.None)
                {
                    return _end.Failure == StreamFailure.None;
                }

                changed = _changed.Task;
            }

            await changed.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Waits until both directions finished or the stream failed.</summary>
    public async Task WaitClosedAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            Task changed;
            lock (_gate)
            {
                if (_end.Closed)
                {
                    return;
                }

                changed = _changed.Task;
            }

            await changed.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Stops the timers (nothing more is retransmitted).</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        Changed();
        await _timers.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _stop.Dispose();
    }

    /// <summary>A failure as a person reads it.</summary>
    public static string Describe(StreamFailure failure) => failure switch
    {
        StreamFailure.Unreachable => "the far end could not be reached or verified, or it broke off",
        StreamFailure.ResetByPeer => "reset by the peer",
        StreamFailure.TimedOut => "no acknowledgement through every retransmission",
        _ => "aborted",
    };

    private async Task TimersAsync()
    {
        var token = _stop.Token;
        while (!token.IsCancellationRequested)
        {
            Task changed;
            long? next;
            lock (_gate)
            {
                next = _end.NextTimer(Environment.TickCount64);
                changed = _changed.Task;
            }

            var delay = next is { } at ? Math.Clamp(at - Environment.TickCount64, 1, 60_000) : 60_000;
            try
            {
                await Task.WhenAny(Task.Delay(TimeSpan.FromMilliseconds(delay), token), changed).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            bool failedNow;
            lock (_gate)
            {
                var before = _end.Failure;
                _end.Pump(Environment.TickCount64);
                failedNow = before == StreamFailure.None && _end.Failure != StreamFailure.None;
            }

            await FlushAsync().ConfigureAwait(false);
            if (failedNow)
            {
                Changed(); // waiting readers and writers learn of the failure
            }
        }
    }

    private async Task FlushAsync()
    {
        await _sending.WaitAsync().ConfigureAwait(false);
        try
        {
            IReadOnlyList<byte[]> frames;
            lock (_gate)
            {
                frames = _end.TakeFrames();
            }

            if (frames.Count > 0)
            {
                FramesSent += frames.Count;
                await _send(frames).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or ObjectDisposedException)
        {
            // The carrier went away (channel closed, session ended): the stream's timers end it.
        }
        finally
        {
            _sending.Release();
        }
    }

    private void Changed()
    {
        TaskCompletionSource previous;
        lock (_gate)
        {
            previous = _changed;
            _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        previous.TrySetResult();
    }
}
