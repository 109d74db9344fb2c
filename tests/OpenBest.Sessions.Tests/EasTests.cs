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

    /// <summary>
    /// Profile 5 and 6.2, and the decision in docs/protocol.md: the HSE names the Enterprise Key (TLV 0x0E) only after the UE
    /// authenticated, in a refresh at key confirmation; the UE uses the key of that name, and the EAS is told it.
    /// </summary>
    [Fact]
    public void EnterpriseKeyIdentifier_IsNamedInARefreshAtConfirmation_AndBothEndsUseIt()
    {
        byte[]? chosen = Ek1;
        using var h = new Harness(new HseOptions { EnterpriseKeyIdentifier = (imsi, eas) => imsi == Harness.Imsi && eas == "eas.example.com" ? chosen : null });
        var channel = h.Open(new UeChannelOptions { EasId = "eas.example.com", UeToEasMode = true, ServingNetwork = Harness.FiveG, EnterpriseKeys = [First, Second] });
        Assert.True(h.Ue.IsEstablished(channel));
        var tlv = new byte[] { 0x0E, (byte)Ek1.Length }.Concat(Ek1).ToArray();
        Assert.True(h.Wire.First(w => !w.Uplink).Message.AsSpan().IndexOf(tlv) < 0); // not in the Session Start
        Assert.Contains(h.Wire.Where(w => !w.Uplink).Skip(1), w => w.Message.AsSpan().IndexOf(tlv) > 0); // in the Manage Keys Request
        Assert.Equal(Ek1, h.Ue.EnterpriseKeyIdentifierOf(channel));
        var pushed = h.HseEvents.OfType<EasKeysReady>().ToList();
        Assert.Equal([(byte)1, (byte)2], pushed.Select(k => k.KeyId));
        Assert.Null(pushed[0].EnterpriseKeyIdentifier);
        Assert.Equal(Ek1, pushed[1].EnterpriseKeyIdentifier);

        using var eas = new EasEndpoint(h.Time);
        var sid = h.Ue.SessionIdOf(channel);
        eas.SetEnterpriseKey(sid, First.Key);
        eas.Install(pushed[1]);
        h.Pump(h.Ue.Send(channel, "under ek-1"u8), uplink: true);
        var forwarded = h.HseEvents.OfType<UplinkForwarded>().Last();
        Assert.Equal(2, forwarded.KeyId);
        Assert.Single(eas.Receive(forwarded.Message.Span).Events.OfType<DataReceived>());

        // The EAS chose another key: the next refresh names it, and the new key set uses it.
        chosen = Ek2;
        h.Pump(h.Hse.RefreshKeys(sid), uplink: false);
        var refreshed = h.HseEvents.OfType<EasKeysReady>().Last();
        Assert.Equal(3, refreshed.KeyId);
        Assert.Equal(Ek2, refreshed.EnterpriseKeyIdentifier);
        Assert.Equal(Ek2, h.Ue.EnterpriseKeyIdentifierOf(channel));
        Assert.Equal(Ek2, h.Hse.EnterpriseKeyIdentifierOf(sid));
        eas.SetEnterpriseKey(sid, Second.Key);
        eas.Install(refreshed);
        h.Pump(h.Ue.Send(channel, "under ek-2"u8), uplink: true);
        var late = h.HseEvents.OfType<UplinkForwarded>().Last();
        Assert.Equal(3, late.KeyId);
        Assert.Equal("under ek-2"u8.ToArray(), Assert.Single(eas.Receive(late.Message.Span).Events.OfType<DataReceived>()).Payload.ToArray());
    }

    /// <summary>
    /// Profile 5: a UE that holds Enterprise Keys never sends data under a key set without one (the operator could read it):
    /// it waits for a key set that names one; and it drops downlink under such a key set (the operator could forge it).
    /// </summary>
    [Fact]
    public void WithoutANamedEnterpriseKey_DataWaits_AndDownlinkIsDropped()
    {
        byte[]? chosen = null;
        using var h = new Harness(new HseOptions { EnterpriseKeyIdentifier = (_, _) => chosen });
        var channel = h.Open(new UeChannelOptions { EasId = "eas.example.com", UeToEasMode = true, ServingNetwork = Harness.FiveG, EnterpriseKeys = [First] });
        Assert.True(h.Ue.IsEstablished(channel));
        var sid = h.Ue.SessionIdOf(channel);
        var first = h.Single<EasKeysReady>(h.HseEvents);
        Assert.Null(first.EnterpriseKeyIdentifier);

        h.Pump(h.Ue.Send(channel, "waits for the key"u8, ackRequested: true), uplink: true);
        Assert.Empty(h.HseEvents.OfType<UplinkForwarded>());

        using (var operatorEas = new EasEndpoint(h.Time))
        {
            operatorEas.Install(first); // no Enterprise Key: what the operator can derive
            h.Pump(h.Hse.ForwardDownlinkFromEas(sid, operatorEas.SendDownlink(sid, "forged"u8).Send[0].Message.Span), uplink: false);
        }

        Assert.Empty(h.UeEvents.OfType<DataReceived>());
        Assert.Contains(h.UeEvents.OfType<MessageDropped>(), d => d.Reason == DropReason.NoEnterpriseKey);

        // The EAS chose its key: the refresh names it, and the data that waited goes under it.
        chosen = Ek1;
        h.Pump(h.Hse.RefreshKeys(sid), uplink: false);
        var forwarded = Assert.Single(h.HseEvents.OfType<UplinkForwarded>());
        Assert.Equal(2, forwarded.KeyId);
        using var eas = new EasEndpoint(h.Time);
        eas.SetEnterpriseKey(sid, First.Key);
        eas.Install(h.HseEvents.OfType<EasKeysReady>().Last());
        Assert.Equal("waits for the key"u8.ToArray(), Assert.Single(eas.Receive(forwarded.Message.Span).Events.OfType<DataReceived>()).Payload.ToArray());
    }

    /// <summary>Profile 6.2: a Manage Keys Request naming an Enterprise Key the UE does not hold is refused (Reject 0x08); the current keys stay, and the HSE says so.</summary>
    [Fact]
    public void UnknownEnterpriseKeyIdentifier_IsRefused_AndTheCurrentKeysStay()
    {
        using var h = new Harness(new HseOptions { EnterpriseKeyIdentifier = (_, _) => "not-held"u8.ToArray() });
        var channel = h.Open(new UeChannelOptions { EasId = "eas.example.com", UeToEasMode = true, ServingNetwork = Harness.FiveG, EnterpriseKey = EnterpriseKey, EnterpriseKeys = [First] });
        Assert.True(h.Ue.IsEstablished(channel));
        var sid = h.Ue.SessionIdOf(channel);
        var refused = h.Single<EnterpriseKeyRefused>(h.HseEvents);
        Assert.Equal("not-held"u8.ToArray(), refused.EnterpriseKeyIdentifier);
        Assert.Single(h.HseEvents.OfType<EasKeysReady>());
        Assert.Equal(1, h.Hse.CurrentKeyIdOf(sid));
        Assert.Null(h.Hse.EnterpriseKeyIdentifierOf(sid));
        Assert.Null(h.Ue.EnterpriseKeyIdentifierOf(channel));

        // The unnamed Enterprise Key of key set 1 still carries data.
        h.Pump(h.Ue.Send(channel, "still key 1"u8), uplink: true);
        Assert.Equal(1, h.HseEvents.OfType<UplinkForwarded>().Last().KeyId);
    }

    /// <summary>A lookup of the Enterprise Key Identifier that fails (the store is down) changes nothing and is counted.</summary>
    [Fact]
    public void AFailingLookup_ChangesNothing()
    {
        using var h = new Harness(new HseOptions { EnterpriseKeyIdentifier = (_, _) => throw new InvalidOperationException("the store is down") });
        var channel = h.Open(new UeChannelOptions { EasId = "eas.example.com", UeToEasMode = true, ServingNetwork = Harness.FiveG, EnterpriseKey = EnterpriseKey });
        Assert.True(h.Ue.IsEstablished(channel));
        var sid = h.Ue.SessionIdOf(channel);
        h.Pump(h.Hse.RefreshKeys(sid), uplink: false);
        Assert.Equal(2, h.Hse.CurrentKeyIdOf(sid));
        Assert.True(h.Hse.EnterpriseKeyLookupFailures >= 2);
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
        var restarted = new HseEngine(h.Subscribers, new HseOptions { EnterpriseKeyIdentifier = (_, _) => Ek1 }, h.Time);
        restarted.Restore(Assert.Single(saved));
        Assert.Equal(Ek1, restarted.EnterpriseKeyIdentifierOf(sid));
        h.Hse.Dispose();
        h.Hse = restarted;
        h.Pump(h.Ue.Send(channel, "after restart"u8), uplink: true);
        Assert.Single(h.HseEvents.OfType<UplinkForwarded>());
        h.Pump(h.Hse.RefreshKeys(sid), uplink: false);
        Assert.Equal(Ek1, h.HseEvents.OfType<EasKeysReady>().Last().EnterpriseKeyIdentifier);
    }

    /// <summary>Data that waits for an Enterprise Key: the UE asks for new keys after 10 s, and gives it up (with its token) after MaxHoldTime.</summary>
    [Fact]
    public void WaitingData_AsksForKeys_ThenIsGivenUp()
    {
        byte[]? chosen = null;
        using var h = new Harness(new HseOptions { EnterpriseKeyIdentifier = (_, _) => chosen });
        var channel = h.Open(new UeChannelOptions { EasId = "eas.example.com", UeToEasMode = true, ServingNetwork = Harness.FiveG, EnterpriseKeys = [First] });
        var sid = h.Ue.SessionIdOf(channel);
        h.Pump(h.Ue.Send(channel, "first"u8, ackRequested: true, token: 41), uplink: true);
        Assert.True(h.Ue.IsHoldingData(channel));

        // The EAS chose meanwhile, but the refresh that would name it was lost: the UE asks itself.
        chosen = Ek1;
        h.Tick(TimeSpan.FromSeconds(11));
        Assert.Equal(Ek1, h.Ue.EnterpriseKeyIdentifierOf(channel));
        var forwarded = Assert.Single(h.HseEvents.OfType<UplinkForwarded>());
        Assert.NotEqual(1, forwarded.KeyId);
        Assert.False(h.Ue.IsHoldingData(channel));
        _ = sid;

        // A second channel whose EAS never chooses: its data is given up after 60 s, with its token.
        chosen = null;
        var other = h.Open(new UeChannelOptions { EasId = "other.example.com", UeToEasMode = true, ServingNetwork = Harness.FiveG, EnterpriseKeys = [First] });
        h.Pump(h.Ue.Send(other, "never"u8, ackRequested: true, token: 42), uplink: true);
        for (var i = 0; i < 7; i++)
        {
            h.Tick(TimeSpan.FromSeconds(10));
        }

        Assert.Contains(h.UeEvents.OfType<HeldDataDropped>(), d => d.Token == 42);
        Assert.DoesNotContain(h.HseEvents.OfType<UplinkForwarded>(), f => f.EasId == "other.example.com");
    }

    /// <summary>A refresh asked for while another is in flight, for another Enterprise Key, runs once the first ends.</summary>
    [Fact]
    public void ARefreshForAnotherKey_WhileOneIsInFlight_RunsAfterIt()
    {
        byte[]? chosen = null;
        using var h = new Harness(new HseOptions { EnterpriseKeyIdentifier = (_, _) => chosen });
        var channel = h.Open(new UeChannelOptions { EasId = "eas.example.com", UeToEasMode = true, ServingNetwork = Harness.FiveG, EnterpriseKey = EnterpriseKey, EnterpriseKeys = [First] });
        var sid = h.Ue.SessionIdOf(channel);
        h.Interceptor = (uplink, m) => uplink ? m : null; // the first Manage Keys Request is lost
        h.Pump(h.Hse.RefreshKeys(sid), uplink: false);
        chosen = Ek1;
        h.Pump(h.Hse.RefreshKeys(sid), uplink: false); // in flight: asked again
        h.Interceptor = (_, m) => m;
        h.Tick(TimeSpan.FromSeconds(3)); // the retransmission arrives, is answered, and the second refresh follows
        Assert.Equal(3, h.Hse.CurrentKeyIdOf(sid));
        // Each key set went to the EAS with its own key identifier and K_EAS_PSK (none with the next set's).
        var pushed = h.HseEvents.OfType<EasKeysReady>().ToList();
        Assert.Equal([(byte)1, (byte)2, (byte)3], pushed.Select(k => k.KeyId));
        Assert.Equal(3, pushed.Select(k => k.EasKeyIdentifier).Distinct().Count());
        Assert.Equal(3, pushed.Select(k => Convert.ToHexString(k.KEasPsk.Span)).Distinct().Count());
        Assert.Null(pushed[1].EnterpriseKeyIdentifier);
        Assert.Equal(Ek1, pushed[2].EnterpriseKeyIdentifier);
        Assert.Equal(Ek1, h.Hse.EnterpriseKeyIdentifierOf(sid));
        Assert.Equal(Ek1, h.Ue.EnterpriseKeyIdentifierOf(channel));
    }
}
