using OpenBest.Sessions;

namespace OpenBest.Client;

/// <summary>
/// A byte stream over a channel that names a TLS service of the HSE (the converter, docs/protocol.md "TLS converter"): what
/// the device writes reaches the service through the HSE's TLS connection, and what the service answers comes back, in
/// order, acknowledged and flow-controlled (<see cref="StreamEndpoint"/> frames in user-plane messages). Disposing it ends
/// the device's direction (FIN) and waits, up to the client's operation timeout, until the HSE has everything. The channel
/// carries this one stream: while it is open, the channel's <see cref="BestChannel.Received"/> belongs to it.
/// </summary>
public sealed class BestStream : Stream
{
    private readonly BestChannel _channel;
    private readonly StreamPump _pump;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _receiving;
    private bool _disposed;

    internal BestStream(BestChannel channel, int receiveBuffer)
    {
        _channel = channel;
        _pump = new StreamPump(new StreamEndpoint(receiveBuffer), async frames =>
        {
            foreach (var frame in frames)
            {
                await channel.SendAsync(frame, acknowledged: false).ConfigureAwait(false);
            }
        });
        _receiving = Task.Run(ReceiveAsync);
    }

    /// <inheritdoc />
    public override bool CanRead => true;

    /// <inheritdoc />
    public override bool CanWrite => true;

    /// <inheritdoc />
    public override bool CanSeek => false;

    /// <inheritdoc />
    public override long Length => throw new NotSupportedException();

    /// <inheritdoc />
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    /// <summary>Why the stream failed (the HSE could not reach or verify the TLS server, or a side aborted), or None.</summary>
    public StreamFailure Failure => _pump.Failure;

    /// <summary>User-plane messages this stream sent (its frames, retransmissions and acknowledgements included).</summary>
    public long FramesSent => _pump.FramesSent;

    /// <summary>User-plane messages it received.</summary>
    public long FramesReceived => _pump.FramesReceived;

    /// <inheritdoc />
    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    /// <inheritdoc />
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => _pump.ReadAsync(buffer, cancellationToken);

    /// <inheritdoc />
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <inheritdoc />
    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    /// <inheritdoc />
    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => _pump.WriteAsync(buffer, cancellationToken);

    /// <inheritdoc />
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <inheritdoc />
    public override void Flush()
    {
    }

    /// <summary>Ends the device's direction (FIN) once what was written is sent; reading goes on until the service's end.</summary>
    public Task ShutdownWriteAsync() => _pump.FinishAsync();

    /// <inheritdoc />
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    /// <inheritdoc />
    public override void SetLength(long value) => throw new NotSupportedException();

    /// <summary>Ends the device's direction and waits (up to the client's operation timeout) until the HSE acknowledged it.</summary>
    public override async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        if (_pump.Failure == StreamFailure.None)
        {
            await _pump.FinishAsync().ConfigureAwait(false);
            using var limit = new CancellationTokenSource(_channel.OperationTimeout);
            try
            {
                await _pump.WaitFinishedAsync(limit.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        await _receiving.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await _pump.DisposeAsync().ConfigureAwait(false);
        _stop.Dispose();
        await base.DisposeAsync().ConfigureAwait(false);
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing && !_disposed)
        {
            DisposeAsync().AsTask().GetAwaiter().GetResult();
        }

        base.Dispose(disposing);
    }

    private async Task ReceiveAsync()
    {
        try
        {
            await foreach (var message in _channel.Received.ReadAllAsync(_stop.Token).ConfigureAwait(false))
            {
                await _pump.OnFrameAsync(message.Payload).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
