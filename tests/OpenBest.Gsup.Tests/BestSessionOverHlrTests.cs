using OpenBest.Crypto;
using OpenBest.Crypto.Aka;
using OpenBest.Protocol;
using OpenBest.Sessions;

namespace OpenBest.Gsup.Tests;

/// <summary>
/// A whole BEST session (TS 33.163; profile 6.2) between a UE with the software USIM of MILENAGE test set 1 and an
/// <see cref="HseEngine"/> whose vectors come from a real osmo-hlr through <see cref="GsupAuc"/>, joined in memory.
/// </summary>
public sealed class BestSessionOverHlrTests
{
    private static readonly ServingNetwork FiveG = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org");

    [Fact]
    public async Task FiveGAka_SessionIsEstablished_AndCarriesData()
    {
        // The UE offers 5G AKA first: its vectors need the AMF separation bit, which osmo-hlr sets for E-UTRAN requests.
        await using var hlr = await OsmoHlrTests.StartWithSubscriberAsync();
        await using var auc = OsmoHlrTests.Connect(hlr);
        using var pair = new Pair(auc);
        var channel = pair.Open(new UeChannelOptions { EasId = "eas.example.com", ServingNetwork = FiveG });
        Assert.True(pair.Ue.IsEstablished(channel));
        Assert.Equal(KeyAgreements.FiveGAka, pair.Ue.SelectedOf(channel).KeyAgreement);
        var established = Assert.Single(pair.HseEvents.OfType<SessionEstablished>());
        Assert.Equal(pair.Ue.SessionIdOf(channel), established.SessionId);

        pair.Pump(pair.Ue.Send(channel, "meter 42"u8), uplink: true);
        var data = Assert.Single(pair.HseEvents.OfType<DataReceived>());
        Assert.Equal("meter 42"u8.ToArray(), data.Payload.ToArray());
        Assert.Equal(1, pair.Hse.Counters.VectorsUsed);
        Assert.Equal(1, auc.Requests);
    }

    [Fact]
    public async Task UmtsAka_SessionIsEstablished()
    {
        await using var hlr = await OsmoHlrTests.StartWithSubscriberAsync();
        await using var auc = OsmoHlrTests.Connect(hlr);
        using var pair = new Pair(auc);
        var channel = pair.Open(new UeChannelOptions { EasId = "eas.example.com", KeyAgreements = KeyAgreements.UmtsAka, Service = BestService.Integrity });
        Assert.True(pair.Ue.IsEstablished(channel));
        Assert.Equal(KeyAgreements.UmtsAka, pair.Ue.SelectedOf(channel).KeyAgreement);
        Assert.Single(pair.HseEvents.OfType<SessionEstablished>());
    }

    [Fact]
    public async Task UsimFarAhead_ResynchronisesThroughTheHlr_ThenTheSessionIsEstablished()
    {
        // Profile 6.2: the UE rejects the Session Start with AUTS, the HSE resynchronises and sends a fresh one.
        await using var hlr = await OsmoHlrTests.StartWithSubscriberAsync();
        await using var auc = OsmoHlrTests.Connect(hlr);
        using var pair = new Pair(auc, usimSqnMs: SqnScheme.Default.Compose(500_000, 7));
        var channel = pair.Open(new UeChannelOptions { EasId = "eas.example.com", ServingNetwork = FiveG });
        Assert.True(pair.Ue.IsEstablished(channel));
        Assert.Single(pair.HseEvents.OfType<SessionEstablished>());
        Assert.Equal(2, pair.Hse.Counters.VectorsUsed);
        Assert.True(SqnScheme.Default.Seq(pair.UsimState.SqnMs) > 500_000);
    }

    [Fact]
    public async Task UnknownSubscriber_GetsNoSession()
    {
        await using var hlr = await OsmoHlrTests.StartWithSubscriberAsync();
        await using var auc = OsmoHlrTests.Connect(hlr);
        using var pair = new Pair(auc, imsi: "001010000000077");
        var channel = pair.Open(new UeChannelOptions { EasId = "eas.example.com", ServingNetwork = FiveG });
        Assert.False(pair.Ue.IsEstablished(channel));
        Assert.Empty(pair.HseEvents.OfType<SessionEstablished>());
    }

    /// <summary>A UE and an HSE joined by an in-memory bearer (as in OpenBest.Sessions.Tests' Harness).</summary>
    private sealed class Pair : IDisposable
    {
        private readonly Milenage _milenage = new(Convert.FromHexString(OsmoHlrTests.K), Convert.FromHexString(OsmoHlrTests.Opc));

        public Pair(IHseSubscribers subscribers, ulong usimSqnMs = 0, string imsi = OsmoHlrTests.Imsi)
        {
            Hse = new HseEngine(subscribers);
            UsimState = UsimSequenceState.FromSqnMs(usimSqnMs, SqnScheme.Default);
            Ue = new UeEndpoint(new Usim(_milenage, UsimState), new UeOptions { Imsi = imsi });
        }

        public HseEngine Hse { get; }

        public UeEndpoint Ue { get; }

        public UsimSequenceState UsimState { get; }

        public List<SessionEvent> HseEvents { get; } = [];

        public List<SessionEvent> UeEvents { get; } = [];

        public int Open(UeChannelOptions options)
        {
            Pump(Ue.Open(options, out var channel), uplink: true);
            return channel;
        }

        public void Pump(StepResult step, bool uplink)
        {
            var queue = new Queue<(bool Uplink, byte[] Message)>();
            Collect(step, uplink, queue);
            for (var guard = 0; guard < 1000 && queue.TryDequeue(out var item); guard++)
            {
                Collect(item.Uplink ? Hse.Receive(item.Message, "ue") : Ue.Receive(item.Message), !item.Uplink, queue);
            }
        }

        public void Dispose()
        {
            Hse.Dispose();
            Ue.Dispose();
            _milenage.Dispose();
        }

        private void Collect(StepResult step, bool uplink, Queue<(bool, byte[])> queue)
        {
            (uplink ? UeEvents : HseEvents).AddRange(step.Events);
            foreach (var send in step.Send)
            {
                queue.Enqueue((uplink, send.Message.ToArray()));
            }
        }
    }
}
