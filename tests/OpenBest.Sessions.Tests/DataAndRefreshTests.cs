using OpenBest.Crypto.Aead;
using OpenBest.Protocol;
using OpenBest.Sessions;

namespace OpenBest.Sessions.Tests;

/// <summary>User plane, Data Ack, key refresh, suspend/resume, terminate and UE-to-EAS mode (profile 6.2).</summary>
public sealed class DataAndRefreshTests
{
    private static UeChannelOptions Channel(BestService service = BestService.Confidential) =>
        new() { EasId = "eas.example.com", Service = service, ServingNetwork = Harness.FiveG };

    private static (Harness H, int Channel, uint SessionId) Established(HseOptions? options = null, BestService service = BestService.Confidential)
    {
        var h = new Harness(options);
        var channel = h.Open(Channel(service));
        Assert.True(h.Ue.IsEstablished(channel));
        return (h, channel, h.Ue.SessionIdOf(channel));
    }

    [Fact]
    public void Uplink_WithAck_IsDeliveredOnceAndAcknowledged()
    {
        // Profile 6.2 "Data Ack": Acked counter = low 32 bits of the acknowledged UP counter.
        var (h, channel, sid) = Established();
        using var _ = h;
        h.Pump(h.Ue.Send(channel, "reading=42"u8, ackRequested: true), uplink: true);
        var data = h.Single<DataReceived>(h.HseEvents);
        Assert.Equal("reading=42"u8.ToArray(), data.Payload.ToArray());
        Assert.True(data.AckRequested);
        var ack = h.Single<DataAcknowledged>(h.UeEvents);
        Assert.Equal(data.Counter, ack.Counter);
        Assert.Equal(sid, ack.SessionId);
    }

    [Fact]
    public void ReplayedUplink_IsNotDeliveredAgain_ButItsAckIsResent()
    {
        // Profile 3: a message already accepted whose tag verifies is not delivered again; its Data Ack is sent again.
        var (h, channel, _) = Established();
        using var __ = h;
        var step = h.Ue.Send(channel, "once"u8, ackRequested: true);
        var message = step.Send[0].Message.ToArray();
        h.Pump(step, uplink: true);
        var again = h.Hse.Receive(message, h.Path);
        Assert.Empty(again.Events.OfType<DataReceived>());
        Assert.Single(again.Send);
        Assert.Single(h.HseEvents.OfType<DataReceived>());
    }

    [Fact]
    public void Downlink_ReachesTheUe_AndIsAcknowledged()
    {
        var (h, channel, sid) = Established();
        using var _ = h;
        h.Pump(h.Hse.SendDownlink(sid, "open valve"u8, ackRequested: true), uplink: false);
        Assert.Equal("open valve"u8.ToArray(), h.Single<DataReceived>(h.UeEvents).Payload.ToArray());
        Assert.Single(h.HseEvents.OfType<DataAcknowledged>());
        Assert.True(h.Ue.IsEstablished(channel));
    }

    [Fact]
    public void TamperedUplink_IsDroppedSilentlyAndCounted()
    {
        // Profile 7: messages that fail the tag are dropped silently and counted.
        var (h, channel, _) = Established();
        using var __ = h;
        h.Interceptor = (uplink, m) =>
        {
            var copy = (byte[])m.Clone();
            copy[^1] ^= 1;
            return uplink ? copy : m;
        };
        h.Pump(h.Ue.Send(channel, "x"u8, ackRequested: true), uplink: true);
        Assert.Empty(h.HseEvents.OfType<DataReceived>());
        Assert.Equal(1, h.Hse.Counters.Dropped[DropReason.TagFailed]);
        Assert.DoesNotContain(h.Sent, s => !s.Uplink && h.Sent.IndexOf(s) > 2);
    }

    [Fact]
    public void LostAck_UplinkIsRetransmittedUnchanged()
    {
        // Profile 3: a retransmission re-sends the stored bytes unchanged.
        var (h, channel, _) = Established();
        using var __ = h;
        var first = true;
        h.Interceptor = (uplink, m) =>
        {
            if (!uplink && first)
            {
                first = false;
                return null; // lose the Data Ack
            }

            return m;
        };
        h.Pump(h.Ue.Send(channel, "important"u8, ackRequested: true), uplink: true);
        Assert.Empty(h.UeEvents.OfType<DataAcknowledged>());
        h.Tick(TimeSpan.FromSeconds(2));
        Assert.Single(h.UeEvents.OfType<DataAcknowledged>());
        Assert.Single(h.HseEvents.OfType<DataReceived>());
        var uplinks = h.Sent.Where(s => s.Uplink && s.Message[0] == 0x63).Select(s => Convert.ToHexString(s.Message)).ToList();
        Assert.Equal(2, uplinks.Count);
        Assert.Single(uplinks.Distinct());
    }

    [Fact]
    public void HseTriggeredRefresh_SwitchesBothSides_OldKeysWorkDuringGrace()
    {
        // Profile 6.2 "Key refresh": Manage Keys Request (next Key ID), Response under the NEW set at CP counter 0.
        var (h, channel, sid) = Established();
        using var _ = h;
        var oldSend = h.Ue.Send(channel, "sealed before the refresh"u8); // under key set 1, delivered late
        h.Pump(h.Hse.RefreshKeys(sid), uplink: false);
        Assert.Equal(2, h.Ue.CurrentKeyIdOf(channel));
        Assert.Equal(2, h.Hse.CurrentKeyIdOf(sid));
        Assert.Single(h.HseEvents.OfType<KeysRefreshed>());
        Assert.Single(h.UeEvents.OfType<KeysRefreshed>());
        Assert.Equal(2, h.Subscribers.VectorsIssued(Harness.Imsi));

        h.Pump(oldSend, uplink: true);
        h.Pump(h.Ue.Send(channel, "after"u8), uplink: true);
        var received = h.HseEvents.OfType<DataReceived>().ToList();
        Assert.Equal([1, 2], received.Select(r => (int)r.KeyId));

        // After the grace period the old set is erased.
        h.Tick(TimeSpan.FromSeconds(601));
        var late = h.Hse.Receive(oldSend.Send[0].Message.Span, h.Path);
        Assert.Contains(late.Events.OfType<MessageDropped>(), d => d.Reason == DropReason.UnknownSession);
    }

    [Fact]
    public void UeTriggeredRefresh_HseAnswersWithItsOwnRequest()
    {
        var (h, channel, sid) = Established();
        using var _ = h;
        h.Pump(h.Ue.RequestKeyRefresh(channel), uplink: true);
        Assert.Equal(2, h.Hse.CurrentKeyIdOf(sid));
        Assert.Equal(2, h.Ue.CurrentKeyIdOf(channel));
    }

    [Fact]
    public void RetransmittedManageKeysRequest_GetsTheSameResponse()
    {
        var (h, channel, sid) = Established();
        using var _ = h;
        var drop = true;
        h.Interceptor = (uplink, m) =>
        {
            if (uplink && drop)
            {
                drop = false;
                return null; // lose the first Manage Keys Response
            }

            return m;
        };
        h.Pump(h.Hse.RefreshKeys(sid), uplink: false);
        Assert.Equal(1, h.Hse.CurrentKeyIdOf(sid));
        h.Tick(TimeSpan.FromSeconds(2));
        Assert.Equal(2, h.Hse.CurrentKeyIdOf(sid));
        var responses = h.Sent.Where(s => s.Uplink && s.Message[0] == 0x44).Select(s => Convert.ToHexString(s.Message)).ToList();
        Assert.Equal(2, responses.Count);
        Assert.Single(responses.Distinct());
        Assert.Equal(2, h.Subscribers.VectorsIssued(Harness.Imsi));
        Assert.Equal(2, h.Ue.CurrentKeyIdOf(channel));
    }

    [Fact]
    public void KeyIds_CycleOneToSevenAndBack()
    {
        var (h, channel, sid) = Established(new HseOptions { KeyGracePeriod = TimeSpan.FromSeconds(1) });
        using var _ = h;
        for (var i = 0; i < 8; i++)
        {
            h.Pump(h.Hse.RefreshKeys(sid), uplink: false);
            h.Tick(TimeSpan.FromSeconds(2));
        }

        Assert.Equal(2, h.Hse.CurrentKeyIdOf(sid)); // 1 → 2 … 7 → 1 → 2
        h.Pump(h.Ue.Send(channel, "still fine"u8), uplink: true);
        Assert.Single(h.HseEvents.OfType<DataReceived>());
    }

    [Fact]
    public void Suspend_QueuesDownlink_ResumeDeliversIt()
    {
        // Profile 6.2 "Suspend / Resume / push".
        var (h, channel, sid) = Established();
        using var _ = h;
        h.Pump(h.Ue.Suspend(channel), uplink: true);
        Assert.Single(h.HseEvents.OfType<SessionSuspended>());
        h.Pump(h.Hse.SendDownlink(sid, "queued-1"u8), uplink: false);
        h.Pump(h.Hse.SendDownlink(sid, "queued-2"u8), uplink: false);
        Assert.Empty(h.UeEvents.OfType<DataReceived>());
        h.Pump(h.Ue.Resume(channel), uplink: true);
        Assert.Equal(["queued-1", "queued-2"], h.UeEvents.OfType<DataReceived>().Select(d => System.Text.Encoding.ASCII.GetString(d.Payload.Span)));
    }

    [Fact]
    public void Suspend_QueuedDownlinkExpires()
    {
        var (h, channel, sid) = Established(new HseOptions { QueuedDownlinkTimeToLive = TimeSpan.FromMinutes(1) });
        using var _ = h;
        h.Pump(h.Ue.Suspend(channel), uplink: true);
        h.Pump(h.Hse.SendDownlink(sid, "stale"u8), uplink: false);
        h.Tick(TimeSpan.FromMinutes(2));
        h.Pump(h.Ue.Resume(channel), uplink: true);
        Assert.Empty(h.UeEvents.OfType<DataReceived>());
    }

    [Fact]
    public void AnyAuthenticatedUplink_ResumesTheSession()
    {
        var (h, channel, sid) = Established();
        using var _ = h;
        h.Pump(h.Ue.Suspend(channel), uplink: true);
        h.Pump(h.Hse.SendDownlink(sid, "waiting"u8), uplink: false);
        h.Pump(h.Ue.Send(channel, "i am awake"u8), uplink: true);
        Assert.Single(h.UeEvents.OfType<DataReceived>());
    }

    [Fact]
    public void Terminate_ByUe_AndByHse()
    {
        // Profile 6.2 "Terminate": Request with optional Cause; Response.
        var (h, channel, sid) = Established();
        using (h)
        {
            h.Pump(h.Ue.Terminate(channel, Cause.NotAuthorised), uplink: true);
            Assert.Equal(Cause.NotAuthorised, h.Single<SessionTerminated>(h.HseEvents).Cause);
            Assert.True(h.Single<SessionTerminated>(h.UeEvents) is { ByPeer: false });
            h.Tick(TimeSpan.FromSeconds(31));
            Assert.Null(h.Hse.StateOf(sid));
        }

        var (h2, channel2, sid2) = Established();
        using (h2)
        {
            h2.Pump(h2.Hse.Terminate(sid2), uplink: false);
            Assert.True(h2.Single<SessionTerminated>(h2.UeEvents).ByPeer);
            Assert.False(h2.Ue.IsEstablished(channel2));
        }
    }

    [Fact]
    public void UeToEasMode_HseForwardsUplink_EasOpensIt_DataAckMeansForwarded()
    {
        // Profile 6.2 "UE-to-EAS mode": the HSE forwards UP unmodified; its Data Ack carries the Acked tag.
        using var h = new Harness();
        var channel = h.Open(Channel() with { UeToEasMode = true, EnterpriseKey = "enterprise"u8.ToArray() });
        Assert.True(h.Ue.IsEstablished(channel));
        var keys = h.Single<EasKeysReady>(h.HseEvents);

        h.Pump(h.Ue.Send(channel, "for the enterprise"u8, ackRequested: true), uplink: true);
        var forwarded = h.Single<UplinkForwarded>(h.HseEvents);
        Assert.Equal("eas.example.com", forwarded.EasId);
        Assert.Empty(h.HseEvents.OfType<DataReceived>());
        Assert.Single(h.UeEvents.OfType<DataAcknowledged>());

        CipherSuite.TryGet(keys.Suite.Id, out var suite);
        using var eas = KeySet.DeriveForEas(keys.KEasPsk.Span, suite, keys.Service, keys.KeyId, "enterprise"u8);
        var message = forwarded.Message.ToArray();
        HeaderPrefix.TryRead(message, out var prefix);
        EmsdpFrame.TryParse(message, prefix, keys.CounterLength, suite.UserPlaneTagSize, out var frame);
        var payload = new byte[frame.Body.Length];
        Assert.Equal(OpenStatus.Accepted, EmsdpProtection.OpenUser(eas, Direction.Uplink, frame, payload).Status);
        Assert.Equal("for the enterprise"u8.ToArray(), payload);

        // Downlink sealed by the EAS, forwarded unmodified by the HSE.
        var buffer = new byte[128];
        var length = EmsdpProtection.SealUser(eas, Direction.Downlink, keys.SessionId, keys.CounterLength, 0, false, "from the enterprise"u8, buffer);
        h.Pump(h.Hse.ForwardDownlinkFromEas(keys.SessionId, buffer.AsSpan(0, length)), uplink: false);
        Assert.Equal("from the enterprise"u8.ToArray(), h.Single<DataReceived>(h.UeEvents).Payload.ToArray());
    }

    [Fact]
    public void UnknownSession_CpGetsCause05_UpIsDropped()
    {
        using var h = new Harness();
        var fake = new byte[] { 0x40, 0x3f, 0x00, 0xE0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
        var step = h.Hse.Receive(fake, h.Path);
        var reject = Assert.Single(step.Send);
        Assert.True(reject.Message.Length <= fake.Length);
        // A protected message's layout depends on its session: without one it is never answered.
        Assert.Empty(h.Hse.Receive([0x42, 0x3f, 0x00, 0xE0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], h.Path).Send);
        Assert.Empty(h.Hse.Receive([0x62, 0x3f, 0x00, 1, 2, 3, 4, 5, 6, 7, 8], h.Path).Send);
    }

    [Fact]
    public void Rejects_AreRateLimited()
    {
        using var h = new Harness(new HseOptions { MaxRejectsPerSecond = 3 });
        var fake = new byte[] { 0x40, 0x3f, 0x00, 0xE0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
        var sent = Enumerable.Range(0, 10).Sum(_ => h.Hse.Receive(fake, h.Path).Send.Count);
        Assert.Equal(3, sent);
    }

    [Fact]
    public void Reject_IsNeverAnsweredWithAReject()
    {
        using var h = new Harness();
        var body = new MessageReject(Cause.MalformedMessage, 0x10).Encode();
        var message = new byte[body.Length + 3];
        EmsdpProtection.WriteUnprotected(0, body, message);
        Assert.Empty(h.Hse.Receive(message, h.Path).Send);
    }

    [Fact]
    public void MalformedRequest_GetsCause0B_WithTheChecksum_NoLongerThanTheRequest()
    {
        using var h = new Harness();
        var message = new byte[] { 0x40, 0x00, 0x00, 0x10, 0x01, 0x08, 1, 2 }; // IMSI TLV past the body
        var step = h.Hse.Receive(message, h.Path);
        Assert.Empty(step.Send); // the Reject (≥ 20 octets) would be longer than the 8-octet request: not sent
        var longer = new byte[] { 0x40, 0x00, 0x00, 0x10, 0x99, 0x20 }.Concat(new byte[32]).ToArray(); // a skippable TLV, mandatory ones missing
        var reject = Assert.Single(h.Hse.Receive(longer, h.Path).Send).Message.ToArray();
        Assert.Equal(ParseStatus.Ok, ControlCommand.TryParse(reject.AsSpan(3), out var command));
        var r = Assert.IsType<MessageReject>(command);
        Assert.Equal(Cause.MalformedMessage, r.Cause);
        Assert.Equal(System.Security.Cryptography.SHA256.HashData(longer).AsSpan(0, 8).ToArray(), r.RequestChecksum!.Value.ToArray());
    }
}
