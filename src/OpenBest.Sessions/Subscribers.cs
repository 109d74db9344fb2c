using System.Collections.Concurrent;
using OpenBest.Crypto;
using OpenBest.Crypto.Aka;

namespace OpenBest.Sessions;

/// <summary>
/// What the HSE needs from its subscriber database: authentication vectors with SQN management
/// (BEST vectors use their own IND, profile section 5) and resynchronisation. Storage implements it.
/// </summary>
public interface IHseSubscribers
{
    /// <summary>A fresh vector for <paramref name="imsi"/>, or null for an unknown subscriber.</summary>
    AuthenticationVector? CreateVector(string imsi, AkaContext context);

    /// <summary>Resynchronises SEQ_HE from RAND and AUTS (TS 33.102 6.3.5); false when MAC-S does not verify.</summary>
    bool Resynchronise(string imsi, ReadOnlySpan<byte> rand, ReadOnlySpan<byte> auts);
}

/// <summary>Subscribers held in memory: for tests, simulators and the demo. Thread-safe.</summary>
public sealed class InMemorySubscribers : IHseSubscribers, IDisposable
{
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);

    /// <summary>The IND value of BEST vectors (profile section 5: default 31).</summary>
    public int Ind { get; init; } = 31;

    /// <summary>Adds a subscriber with K, OPc and AMF, starting at SEQ_HE = <paramref name="seqHe"/>.</summary>
    public void Add(string imsi, ReadOnlySpan<byte> k, ReadOnlySpan<byte> opc, ushort amf = 0x8000, ulong seqHe = 0)
    {
        var entry = new Entry(new Milenage(k, opc), amf) { SeqHe = seqHe };
        if (!_entries.TryAdd(imsi, entry))
        {
            entry.Milenage.Dispose();
            throw new ArgumentException("The subscriber exists already.", nameof(imsi));
        }
    }

    /// <summary>SEQ_HE of a subscriber (for tests).</summary>
    public ulong SeqHe(string imsi) => _entries[imsi].SeqHe;

    /// <summary>Vectors issued so far for a subscriber (for tests).</summary>
    public int VectorsIssued(string imsi) => _entries[imsi].Issued;

    /// <inheritdoc/>
    public AuthenticationVector? CreateVector(string imsi, AkaContext context)
    {
        if (!_entries.TryGetValue(imsi, out var entry))
        {
            return null;
        }

        lock (entry)
        {
            var sqn = SqnScheme.Default.Next(entry.SeqHe, Ind);
            entry.SeqHe++;
            entry.Issued++;
            return AuthenticationCentre.Generate(entry.Milenage, sqn, entry.Amf, default, context);
        }
    }

    /// <inheritdoc/>
    public bool Resynchronise(string imsi, ReadOnlySpan<byte> rand, ReadOnlySpan<byte> auts)
    {
        if (!_entries.TryGetValue(imsi, out var entry))
        {
            return false;
        }

        lock (entry)
        {
            var result = AuthenticationCentre.Resynchronise(entry.Milenage, rand, auts, entry.SeqHe, SqnScheme.Default);
            if (result.Outcome != ResynchronisationOutcome.Resynchronised)
            {
                return false;
            }

            entry.SeqHe = result.SeqHe;
            return true;
        }
    }

    /// <summary>Zeroes every key.</summary>
    public void Dispose()
    {
        foreach (var entry in _entries.Values)
        {
            entry.Milenage.Dispose();
        }

        _entries.Clear();
    }

    private sealed class Entry(Milenage milenage, ushort amf)
    {
        public Milenage Milenage { get; } = milenage;

        public ushort Amf { get; } = amf;

        public ulong SeqHe { get; set; }

        public int Issued { get; set; }
    }
}
