using OpenBest.Crypto.Aead;
using OpenBest.Protocol;
using OpenBest.Sessions;

namespace OpenBest.Sessions.Tests;

/// <summary>Session start, confirmation and AKA failures (profile 6.2), UE ↔ HSE over an in-memory bearer.</summary>
public sealed class SessionStartTests
{
    private static UeChannelOptions Channel(BestService service = BestService.Confidential) =>
        new() { EasId = "eas.example.com", Service = service, ServingNetwork = Harness.FiveG };

    [Theory]
    [InlineData(BestService.Confidential)]
    [InlineData(BestService.Integrity)]
    [InlineData(BestService.KeyAgreementOnly)]
    public void SessionStart_EveryService_EstablishesBothSides(BestService service)
    {
        // Profile 6.2 "Session start" and "Confirmation".
        using var h = new Harness();
        var channel = h.Open(Channel(service));
        Assert.True(h.Ue.IsEstablished(channel));
        var established = h.Single<SessionEstablished>(h.HseEvents);
        Assert.Equal(service, established.Service);
        Assert.Equal(KeyAgreements.FiveGAka, h.Ue.SelectedOf(channel).KeyAgreement);
        Assert.Equal(h.Ue.SessionIdOf(channel), established.SessionId);
        Assert.True(established.SessionId >= 1);
    }

    [Fact]
    public void SessionSetup_FitsTheOctetBudget_InOneRoundTrip()
    {
        // Issue target: ≤ 110 octets for the whole setup in one round trip (Session Request + Session Start),
        // met by the leanest configuration: UMTS AKA (no serving network TLV), an 11-character EAS Id.
        using var h = new Harness();
        h.Open(Channel(BestService.Integrity) with { EasId = "eas.example", KeyAgreements = KeyAgreements.UmtsAka, ServingNetwork = null }, "x"u8.ToArray());
        var request = h.Wire[0];
        var start = h.Wire[1];
        Assert.True(request.Uplink);
        Assert.False(start.Uplink);
        Assert.True(request.Message.Length + start.Message.Length <= 110, $"{request.Message.Length} + {start.Message.Length} octets");
    }

    [Fact]
    public void KeyAgreementOnly_NeedsExplicitConfirmation()
    {
        // Profile 6.2: key agreement only requires an explicit Session Start Confirmation; the HSE reports
        // the session, and hands the PSK to the EAS, only after it.
        using var h = new Harness();
        h.Interceptor = (uplink, m) => uplink && m.Length > 3 && m[0] == 0x42 && h.Wire.Count == 2 ? null : m; // lose the confirmation
        h.Open(Channel(BestService.KeyAgreementOnly));
        Assert.Empty(h.HseEvents.OfType<SessionEstablished>());
        Assert.Empty(h.HseEvents.OfType<EasKeysReady>());
    }

    [Fact]
    public void KeyAgreementOnly_DeliversEasPskAfterConfirmation()
    {
        using var h = new Harness();
        h.Open(Channel(BestService.KeyAgreementOnly));
        var keys = h.Single<EasKeysReady>(h.HseEvents);
        Assert.Equal("eas.example.com", keys.EasId);
        Assert.Equal(32, keys.KEasPsk.Length);
        Assert.DoesNotContain(Convert.ToHexString(keys.KEasPsk.Span), keys.ToString(), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void RetransmittedRequest_GetsTheIdenticalStart_WithoutANewVector()
    {
        // Profile 6.2: an identical request (from any source) gets the identical Session Start, no new vector.
        using var h = new Harness();
        h.Interceptor = (uplink, m) => uplink ? m : null; // lose every downlink
        var channel = h.Open(Channel());
        var firstStart = h.HseEvents.Count;
        h.Interceptor = (_, m) => m;
        h.Path = "10.0.0.2:6000";
        h.Tick(TimeSpan.FromSeconds(2));
        Assert.True(h.Ue.IsEstablished(channel));
        Assert.Equal(1, h.Subscribers.VectorsIssued(Harness.Imsi));
        var starts = h.Sent.Where(w => !w.Uplink && w.Message[0] == 0x42).Select(w => Convert.ToHexString(w.Message)).ToList();
        Assert.True(starts.Count >= 2);
        Assert.Single(starts.Distinct());
        _ = firstStart;
    }

    [Fact]
    public void MacFailure_HseDropsTheSession_AndIssuesNoSecondVector()
    {
        // Profile 6.2 "AKA failures": the UE answers Reject 0x02 (Key ID 0); the HSE drops the session.
        var otherK = Convert.FromHexString("000102030405060708090a0b0c0d0e0f");
        using var h = new Harness(ueK: otherK);
        var channel = h.Open(Channel());
        Assert.False(h.Ue.IsEstablished(channel));
        var rejected = h.Single<SessionRejected>(h.HseEvents);
        Assert.Equal(Cause.AkaMacFailure, rejected.Cause);
        Assert.Equal(0, h.Hse.SessionCount);
        Assert.Equal(1, h.Subscribers.VectorsIssued(Harness.Imsi));
    }

    [Fact]
    public void SyncFailure_Auts_Resync_FreshStart_Established()
    {
        // Profile 6.2: Reject 0x03 with AUTS; the HSE resynchronises once and sends a fresh Session Start.
        using var h = new Harness(ueSqnMs: 0x0000_0100_0000);
        var channel = h.Open(Channel());
        Assert.True(h.Ue.IsEstablished(channel));
        Assert.Equal(2, h.Subscribers.VectorsIssued(Harness.Imsi));
        Assert.Contains(h.Wire, w => w.Uplink && w.Message.Length > 4 && w.Message[3] == (byte)CommandCode.MessageReject);
        Assert.Single(h.HseEvents.OfType<SessionEstablished>());
    }

    [Fact]
    public void UnknownSubscriber_Hidden_GetsADecoyStart_ThenSilence()
    {
        // Profile 7 "Hiding subscribers": a well-formed Session Start; the UE's MAC failure is handled identically.
        using var h = new Harness(registerSubscriber: false);
        var channel = h.Open(Channel());
        Assert.False(h.Ue.IsEstablished(channel));
        var start = h.Wire.First(w => !w.Uplink).Message;
        Assert.Equal(0x42, start[0]);
        Assert.Contains(h.Wire, w => w.Uplink && w.Message[3] == (byte)CommandCode.MessageReject);
        Assert.Equal(0, h.Hse.SessionCount);
    }

    [Fact]
    public void UnknownSubscriber_NotHidden_GetsCause01()
    {
        using var h = new Harness(new HseOptions { HideUnknownSubscribers = false }, registerSubscriber: false);
        h.Open(Channel());
        Assert.Equal(Cause.UnknownSubscriber, h.Single<SessionRejected>(h.UeEvents).Cause);
    }

    [Fact]
    public void DowngradedRequest_IsDetectedThroughTheChecksum()
    {
        // Profile 4/6.2: the Session Start echoes the checksum of the request the HSE saw and binds its hash;
        // a request whose confidential service was changed in transit no longer matches the UE's.
        using var h = new Harness();
        h.Interceptor = (uplink, m) =>
        {
            if (uplink && m.Length > 3 && m[3] == (byte)CommandCode.SessionRequest)
            {
                var copy = (byte[])m.Clone();
                var at = copy.AsSpan().IndexOf([(byte)TlvTag.UeConfiguration, (byte)5]);
                copy[at + 4] = (byte)BestService.Integrity; // o3: confidential → integrity
                return copy;
            }

            return m;
        };
        var channel = h.Open(Channel(BestService.Confidential));
        Assert.False(h.Ue.IsEstablished(channel));
        Assert.Contains(h.UeEvents.OfType<MessageDropped>(), d => d.Reason == DropReason.SessionStartCheckFailed);
    }

    [Fact]
    public void NoSecurity_RefusedByDefault_AllowedByPolicy()
    {
        // Profile 6.2 "No-security channel": only by HSE policy, off by default.
        using (var h = new Harness())
        {
            h.Open(Channel(BestService.None) with { MinimumService = BestService.None });
            Assert.Equal(Cause.ServiceNotSupported, h.Single<SessionRejected>(h.UeEvents).Cause);
        }

        using (var h = new Harness(new HseOptions { AllowNoSecurity = true }))
        {
            var channel = h.Open(Channel(BestService.None) with { MinimumService = BestService.None });
            Assert.True(h.Ue.IsEstablished(channel));
            h.Pump(h.Ue.Send(channel, "plain"u8), uplink: true);
            var data = h.Single<DataReceived>(h.HseEvents);
            Assert.Equal("plain"u8.ToArray(), data.Payload.ToArray());
            Assert.Equal(0, data.KeyId);
        }
    }

    [Fact]
    public void NoSecurity_DownlinkSuspendResumeTerminate_AllKeyIdZero_AndNoAck()
    {
        // Seed 000 section 3 and profile 6.2 "No-security channel": Key ID 0, no tags; its procedures run unprotected
        // (docs/protocol.md), and with no counter or tag there is nothing a Data Ack could name.
        using var h = new Harness(new HseOptions { AllowNoSecurity = true });
        var channel = h.Open(Channel(BestService.None) with { MinimumService = BestService.None });
        var sid = h.Ue.SessionIdOf(channel);
        h.Pump(h.Ue.Send(channel, "asks for an Ack"u8, ackRequested: true), uplink: true);
        Assert.False(h.Single<DataReceived>(h.HseEvents).AckRequested);
        Assert.DoesNotContain(h.UeEvents, e => e is DataAcknowledged);

        h.Pump(h.Hse.SendDownlink(sid, "down"u8), uplink: false);
        Assert.Equal("down"u8.ToArray(), h.Single<DataReceived>(h.UeEvents).Payload.ToArray());

        h.Pump(h.Ue.Suspend(channel), uplink: true);
        Assert.Equal("Suspended", h.Hse.StateOf(sid));
        h.UeEvents.Clear();
        Assert.Empty(h.Hse.SendDownlink(sid, "while suspended"u8).Send);
        h.Pump(h.Ue.Resume(channel), uplink: true);
        Assert.Equal("Established", h.Hse.StateOf(sid));
        Assert.Equal("while suspended"u8.ToArray(), h.Single<DataReceived>(h.UeEvents).Payload.ToArray());

        h.Pump(h.Ue.Terminate(channel), uplink: true);
        Assert.Equal("Terminated", h.Hse.StateOf(sid));
        Assert.Contains(h.UeEvents, e => e is SessionTerminated);
        // Every message of the channel, both ways, had Key ID 0 (octet 0 bits 0x0E).
        Assert.All(h.Wire.Where(w => w.Message.Length > 1 && w.Message[1] != 0), w => Assert.Equal(0, w.Message[0] & 0x0E));
    }

    [Fact]
    public void ConfidentialityForbiddenInNetwork_SelectsIntegrity_UeAcceptsAboveMinimum()
    {
        using var h = new Harness(new HseOptions { ConfidentialityForbiddenIn = new HashSet<string> { Harness.FiveG.Name! } });
        var channel = h.Open(Channel());
        Assert.True(h.Ue.IsEstablished(channel));
        Assert.Equal(BestService.Integrity, h.Ue.SelectedOf(channel).Service);
    }

    [Fact]
    public void ConfidentialityForbidden_RejectPolicy_Cause09()
    {
        using var h = new Harness(new HseOptions { ConfidentialityForbiddenIn = new HashSet<string> { Harness.FiveG.Name! }, DowngradeToIntegrityWhereConfidentialityForbidden = false });
        h.Open(Channel());
        Assert.Equal(Cause.ServiceNotAllowedInServingNetwork, h.Single<SessionRejected>(h.UeEvents).Cause);
    }

    [Fact]
    public void NoCommonSuite_Cause08()
    {
        using var h = new Harness(new HseOptions { SuitePreference = [3] });
        h.Open(Channel() with { Suites = 0x01 });
        Assert.Equal(Cause.NoCommonSuite, h.Single<SessionRejected>(h.UeEvents).Cause);
    }

    [Fact]
    public void Cookie_Required_UeRetriesWithTheCookie()
    {
        // Profile 6.2 "Denial of service": Reject 0x11 with a cookie, no state kept; the UE re-sends with it.
        using var h = new Harness(new HseOptions { RequireCookie = true });
        var channel = h.Open(Channel());
        Assert.True(h.Ue.IsEstablished(channel));
        Assert.Equal(1, h.Hse.Counters.RejectsSent[Cause.CookieRequired]);
        var requests = h.Wire.Where(w => w.Uplink && w.Message[3] == (byte)CommandCode.SessionRequest).ToList();
        Assert.Equal(2, requests.Count);
    }

    [Fact]
    public void PendingSession_NotConfirmed_IsDroppedAfter30s()
    {
        using var h = new Harness();
        h.Interceptor = (uplink, m) => uplink && h.Wire.Count >= 2 ? null : m; // the UE's confirmation never arrives
        h.Open(Channel());
        Assert.Equal(1, h.Hse.SessionCount);
        h.Tick(TimeSpan.FromSeconds(31));
        Assert.Equal(0, h.Hse.SessionCount);
    }

    [Fact]
    public void SeveralChannels_OverOneBearer_MatchedByChecksum()
    {
        // Profile 6.2 "Several channels": own Session ID, keys, service and EAS; Session Starts matched by checksum.
        using var h = new Harness();
        var a = h.Open(Channel(BestService.Confidential));
        var b = h.Open(Channel(BestService.Integrity) with { EasId = "other.example.com" });
        Assert.True(h.Ue.IsEstablished(a));
        Assert.True(h.Ue.IsEstablished(b));
        Assert.NotEqual(h.Ue.SessionIdOf(a), h.Ue.SessionIdOf(b));
        h.Pump(h.Ue.Send(a, "to-a"u8), uplink: true);
        h.Pump(h.Ue.Send(b, "to-b"u8), uplink: true);
        var received = h.HseEvents.OfType<DataReceived>().ToList();
        Assert.Equal(h.Ue.SessionIdOf(a), received[0].SessionId);
        Assert.Equal(h.Ue.SessionIdOf(b), received[1].SessionId);
    }

    [Fact]
    public void UnprotectedReject_WithoutChecksum_IsIgnored()
    {
        // Profile 6.2 "Unauthenticated messages": a Reject answering a Session Request counts only if it echoes the checksum.
        using var h = new Harness();
        h.Interceptor = (uplink, m) => uplink ? m : null;
        var channel = h.Open(Channel());
        var body = new MessageReject(Cause.UnknownSubscriber, (byte)CommandCode.SessionRequest).Encode();
        var forged = new byte[body.Length + 3];
        EmsdpProtection.WriteUnprotected(0, body, forged);
        var step = h.Ue.Receive(forged);
        Assert.Contains(step.Events.OfType<MessageDropped>(), d => d.Reason == DropReason.UnexpectedInState);
        Assert.Empty(step.Events.OfType<SessionRejected>());
        _ = channel;
    }

    [Fact]
    public void SuiteAndCounterLength_FollowThePolicy()
    {
        using var h = new Harness(new HseOptions { SuitePreference = [4, 1], CounterLengthPreference = [1] });
        var channel = h.Open(Channel());
        Assert.Equal(4, h.Ue.SelectedOf(channel).SuiteId);
        Assert.Equal(1, h.Ue.SelectedOf(channel).CounterLength);
        h.Pump(h.Ue.Send(channel, "chacha"u8), uplink: true);
        Assert.Equal("chacha"u8.ToArray(), h.Single<DataReceived>(h.HseEvents).Payload.ToArray());
    }

    [Theory]
    [InlineData(KeyAgreements.UmtsAka)]
    [InlineData(KeyAgreements.EpsAka)]
    [InlineData(KeyAgreements.EapAkaPrime)]
    public void OtherKeyAgreements_Establish(KeyAgreements agreement)
    {
        // Profile 5: K_root = CK‖IK (UMTS), K_ASME (EPS, PLMN ID), K_HSE (EAP-AKA', name).
        using var h = new Harness();
        var network = agreement == KeyAgreements.EpsAka ? ServingNetwork.FromPlmnId([0x02, 0xf8, 0x39]) : Harness.FiveG;
        var channel = h.Open(Channel() with { KeyAgreements = agreement, ServingNetwork = network });
        Assert.True(h.Ue.IsEstablished(channel));
        Assert.Equal(agreement, h.Ue.SelectedOf(channel).KeyAgreement);
    }
}

/// <summary>The causes of profile section 7, each produced by a real scenario.</summary>
public sealed class CauseTests
{
    private static UeChannelOptions Channel() => new() { EasId = "eas.example.com", ServingNetwork = Harness.FiveG };

    private static Cause RejectCause(Harness h) => Assert.Single(h.UeEvents.OfType<SessionRejected>()).Cause;

    [Fact]
    public void Cause0A_UnknownEas()
    {
        using var h = new Harness(new HseOptions { KnownEasIds = new HashSet<string> { "other.example.com" } });
        h.Open(Channel());
        Assert.Equal(Cause.UnknownEas, RejectCause(h));
    }

    [Fact]
    public void Cause0E_SessionLimitReached()
    {
        using var h = new Harness(new HseOptions { MaxSessions = 1 });
        h.Open(Channel());
        h.Open(Channel() with { EasId = "second.example.com" });
        Assert.Equal(Cause.SessionLimitReached, RejectCause(h));
    }

    [Fact]
    public void Cause10_NotAuthorised()
    {
        using var h = new Harness(new HseOptions { Authorise = (imsi, eas, service) => service != BestService.Confidential });
        h.Open(Channel());
        Assert.Equal(Cause.NotAuthorised, RejectCause(h));
    }

    [Fact]
    public void Cause0D_Congestion_BackOffCappedByTheUe()
    {
        // Profile 6.2: the UE caps an unprotected back-off to its own maximum (15 min) and randomises it.
        using var h = new Harness(new HseOptions { MaxPendingSessions = 0, CongestionBackOff = TimeSpan.FromHours(5) });
        h.Open(Channel());
        var rejected = Assert.Single(h.UeEvents.OfType<SessionRejected>());
        Assert.Equal(Cause.Congestion, rejected.Cause);
        Assert.Equal(TimeSpan.FromMinutes(15), rejected.BackOff);
    }

    [Fact]
    public void AnHseThatPutsNewSessionsOff_DropsANewRequest_AndStillAnswersAPendingSessionsRetransmission()
    {
        // docs/protocol.md, "HSE cluster": a shard about to move starts no new session (its device's retransmission reaches
        // the shard's next host), while the sessions it already started can still be confirmed.
        using var h = new Harness();
        var startLost = true;
        h.Interceptor = (uplink, m) =>
        {
            if (!uplink && startLost)
            {
                startLost = false;
                return null; // the first Session Start is lost: its session stays pending
            }

            return m;
        };
        var pending = h.Open(Channel());
        Assert.Equal(1, h.Hse.PendingSessions);

        h.Hse.AcceptsNewSessions = false;
        var putOff = h.Open(Channel());
        Assert.Equal(1, h.Hse.PendingSessions);
        Assert.Equal(1, h.Hse.Counters.Dropped.GetValueOrDefault(DropReason.Deferred));

        // Both devices retransmit: the pending session's request gets its Session Start again and is confirmed; the new one
        // is dropped again.
        h.Tick(TimeSpan.FromSeconds(3));
        Assert.True(h.Ue.IsEstablished(pending));
        Assert.False(h.Ue.IsEstablished(putOff));
        Assert.Equal(0, h.Hse.PendingSessions);
        Assert.Equal(2, h.Hse.Counters.Dropped.GetValueOrDefault(DropReason.Deferred));

        // Taking new sessions again (the shard stayed, or its next activation): the next retransmission starts the session.
        h.Hse.AcceptsNewSessions = true;
        h.Tick(TimeSpan.FromSeconds(5));
        Assert.True(h.Ue.IsEstablished(putOff));
    }

    [Fact]
    public void CongestionRejectFor_AHostWithAFullQueue_AnswersASessionRequestOnly()
    {
        // Profile 6.2, cause 0x0D: a host that cannot take a Session Request refuses it with the back-off, naming the request
        // by its checksum, in no more octets than the request; anything else is not answered.
        var request = new SessionRequest(Harness.Imsi, null, new UeConfiguration(18, KeyAgreements.FiveGAka, BestService.Integrity, false, 1, CounterSchemes.OneOctet), "eas.example.com", new byte[8], Harness.FiveG).Encode();
        var message = new byte[request.Length + 3];
        EmsdpProtection.WriteUnprotected(0, request, message);
        var reject = HseEngine.CongestionRejectFor(message, TimeSpan.FromSeconds(90));
        Assert.NotNull(reject);
        Assert.True(reject.Length <= message.Length);
        Assert.Equal(ParseStatus.Ok, ControlCommand.TryParse(reject.AsSpan(3), out var command));
        var r = Assert.IsType<MessageReject>(command);
        Assert.Equal((Cause.Congestion, (byte)CommandCode.SessionRequest, (ushort?)90), (r.Cause, r.RejectedCommand, r.BackOffSeconds));
        Assert.Equal(System.Security.Cryptography.SHA256.HashData(message).AsSpan(0, 8).ToArray(), r.RequestChecksum!.Value.ToArray());

        // The UE takes it as a congestion refusal of its request.
        using var h = new Harness();
        h.Interceptor = (uplink, m) => uplink ? null : m;
        h.Open(Channel());
        var sent = h.Sent.First(s => s.Uplink).Message;
        h.Interceptor = (_, m) => m;
        h.Pump(h.Ue.Receive(HseEngine.CongestionRejectFor(sent, TimeSpan.FromSeconds(90))), uplink: true);
        Assert.Equal(Cause.Congestion, Assert.Single(h.UeEvents.OfType<SessionRejected>()).Cause);

        // Not a Session Request: nothing (a protected message needs its session's keys; a Reject is never answered).
        Assert.Null(HseEngine.CongestionRejectFor(reject, TimeSpan.FromSeconds(90)));
        Assert.Null(HseEngine.CongestionRejectFor([0x42, 0x3f, 0x00, 0xE0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], TimeSpan.FromSeconds(90)));
        Assert.Null(HseEngine.CongestionRejectFor([0x40], TimeSpan.FromSeconds(90)));
    }

    [Fact]
    public void Cause0B_And0C_FromMalformedRequests()
    {
        using var h = new Harness();
        var request = new SessionRequest(Harness.Imsi, null, new UeConfiguration(18, KeyAgreements.FiveGAka, BestService.Integrity, false, 1, CounterSchemes.OneOctet), "eas.example.com", new byte[8], Harness.FiveG).Encode();
        var message = new byte[request.Length + 3 + 3];
        EmsdpProtection.WriteUnprotected(0, request, message);
        message[^3] = 0x7E; // an unknown comprehension-required TLV
        message[^2] = 0x01;
        var reject = Assert.Single(h.Hse.Receive(message, h.Path).Send).Message.ToArray();
        ControlCommand.TryParse(reject.AsSpan(3), out var command);
        Assert.Equal(Cause.UnknownComprehensionRequiredTlv, Assert.IsType<MessageReject>(command).Cause);
    }

    [Fact]
    public void Cause0F_KeySetExhausted_SenderRefuses()
    {
        // Profile 3: at 2^48 − 1 the sender refuses to send.
        using var keys = KeySet.Derive(EndpointRole.Ue, new byte[32], OpenBest.Crypto.Aead.CipherSuite.Aes128Ccm8, BestService.Integrity, false, 1, 1, new byte[16], new byte[8]);
        keys.ResumeSendingAt(ReplayWindow.MaxCounter, ReplayWindow.MaxCounter);
        Assert.Throws<InvalidOperationException>(() => keys.TakeCounter(OpenBest.Crypto.Aead.Plane.User));
    }
}
