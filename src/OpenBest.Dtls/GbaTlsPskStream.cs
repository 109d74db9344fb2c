using System.Buffers;
using System.Runtime.InteropServices;
using Org.BouncyCastle.Tls;

namespace OpenBest.Dtls;

/// <summary>
/// An established GBA shared-key TLS connection (TS 33.222 5.4): the application byte stream, and what the handshake
/// agreed. Reads and writes are asynchronous all the way down to the socket (BouncyCastle runs in its non-blocking mode);
/// one read and one write may be in progress at once. Disposing sends close_notify and closes the connection.
/// </summary>
public sealed class GbaTlsPskStream : Stream
{
    /// <summary>The largest TLSCiphertext a peer may send (RFC 5246 6.2.3 and RFC 8446 5.2: 2^14 + 2048 octets).</summary>
    private const int MaxRecord = (1 << 14) + 2048;

    private const int HeaderSize = 5;

    private readonly Stream _transport;
    private readonly TlsProtocol _tls;
    private readonly Lock _gate = new();
    private readonly SemaphoreSlim _reading = new(1, 1);
    private readonly SemaphoreSlim _sending = new(1, 1);
    private readonly byte[] _received = new byte[HeaderSize + MaxRecord];
    private Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask>? _inspect;
    private int _pending;
    private bool _ended;
    private int _disposed;

    internal GbaTlsPskStream(Stream transport, TlsProtocol tls, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask>? inspect)
    {
        _transport = transport;
        _tls = tls;
        _inspect = inspect;
    }

    /// <summary>The B-TID the device presented (the server's view) or presented itself (the client's view).</summary>
    public string BTid { get; private set; } = string.Empty;

    /// <summary>The GBA mode the identity named.</summary>
    public GbaMode Mode { get; private set; }

    /// <summary>"TLSv1.2" or "TLSv1.3".</summary>
    public string Protocol { get; private set; } = string.Empty;

    /// <summary>The negotiated cipher suite (its IANA code).</summary>
    public int CipherSuite { get; private set; }

    /// <summary>The Ua security protocol identifier the key was derived for (01 00 01 yy zz, or 01 00 00 00 07 for TLS 1.3).</summary>
    public byte[] UaSecurityProtocolId { get; private set; } = [];

    /// <inheritdoc/>
    public override bool CanRead => true;

    /// <inheritdoc/>
    public override bool CanWrite => true;

    /// <inheritdoc/>
    public override bool CanSeek => false;

    /// <inheritdoc/>
    public override long Length => throw new NotSupportedException();

    /// <inheritdoc/>
    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    internal void Established(TlsContext context, string bTid, GbaMode mode, byte[] uaSecurityProtocolId)
    {
        var parameters = context.SecurityParameters;
        BTid = bTid;
        Mode = mode;
        CipherSuite = parameters.CipherSuite;
        Protocol = TlsUtilities.IsTlsV13(parameters.NegotiatedVersion) ? "TLSv1.3" : "TLSv1.2";
        UaSecurityProtocolId = uaSecurityProtocolId;
    }

    /// <summary>Runs the handshake to its end: sends what the engine has to send, offers what the peer sends.</summary>
    /// <exception cref="IOException">The handshake failed, or the peer closed the connection.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    internal async Task HandshakeAsync(CancellationToken cancellationToken)
    {
        await FlushAsync(cancellationToken).ConfigureAwait(false);
        while (Handshaking)
        {
            if (!await ReceiveAsync(cancellationToken).ConfigureAwait(false))
            {
                throw new IOException("the peer closed the connection during the handshake");
            }
        }

        _inspect = null;
    }

    private bool Handshaking
    {
        get
        {
            lock (_gate)
            {
                return _tls.IsHandshaking && !_tls.IsClosed;
            }
        }
    }

    /// <inheritdoc/>
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        if (buffer.IsEmpty)
        {
            return 0;
        }

        await _reading.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            while (true)
            {
                lock (_gate)
                {
                    var available = _tls.GetAvailableInputBytes();
                    if (available > 0)
                    {
                        var take = Math.Min(available, buffer.Length);
                        if (MemoryMarshal.TryGetArray<byte>(buffer, out var segment))
                        {
                            return _tls.ReadInput(segment.Array!, segment.Offset, take);
                        }

                        var copy = new byte[take];
                        var n = _tls.ReadInput(copy, 0, take);
                        copy.AsSpan(0, n).CopyTo(buffer.Span);
                        return n;
                    }

                    if (_tls.IsClosed || _ended)
                    {
                        return 0;
                    }
                }

                if (!await ReceiveAsync(cancellationToken).ConfigureAwait(false))
                {
                    return 0;
                }
            }
        }
        finally
        {
            _reading.Release();
        }
    }

    /// <inheritdoc/>
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <inheritdoc/>
    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    /// <inheritdoc/>
    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        lock (_gate)
        {
            if (_tls.IsClosed)
            {
                throw new IOException("the connection is closed");
            }

            _tls.WriteApplicationData(buffer.Span);
        }

        await FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <inheritdoc/>
    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    /// <summary>Sends whatever the TLS engine has produced (records, alerts), in order.</summary>
    public override async Task FlushAsync(CancellationToken cancellationToken)
    {
        await _sending.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            while (true)
            {
                byte[] chunk;
                int n;
                lock (_gate)
                {
                    n = _tls.GetAvailableOutputBytes();
                    if (n == 0)
                    {
                        break;
                    }

                    chunk = ArrayPool<byte>.Shared.Rent(n);
                    n = _tls.ReadOutput(chunk, 0, n);
                }

                try
                {
                    await _transport.WriteAsync(chunk.AsMemory(0, n), cancellationToken).ConfigureAwait(false);
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(chunk, clearArray: true);
                }
            }

            await _transport.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _sending.Release();
        }
    }

    /// <inheritdoc/>
    public override void Flush() => FlushAsync(CancellationToken.None).GetAwaiter().GetResult();

    /// <summary>Sends close_notify (if the connection is still up) and closes the transport.</summary>
    public override async ValueTask DisposeAsync()
    {
        await CloseAsync().ConfigureAwait(false);
        await base.DisposeAsync().ConfigureAwait(false);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            CloseAsync().AsTask().GetAwaiter().GetResult();
        }

        base.Dispose(disposing);
    }

    private async ValueTask CloseAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        try
        {
            lock (_gate)
            {
                if (!_tls.IsClosed)
                {
                    _tls.Close();
                }
            }

            using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await FlushAsync(limit.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
        {
            // The peer is gone or slow: close without close_notify.
        }
        finally
        {
            await _transport.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <inheritdoc/>
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    /// <inheritdoc/>
    public override void SetLength(long value) => throw new NotSupportedException();

    /// <summary>
    /// Reads once from the transport and offers what came to the engine, then sends what it produced. While an inspector
    /// is set (the server's handshake), records are offered one whole record at a time, each after the inspector saw it.
    /// </summary>
    /// <returns>False at the end of the transport's stream.</returns>
    private async ValueTask<bool> ReceiveAsync(CancellationToken cancellationToken)
    {
        var n = await _transport.ReadAsync(_received.AsMemory(_pending), cancellationToken).ConfigureAwait(false);
        if (n == 0)
        {
            _ended = true;
            try
            {
                lock (_gate)
                {
                    _tls.CloseInput();
                }
            }
            finally
            {
                await FlushQuietlyAsync(cancellationToken).ConfigureAwait(false);
            }

            return false;
        }

        _pending += n;
        try
        {
            var offered = 0;
            if (_inspect is null)
            {
                Offer(0, _pending);
                offered = _pending;
            }
            else
            {
                while (_pending - offered >= HeaderSize)
                {
                    var length = (_received[offered + 3] << 8) | _received[offered + 4];
                    if (length > MaxRecord)
                    {
                        // Not a record this inspector reads: the engine refuses it (record_overflow).
                        Offer(offered, _pending - offered);
                        offered = _pending;
                        break;
                    }

                    if (_pending - offered < HeaderSize + length)
                    {
                        break;
                    }

                    await _inspect(_received.AsMemory(offered, HeaderSize + length), cancellationToken).ConfigureAwait(false);
                    Offer(offered, HeaderSize + length);
                    offered += HeaderSize + length;
                }
            }

            _received.AsSpan(offered, _pending - offered).CopyTo(_received);
            _pending -= offered;
        }
        catch (IOException)
        {
            // The engine failed (a fatal alert of ours, or one received): send our alert, if any, before giving up.
            await FlushQuietlyAsync(cancellationToken).ConfigureAwait(false);
            throw;
        }

        await FlushAsync(cancellationToken).ConfigureAwait(false);
        return true;
    }

    private void Offer(int offset, int count)
    {
        lock (_gate)
        {
            _tls.OfferInput(_received, offset, count);
        }
    }

    private async ValueTask FlushQuietlyAsync(CancellationToken cancellationToken)
    {
        try
        {
            await FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }
}
