using System.Diagnostics;
using System.Net;
using OpenBest.Bearers;
using OpenBest.Crypto;
using OpenBest.Crypto.Aka;
using OpenBest.Protocol;
using OpenBest.Sessions;

namespace OpenBest.Bench;

/// <summary>
/// One simulated device of the bench: a software USIM, a UE endpoint and a UDP socket of its own on loopback. It runs the
/// real UE state machine; only the application around it is a loop.
/// </summary>
internal sealed class BenchDevice : IAsyncDisposable
{
    private static readonly ServingNetwork Network = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org");
    private static readonly UeChannelOptions ChannelOptions = new() { EasId = "eas.example.com", ServingNetwork = Network, CounterSchemes = CounterSchemes.TwoOctets | CounterSchemes.FourOctets };
    private readonly Milenage _milenage;
    private readonly UeEndpoint _ue;
    private readonly UdpBearer _bearer;
    private readonly BearerPath _hse;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _reader;
    private TaskCompletionSource? _established;
    private TaskCompletionSource? _acked;
    private int _channel = -1;

    public BenchDevice(string imsi, byte[] k, byte[] opc, IPEndPoint hse)
    {
        _milenage = new Milenage(k, opc);
        _ue = new UeEndpoint(new Usim(_milenage, new UsimSequenceState(SqnScheme.Default)), new UeOptions { Imsi = imsi });
        _bearer = UdpBearer.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _hse = _bearer.PathTo(hse);
        _reader = Task.Run(ReadAsync);
    }

    /// <summary>Whether the last <see cref="OpenAsync"/> established a session.</summary>
    public bool Established { get; private set; }

    /// <summary>
    /// Opens a new session (the one before it, if any, is forgotten without a word, as a device that restarts does) and
    /// returns its setup latency in milliseconds, or null when it did not open within 30 s.
    /// </summary>
    public async Task<double?> OpenAsync(CancellationToken cancel)
    {
        var watch = Stopwatch.StartNew();
        _established = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await RunAsync(ue =>
        {
            if (_channel >= 0)
            {
                ue.Abandon(_channel);
            }

            return ue.Open(ChannelOptions, out _channel);
        }).ConfigureAwait(false);
        for (var attempt = 0; attempt < 60 && !_established.Task.IsCompleted && !cancel.IsCancellationRequested; attempt++)
        {
            await Task.WhenAny(_established.Task, Task.Delay(500, cancel)).ConfigureAwait(false);
            await RunAsync(ue => ue.Tick()).ConfigureAwait(false);
        }

        Established = _established.Task.IsCompleted;
        return Established ? watch.Elapsed.TotalMilliseconds : null;
    }

    /// <summary>Keeps <paramref name="window"/> uplink messages in flight (W − 1 without an Ack, then one with) until <paramref name="stop"/>.</summary>
    public async Task UplinkAsync(int window, ICollection<double> latencies, CancellationToken stop)
    {
        var payload = new byte[32];
        while (!stop.IsCancellationRequested)
        {
            for (var i = 0; i < window - 1; i++)
            {
                await RunAsync(ue => ue.Send(_channel, payload)).ConfigureAwait(false);
            }

            var watch = Stopwatch.StartNew();
            _acked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            await RunAsync(ue => ue.Send(_channel, payload, ackRequested: true)).ConfigureAwait(false);
            while (!_acked.Task.IsCompleted && !stop.IsCancellationRequested)
            {
                await Task.WhenAny(_acked.Task, Task.Delay(250, CancellationToken.None)).ConfigureAwait(false);
                await RunAsync(ue => ue.Tick()).ConfigureAwait(false);
            }

            if (_acked.Task.IsCompleted)
            {
                lock (latencies)
                {
                    latencies.Add(watch.Elapsed.TotalMilliseconds);
                }
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _bearer.DisposeAsync().ConfigureAwait(false);
        await _reader.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _ue.Dispose();
        _milenage.Dispose();
        _stop.Dispose();
    }

    private async Task RunAsync(Func<UeEndpoint, StepResult> operation)
    {
        StepResult step;
        lock (_ue)
        {
            step = operation(_ue);
        }

        foreach (var e in step.Events)
        {
            switch (e)
            {
                case SessionEstablished:
                    _established?.TrySetResult();
                    break;
                case DataAcknowledged:
                    _acked?.TrySetResult();
                    break;
            }
        }

        foreach (var send in step.Send)
        {
            try
            {
                await _hse.SendAsync(send.Message, _stop.Token).ConfigureAwait(false);
            }
            catch (System.Net.Sockets.SocketException)
            {
                // Lost, as on a network: retransmission covers it.
            }
        }
    }

    private async Task ReadAsync()
    {
        try
        {
            await foreach (var received in _bearer.Received.ReadAllAsync(_stop.Token).ConfigureAwait(false))
            {
                var message = received.Message;
                await RunAsync(ue => ue.Receive(message.Span)).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
        {
        }
    }
}
