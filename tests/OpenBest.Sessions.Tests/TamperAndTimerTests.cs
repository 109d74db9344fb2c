using OpenBest.Protocol;
using OpenBest.Sessions;

namespace OpenBest.Sessions.Tests;

/// <summary>Tampering of every octet of CP messages, counter wrap through the engines, and timer-driven refresh.</summary>
public sealed class TamperAndTimerTests
{
    private static UeChannelOptions Channel() => new() { EasId = "eas.example.com", ServingNetwork = Harness.FiveG };

    [Fact]
    public void SessionStart_AnyTamperedOctet_IsNeverAccepted()
    {
        // Profile 4 and 6.2: the tag covers header ‖ body ‖ SHA-256(request); the UE checks the checksum first.
        using var reference = new Harness();
        reference.Interceptor = (uplink, m) => uplink ? m : null;
        reference.Open(Channel());
        var start = reference.Sent.First(s => !s.Uplink).Message;

        for (var i = 0; i < start.Length; i++)
        {
            using var h = new Harness();
            var octet = i;
            h.Interceptor = (uplink, m) =>
            {
                if (uplink || m.Length != start.Length)
                {
                    return uplink ? m : null;
                }

                var copy = (byte[])m.Clone();
                copy[octet] ^= 0x10;
                return copy;
            };
            var channel = h.Open(Channel());
            Assert.False(h.Ue.IsEstablished(channel), $"octet {i} of the Session Start was changed and still accepted");
        }
    }

    [Fact]
    public void ControlMessages_AnyTamperedOctet_IsDropped()
    {
        // Every octet of a Manage Keys Request (header, every TLV, tag) is covered by the tag.
        using var h = new Harness();
        var channel = h.Open(Channel());
        var sid = h.Ue.SessionIdOf(channel);
        h.Interceptor = (uplink, m) => uplink ? m : null; // hold the HSE's request
        h.Pump(h.Hse.RefreshKeys(sid), uplink: false);
        var request = h.Sent.Last(s => !s.Uplink).Message;
        for (var i = 0; i < request.Length; i++)
        {
            var copy = (byte[])request.Clone();
            copy[i] ^= 0x04;
            var step = h.Ue.Receive(copy);
            Assert.Empty(step.Events.OfType<KeysRefreshed>());
            Assert.Empty(step.Send);
        }

        Assert.Equal(1, h.Ue.CurrentKeyIdOf(channel));
        Assert.Single(h.Ue.Receive(request).Events.OfType<KeysRefreshed>());
    }

    [Fact]
    public void OneOctetCounters_ThroughTheEngines_ThousandsOfMessages()
    {
        // Profile 3: n = 1 carries 8 bits; the receiver reconstructs the full counter across wraps.
        using var h = new Harness(new HseOptions { CounterLengthPreference = [1] });
        var channel = h.Open(Channel());
        Assert.Equal(1, h.Ue.SelectedOf(channel).CounterLength);
        for (var i = 0; i < 3000; i++)
        {
            h.Pump(h.Ue.Send(channel, BitConverter.GetBytes(i), ackRequested: i % 100 == 0), uplink: true);
        }

        var received = h.HseEvents.OfType<DataReceived>().ToList();
        Assert.Equal(3000, received.Count);
        Assert.Equal(2999UL, received[^1].Counter);
        Assert.Equal(Enumerable.Range(0, 3000), received.Select(r => BitConverter.ToInt32(r.Payload.Span)));
    }

    [Fact]
    public void OneOctetCounters_WithoutAcks_AskForAnAckBeforeTheWindowIsExhausted()
    {
        // Profile 3: a sender more than 2^(8n−1) − block ahead of its last acknowledged counter sets A.
        using var h = new Harness(new HseOptions { CounterLengthPreference = [1] });
        var channel = h.Open(Channel());
        var asked = 0;
        for (var i = 0; i < 200; i++)
        {
            var step = h.Ue.Send(channel, "x"u8);
            asked += (step.Send[0].Message.Span[0] & 0x01) != 0 ? 1 : 0;
            h.Pump(step, uplink: true);
        }

        Assert.True(asked > 0, "no message asked for an Ack");
        Assert.NotEmpty(h.UeEvents.OfType<DataAcknowledged>());
    }

    [Fact]
    public void KeyLifetime_StartsARefresh()
    {
        // Profile 3: when the key lifetime ends, the HSE starts a key refresh.
        using var h = new Harness(new HseOptions { KeyLifetime = TimeSpan.FromMinutes(10) });
        var channel = h.Open(Channel());
        var sid = h.Ue.SessionIdOf(channel);
        h.Tick(TimeSpan.FromMinutes(9));
        Assert.Equal(1, h.Hse.CurrentKeyIdOf(sid));
        h.Tick(TimeSpan.FromMinutes(2));
        Assert.Equal(2, h.Hse.CurrentKeyIdOf(sid));
        Assert.Equal(2, h.Ue.CurrentKeyIdOf(channel));
    }

    [Fact]
    public void SessionRequest_Unanswered_GivesUpAfterItsRetries()
    {
        using var h = new Harness();
        h.Interceptor = (_, _) => null;
        var channel = h.Open(Channel());
        for (var i = 0; i < 6; i++)
        {
            h.Tick(TimeSpan.FromMinutes(2));
        }

        Assert.False(h.Ue.IsEstablished(channel));
        Assert.Single(h.UeEvents.OfType<SessionRejected>());
        var requests = h.Sent.Where(s => s.Uplink).Select(s => Convert.ToHexString(s.Message)).ToList();
        Assert.Equal(5, requests.Count);       // the first send and 4 retransmissions
        Assert.Single(requests.Distinct());    // byte for byte
    }
}
