using System.Diagnostics;
using System.Net;
using System.Threading.Channels;
using OpenBest.Bearers;
using OpenBest.Crypto;
using OpenBest.Crypto.Aka;
using OpenBest.Sessions;

namespace OpenBest.Demo;

/// <summary>A simulated device for the demo: a software USIM, a UE endpoint and its own UDP socket on loopback.</summary>
internal sealed class DemoDevice : IAsyncDisposable
{
    private readonly Milenage _milenage;
    private readonly UeEndpoint _ue;
    private readonly UdpBearer _bearer;
    private readonly BearerPath _hse;
    private readonly Channel<SessionEvent> _events = Channel.CreateUnbounded<SessionEvent>();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _reader;
    private readonly Task _ticker;

    public DemoDevice(string imsi, byte[] k, byte[] opc, IPEndPoint hse)
    {
        _milenage = new Milenage(k, opc);
        _ue = new UeEndpoint(new Usim(_milenage, new UsimSequenceState(SqnScheme.Default)), new UeOptions { Imsi = imsi });
        _bearer = UdpBearer.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _hse = _bearer.PathTo(hse);
        _reader = Task.Run(ReadAsync);
        _ticker = Task.Run(TickAsync);
    }

    public int SetupOctets { get; private set; }

    public int UplinkOverhead { get; private set; }

    public List<double> AckLatenciesMs { get; } = [];

    public uint SessionId { get; private set; }

    /// <summary>Runs an operation on the UE and sends what it produced.</summary>
    public async Task<StepResult> DoAsync(Func<UeEndpoint, StepResult> operation)
    {
        StepResult step;
        lock (_ue)
        {
            step = operation(_ue);
        }

        await PublishAsync(step).ConfigureAwait(false);
        return step;
    }

    public async Task<T> WaitAsync<T>(Func<T, bool>? match = null, int seconds = 20)
        where T : SessionEvent
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        timeout.CancelAfter(TimeSpan.FromSeconds(seconds));
        while (true)
        {
            var next = await _events.Reader.ReadAsync(timeout.Token).ConfigureAwait(false);
            if (next is T wanted && (match is null || match(wanted)))
            {
                return wanted;
            }
        }
    }

    /// <summary>The device's script: open, acknowledged uplink, key refresh, suspend with a queued downlink, resume, terminate.</summary>
    /// <summary>Acknowledged uplink messages this device sent in its message phase.</summary>
    public int MessagesSent { get; private set; }

    public async Task RunAsync(UeChannelOptions options, int messages, Func<uint, Task> downlinkWhileSuspended, Action progress, DateTimeOffset? until = null)
    {
        var open = await DoAsync(ue => ue.Open(options, out _)).ConfigureAwait(false);
        var requestLength = open.Send[0].Message.Length;
        var established = await WaitAsync<SessionEstablished>().ConfigureAwait(false);
        SessionId = established.SessionId;
        SetupOctets = requestLength + FirstDownlinkLength;
        var channel = 1;
        progress();

        for (var i = 0; i < messages || (until is { } end && DateTimeOffset.UtcNow < end); i++)
        {
            MessagesSent = i + 1;
            var payload = BitConverter.GetBytes(i);
            var watch = Stopwatch.StartNew();
            var sent = await DoAsync(ue => ue.Send(channel, payload, ackRequested: true)).ConfigureAwait(false);
            UplinkOverhead = sent.Send[0].Message.Length - payload.Length;
            await WaitAsync<DataAcknowledged>().ConfigureAwait(false);
            AckLatenciesMs.Add(watch.Elapsed.TotalMilliseconds);
            progress();
        }

        await DoAsync(ue => ue.RequestKeyRefresh(channel)).ConfigureAwait(false);
        await WaitAsync<KeysRefreshed>().ConfigureAwait(false);
        await DoAsync(ue => ue.Send(channel, "after refresh"u8, ackRequested: true)).ConfigureAwait(false);
        await WaitAsync<DataAcknowledged>().ConfigureAwait(false);
        progress();

        await DoAsync(ue => ue.Suspend(channel)).ConfigureAwait(false);
        await downlinkWhileSuspended(SessionId).ConfigureAwait(false);
        await DoAsync(ue => ue.Resume(channel)).ConfigureAwait(false);
        await WaitAsync<DataReceived>().ConfigureAwait(false);
        progress();

        await DoAsync(ue => ue.Terminate(channel)).ConfigureAwait(false);
        await WaitAsync<SessionTerminated>().ConfigureAwait(false);
        progress();
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _bearer.DisposeAsync().ConfigureAwait(false);
        try
        {
            await Task.WhenAll(_reader, _ticker).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        _ue.Dispose();
        _milenage.Dispose();
        _stop.Dispose();
    }

    private int FirstDownlinkLength { get; set; }

    private async Task PublishAsync(StepResult step)
    {
        foreach (var e in step.Events)
        {
            _events.Writer.TryWrite(e);
        }

        foreach (var send in step.Send)
        {
            await _hse.SendAsync(send.Message, _stop.Token).ConfigureAwait(false);
        }
    }

    private async Task ReadAsync()
    {
        try
        {
            await foreach (var received in _bearer.Received.ReadAllAsync(_stop.Token).ConfigureAwait(false))
            {
                if (FirstDownlinkLength == 0)
                {
                    FirstDownlinkLength = received.Message.Length;
                }

                var message = received.Message;
                await DoAsync(ue => ue.Receive(message.Span)).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task TickAsync()
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(500));
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
            {
                await DoAsync(ue => ue.Tick()).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
