using System.Globalization;
using System.Security.Cryptography;
using OpenBest.Crypto;
using OpenBest.Crypto.Aka;
using OpenBest.Protocol;
using OpenBest.Sessions;

namespace OpenBest.Bench;

/// <summary>The HSE's memory per idle session, measured through the real engines in memory (no sockets).</summary>
internal static class IdleSessionMemory
{
    private static readonly ServingNetwork Network = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org");

    /// <summary>
    /// The HSE's managed heap per established, idle session: N sessions set up through the real engines in memory
    /// (no sockets), after the answer caches expired, minus the same engine with its subscribers and no sessions.
    /// </summary>
    public static double Measure(int count, Action<int> progress)
    {
        var time = new BenchTime();
        using var subscribers = new InMemorySubscribers();
        var keys = new (string Imsi, byte[] K, byte[] Opc)[count];
        for (var i = 0; i < count; i++)
        {
            keys[i] = (string.Create(CultureInfo.InvariantCulture, $"00103{i:D10}"), RandomNumberGenerator.GetBytes(16), RandomNumberGenerator.GetBytes(16));
            subscribers.Add(keys[i].Imsi, keys[i].K, keys[i].Opc);
        }

        using var hse = new HseEngine(subscribers, new HseOptions { MaxVectorsPerIdentityPerMinute = int.MaxValue, MaxPendingSessions = int.MaxValue }, time);
        var before = HeapBytes();
        for (var i = 0; i < count; i++)
        {
            using var milenage = new Milenage(keys[i].K, keys[i].Opc);
            using var ue = new UeEndpoint(new Usim(milenage, new UsimSequenceState(SqnScheme.Default)), new UeOptions { Imsi = keys[i].Imsi }, time);
            var queue = new Queue<(bool Uplink, ReadOnlyMemory<byte> Message)>(ue.Open(new UeChannelOptions { EasId = "eas.example.com", ServingNetwork = Network }, out _).Send.Select(s => (true, s.Message)));
            while (queue.TryDequeue(out var item))
            {
                var next = item.Uplink ? hse.Receive(item.Message.Span, "ue") : ue.Receive(item.Message.Span);
                foreach (var send in next.Send)
                {
                    queue.Enqueue((!item.Uplink, send.Message));
                }
            }

            if (i % 1000 == 999)
            {
                progress(i + 1);
            }
        }

        // Idle: the retransmission caches expired; what is left is what an established session costs.
        time.Advance(TimeSpan.FromMinutes(2));
        hse.Tick();
        hse.TakeChanges(new List<HseSessionSnapshot>(), new List<uint>());
        var after = HeapBytes();
        if (hse.EstablishedCount != count)
        {
            throw new InvalidOperationException($"only {hse.EstablishedCount} of {count} sessions were established");
        }

        GC.KeepAlive(hse);
        return (after - before) / (double)count;
    }

    private static long HeapBytes()
    {
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        return GC.GetTotalMemory(forceFullCollection: true);
    }

    private sealed class BenchTime : TimeProvider
    {
        private DateTimeOffset _now = DateTimeOffset.UtcNow;

        public override DateTimeOffset GetUtcNow() => _now;

        public void Advance(TimeSpan by) => _now += by;
    }

}
