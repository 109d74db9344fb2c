using System.Buffers;
using OpenBest.Crypto.Aead;
using OpenBest.Protocol;
using OpenBest.Sessions;

namespace OpenBest.Sessions.Tests;

/// <summary>
/// A structure-aware mutation fuzzer over valid messages, for every parser entry point and both engines.
/// Bounded in CI (200 000 inputs, seeded); set OPENBEST_FUZZ_INPUTS to run longer by hand, and
/// OPENBEST_FUZZ_SEED to explore other inputs.
/// </summary>
public sealed class FuzzTests
{
    private static readonly int Inputs = int.TryParse(Environment.GetEnvironmentVariable("OPENBEST_FUZZ_INPUTS"), out var n) ? n : 200_000;
    private static readonly int Seed = int.TryParse(Environment.GetEnvironmentVariable("OPENBEST_FUZZ_SEED"), out var s) ? s : 1163;

    /// <summary>Valid messages of every kind, captured from real UE ↔ HSE runs.</summary>
    private static List<byte[]> Corpus()
    {
        var corpus = new List<byte[]>();
        foreach (var service in new[] { BestService.Confidential, BestService.Integrity, BestService.KeyAgreementOnly })
        {
            using var h = new Harness(new HseOptions { RequireCookie = service == BestService.Integrity });
            var channel = h.Open(new UeChannelOptions { EasId = "eas.example.com", Service = service, ServingNetwork = Harness.FiveG });
            var sid = h.Ue.SessionIdOf(channel);
            if (service != BestService.KeyAgreementOnly)
            {
                h.Pump(h.Ue.Send(channel, "uplink payload"u8, ackRequested: true), uplink: true);
                h.Pump(h.Hse.SendDownlink(sid, "downlink"u8, ackRequested: true), uplink: false);
            }

            h.Pump(h.Hse.RefreshKeys(sid), uplink: false);
            h.Pump(h.Ue.Suspend(channel), uplink: true);
            h.Pump(h.Ue.Resume(channel), uplink: true);
            h.Pump(h.Ue.Terminate(channel, Cause.NotAuthorised), uplink: true);
            corpus.AddRange(h.Sent.Select(m => m.Message));
        }

        using (var h = new Harness(ueSqnMs: 0x0000_0100_0000))
        {
            h.Open(new UeChannelOptions { EasId = "e", ServingNetwork = Harness.FiveG });
            corpus.AddRange(h.Sent.Select(m => m.Message));
        }

        return corpus;
    }

    private static byte[] Mutate(byte[] input, Random random)
    {
        var data = new List<byte>(input);
        var rounds = 1 + random.Next(3);
        for (var r = 0; r < rounds && data.Count > 0; r++)
        {
            var at = random.Next(data.Count);
            switch (random.Next(9))
            {
                case 0: data[at] ^= (byte)(1 << random.Next(8)); break;                      // flip a bit
                case 1: data[at] = (byte)random.Next(256); break;                             // replace an octet
                case 2: data.Insert(at, (byte)random.Next(256)); break;                       // insert
                case 3: data.RemoveAt(at); break;                                             // delete
                case 4: data.RemoveRange(at, data.Count - at); break;                         // truncate
                case 5: data.InsertRange(at, data.Skip(at).Take(1 + random.Next(12)).ToList()); break; // duplicate a run (TLVs twice)
                case 6: data[at] = (byte)(random.Next(2) == 0 ? 0x00 : 0xFF); break;          // boundary octets, invalid tags
                case 7: if (data.Count > 4) { data[Math.Min(5, data.Count - 1)] = (byte)random.Next(256); } break; // a TLV length
                default: data[0] = (byte)((data[0] & 0xF1) | (random.Next(8) << 1)); break;   // another Key ID
            }
        }

        return [.. data];
    }

    [Fact]
    public void Mutations_NeverThrow_NeverAuthenticate()
    {
        var corpus = Corpus();
        Assert.True(corpus.Count > 30);
        var random = new Random(Seed);

        // Live engines that mutated traffic is thrown at: nothing may throw, nothing forged may be delivered.
        using var h = new Harness();
        var channel = h.Open(new UeChannelOptions { EasId = "eas.example.com", ServingNetwork = Harness.FiveG });
        Assert.True(h.Ue.IsEstablished(channel));
        var sid = h.Ue.SessionIdOf(channel);

        for (var i = 0; i < Inputs; i++)
        {
            var input = Mutate(corpus[random.Next(corpus.Count)], random);
            ParseEverywhere(input);
            if (i % 4 == 0)
            {
                AssertNothingForged(h.Hse.Receive(input, h.Path).Events, sid);
                AssertNothingForged(h.Ue.Receive(input).Events, sid);
            }
        }

        // The real session survives the storm.
        h.Pump(h.Ue.Send(channel, "still here"u8), uplink: true);
        Assert.Contains(h.HseEvents.OfType<DataReceived>(), d => d.Payload.Span.SequenceEqual("still here"u8));
    }

    private static void AssertNothingForged(List<SessionEvent> events, uint liveSession)
    {
        foreach (var e in events)
        {
            // Forged input may create pending state (a Session Request is unauthenticated by design), but it
            // never delivers data or confirms keys on the live session.
            Assert.False(e is DataReceived d && d.SessionId == liveSession, $"forged data delivered: {e}");
            Assert.False(e is KeysRefreshed k && k.SessionId == liveSession, $"forged refresh: {e}");
            Assert.False(e is SessionTerminated t && t.SessionId == liveSession, $"forged terminate: {e}");
        }
    }

    private static void ParseEverywhere(byte[] input)
    {
        if (HeaderPrefix.TryRead(input, out var prefix) == ParseStatus.Ok)
        {
            foreach (var n in new[] { 1, 2, 4 })
            {
                foreach (var tag in new[] { 0, 4, 8, 16 })
                {
                    if (EmsdpFrame.TryParse(input, prefix, n, tag, out var frame) == ParseStatus.Ok && frame.Body.Length > 0 && prefix.Plane == Plane.Control)
                    {
                        ControlCommand.TryParse(frame.Body, out _);
                    }
                }
            }
        }

        var sequence = new ReadOnlySequence<byte>(input);
        StreamFraming.TryRead(ref sequence, out _);
        SuciResolver.TryResolve(input, NoSuciKeys, out _);
    }

    private static readonly Dictionary<byte, (OpenBest.Crypto.Suci.SuciProtectionScheme, ReadOnlyMemory<byte>)> NoSuciKeys = new()
    {
        [1] = (OpenBest.Crypto.Suci.SuciProtectionScheme.ProfileA, new byte[32]),
    };
}
