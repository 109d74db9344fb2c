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

    private static readonly byte[] Ek1 = "ek-1"u8.ToArray();
    private static readonly byte[] Ek2 = "ek-2"u8.ToArray();
    private static readonly EnterpriseKey First = new(Ek1, "first enterprise key"u8.ToArray());
    private static readonly EnterpriseKey Second = new(Ek2, "second enterprise key"u8.ToArray());

    /// <summary>Profile 5 and 6.2: the HSE names the Enterprise Key (TLV 0x0E) in the Session Start; the UE uses the key of that name, and the EAS is told it.</summary>
    [Fact]
    public void EnterpriseKeyIdentifier_InTheSessionStart_NamesTheKeyBothEndsUse()
    {
        byte[]? chosen = Ek1;
        using var h = new Harness(new HseOptions { EnterpriseKeyIdentifier = (imsi, eas) => imsi == Harness.Imsi && eas == "eas.example.com" ? chosen : null });
        var channel = h.Open(new UeChannelOptions { EasId = "eas.example.com", UeToEasMode = true, ServingNetwork = Harness.FiveG, EnterpriseKeys = [First, Second] });
        Assert.True(h.Ue.IsEstablished(channel));
        var start = h.Wire.First(w => !w.Uplink).Message;
        Assert.True(start.AsSpan().IndexOf(new byte[] { 0x0E, (byte)Ek1.Length }.Concat(Ek1).ToArray()) > 0); // TLV 0x0E on the wire
        Assert.Equal(Ek1, h.Ue.EnterpriseKeyIdentifierOf(channel));
        var keys = h.Single<EasKeysReady>(h.HseEvents);
        Assert.Equal(Ek1, keys.EnterpriseKeyIdentifier);

        using var eas = new EasEndpoint(h.Time);
        var sid = h.Ue.SessionIdOf(channel);
        eas.SetEnterpriseKey(sid, First.Key);
        eas.Install(keys);
        h.Pump(h.Ue.Send(channel, "under ek-1"u8), uplink: true);
        Assert.Single(eas.Receive(h.HseEvents.OfType<UplinkForwarded>().Last().Message.Span).Events.OfType<DataReceived>());

        // The EAS chose another key: the next key set (a refresh) names it, and uses it.
        chosen = Ek2;
        h.Pump(h.Hse.RefreshKeys(sid), uplink: false);
        var refreshed = h.HseEvents.OfType<EasKeysReady>().Last();
        Assert.Equal(2, refreshed.KeyId);
        Assert.Equal(Ek2, refreshed.EnterpriseKeyIdentifier);
        Assert.Equal(Ek2, h.Ue.EnterpriseKeyIdentifierOf(channel));
        eas.SetEnterpriseKey(sid, Second.Key);
        eas.Install(refreshed);
        h.Pump(h.Ue.Send(channel, "under ek-2"u8), uplink: true);
        var late = h.HseEvents.OfType<UplinkForwarded>().Last();
        Assert.Equal(2, late.KeyId);
        Assert.Equal("under ek-2"u8.ToArray(), Assert.Single(eas.Receive(late.Message.Span).Events.OfType<DataReceived>()).Payload.ToArray());
    }

    /// <summary>Profile 6.2: a Session Start naming an Enterprise Key the UE does not hold is a selection it refuses (protected Reject 0x08).</summary>
    [Fact]
    public void UnknownEnterpriseKeyIdentifier_InTheSessionStart_IsRefused()
    {
        using var h = new Harness(new HseOptions { EnterpriseKeyIdentifier = (_, _) => "not-held"u8.ToArray() });
        var channel = h.Open(new UeChannelOptions { EasId = "eas.example.com", UeToEasMode = true, ServingNetwork = Harness.FiveG, EnterpriseKeys = [First] });
        Assert.False(h.Ue.IsEstablished(channel));
        Assert.Equal(Cause.NoCommonSuite, h.Single<SessionRejected>(h.UeEvents).Cause);
        Assert.Equal(Cause.NoCommonSuite, h.Single<SessionRejected>(h.HseEvents).Cause);
        Assert.Empty(h.HseEvents.OfType<EasKeysReady>());
    }

    /// <summary>Profile 6.2: a Manage Keys Request naming an Enterprise Key the UE does not hold is refused; the current keys stay.</summary>
    [Fact]
    public void UnknownEnterpriseKeyIdentifier_InARefresh_IsRefused_AndTheCurrentKeysStay()
    {
        byte[]? chosen = null;
        using var h = new Harness(new HseOptions { EnterpriseKeyIdentifier = (_, _) => chosen });
        var channel = h.Open(new UeChannelOptions { EasId = "eas.example.com", UeToEasMode = true, ServingNetwork = Harness.FiveG, EnterpriseKey = EnterpriseKey, EnterpriseKeys = [First] });
        Assert.True(h.Ue.IsEstablished(channel));
        Assert.Null(h.Single<EasKeysReady>(h.HseEvents).EnterpriseKeyIdentifier);
        Assert.Null(h.Ue.EnterpriseKeyIdentifierOf(channel));
        var sid = h.Ue.SessionIdOf(channel);

        chosen = "not-held"u8.ToArray();
        h.Pump(h.Hse.RefreshKeys(sid), uplink: false);
        Assert.Single(h.HseEvents.OfType<EasKeysReady>());
        Assert.Equal(1, h.Hse.CurrentKeyIdOf(sid));
        Assert.True(h.Ue.IsEstablished(channel));
        h.Pump(h.Ue.Send(channel, "still key 1"u8), uplink: true);
        Assert.Equal(1, h.HseEvents.OfType<UplinkForwarded>().Last().KeyId);
    }

    /// <summary>A restarted HSE still knows which Enterprise Key the current key set uses (session state version 2).</summary>
    [Fact]
    public void EnterpriseKeyIdentifier_SurvivesARestart()
    {
        using var h = new Harness(new HseOptions { EnterpriseKeyIdentifier = (_, _) => Ek1 });
        var channel = h.Open(new UeChannelOptions { EasId = "eas.example.com", UeToEasMode = true, ServingNetwork = Harness.FiveG, EnterpriseKeys = [First] });
        var sid = h.Ue.SessionIdOf(channel);
        var saved = new List<HseSessionSnapshot>();
        h.Hse.TakeChanges(saved, new List<uint>());
        var restarted = new HseEngine(h.Subscribers, new HseOptions(), h.Time);
        restarted.Restore(Assert.Single(saved));
        Assert.Equal(Ek1, restarted.EnterpriseKeyIdentifierOf(sid));
        h.Hse.Dispose();
        h.Hse = restarted;
        h.Pump(h.Ue.Send(channel, "after restart"u8), uplink: true);
        h.Pump(h.Hse.RefreshKeys(sid), uplink: false);
        // The new options name no key: the refresh names none, and the UE's key set follows.
        Assert.Null(h.HseEvents.OfType<EasKeysReady>().Last().EnterpriseKeyIdentifier);
    }
}
