using OpenBest.Crypto.Aead;
using OpenBest.Protocol;
using OpenBest.Sessions;


namespace OpenBest.Sessions.Tests;

/// <summary>
/// Regression tests for defects found in review: each names the rule of the profile it holds the engines to.
/// </summary>
public sealed class RegressionTests
{
    private readonly ITestOutputHelper _out;

    public RegressionTests(ITestOutputHelper output) => _out = output;

    [Fact]
    public void UeToEas_WithFirstPayload_IsStillConfirmedAtTheHse()
    {
        // Profile 6.2: the HSE cannot verify E2E user plane, so the UE confirms with CP.
        using var h = new Harness();
        var ch = h.Open(new UeChannelOptions { EasId = "eas.example.com", Service = BestService.Integrity, UeToEasMode = true, ServingNetwork = Harness.FiveG }, "hello"u8.ToArray());
        Assert.True(h.Ue.IsEstablished(ch));
        Assert.Single(h.HseEvents.OfType<SessionEstablished>());
        Assert.Single(h.HseEvents.OfType<EasKeysReady>());
        h.Tick(TimeSpan.FromSeconds(31));
        Assert.Equal("Established", h.Hse.StateOf(h.Ue.SessionIdOf(ch)));
    }

    [Fact]
    public void ProtectedReject08_DoesNotConfirm_AndEndsThePendingSession()
    {
        var opts = new HseOptions { ConfidentialityForbiddenIn = new HashSet<string> { Harness.FiveG.Name! } };
        using var h = new Harness(opts);
        var ch = h.Open(new UeChannelOptions { EasId = "eas.example.com", Service = BestService.Confidential, MinimumService = BestService.Confidential, ServingNetwork = Harness.FiveG });
        var sid = h.HseEvents.OfType<SessionEstablished>().Select(e => e.SessionId).FirstOrDefault();
        _out.WriteLine($"UE established {h.Ue.IsEstablished(ch)}; UE rejected {h.UeEvents.OfType<SessionRejected>().Count()}; HSE established events {h.HseEvents.OfType<SessionEstablished>().Count()}; HSE state {h.Hse.StateOf(1)}");
        h.Tick(TimeSpan.FromSeconds(60));
        _out.WriteLine($"after 60 s HSE state {h.Hse.StateOf(1)}");
        Assert.Empty(h.HseEvents.OfType<SessionEstablished>());
    }

    [Fact]
    public void EasInstallTwice_NeverRestartsTheDownlinkCounter()
    {
        using var h = new Harness();
        var ch = h.Open(new UeChannelOptions { EasId = "eas.example.com", Service = BestService.Confidential, UeToEasMode = true, ServingNetwork = Harness.FiveG });
        var sid = h.Ue.SessionIdOf(ch);
        var ready = h.Single<EasKeysReady>(h.HseEvents);
        using var eas = new EasEndpoint(h.Time);
        eas.Install(ready);
        var a = eas.SendDownlink(sid, "AAAAAAAA"u8).Send[0].Message.ToArray();
        eas.Install(ready);
        var b = eas.SendDownlink(sid, "BBBBBBBB"u8).Send[0].Message.ToArray();
        _out.WriteLine(Convert.ToHexString(a));
        _out.WriteLine(Convert.ToHexString(b));
        // same header (same counter), XOR of ciphertexts == XOR of plaintexts
        var hl = 1 + 1 + ready.CounterLength;
        Assert.NotEqual(Convert.ToHexString(a[..hl]), Convert.ToHexString(b[..hl]));
    }

    [Fact]
    public void AckPressure_IsCountedPerKeySet()
    {
        var opts = new HseOptions { CounterLengthPreference = [1] };
        using var h = new Harness(opts);
        var ch = h.Open(new UeChannelOptions { EasId = "eas.example.com", Service = BestService.Integrity, ServingNetwork = Harness.FiveG, CounterSchemes = CounterSchemes.OneOctet });
        var sid = h.Ue.SessionIdOf(ch);
        for (var i = 0; i < 200; i++) h.Pump(h.Ue.Send(ch, "x"u8, ackRequested: true), uplink: true);
        h.Pump(h.Hse.RefreshKeys(sid), uplink: false);
        Assert.Equal(2, h.Ue.CurrentKeyIdOf(ch));
        var firstA = -1;
        for (var i = 0; i < 250; i++)
        {
            var m = h.Ue.Send(ch, "y"u8).Send[0].Message.Span;
            if ((m[0] & 1) != 0) { firstA = i; break; }
        }
        _out.WriteLine($"first A bit on new key set at UP counter {firstA}");
        Assert.InRange(firstA, 0, 120);
    }

    [Fact]
    public void UeToEas_AckWithoutTheRightAckedTag_IsNotAnAck()
    {
        using var h = new Harness();
        var ch = h.Open(new UeChannelOptions { EasId = "eas.example.com", Service = BestService.Integrity, UeToEasMode = true, ServingNetwork = Harness.FiveG });
        h.UeEvents.Clear();
        h.Interceptor = (up, m) => { if (up && (m[0] & 0x20) != 0) { var c = (byte[])m.Clone(); c[^1] ^= 0xFF; c[^5] ^= 0xFF; c[^6] ^= 0x55; return c; } return m; };
        h.Pump(h.Ue.Send(ch, "real"u8, ackRequested: true), uplink: true);
        _out.WriteLine($"DataAcknowledged at UE: {h.UeEvents.OfType<DataAcknowledged>().Count()}");
        h.Interceptor = (_, m) => m;
        h.Tick(TimeSpan.FromSeconds(3));
        var retrans = h.Sent.Count(s => s.Uplink && (s.Message[0] & 0x20) != 0);
        _out.WriteLine($"UP messages sent by UE (incl. retransmissions): {retrans}");
        Assert.Empty(h.UeEvents.OfType<DataAcknowledged>());
    }

    [Fact]
    public void ReplayedUplink_GetsTheStoredAck_NeverANewlySealedOne()
    {
        using var h = new Harness();
        var ch = h.Open(new UeChannelOptions { EasId = "eas.example.com", Service = BestService.Integrity, ServingNetwork = Harness.FiveG });
        var step = h.Ue.Send(ch, "once"u8, ackRequested: true);
        var msg = step.Send[0].Message.ToArray();
        h.Pump(step, uplink: true);
        var acks = new HashSet<string>();
        for (var i = 0; i < 1000; i++)
        {
            foreach (var s in h.Hse.Receive(msg, "attacker").Send) acks.Add(Convert.ToHexString(s.Message.Span));
        }
        _out.WriteLine($"distinct sealed Data Acks from 1000 replays: {acks.Count}");
        Assert.True(acks.Count <= 10);
    }

    [Fact]
    public void TerminatedChannel_ReleasesItsSessionId_AfterTheLinger()
    {
        var opts = new HseOptions { SessionIdQuarantine = TimeSpan.Zero };
        using var h = new Harness(opts);
        var a = h.Open(new UeChannelOptions { EasId = "eas.example.com", Service = BestService.Integrity, ServingNetwork = Harness.FiveG });
        var sid = h.Ue.SessionIdOf(a);
        h.Pump(h.Hse.Terminate(sid), uplink: false);
        h.Tick(TimeSpan.FromSeconds(31));
        _out.WriteLine($"HSE state {h.Hse.StateOf(sid) ?? "gone"}; old UE channel key id {h.Ue.CurrentKeyIdOf(a)}");
        var b = h.Open(new UeChannelOptions { EasId = "eas.example.com", Service = BestService.Integrity, ServingNetwork = Harness.FiveG });
        _out.WriteLine($"new channel established {h.Ue.IsEstablished(b)}; HSE state of {sid}: {h.Hse.StateOf(sid)}");
        Assert.True(h.Ue.IsEstablished(b));
    }

    [Fact]
    public void SpoofedCookieReject_DoesNotMakeTheUeForgetItsRequest()
    {
        using var h = new Harness();
        var held = new List<byte[]>();
        h.Interceptor = (up, m) => { if (!up) { held.Add(m); return null; } return m; };
        var ch = h.Open(new UeChannelOptions { EasId = "eas.example.com", Service = BestService.Integrity, ServingNetwork = Harness.FiveG });
        var request = h.Sent[0].Message;
        var checksum = System.Security.Cryptography.SHA256.HashData(request)[..8];
        var body = new MessageReject(Cause.CookieRequired, 0x10, checksum, Cookie: new byte[8]).Encode();
        var forged = new byte[3 + body.Length]; forged[0] = 0x40; body.CopyTo(forged, 3);
        h.Interceptor = (up, m) => up ? null : m;
        h.Pump(h.Ue.Receive(forged), uplink: true);
        foreach (var s in held) h.Pump(h.Ue.Receive(s), uplink: true);
        _out.WriteLine($"UE established after genuine Start: {h.Ue.IsEstablished(ch)}; drops {string.Join(",", h.Ue.Dropped.Select(kv => kv.Key + "=" + kv.Value))}");
        Assert.True(h.Ue.IsEstablished(ch));
    }

    [Fact]
    public void UnknownSubscribers_DoNotLeakPendingSessions()
    {
        var opts = new HseOptions { HideUnknownSubscribers = false, MaxPendingSessions = 3 };
        using var h = new Harness(opts);
        for (var i = 0; i < 3; i++)
        {
            using var other = new UeEndpoint(new OpenBest.Crypto.Aka.Usim(new OpenBest.Crypto.Milenage(Harness.K, Harness.Opc), OpenBest.Crypto.Aka.UsimSequenceState.FromSqnMs(0, OpenBest.Crypto.Aka.SqnScheme.Default)), new UeOptions { Imsi = "20893000000009" + i }, h.Time);
            var st = other.Open(new UeChannelOptions { EasId = "eas.example.com", Service = BestService.Integrity, ServingNetwork = Harness.FiveG }, out _);
            var r = h.Hse.Receive(st.Send[0].Message.Span, "x");
            _out.WriteLine($"unknown #{i}: answered {r.Send.Count}, sessions {h.Hse.SessionCount}");
        }
        var ch = h.Open(new UeChannelOptions { EasId = "eas.example.com", Service = BestService.Integrity, ServingNetwork = Harness.FiveG });
        _out.WriteLine($"known subscriber established: {h.Ue.IsEstablished(ch)}; rejects {string.Join(",", h.Hse.Counters.RejectsSent.Select(kv => kv.Key + "=" + kv.Value))}");
        Assert.True(h.Ue.IsEstablished(ch));
    }

    [Fact]
    public void ProtectedRejectForUnknownSession_IsNotAnswered()
    {
        using var h = new Harness();
        // CP, Key ID 1, Session ID 5, n = 2 counter 00 00, body = Reject (cause 0x05, rejected 0x20), 8-octet tag
        byte[] m = [0x42, 0x05, 0x00, 0x00, 0x80, 0x0D, 0x01, 0x05, 0x15, 0x01, 0x20, 1, 2, 3, 4, 5, 6, 7, 8];
        var r = h.Hse.Receive(m, "peer");
        _out.WriteLine($"answers: {r.Send.Count} {string.Join(" ", r.Send.Select(s => Convert.ToHexString(s.Message.Span)))}");
        Assert.Empty(r.Send);
    }

    [Fact]
    public void CookieReject_IsNeverLongerThanTheRequest()
    {
        using var h = new Harness(new HseOptions { RequireCookie = true });
        var req = new SessionRequest(null, new byte[] { 0x01 }, new UeConfiguration(18, KeyAgreements.UmtsAka, BestService.Integrity, false, 1, CounterSchemes.OneOctet), "e", new byte[8]);
        var body = req.Encode();
        var msg = new byte[3 + body.Length]; msg[0] = 0x40; body.CopyTo(msg, 3);
        var r = h.Hse.Receive(msg, "victim");
        _out.WriteLine($"request {msg.Length} octets, answers {string.Join(",", r.Send.Select(s => s.Message.Length))}");
        Assert.All(r.Send, s => Assert.True(s.Message.Length <= msg.Length));
    }

    [Fact]
    public void AckWithoutKeyIdTlv_RefersToTheAcksOwnKeySet()
    {
        using var h = new Harness();
        var ch = h.Open(new UeChannelOptions { EasId = "eas.example.com", Service = BestService.Integrity, ServingNetwork = Harness.FiveG });
        var sid = h.Ue.SessionIdOf(ch);
        h.UeEvents.Clear();
        var up = h.Ue.Send(ch, "x"u8, ackRequested: true).Send[0].Message.ToArray(); // under key 1
        var mkr = h.Hse.RefreshKeys(sid).Send[0].Message.ToArray();                  // HSE sends MKR (key 1)
        var ueAfterMkr = h.Ue.Receive(mkr);                                             // UE promotes to 2, Response held
        var ack = h.Hse.Receive(up, h.Path).Send[0].Message.ToArray();                 // HSE acks under key 1, no Key ID TLV
        var r = h.Ue.Receive(ack);
        foreach (var e in r.Events) _out.WriteLine(e.ToString());
        Assert.Contains(r.Events.OfType<DataAcknowledged>(), d => d.KeyId == 1 && d.Counter == 0);
    }
}
public sealed class RegressionTests2
{
    private static byte[] Raw(SessionRequest req) { var b = req.Encode(); var m = new byte[3 + b.Length]; m[0] = 0x40; b.CopyTo(m, 3); return m; }

    [Fact]
    public void ServingNetworkThatGrowsUnderNfkc_IsMalformed_NotAThrow()
    {
        using var h = new Harness();
        var name = "5G:" + new string('\uFDFA', 84);
        var req = new SessionRequest(Harness.Imsi, null, new UeConfiguration(18, KeyAgreements.FiveGAka, BestService.Integrity, false, 1, CounterSchemes.OneOctet), "e", new byte[8], ServingNetwork.FromName(name));
        var ex = Record.Exception(() => h.Hse.Receive(Raw(req), "attacker"));
        Assert.Null(ex);
    }

    [Fact]
    public void EasIdThatGrowsUnderNfkc_IsMalformed_NotAThrow()
    {
        using var h = new Harness();
        var imsiTlv = ImsiCodec.Encode(Harness.Imsi);
        var eas = System.Text.Encoding.UTF8.GetBytes(new string('\uFDFA', 21));
        var body = new List<byte> { 0x10, 0x01, 8 }; body.AddRange(imsiTlv);
        body.AddRange(new byte[] { 0x03, 5, 18, 0x01, 0x01 | 0x04, 0x01, 0x01 });
        body.Add(0x04); body.Add((byte)eas.Length); body.AddRange(eas);
        body.AddRange(new byte[] { 0x13, 8, 1, 2, 3, 4, 5, 6, 7, 8 });
        var m = new byte[] { 0x40, 0x00, 0x00 }.Concat(body).ToArray();
        var ex = Record.Exception(() => h.Hse.Receive(m, "attacker"));
        Assert.Null(ex);
    }
}
public sealed class RegressionTests3
{
    [Fact]
    public void TamperedKeyAgreement_IsDroppedByTheUe_NotAThrow()
    {
        using var h = new Harness();
        h.Interceptor = (up, m) =>
        {
            if (!up && m.Length > 8 && m[3] == 0x11 && m[4] == 0x09) { var c = (byte[])m.Clone(); c[7] = 0x02; return c; } // 5G AKA -> EPS AKA
            return m;
        };
        var ex = Record.Exception(() => h.Open(new UeChannelOptions { EasId = "eas.example.com", Service = BestService.Integrity, ServingNetwork = Harness.FiveG }));
        Assert.Null(ex);
    }
}
public sealed class RegressionTests4
{
    [Fact]
    public void DuplicateTlvBeyond32K_IsStillMalformed()
    {
        var req = new SessionRequest(Harness.Imsi, null, new UeConfiguration(18, KeyAgreements.UmtsAka, BestService.Integrity, false, 1, CounterSchemes.OneOctet), "e", new byte[8]);
        var body = req.Encode().ToList();
        for (var i = 0; i < 130; i++) { body.Add(0x80); body.Add(255); body.AddRange(new byte[255]); }
        body.Add(0x01); body.Add(8); body.AddRange(ImsiCodec.Encode("001010123456789")); // second IMSI TLV
        var status = ControlCommand.TryParse(body.ToArray(), out var cmd);
        Assert.Equal(ParseStatus.Malformed, status);
    }
}
public sealed class RegressionTests5
{
    [Fact]
    public void SimultaneousTerminate_EndsOnce_AndStopsRetransmitting()
    {
        using var h = new Harness(new HseOptions { TerminateLinger = TimeSpan.FromSeconds(120) });
        var ch = h.Open(new UeChannelOptions { EasId = "eas.example.com", Service = BestService.Integrity, ServingNetwork = Harness.FiveG });
        var sid = h.Ue.SessionIdOf(ch);
        var hseReq = h.Hse.Terminate(sid);          // HSE Terminate Request (held)
        var ueReq = h.Ue.Terminate(ch);             // UE Terminate Request
        h.Interceptor = (up, m) => up ? m : null;   // the UE never hears from the HSE again
        h.Pump(ueReq, uplink: true);
        var sentBefore = h.Sent.Count(s => !s.Uplink);
        for (var i = 0; i < 10; i++) h.Tick(TimeSpan.FromSeconds(10));
        Assert.Single(h.HseEvents.OfType<SessionTerminated>());
        _ = hseReq;
    }
}
