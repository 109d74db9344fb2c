using OpenBest.Crypto.Aead;
using OpenBest.Protocol;
using OpenBest.Sessions;

namespace OpenBest.Sessions.Tests;

/// <summary>Profile section 3 (persistence): a restarted HSE goes on with its sessions, never reusing a counter or accepting a replay.</summary>
public sealed class PersistenceTests
{
    private static (List<HseSessionSnapshot> Saved, List<uint> Ended) Changes(HseEngine hse)
    {
        var saved = new List<HseSessionSnapshot>();
        var ended = new List<uint>();
        hse.TakeChanges(saved, ended);
        return (saved, ended);
    }

    private static HseEngine Restart(Harness h, IEnumerable<HseSessionSnapshot> stored, uint nextSessionId)
    {
        h.Hse.Dispose();
        var hse = new HseEngine(h.Subscribers, null, h.Time);
        foreach (var snapshot in stored)
        {
            hse.Restore(snapshot);
        }

        hse.ResumeSessionIdsAt(nextSessionId);
        return hse;
    }

    [Fact]
    public void Established_SessionIsSaved_AndARestartedHseGoesOnWithIt()
    {
        using var h = new Harness();
        var ch = h.Open(new UeChannelOptions { EasId = "eas.example.com", Service = BestService.Confidential, ServingNetwork = Harness.FiveG });
        var sid = h.Ue.SessionIdOf(ch);
        h.Pump(h.Ue.Send(ch, "one"u8, ackRequested: true), uplink: true);
        h.Pump(h.Hse.SendDownlink(sid, "down-1"u8), uplink: false);
        var (saved, ended) = Changes(h.Hse);
        var snapshot = Assert.Single(saved);
        Assert.Empty(ended);
        Assert.Equal(sid, snapshot.SessionId);
        Assert.Equal(Harness.Imsi, snapshot.Imsi);
        Assert.DoesNotContain("State", snapshot.ToString(), StringComparison.Ordinal);
        var snapshotCounterLength = h.Single<SessionEstablished>(h.HseEvents).CounterLength;

        h.Hse = Restart(h, saved, h.Hse.NextSessionId);
        Assert.Equal("Established", h.Hse.StateOf(sid));

        // The uplink "one" retransmitted after the restart is not delivered again, but its Ack is sealed anew
        // (the Ack cache did not survive) and goes to the path the restored session learns from it.
        h.HseEvents.Clear();
        var uplinks = h.Wire.Where(w => w.Uplink).Select(w => w.Message).ToList();
        var acked = uplinks.Last(m => HeaderPrefix.TryRead(m, out var p) == ParseStatus.Ok && p.Plane == Plane.User);
        var again = h.Hse.Receive(acked, "10.0.0.9:7000");
        Assert.Empty(again.Events.OfType<DataReceived>());
        Assert.Equal("10.0.0.9:7000", Assert.Single(again.Send).Path);
        foreach (var old in uplinks)
        {
            h.Pump(h.Hse.Receive(old, h.Path), uplink: false);
        }

        Assert.Empty(h.HseEvents.OfType<DataReceived>());

        // New uplink is accepted, and downlink goes on from the reserved limit: no counter is sealed twice.
        h.Pump(h.Ue.Send(ch, "two"u8, ackRequested: true), uplink: true);
        Assert.Equal("two"u8.ToArray(), h.Single<DataReceived>(h.HseEvents).Payload.ToArray());
        h.UeEvents.Clear();
        h.Pump(h.Hse.SendDownlink(sid, "down-2"u8), uplink: false);
        Assert.Equal("down-2"u8.ToArray(), h.Single<DataReceived>(h.UeEvents).Payload.ToArray());
        // Every protected downlink after the Session Start: (Key ID, plane, counter) never seals two byte strings
        // (a stored Ack sent again is the same bytes).
        var seen = new Dictionary<(byte, Plane, uint), string>();
        foreach (var (_, message) in h.Wire.Where(w => !w.Uplink).Skip(1))
        {
            Assert.Equal(ParseStatus.Ok, HeaderPrefix.TryRead(message, out var prefix));
            if (prefix.SessionId != sid)
            {
                continue; // the replayed Session Request started another session
            }

            Assert.Equal(ParseStatus.Ok, EmsdpFrame.TryParse(message, prefix, snapshotCounterLength, 0, out var frame));
            var hex = Convert.ToHexString(message);
            Assert.True(seen.TryAdd((prefix.KeyId, prefix.Plane, frame.CounterField), hex) || seen[(prefix.KeyId, prefix.Plane, frame.CounterField)] == hex, $"counter {frame.CounterField} on {prefix.Plane} sealed twice");
        }
    }

    [Fact]
    public void UeToEasMode_AfterARestart_AcksGoToTheMessagesSource_AndALostAckIsSealedAnew()
    {
        // Profile section 1: in UE-to-EAS mode only CP messages move a session's path. A restored session has none until
        // then, so the Ack of a forwarded message (which the HSE cannot verify) goes back where the message came from.
        using var h = new Harness();
        var ch = h.Open(new UeChannelOptions { EasId = "eas.example.com", Service = BestService.Confidential, UeToEasMode = true, ServingNetwork = Harness.FiveG });
        var sid = h.Ue.SessionIdOf(ch);
        var (saved, _) = Changes(h.Hse);
        h.Hse = Restart(h, saved, h.Hse.NextSessionId);
        var uplink = Assert.Single(h.Ue.Send(ch, "after the restart"u8, ackRequested: true).Send).Message;
        var step = h.Hse.Receive(uplink.Span, "10.0.0.7:6000");
        Assert.Single(step.Events.OfType<UplinkForwarded>(), f => f.SessionId == sid);
        var ack = Assert.Single(step.Send);
        Assert.Equal("10.0.0.7:6000", ack.Path);
        h.UeEvents.Clear();
        h.Pump(h.Ue.Receive(ack.Message.Span), uplink: true);
        Assert.Single(h.UeEvents.OfType<DataAcknowledged>());

        // A message forwarded and stored whose Ack was lost (the HSE stopped before it left): after the next restart its
        // retransmission is forwarded again (the EAS drops the repeat) and its Ack is sealed anew, within the restored budget.
        var lost = Assert.Single(h.Ue.Send(ch, "ack lost"u8, ackRequested: true).Send).Message;
        Assert.Single(h.Hse.Receive(lost.Span, "10.0.0.7:6000").Send); // this Ack never reaches the UE
        (saved, _) = Changes(h.Hse);
        h.Hse = Restart(h, saved, h.Hse.NextSessionId);
        var again = h.Hse.Receive(lost.Span, "10.0.0.8:6000");
        var resealed = Assert.Single(again.Send);
        Assert.Equal("10.0.0.8:6000", resealed.Path);
        h.UeEvents.Clear();
        h.Pump(h.Ue.Receive(resealed.Message.Span), uplink: true);
        Assert.Single(h.UeEvents.OfType<DataAcknowledged>());
    }

    [Fact]
    public void Suspended_SessionKeepsItsQueue_AcrossARestart()
    {
        using var h = new Harness();
        var ch = h.Open(new UeChannelOptions { EasId = "eas.example.com", Service = BestService.Integrity, ServingNetwork = Harness.FiveG });
        var sid = h.Ue.SessionIdOf(ch);
        h.Pump(h.Ue.Suspend(ch), uplink: true);
        h.Pump(h.Hse.SendDownlink(sid, "queued"u8), uplink: false);
        var (saved, _) = Changes(h.Hse);
        var snapshot = Assert.Single(saved);
        Assert.True(snapshot.Suspended);
        Assert.Single(snapshot.Queue);

        h.Hse = Restart(h, saved, h.Hse.NextSessionId);
        h.UeEvents.Clear();
        h.Pump(h.Ue.Resume(ch), uplink: true);
        Assert.Equal("queued"u8.ToArray(), h.Single<DataReceived>(h.UeEvents).Payload.ToArray());
    }

    [Fact]
    public void Terminated_StoredSessionIsReportedEnded_AndIdsAreNotReused()
    {
        using var h = new Harness();
        var ch = h.Open(new UeChannelOptions { EasId = "eas.example.com", Service = BestService.Integrity, ServingNetwork = Harness.FiveG });
        var sid = h.Ue.SessionIdOf(ch);
        Changes(h.Hse);
        h.Pump(h.Ue.Terminate(ch), uplink: true);
        var (saved, ended) = Changes(h.Hse);
        Assert.Empty(saved);
        Assert.Equal([sid], ended);
        var next = h.Hse.NextSessionId;
        h.Hse = Restart(h, [], next);
        Assert.Equal(next, h.Hse.NextSessionId);
    }

    [Fact]
    public void Restore_RefusesStateItDidNotWrite()
    {
        using var hse = new HseEngine(new InMemorySubscribers());
        Assert.Throws<InvalidDataException>(() => hse.Restore(new HseSessionSnapshot(1, "1", "e", false, [9, 9, 9], [])));
        Assert.Throws<InvalidDataException>(() => hse.Restore(new HseSessionSnapshot(1, "1", "e", false, [1, 1, 0], [])));
    }

    [Fact]
    public void NoSecuritySessions_AreKept_AndGoOnAfterARestart()
    {
        // Seed 000 section 3: the no-security channel is an ordinary session without keys; it survives a restart like the others.
        var allow = new HseOptions { AllowNoSecurity = true };
        using var h = new Harness(allow);
        var ch = h.Open(new UeChannelOptions { EasId = "eas.example.com", Service = BestService.None, MinimumService = BestService.None, ServingNetwork = Harness.FiveG });
        var sid = h.Ue.SessionIdOf(ch);
        h.Pump(h.Ue.Send(ch, "plain"u8), uplink: true);
        Assert.Equal("Established", h.Hse.StateOf(sid));
        var saved = Assert.Single(Changes(h.Hse).Saved);
        Assert.Equal(sid, saved.SessionId);

        h.Hse.Dispose();
        h.Hse = new HseEngine(h.Subscribers, allow, h.Time);
        h.Hse.Restore(saved);
        Assert.Equal("Established", h.Hse.StateOf(sid));

        // Downlink waits for the device's next message (the path is learnt again), then both ways work.
        Assert.Empty(h.Hse.SendDownlink(sid, "queued"u8).Send);
        h.HseEvents.Clear();
        h.UeEvents.Clear();
        h.Pump(h.Ue.Send(ch, "after the restart"u8), uplink: true);
        Assert.Equal("after the restart"u8.ToArray(), h.Single<DataReceived>(h.HseEvents).Payload.ToArray());
        Assert.Equal("queued"u8.ToArray(), h.Single<DataReceived>(h.UeEvents).Payload.ToArray());
    }

    [Fact]
    public void AfterARestart_AReplayFromElsewhere_NeverTakesThePath_AndDownlinkWaitsForTheUe()
    {
        using var h = new Harness();
        var ch = h.Open(new UeChannelOptions { EasId = "eas.example.com", Service = BestService.Integrity, ServingNetwork = Harness.FiveG });
        var sid = h.Ue.SessionIdOf(ch);
        h.Pump(h.Ue.Send(ch, "one"u8, ackRequested: true), uplink: true);
        var old = h.Wire.Last(w => w.Uplink).Message;
        h.Hse = Restart(h, Changes(h.Hse).Saved, h.Hse.NextSessionId);

        // An attacker replays the old message from its own address: it gets only the Ack of that message.
        var replayed = h.Hse.Receive(old, "10.6.6.6:666");
        Assert.All(replayed.Send, s => Assert.Equal("10.6.6.6:666", s.Path));
        // Downlink meanwhile is queued, not sent to the attacker (nor lost).
        var down = h.Hse.SendDownlink(sid, "for the device"u8);
        Assert.Empty(down.Send);

        // The device's next fresh message sets the path and brings the queued downlink.
        h.UeEvents.Clear();
        h.Pump(h.Ue.Send(ch, "two"u8), uplink: true);
        Assert.Equal("for the device"u8.ToArray(), h.Single<DataReceived>(h.UeEvents).Payload.ToArray());
    }

    [Fact]
    public void ARefreshInFlightAtTheSnapshot_IsRunAgainAfterTheRestart()
    {
        var options = new HseOptions { KeyLifetime = TimeSpan.FromMinutes(10) };
        using var h = new Harness(options);
        var ch = h.Open(new UeChannelOptions { EasId = "eas.example.com", Service = BestService.Integrity, ServingNetwork = Harness.FiveG });
        var sid = h.Ue.SessionIdOf(ch);
        h.Interceptor = (uplink, m) => uplink ? null : m; // the UE's answer to the refresh never arrives
        h.Tick(TimeSpan.FromMinutes(11));
        var saved = Changes(h.Hse).Saved;
        h.Interceptor = (_, m) => m;
        h.Hse.Dispose();
        h.Hse = new HseEngine(h.Subscribers, options, h.Time);
        foreach (var snapshot in saved)
        {
            h.Hse.Restore(snapshot);
        }

        var before = h.Hse.CurrentKeyIdOf(sid);
        h.Pump(h.Ue.Send(ch, "hello"u8), uplink: true); // the path is known again
        h.Tick(TimeSpan.FromSeconds(1));
        Assert.NotEqual(before, h.Hse.CurrentKeyIdOf(sid));
    }
}

/// <summary>Profile section 5: the UE holds the same K_EAS_PSK and key identifier the HSE gives the EAS (key agreement only, UE-to-EAS mode).</summary>
public sealed class EasPskTests
{
    [Theory]
    [InlineData(BestService.KeyAgreementOnly, false)]
    [InlineData(BestService.Confidential, true)]
    public void TheUeAndTheHse_AgreeOnKEasPsk_AndItsIdentifier_AlsoAfterARefresh(BestService service, bool ueToEas)
    {
        using var h = new Harness();
        var ch = h.Open(new UeChannelOptions { EasId = "eas.example.com", Service = service, MinimumService = service == BestService.KeyAgreementOnly ? BestService.KeyAgreementOnly : BestService.Integrity, UeToEasMode = ueToEas, ServingNetwork = Harness.FiveG });
        var ready = h.HseEvents.OfType<EasKeysReady>().Last();
        var psk = new byte[32];
        Assert.True(h.Ue.TryGetEasPsk(ch, psk, out var keyIdentifier));
        Assert.Equal(ready.KEasPsk.ToArray(), psk);
        Assert.Equal(ready.EasKeyIdentifier, keyIdentifier);

        h.Pump(h.Hse.RefreshKeys(h.Ue.SessionIdOf(ch)), uplink: false);
        var refreshed = h.HseEvents.OfType<EasKeysReady>().Last();
        Assert.NotEqual(ready.EasKeyIdentifier, refreshed.EasKeyIdentifier);
        Assert.True(h.Ue.TryGetEasPsk(ch, psk, out keyIdentifier));
        Assert.Equal(refreshed.KEasPsk.ToArray(), psk);
        Assert.Equal(refreshed.EasKeyIdentifier, keyIdentifier);
    }

    [Fact]
    public void AnEndToMiddleChannel_HasNoEasPsk()
    {
        using var h = new Harness();
        var ch = h.Open(new UeChannelOptions { EasId = "eas.example.com", Service = BestService.Integrity, ServingNetwork = Harness.FiveG });
        Assert.False(h.Ue.TryGetEasPsk(ch, new byte[32], out _));
    }
}

/// <summary>Profile 6.2: the HSE answers a retransmitted Session Request with the same Session Start; a UE that already took it drops the copy as a duplicate.</summary>
public sealed class DuplicateSessionStartTests
{
    [Fact]
    public void ACopyOfTheSessionStartTaken_IsADuplicate_NotATagFailure()
    {
        using var h = new Harness();
        var ch = h.Open(new UeChannelOptions { EasId = "eas.example.com", Service = BestService.Confidential, CounterSchemes = CounterSchemes.TwoOctets, ServingNetwork = Harness.FiveG });
        Assert.True(h.Ue.IsEstablished(ch));
        var start = h.Wire.First(w => !w.Uplink).Message;
        var again = h.Ue.Receive(start);
        Assert.Empty(again.Send);
        Assert.Equal(1, h.Ue.Dropped.GetValueOrDefault(DropReason.Replay));
        Assert.Equal(0, h.Ue.Dropped.GetValueOrDefault(DropReason.TagFailed));
    }
}
