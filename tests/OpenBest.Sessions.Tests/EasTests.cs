using OpenBest.Protocol;
using OpenBest.Sessions;

namespace OpenBest.Sessions.Tests;

/// <summary>UE ↔ HSE ↔ EAS in UE-to-EAS mode (profile 6.2), with the EAS state machine.</summary>
public sealed class EasTests
{
    private static readonly byte[] EnterpriseKey = "enterprise-secret"u8.ToArray();

    private static (Harness H, EasEndpoint Eas, int Channel, uint SessionId) EndToEnd(BestService service = BestService.Confidential)
    {
        var h = new Harness();
        var channel = h.Open(new UeChannelOptions { EasId = "eas.example.com", Service = service, UeToEasMode = true, ServingNetwork = Harness.FiveG, EnterpriseKey = EnterpriseKey });
        var sid = h.Ue.SessionIdOf(channel);
        var eas = new EasEndpoint(h.Time);
        eas.SetEnterpriseKey(sid, EnterpriseKey);
        eas.Install(h.Single<EasKeysReady>(h.HseEvents));
        return (h, eas, channel, sid);
    }

    [Theory]
    [InlineData(BestService.Confidential)]
    [InlineData(BestService.Integrity)]
    public void Uplink_UeToEas_ThroughTheHse(BestService service)
    {
        var (h, eas, channel, _) = EndToEnd(service);
        using (h)
        using (eas)
        {
            h.Pump(h.Ue.Send(channel, "meter=17"u8), uplink: true);
            var forwarded = h.Single<UplinkForwarded>(h.HseEvents);
            var data = Assert.Single(eas.Receive(forwarded.Message.Span).Events.OfType<DataReceived>());
            Assert.Equal("meter=17"u8.ToArray(), data.Payload.ToArray());

            // The same bytes again: not delivered twice.
            Assert.Empty(eas.Receive(forwarded.Message.Span).Events.OfType<DataReceived>());
        }
    }

    [Fact]
    public void Downlink_EasToUe_ForwardedUnmodified()
    {
        var (h, eas, channel, sid) = EndToEnd();
        using (h)
        using (eas)
        {
            var sealedDownlink = eas.SendDownlink(sid, "close valve"u8).Send[0].Message;
            h.Pump(h.Hse.ForwardDownlinkFromEas(sid, sealedDownlink.Span), uplink: false);
            Assert.Equal("close valve"u8.ToArray(), h.Single<DataReceived>(h.UeEvents).Payload.ToArray());
            Assert.True(h.Ue.IsEstablished(channel));
        }
    }

    [Fact]
    public void WithoutTheEnterpriseKey_TheEasCannotOpen()
    {
        // Profile 5: with an Enterprise Key the operator cannot derive the E2E keys.
        var (h, eas, channel, sid) = EndToEnd();
        using (h)
        using (eas)
        using (var operatorOnly = new EasEndpoint(h.Time))
        {
            operatorOnly.Install(h.Single<EasKeysReady>(h.HseEvents));
            h.Pump(h.Ue.Send(channel, "private"u8), uplink: true);
            var forwarded = h.Single<UplinkForwarded>(h.HseEvents);
            Assert.Contains(operatorOnly.Receive(forwarded.Message.Span).Events.OfType<MessageDropped>(), d => d.Reason == DropReason.TagFailed);
            Assert.Single(eas.Receive(forwarded.Message.Span).Events.OfType<DataReceived>());
            _ = sid;
        }
    }

    [Fact]
    public void KeyRefresh_NewEasKeys_OldSetWorksDuringGrace()
    {
        var (h, eas, channel, sid) = EndToEnd();
        using (h)
        using (eas)
        {
            var early = h.Ue.Send(channel, "before"u8).Send[0].Message.ToArray();
            h.Pump(h.Hse.RefreshKeys(sid), uplink: false);
            var refreshed = h.HseEvents.OfType<EasKeysReady>().Last();
            Assert.Equal(2, refreshed.KeyId);
            eas.Install(refreshed);

            h.Pump(h.Ue.Send(channel, "after"u8), uplink: true);
            var late = h.HseEvents.OfType<UplinkForwarded>().Last();
            Assert.Equal(2, late.KeyId);
            Assert.Single(eas.Receive(late.Message.Span).Events.OfType<DataReceived>());
            Assert.Single(eas.Receive(early).Events.OfType<DataReceived>());

            h.Time.Advance(TimeSpan.FromSeconds(601));
            eas.Tick();
            Assert.Contains(eas.Receive(early).Events.OfType<MessageDropped>(), d => d.Reason == DropReason.UnknownSession);
        }
    }

    [Fact]
    public void HseRefusesDownlinkForAnotherSessionOrTheControlPlane()
    {
        var (h, eas, _, sid) = EndToEnd();
        using (h)
        using (eas)
        {
            var sealedDownlink = eas.SendDownlink(sid, "x"u8).Send[0].Message.ToArray();
            var forged = (byte[])sealedDownlink.Clone();
            forged[0] &= 0xDF; // UP → CP
            Assert.Empty(h.Hse.ForwardDownlinkFromEas(sid, forged).Send);
        }
    }
}
