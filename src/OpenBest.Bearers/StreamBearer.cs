using System.Buffers;
using System.IO.Pipelines;
using System.Threading.Channels;
using OpenBest.Protocol;

namespace OpenBest.Bearers;

/// <summary>
/// A non-IP bearer over one byte stream pair: a serial device (NB-IoT non-IP data delivery through a modem
/// or gateway), or a process's stdin/stdout. Messages carry the stream framing of profile section 1 (2-octet
/// length). There is one peer path: the link. A zero or oversized length is dropped and counted, and the
/// reader skips one octet to find the next frame, since a serial link cannot be reset.
/// </summary>
public sealed class StreamBearer : IBearer
{
    private readonly Stream _input;
    private readonly Stream _output;
    private readonly int _maxFrame;
    private readonly Channel<ReceivedMessage> _received;
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _reader;
    private readonly Link _link;
    private long _dropped;
    private Stream? _owned;

    private StreamBearer(Stream input, Stream output, int maxFrame, string name)
    {
        _input = input;
        _output = output;
        _maxFrame = maxFrame;
        _link = new Link(this, name);
        _received = Channel.CreateBounded<ReceivedMessage>(new BoundedChannelOptions(4096) { SingleWriter = true, FullMode = BoundedChannelFullMode.DropOldest },
            _ => Interlocked.Increment(ref _dropped));
        _reader = Task.Run(ReadAsync);
    }

    /// <summary>The one peer path of the link.</summary>
    public BearerPath Path => _link;

    /// <inheritdoc/>
    public ChannelReader<ReceivedMessage> Received => _received.Reader;

    /// <inheritdoc/>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>A bearer over <paramref name="input"/> and <paramref name="output"/> (the streams belong to the caller).</summary>
    public static StreamBearer Over(Stream input, Stream output, string name = "stream", int maxFrame = 4096)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(output);
        return new StreamBearer(input, output, maxFrame, name);
    }

    /// <summary>The process's stdin and stdout.</summary>
    public static StreamBearer OverStandardStreams() => Over(Console.OpenStandardInput(), Console.OpenStandardOutput(), "stdio");

    /// <summary>A serial (or any character) device, opened for reading and writing.</summary>
    /// <exception cref="IOException">The device cannot be opened.</exception>
    /// <remarks>A terminal device (<c>/dev/tty*</c>) is put in raw mode first (<c>stty raw -echo</c>): its default line
    /// discipline would rewrite CR and LF, swallow XON/XOFF and echo frames back to the peer.</remarks>
    public static StreamBearer OverDevice(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!OperatingSystem.IsWindows() && path.StartsWith("/dev/tty", StringComparison.Ordinal))
        {
            using var stty = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("stty", ["-F", path, "raw", "-echo"]) { RedirectStandardError = true })
                ?? throw new IOException($"{path}: stty could not be started to set raw mode");
            stty.WaitForExit();
            if (stty.ExitCode != 0)
            {
                throw new IOException($"{path}: could not be set to raw mode ({stty.StandardError.ReadToEnd().Trim()})");
            }
        }

        var device = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite, bufferSize: 0, useAsync: false);
        var bearer = Over(device, device, path);
        bearer._owned = device;
        return bearer;
    }

    /// <inheritdoc/>
    public async ValueTask SendAsync(ReadOnlyMemory<byte> message, BearerPath path, CancellationToken cancellationToken = default)
    {
        if (message.Length is 0 or > StreamFraming.MaxMessageLength)
        {
            Interlocked.Increment(ref _dropped);
            return;
        }

        var framed = new byte[message.Length + 2];
        StreamFraming.Write(message.Span, framed);
        await _writeGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await _output.WriteAsync(framed, cancellationToken).ConfigureAwait(false);
            await _output.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _writeGate.Release();
        }
    }

    /// <summary>Stops reading (the streams belong to the caller, except a device this bearer opened).</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        // A console or device read may not observe cancellation: the reader is abandoned after 1 s.
        await _reader.WaitAsync(TimeSpan.FromSeconds(1)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _received.Writer.TryComplete();
        _stop.Dispose();
        _writeGate.Dispose();
        if (_owned is not null)
        {
            await _owned.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task ReadAsync()
    {
        var reader = PipeReader.Create(_input, new StreamPipeReaderOptions(leaveOpen: true));
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var read = await reader.ReadAsync(_stop.Token).ConfigureAwait(false);
                var buffer = read.Buffer;
                while (buffer.Length >= 2)
                {
                    var declared = DeclaredLength(buffer);
                    if (declared == 0 || declared > _maxFrame)
                    {
                        Interlocked.Increment(ref _dropped);
                        buffer = buffer.Slice(1);
                        continue;
                    }

                    if (StreamFraming.TryRead(ref buffer, out var message) != FrameStatus.Ok)
                    {
                        break;
                    }

                    _received.Writer.TryWrite(new ReceivedMessage(message.ToArray(), _link));
                }

                reader.AdvanceTo(buffer.Start, buffer.End);
                if (read.IsCompleted)
                {
                    return;
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException)
        {
        }
        finally
        {
            await reader.CompleteAsync().ConfigureAwait(false);
            _received.Writer.TryComplete();
        }
    }

    private static int DeclaredLength(ReadOnlySequence<byte> buffer)
    {
        Span<byte> prefix = stackalloc byte[2];
        buffer.Slice(0, 2).CopyTo(prefix);
        return (prefix[0] << 8) | prefix[1];
    }

    private sealed class Link(StreamBearer bearer, string name) : BearerPath
    {
        public override IBearer Bearer => bearer;

        public override string ToString() => name;
    }
}
