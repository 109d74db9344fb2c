using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;

namespace OpenBest.Gsup.Tests;

/// <summary>
/// A scripted GSUP server on loopback for what a real HLR cannot be made to do on cue: hold an answer, answer out of
/// order, send an oversized frame, ping. It greets every connection with libosmocore's ID_GET, as osmo-hlr does.
/// </summary>
internal sealed class FakeHlr : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accept;
    private readonly ConcurrentBag<Socket> _sockets = [];
    private volatile Peer? _current;
    private int _connections;

    public FakeHlr(Func<SendAuthInfoRequest, Task<byte[]?>> handler)
    {
        Handler = handler;
        _listener.Start();
        Endpoint = new GsupEndpoint("127.0.0.1", ((IPEndPoint)_listener.LocalEndpoint).Port);
        _accept = Task.Run(AcceptAsync);
    }

    public GsupEndpoint Endpoint { get; }

    /// <summary>Answers a request with a GSUP message, or null for no answer.</summary>
    public Func<SendAuthInfoRequest, Task<byte[]?>> Handler { get; set; }

    /// <summary>
    /// Whether answers leave in the order the requests came, as an HLR answers them (default); when false each is sent
    /// as soon as its handler finishes.
    /// </summary>
    public bool InOrder { get; set; } = true;

    public ConcurrentQueue<IpaIdResponse> Identities { get; } = new();

    public ConcurrentQueue<SendAuthInfoRequest> Requests { get; } = new();

    public int Connections => Volatile.Read(ref _connections);

    public int Pongs => _current?.Pongs ?? 0;

    /// <summary>Sends raw octets on the current connection.</summary>
    public Task SendRawAsync(byte[] octets) => (_current ?? throw new InvalidOperationException("no connection")).WriteAsync(octets);

    /// <summary>Closes every connection (the listener stays).</summary>
    public void DropConnections()
    {
        foreach (var socket in _sockets)
        {
            socket.Dispose();
        }
    }

    /// <summary>A SEND AUTHENTICATION INFO RESULT with <paramref name="count"/> quintets whose RAND starts with <paramref name="marker"/>.</summary>
    public static byte[] Result(string imsi, int count, byte marker, ushort amf = 0x0000, int resLength = 8)
    {
        var tuples = Enumerable.Range(0, count).Select(i =>
        {
            var rand = new byte[16];
            rand[0] = marker;
            rand[1] = (byte)i;
            var autn = new byte[16];
            autn[6] = (byte)(amf >> 8);
            autn[7] = (byte)amf;
            return new GsupAuthTuple(rand, new byte[4], new byte[8], new byte[16], new byte[16], autn, new byte[resLength]);
        }).ToList();
        return new SendAuthInfoResult(imsi, tuples).Encode();
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        DropConnections();
        await _accept.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            _sockets.Add(socket);
            Interlocked.Increment(ref _connections);
            var peer = new Peer(this, socket);
            _current = peer;
            _ = Task.Run(peer.RunAsync);
        }
    }

    private sealed class Peer(FakeHlr server, Socket socket)
    {
        private readonly NetworkStream _stream = new(socket, ownsSocket: true);
        private readonly SemaphoreSlim _write = new(1, 1);
        private Task _previous = Task.CompletedTask;
        private int _pongs;

        public int Pongs => Volatile.Read(ref _pongs);

        public async Task WriteAsync(byte[] octets)
        {
            await _write.WaitAsync();
            try
            {
                await _stream.WriteAsync(octets);
            }
            finally
            {
                _write.Release();
            }
        }

        public async Task RunAsync()
        {
            try
            {
                var get = new byte[IpaIdGet.Standard.GetEncodedLength()];
                IpaIdGet.Standard.Write(get);
                await WriteAsync(IpaFraming.EncodeCcm(get));
                var reader = PipeReader.Create(_stream);
                while (true)
                {
                    var read = await reader.ReadAsync(server._stop.Token);
                    var buffer = read.Buffer;
                    while (IpaFraming.TryRead(ref buffer, IpaFraming.MaxPayloadLength, out var stream, out var payload) == IpaFrameStatus.Ok)
                    {
                        await OnFrameAsync(stream, payload.ToArray());
                    }

                    reader.AdvanceTo(buffer.Start, buffer.End);
                    if (read.IsCompleted)
                    {
                        return;
                    }
                }
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
            {
            }
        }

        private async Task OnFrameAsync(byte stream, byte[] payload)
        {
            if (stream == (byte)IpaStreamId.Ccm && IpaIdResponse.TryRead(payload, out var identity))
            {
                server.Identities.Enqueue(identity!);
            }
            else if (stream == (byte)IpaStreamId.Ccm && payload is [(byte)IpaCcmMessageType.Pong])
            {
                Interlocked.Increment(ref _pongs);
            }
            else if (stream == (byte)IpaStreamId.Osmo && payload.Length > 1 && payload[0] == (byte)IpaOsmoExtension.Gsup
                && SendAuthInfoRequest.TryRead(payload.AsSpan(1), out var request))
            {
                server.Requests.Enqueue(request!);
                // Each request is handled on its own task; in order, its answer waits for the one before it.
                var previous = _previous;
                _previous = Task.Run(async () =>
                {
                    var answer = await server.Handler(request!);
                    if (server.InOrder)
                    {
                        await previous;
                    }

                    if (answer is not null)
                    {
                        await WriteAsync(IpaFraming.EncodeOsmo(IpaOsmoExtension.Gsup, answer));
                    }
                });
            }
        }
    }
}
