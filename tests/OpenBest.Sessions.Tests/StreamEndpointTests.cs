using System.Security.Cryptography;

namespace OpenBest.Sessions.Tests;

/// <summary>
/// The converter's reliable stream (<see cref="StreamEndpoint"/>, docs/protocol.md "TLS converter") over a simulated link
/// that loses, reorders and duplicates frames, on a manual clock: every octet arrives once and in order, both directions
/// finish cleanly, a slow reader throttles the sender through the window, and peer input never throws.
/// </summary>
public sealed class StreamEndpointTests
{
    /// <summary>Two ends joined by a link with a seeded random fate for each frame.</summary>
    private sealed class Link(int seed, double loss, double reorder, double duplicate)
    {
        private readonly Random _random = new(seed);
        private readonly List<(long At, bool ToB, byte[] Frame)> _wire = [];

        public StreamEndpoint A { get; } = new(receiveBuffer: 8 * 1024);

        public StreamEndpoint B { get; } = new(receiveBuffer: 8 * 1024);

        public long Now { get; private set; }

        public int Carried { get; private set; }

        /// <summary>One millisecond: each end pumps and sends; frames due arrive; the readers read up to <paramref name="readA"/> / <paramref name="readB"/> octets.</summary>
        public void Step(MemoryStream intoA, MemoryStream intoB, int readA = int.MaxValue, int readB = int.MaxValue)
        {
            Now++;
            foreach (var (end, toB) in new[] { (A, true), (B, false) })
            {
                end.Pump(Now);
                foreach (var frame in end.TakeFrames())
                {
                    Send(frame, toB);
                }
            }

            foreach (var due in _wire.Where(w => w.At <= Now).ToList())
            {
                _wire.Remove(due);
                Carried++;
                (due.ToB ? B : A).OnFrame(due.Frame, Now);
            }

            Drain(A, intoA, readA);
            Drain(B, intoB, readB);
        }

        private void Send(byte[] frame, bool toB)
        {
            if (_random.NextDouble() < loss)
            {
                return;
            }

            var delay = 5 + (_random.NextDouble() < reorder ? _random.Next(1, 40) : 0);
            _wire.Add((Now + delay, toB, frame));
            if (_random.NextDouble() < duplicate)
            {
                _wire.Add((Now + delay + _random.Next(1, 20), toB, frame));
            }
        }

        private static void Drain(StreamEndpoint end, MemoryStream into, int limit)
        {
            Span<byte> buffer = stackalloc byte[4096];
            var n = end.Read(buffer[..Math.Min(buffer.Length, limit)]);
            into.Write(buffer[..n]);
        }
    }

    [Theory]
    [InlineData(1, 0.0, 0.0, 0.0)]
    [InlineData(2, 0.1, 0.2, 0.05)]
    [InlineData(3, 0.25, 0.3, 0.1)]
    public void EveryOctetArrivesOnceInOrder_BothWays_AndBothDirectionsFinish(int seed, double loss, double reorder, double duplicate)
    {
        var link = new Link(seed, loss, reorder, duplicate);
        var (toB, toA) = (RandomNumberGenerator.GetBytes(200_000), RandomNumberGenerator.GetBytes(50_000));
        using var atA = new MemoryStream();
        using var atB = new MemoryStream();
        var (sentToB, sentToA) = (0, 0);
        for (var i = 0; i < 2_000_000 && !(link.A.Closed && link.B.Closed); i++)
        {
            // Writers keep at most 16 KiB unacknowledged, as the SDK's Stream and the converter do.
            if (sentToB < toB.Length && link.A.Unacknowledged < 16 * 1024)
            {
                var n = Math.Min(3000, toB.Length - sentToB);
                link.A.Write(toB.AsSpan(sentToB, n));
                sentToB += n;
                if (sentToB == toB.Length)
                {
                    link.A.Finish();
                }
            }

            if (sentToA < toA.Length && link.B.Unacknowledged < 16 * 1024)
            {
                var n = Math.Min(1500, toA.Length - sentToA);
                link.B.Write(toA.AsSpan(sentToA, n));
                sentToA += n;
                if (sentToA == toA.Length)
                {
                    link.B.Finish();
                }
            }

            link.Step(atA, atB);
        }

        Assert.Equal(StreamFailure.None, link.A.Failure);
        Assert.Equal(StreamFailure.None, link.B.Failure);
        Assert.True(link.A.Closed && link.B.Closed, $"both directions finished: A {link.A}; B {link.B}; at A {atA.Length}, at B {atB.Length}");
        Assert.Equal(toB, atB.ToArray());
        Assert.Equal(toA, atA.ToArray());
        Assert.Equal(loss > 0, link.A.Retransmitted + link.B.Retransmitted > 0);
    }

    [Fact]
    public void ASlowReader_ClosesTheWindow_TheSenderWaits_AndNothingIsLost()
    {
        var link = new Link(7, 0.05, 0.1, 0.0);
        var data = RandomNumberGenerator.GetBytes(100_000);
        link.A.Write(data);
        link.A.Finish();
        using var atA = new MemoryStream();
        using var atB = new MemoryStream();
        long maxAhead = 0;
        for (var i = 0; i < 3_000_000 && !link.B.RemoteFinished; i++)
        {
            // B reads 64 octets every 10 ms: far slower than A could send.
            link.Step(atA, atB, readB: i % 10 == 0 ? 64 : 0);
            maxAhead = Math.Max(maxAhead, data.Length - link.A.Unacknowledged - atB.Length);
        }

        Assert.Equal(data, atB.ToArray());
        Assert.True(link.B.RemoteFinished);
        Assert.InRange(maxAhead, 0, (8 * 1024) + StreamEndpoint.MaxSegment); // never more in B's buffers than its window
    }

    [Fact]
    public void UnansweredData_FailsAfterTheRetries_WithTimedOut()
    {
        var a = new StreamEndpoint(initialRetransmission: TimeSpan.FromMilliseconds(100), maxRetries: 3);
        a.Write("nobody hears this"u8);
        for (long now = 0; now < 600_000 && a.Failure == StreamFailure.None; now += 10)
        {
            a.Pump(now);
            _ = a.TakeFrames();
        }

        Assert.Equal(StreamFailure.TimedOut, a.Failure);
    }

    [Fact]
    public void AnAbort_ReachesThePeer_AsAReset_WithItsCause()
    {
        var (a, b) = (new StreamEndpoint(), new StreamEndpoint());
        a.Abort(StreamFailure.Unreachable);
        foreach (var frame in a.TakeFrames())
        {
            Assert.True(b.OnFrame(frame, 0));
        }

        Assert.Equal(StreamFailure.Unreachable, b.Failure);
        Assert.True(b.Closed);
    }

    [Fact]
    public void PeerInput_NeverThrows_AndMalformedFramesAreCounted()
    {
        var random = new Random(11);
        var end = new StreamEndpoint();
        end.Write("some data"u8);
        end.Pump(0);
        var sink = new byte[512];
        for (var i = 0; i < 20_000; i++)
        {
            var frame = new byte[random.Next(0, 1100)];
            random.NextBytes(frame);
            if (frame.Length > 0 && random.Next(2) == 0)
            {
                frame[0] = (byte)random.Next(1, 4); // a valid type more often
            }

            _ = end.OnFrame(frame, i);
            end.Pump(i);
            _ = end.TakeFrames();
            _ = end.Read(sink);
            if (end.Failure != StreamFailure.None)
            {
                end = new StreamEndpoint();
            }
        }

        Assert.True(end.Dropped >= 0);
    }
}
