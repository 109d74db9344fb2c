using OpenBest.Crypto.Aead;
using OpenBest.Protocol;
using OpenBest.Sessions;

namespace OpenBest.Sessions.Tests;

/// <summary>
/// Profile 6.2 "Suspend / Resume / push" and "Data Ack": the HSE pages a suspended device (a network push), reports the
/// delivery of each downlink by the application's token, and a Data Ack never resumes a suspended session
/// (docs/protocol.md, "Suspend, resume and push").
/// </summary>
public sealed class PushTests
{
    private static readonly TimeSpan Ttl = TimeSpan.FromMinutes(10);

    private static (Harness H, int Channel, uint SessionId) Suspended(HseOptions? options = null)
    {
        var h = new Harness(options ?? new HseOptions { QueuedDownlinkTimeToLive = Ttl });
        var channel = h.Open(new UeChannelOptions { EasId = PushMessage.PushEasId, Service = BestService.Integrity, ServingNetwork = Harness.FiveG });
        Assert.True(h.Ue.IsEstablished(channel));
        var sid = h.Ue.SessionIdOf(channel);
        h.Pump(h.Ue.Suspend(channel), uplink: true);
        Assert.Equal("Suspended", h.Hse.StateOf(sid));
        Assert.True(h.Ue.IsSuspended(channel));
        h.HseEvents.Clear();
        h.UeEvents.Clear();
        return (h, channel, sid);
    }

    private static IReadOnlyList<QueuedDownlink> Queue(HseEngine hse, uint sessionId)
    {
        var saved = new List<HseSessionSnapshot>();
        hse.TakeChanges(saved, new List<uint>());
        return saved.Single(s => s.SessionId == sessionId).Queue;
    }

    private static byte[] Push(uint id, string body) => new PushMessage(7, id, System.Text.Encoding.UTF8.GetBytes(body)).ToArray();

    /// <summary>The downlink UP messages the HSE sent (before the interceptor).</summary>
    private static List<byte[]> DownlinkUser(Harness h) =>
        [.. h.Sent.Where(s => !s.Uplink && HeaderPrefix.TryRead(s.Message, out var p) == ParseStatus.Ok && p.Plane == Plane.User).Select(s => s.Message)];

    private static uint CounterOf(Harness h, int channel, byte[] message)
    {
        Assert.Equal(ParseStatus.Ok, HeaderPrefix.TryRead(message, out var prefix));
        Assert.Equal(ParseStatus.Ok, EmsdpFrame.TryParse(message, prefix, h.Ue.SelectedOf(channel).CounterLength, 0, out var frame));
        return frame.CounterField;
    }

    [Fact]
    public void Page_OnASuspendedSession_SendsOneMessageToTheLastPath_WithAckRequested_AndKeepsItQueued()
    {
        // Profile 6.2 "Suspend / Resume / push": the push reaches the device now; the device here is not reachable.
        var (h, _, sid) = Suspended();
        using var _h = h;
        var step = h.Hse.SendDownlink(sid, Push(1, "wake"), token: 7, page: true);
        var sent = Assert.Single(step.Send);
        Assert.Equal(h.Path, sent.Path);
        Assert.Equal(ParseStatus.Ok, HeaderPrefix.TryRead(sent.Message.Span, out var prefix));
        Assert.Equal(Plane.User, prefix.Plane);
        Assert.True(prefix.AckRequested);
        Assert.Empty(step.Events);
        var queued = Assert.Single(Queue(h.Hse, sid));
        Assert.True(queued.AckRequested);
        Assert.Equal(7, queued.Token);
        Assert.Equal("Suspended", h.Hse.StateOf(sid));
    }

    [Fact]
    public void Page_ItsDataAck_RemovesItFromTheQueue_ReportsTheToken_AndResumesNeitherEnd()
    {
        // Profile 6.2 "Data Ack" answering a push: the HSE stays suspended (docs/protocol.md), and so does the UE.
        var (h, channel, sid) = Suspended();
        using var _h = h;
        var before = h.Sent.Count;
        h.Pump(h.Hse.SendDownlink(sid, Push(1, "wake"), token: 7, page: true), uplink: false);

        var received = h.Single<DataReceived>(h.UeEvents);
        Assert.True(PushMessage.TryParse(received.Payload.Span, out var push));
        Assert.Equal(1u, push.MessageId);
        Assert.True(h.Ue.IsSuspended(channel));
        Assert.Empty(h.UeEvents.OfType<SessionResumed>());
        // The device answered with its Data Ack only: one uplink message, on the control plane.
        var uplink = Assert.Single(h.Sent.Skip(before), s => s.Uplink);
        Assert.Equal(ParseStatus.Ok, HeaderPrefix.TryRead(uplink.Message, out var prefix));
        Assert.Equal(Plane.Control, prefix.Plane);

        var acked = h.Single<DataAcknowledged>(h.HseEvents);
        Assert.Equal(7, acked.Token);
        Assert.Equal(received.Counter, acked.Counter);
        Assert.Equal("Suspended", h.Hse.StateOf(sid));
        Assert.Empty(h.HseEvents.OfType<SessionResumed>());
        Assert.Empty(Queue(h.Hse, sid));

        // Nothing is left to deliver at the next resume, and nothing is reported twice.
        h.UeEvents.Clear();
        h.Pump(h.Ue.Resume(channel), uplink: true);
        Assert.Empty(h.UeEvents.OfType<DataReceived>());
        Assert.Single(h.HseEvents.OfType<DataAcknowledged>());
        Assert.Empty(h.HseEvents.OfType<DownlinkUndelivered>());
    }

    [Fact]
    public void Page_WhoseAckNeverCame_IsSentAgainOnResume_WithANewCounter_AndReportedOnce()
    {
        // Profile 6.2 "Suspend / Resume / push": an unreachable device gets the push when it resumes, within its time to live.
        var (h, channel, sid) = Suspended();
        using var _h = h;
        h.Interceptor = (uplink, m) => uplink ? m : null; // the device is out of reach
        h.Pump(h.Hse.SendDownlink(sid, Push(1, "wake"), token: 7, page: true), uplink: false);
        var paged = Assert.Single(DownlinkUser(h));
        Assert.Empty(h.UeEvents.OfType<DataReceived>());

        h.Interceptor = (_, m) => m;
        h.Time.Advance(TimeSpan.FromMinutes(1));
        h.Pump(h.Ue.Resume(channel), uplink: true);
        var received = h.Single<DataReceived>(h.UeEvents);
        Assert.Equal(Push(1, "wake"), received.Payload.ToArray());
        var resent = DownlinkUser(h)[^1];
        Assert.Equal(2, DownlinkUser(h).Count);
        Assert.True(CounterOf(h, channel, resent) > CounterOf(h, channel, paged));
        Assert.Equal(7, h.Single<DataAcknowledged>(h.HseEvents).Token);
        Assert.Empty(Queue(h.Hse, sid));
    }

    [Fact]
    public void Page_ThatReachedTheDevice_WhoseAckWasLost_IsSentAgainOnResume_AndItsTokenReportedOnce()
    {
        // The device got the push and its Data Ack was lost: it gets it again at the resume (the SDK drops the repeat by its
        // message id), and the application hears of the delivery once.
        var (h, channel, sid) = Suspended();
        using var _h = h;
        h.Interceptor = (uplink, m) => uplink ? null : m;
        h.Pump(h.Hse.SendDownlink(sid, Push(1, "wake"), token: 7, page: true), uplink: false);
        Assert.Single(h.UeEvents.OfType<DataReceived>());
        Assert.Empty(h.HseEvents.OfType<DataAcknowledged>());

        h.Interceptor = (_, m) => m;
        h.Pump(h.Ue.Resume(channel), uplink: true);
        Assert.Equal(2, h.UeEvents.OfType<DataReceived>().Count());
        Assert.Equal(7, h.Single<DataAcknowledged>(h.HseEvents).Token);
    }

    [Fact]
    public void Page_WithoutAPath_OrOnAnEstablishedSession_ChangesNothing()
    {
        // Established: sent now, not queued, and its Data Ack reports the token.
        using var h = new Harness();
        var channel = h.Open(new UeChannelOptions { EasId = PushMessage.PushEasId, Service = BestService.Confidential, ServingNetwork = Harness.FiveG });
        var sid = h.Ue.SessionIdOf(channel);
        h.Pump(h.Hse.SendDownlink(sid, Push(1, "now"), ackRequested: true, token: 3, page: true), uplink: false);
        Assert.Equal(3, h.Single<DataAcknowledged>(h.HseEvents).Token);
        Assert.Empty(Queue(h.Hse, sid));

        // Restored after a restart, the path unknown: queued only, nothing sent.
        h.Pump(h.Ue.Suspend(channel), uplink: true);
        var saved = new List<HseSessionSnapshot>();
        h.Hse.TakeChanges(saved, new List<uint>());
        h.Hse.Dispose();
        h.Hse = new HseEngine(h.Subscribers, null, h.Time);
        foreach (var snapshot in saved)
        {
            h.Hse.Restore(snapshot);
        }

        var step = h.Hse.SendDownlink(sid, Push(2, "later"), token: 4, page: true);
        Assert.Empty(step.Send);
        Assert.Single(Queue(h.Hse, sid));
    }

    [Fact]
    public void Established_DownlinkWithAToken_ItsDataAckCarriesIt()
    {
        // Profile 6.2 "Data Ack": Acked counter names the message; the HSE maps it back to the application's token.
        using var h = new Harness();
        var channel = h.Open(new UeChannelOptions { EasId = "eas.example.com", ServingNetwork = Harness.FiveG });
        var sid = h.Ue.SessionIdOf(channel);
        h.Pump(h.Hse.SendDownlink(sid, "one"u8, ackRequested: true, token: 41), uplink: false);
        h.Pump(h.Hse.SendDownlink(sid, "two"u8, ackRequested: true), uplink: false);
        h.Pump(h.Hse.SendDownlink(sid, "three"u8, ackRequested: true, token: 43), uplink: false);
        Assert.Equal([41L, 0L, 43L], h.HseEvents.OfType<DataAcknowledged>().Select(a => a.Token));
    }

    [Fact]
    public void QueuedDownlink_PastItsTimeToLive_IsReportedExpired()
    {
        var (h, channel, sid) = Suspended(new HseOptions { QueuedDownlinkTimeToLive = TimeSpan.FromMinutes(1) });
        using var _h = h;
        // Given up by the timer ...
        h.Pump(h.Hse.SendDownlink(sid, "stale"u8, ackRequested: true, token: 11), uplink: false);
        h.Tick(TimeSpan.FromMinutes(2));
        var expired = h.Single<DownlinkUndelivered>(h.HseEvents);
        Assert.Equal((sid, 11L, DownlinkUndelivered.Expired), (expired.SessionId, expired.Token, expired.Reason));

        // ... or at the resume, when the timer has not run since.
        h.HseEvents.Clear();
        h.Pump(h.Hse.SendDownlink(sid, "stale too"u8, ackRequested: true, token: 12, page: true), uplink: false);
        Assert.Single(h.HseEvents.OfType<DataAcknowledged>()); // the page reached the device ...
        h.Pump(h.Hse.SendDownlink(sid, "never paged"u8, ackRequested: true, token: 13), uplink: false);
        h.Time.Advance(TimeSpan.FromMinutes(2));
        h.Pump(h.Ue.Resume(channel), uplink: true);
        Assert.Equal([13L], h.HseEvents.OfType<DownlinkUndelivered>().Select(u => u.Token)); // ... so only 13 expired
        Assert.Equal(DownlinkUndelivered.Expired, h.Single<DownlinkUndelivered>(h.HseEvents).Reason);
        Assert.DoesNotContain(h.UeEvents.OfType<DataReceived>(), d => d.Payload.Span.SequenceEqual("never paged"u8));
    }

    [Fact]
    public void FullQueue_DropsTheOldest_ReportedQueueFull()
    {
        var (h, _, sid) = Suspended(new HseOptions { MaxQueuedDownlink = 2, QueuedDownlinkTimeToLive = Ttl });
        using var _h = h;
        h.Pump(h.Hse.SendDownlink(sid, "1"u8, token: 1), uplink: false);
        h.Pump(h.Hse.SendDownlink(sid, "2"u8, token: 2), uplink: false);
        h.Pump(h.Hse.SendDownlink(sid, "3"u8, token: 3), uplink: false);
        var full = h.Single<DownlinkUndelivered>(h.HseEvents);
        Assert.Equal((1L, DownlinkUndelivered.QueueFull), (full.Token, full.Reason));
        Assert.Equal([2L, 3L], Queue(h.Hse, sid).Select(q => q.Token));
    }

    [Fact]
    public void SessionEnd_ReportsQueuedAndSentUnacknowledgedDownlink_SessionEnded()
    {
        // Profile 6.2 "Terminate": what was still queued, or sent and not acknowledged, will not be reported otherwise.
        using var h = new Harness(new HseOptions { QueuedDownlinkTimeToLive = Ttl });
        var channel = h.Open(new UeChannelOptions { EasId = PushMessage.PushEasId, Service = BestService.Integrity, ServingNetwork = Harness.FiveG });
        var sid = h.Ue.SessionIdOf(channel);
        h.Interceptor = (uplink, m) => uplink ? m : null;
        h.Pump(h.Hse.SendDownlink(sid, "lost"u8, ackRequested: true, token: 22), uplink: false);
        h.Interceptor = (_, m) => m;
        h.Pump(h.Ue.Suspend(channel), uplink: true);
        h.Pump(h.Hse.SendDownlink(sid, "queued"u8, ackRequested: true, token: 21), uplink: false);
        h.Pump(h.Hse.SendDownlink(sid, "no token"u8, ackRequested: true), uplink: false);
        h.HseEvents.Clear();

        h.Pump(h.Hse.Terminate(sid), uplink: false);
        Assert.Single(h.HseEvents.OfType<SessionTerminated>());
        var ended = h.HseEvents.OfType<DownlinkUndelivered>().ToList();
        Assert.Equal([21L, 22L], ended.Select(u => u.Token).Order());
        Assert.All(ended, u => Assert.Equal(DownlinkUndelivered.SessionEnded, u.Reason));
        Assert.Empty(h.HseEvents.OfType<DataAcknowledged>());
    }

    [Fact]
    public void SessionEnd_ByTheUe_ReportsSentUnacknowledgedDownlink_SessionEnded()
    {
        using var h = new Harness();
        var channel = h.Open(new UeChannelOptions { EasId = "eas.example.com", ServingNetwork = Harness.FiveG });
        var sid = h.Ue.SessionIdOf(channel);
        h.Interceptor = (uplink, m) => uplink ? null : m; // the Data Ack is lost
        h.Pump(h.Hse.SendDownlink(sid, "unconfirmed"u8, ackRequested: true, token: 31), uplink: false);
        h.Interceptor = (_, m) => m;
        h.Pump(h.Ue.Terminate(channel), uplink: true);
        var ended = h.Single<DownlinkUndelivered>(h.HseEvents);
        Assert.Equal((31L, DownlinkUndelivered.SessionEnded), (ended.Token, ended.Reason));
    }

    [Fact]
    public void OtherAuthenticatedUplink_StillResumes_AndFlushesThePagedQueue()
    {
        // Only a Data Ack leaves the session suspended: user data resumes it, and what waits goes (profile 6.2).
        var (h, channel, sid) = Suspended();
        using var _h = h;
        h.Interceptor = (uplink, m) => uplink ? m : null;
        h.Pump(h.Hse.SendDownlink(sid, Push(9, "paged"), token: 5, page: true), uplink: false);
        h.Interceptor = (_, m) => m;
        h.Pump(h.Ue.Send(channel, "i am awake"u8), uplink: true);
        Assert.Equal("Established", h.Hse.StateOf(sid));
        Assert.Single(h.HseEvents.OfType<SessionResumed>());
        Assert.Equal(Push(9, "paged"), h.Single<DataReceived>(h.UeEvents).Payload.ToArray());
        Assert.Equal(5, h.Single<DataAcknowledged>(h.HseEvents).Token);
    }
}
