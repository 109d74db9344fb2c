using System.Collections.Concurrent;
using OpenBest.Crypto;
using OpenBest.Crypto.Aka;
using OpenBest.Sessions;

namespace OpenBest.Storage;

/// <summary>
/// The HSE's <see cref="IHseSubscribers"/> over a store: SEQs reserved atomically in the database in blocks of
/// <paramref name="seqBlock"/> (default 16) per subscriber, so several HSE nodes on one database never issue the
/// same SEQ, and one database write serves several vectors. Each node should use its own <paramref name="ind"/>
/// (TS 33.102 Annex C: the USIM keeps SEQ_MS per IND, so blocks of different nodes interleave without
/// resynchronisation); a crash skips the rest of a block, never repeats a SEQ. MILENAGE instances are kept in
/// memory per subscriber for <paramref name="cacheLifetime"/> (default 60 s), so a subscriber re-provisioned
/// with a new K is picked up by every running HSE within that time.
/// </summary>
public sealed class StoreSubscribers(ISubscriberStore store, int ind = 31, TimeSpan? cacheLifetime = null, TimeProvider? time = null, int seqBlock = 16) : IHseSubscribers, IDisposable
{
    private readonly ConcurrentDictionary<string, (ulong Next, ulong Last)> _blocks = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, (Milenage Milenage, ushort Amf, DateTimeOffset Expires)> _loaded = new(StringComparer.Ordinal);
    private readonly TimeSpan _lifetime = cacheLifetime ?? TimeSpan.FromSeconds(60);
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    /// <inheritdoc/>
    public AuthenticationVector? CreateVector(string imsi, AkaContext context)
    {
        if (!TryLoad(imsi, out var entry))
        {
            return null;
        }

        // The SEQ is reserved in the database before the vector exists: a crash can skip some, never repeat one.
        if (!_blocks.TryGetValue(imsi, out var block) || block.Next > block.Last)
        {
            if (store.ReserveSeq(imsi, Math.Max(1, seqBlock)) is not { } last)
            {
                return null;
            }

            block = (last - (ulong)Math.Max(1, seqBlock) + 1, last);
        }

        var seq = block.Next;
        _blocks[imsi] = (seq + 1, block.Last);

        return AuthenticationCentre.Generate(entry.Milenage, SqnScheme.Default.Compose(seq, ind), entry.Amf, default, context);
    }

    /// <inheritdoc/>
    public bool Resynchronise(string imsi, ReadOnlySpan<byte> rand, ReadOnlySpan<byte> auts)
    {
        if (!TryLoad(imsi, out var entry))
        {
            return false;
        }

        // Compare and set: between reading SEQ_HE and writing it back another worker may issue a vector,
        // and a blind write would let a SEQ be issued twice.
        for (var attempt = 0; attempt < 8; attempt++)
        {
            var current = store.SeqHe(imsi) ?? 0;
            var result = AuthenticationCentre.Resynchronise(entry.Milenage, rand, auts, current, SqnScheme.Default);
            if (result.Outcome != ResynchronisationOutcome.Resynchronised)
            {
                return false;
            }

            if (result.SeqHe == current || store.TrySetSeqHe(imsi, current, result.SeqHe))
            {
                // The next vector takes a new block, above what the USIM has seen.
                _blocks.TryRemove(imsi, out _);
                return true;
            }
        }

        return false;
    }

    /// <summary>Zeroes the keys held in memory.</summary>
    public void Dispose()
    {
        foreach (var entry in _loaded.Values)
        {
            entry.Milenage.Dispose();
        }

        _loaded.Clear();
    }

    private bool TryLoad(string imsi, out (Milenage Milenage, ushort Amf) entry)
    {
        var now = _time.GetUtcNow();
        if (_loaded.TryGetValue(imsi, out var cached) && cached.Expires > now)
        {
            entry = (cached.Milenage, cached.Amf);
            return true;
        }

        entry = default;
        using var secrets = store.GetSecrets(imsi);
        if (secrets is null)
        {
            if (_loaded.TryRemove(imsi, out var gone))
            {
                gone.Milenage.Dispose();
            }

            return false;
        }

        // Replace an expired entry. The executor is the only caller, so an entry it still uses is not disposed under it.
        var fresh = (new Milenage(secrets.K, secrets.Opc), secrets.Amf, now + _lifetime);
        if (_loaded.TryGetValue(imsi, out var old))
        {
            old.Milenage.Dispose();
        }

        _loaded[imsi] = fresh;
        entry = (fresh.Item1, fresh.Amf);
        return true;
    }
}
