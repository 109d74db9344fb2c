using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using OpenBest.Crypto;
using OpenBest.Crypto.Aka;
using OpenBest.Protocol;
using OpenBest.Sessions;

namespace OpenBest.Bench;

/// <summary>
/// One simulated device of the bench: a software USIM, the real UE state machine and a UDP socket of its own on loopback.
/// It is kept lean because it runs on the same cores as the HSE it measures: datagrams go from its socket straight into
/// the state machine and out again (no queue between them), and a send is one non-blocking system call.
/// </summary>
internal sealed class BenchDevice : IDisposable
{
    private static readonly ServingNetwork Network = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org");
    private static readonly UeChannelOptions ChannelOptions = new() { EasId = "eas.example.com", ServingNetwork = Network, CounterSchemes = CounterSchemes.TwoOctets | CounterSchemes.FourOctets };
    private readonly Milenage _milenage;
    private readonly UeEndpoint _ue;
    private readonly Socket _socket;
    private readonly SocketAddress _hse;
    private readonly Lock _gate = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _reader;
    private TaskCompletionSource? _established;
    private TaskCompletionSource? _acked;
    private int _channel = -1;

    public BenchDevice(string imsi, byte[] k, byte[] opc, IPEndPoint hse)
    {
        _milenage = new Milenage(k, opc);
        _ue = new UeEndpoint(new Usim(_milenage, new UsimSequenceState(SqnScheme.Default)), new UeOptions { Imsi = imsi });
        _socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        _socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _hse = hse.Serialize();
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
        var established = _established = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Run(ue =>
        {
            if (_channel >= 0)
            {
                ue.Abandon(_channel);
            }

            return ue.Open(ChannelOptions, out _channel);
        });

        // Retransmissions come from the bench's one ticker (Tick), not from a timer per session.
        try
        {
            await established.Task.WaitAsync(TimeSpan.FromSeconds(30), cancel).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException)
        {
        }

        Established = established.Task.IsCompleted;
        return Established ? watch.Elapsed.TotalMilliseconds : null;
    }

    /// <summary>Runs the UE's timers (retransmissions); the bench calls it for every device twice a second.</summary>
    public void Tick() => Run(ue => ue.Tick());

    /// <summary>Keeps <paramref name="window"/> uplink messages in flight (W − 1 without an Ack, then one with) until <paramref name="stop"/>.</summary>
    public async Task UplinkAsync(int window, ICollection<double> latencies, CancellationToken stop)
    {
        var payload = new byte[32];
        while (!stop.IsCancellationRequested)
        {
            for (var i = 0; i < window - 1; i++)
            {
                Run(ue => ue.Send(_channel, payload));
            }

            var watch = Stopwatch.StartNew();
            var acked = _acked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Run(ue => ue.Send(_channel, payload, ackRequested: true));
            try
            {
                await acked.Task.WaitAsync(stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }

            if (acked.Task.IsCompleted)
            {
                lock (latencies)
                {
                    latencies.Add(watch.Elapsed.TotalMilliseconds);
                }
            }
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _socket.Dispose();
        _reader.Wait(TimeSpan.FromSeconds(5));
        _ue.Dispose();
        _milenage.Dispose();
        _stop.Dispose();
    }

    private void Run(Func<UeEndpoint, StepResult> operation)
    {
        lock (_gate)
        {
            Handle(operation(_ue));
        }
    }

    /// <summary>Under the gate: the step's events, then its datagrams (sent in order).</summary>
    private void Handle(StepResult step)
    {
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
                _socket.SendTo(send.Message.Span, SocketFlags.None, _hse);
            }
            catch (SocketException)
            {
                // Lost, as on a network (a full buffer): retransmission covers it.
            }
            catch (ObjectDisposedException)
            {
                return;
            }
        }
    }

    private async Task ReadAsync()
    {
        var buffer = new byte[2048];
        var from = new SocketAddress(AddressFamily.InterNetwork);
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
                continue;
            }

            lock (_gate)
            {
                Handle(_ue.Receive(buffer.AsSpan(0, length)));
            }
        }
    }
}
