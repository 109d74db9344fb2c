using OpenBest.Crypto;
using OpenBest.Crypto.Aka;
using OpenBest.Protocol;
using OpenBest.Sessions;

namespace OpenBest.Sessions.Tests;

internal sealed class ManualTime : TimeProvider
{
    private DateTimeOffset _now = new(2026, 11, 22, 12, 0, 0, TimeSpan.Zero);

    public override DateTimeOffset GetUtcNow() => _now;

    public void Advance(TimeSpan by) => _now += by;
}

/// <summary>
/// A UE and an HSE joined by an in-memory bearer. Every message crosses <see cref="Wire"/>, where a test
/// can drop, duplicate, reorder or tamper with it; everything sent is recorded.
/// </summary>
internal sealed class Harness : IDisposable
{
    public const string Imsi = "208930000000001";
    public static readonly byte[] K = Convert.FromHexString("465b5ce8b199b49faa5f0a2ee238a6bc");
    public static readonly byte[] Opc = Convert.FromHexString("cd63cb71954a9f4e48a5994e37a02baf");
    public static readonly ServingNetwork FiveG = ServingNetwork.FromName("5G:mnc093.mcc208.3gppnetwork.org");

    private readonly Milenage _ueMilenage;

    public Harness(HseOptions? options = null, byte[]? ueK = null, bool registerSubscriber = true, ulong ueSqnMs = 0)
    {
        if (registerSubscriber)
        {
            Subscribers.Add(Imsi, K, Opc);
        }

        Hse = new HseEngine(Subscribers, options, Time);
        _ueMilenage = new Milenage(ueK ?? K, Opc);
        UsimState = UsimSequenceState.FromSqnMs(ueSqnMs, SqnScheme.Default);
        Ue = new UeEndpoint(new Usim(_ueMilenage, UsimState), new UeOptions { Imsi = Imsi }, Time);
    }

    public ManualTime Time { get; } = new();

    public InMemorySubscribers Subscribers { get; } = new();

    public HseEngine Hse { get; set; }

    public UeEndpoint Ue { get; }

    public UsimSequenceState UsimState { get; }

    public List<SessionEvent> UeEvents { get; } = [];

    public List<SessionEvent> HseEvents { get; } = [];

    /// <summary>Messages delivered.</summary>
    public List<(bool Uplink, byte[] Message)> Wire { get; } = [];

    /// <summary>Messages sent, before the interceptor.</summary>
    public List<(bool Uplink, byte[] Message)> Sent { get; } = [];

    /// <summary>Intercepts a message in transit: return null to drop it, or the bytes to deliver.</summary>
    public Func<bool, byte[], byte[]?> Interceptor { get; set; } = (_, m) => m;

    public object Path { get; set; } = "10.0.0.1:5000";

    public int Open(UeChannelOptions options, ReadOnlyMemory<byte>? first = null)
    {
        var step = Ue.Open(options, out var channel, first);
        Pump(step, uplink: true);
        return channel;
    }

    public void Pump(StepResult step, bool uplink)
    {
        var queue = new Queue<(bool Uplink, byte[] Message)>();
        Collect(step, uplink, queue);
        var guard = 0;
        while (queue.TryDequeue(out var item) && guard++ < 1000)
        {
            Sent.Add(item);
            var delivered = Interceptor(item.Uplink, item.Message);
            if (delivered is null)
            {
                continue;
            }

            Wire.Add((item.Uplink, delivered));
            if (item.Uplink)
            {
                Collect(Hse.Receive(delivered, Path), false, queue);
            }
            else
            {
                Collect(Ue.Receive(delivered), true, queue);
            }
        }
    }

    public void Tick(TimeSpan advance)
    {
        Time.Advance(advance);
        Pump(Hse.Tick(), uplink: false);
        Pump(Ue.Tick(), uplink: true);
    }

    public T Single<T>(List<SessionEvent> events) where T : SessionEvent => Assert.Single(events.OfType<T>());

    public void Dispose()
    {
        Hse.Dispose();
        Ue.Dispose();
        Subscribers.Dispose();
        _ueMilenage.Dispose();
    }

    private void Collect(StepResult step, bool uplink, Queue<(bool, byte[])> queue)
    {
        if (uplink)
        {
            // Events of a step produced by the UE (its sends are uplink).
            UeEvents.AddRange(step.Events);
        }
        else
        {
            HseEvents.AddRange(step.Events);
        }

        foreach (var send in step.Send)
        {
            queue.Enqueue((uplink, send.Message.ToArray()));
        }
    }
}
