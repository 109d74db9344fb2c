using System.Collections.Concurrent;
using OpenBest.Protocol;

namespace OpenBest.Storage;

/// <summary>
/// Service policy from the store (profile 6.2: allowed services per subscriber and per EAS): a session may use
/// a service only if both the subscriber's and the EAS's policy allow it (no policy: any). Answers are cached
/// for <paramref name="cacheLifetime"/> (default 60 s), so policy changes reach running HSEs within that time.
/// </summary>
public sealed class StorePolicy(IHseStateStore store, TimeSpan? cacheLifetime = null, TimeProvider? time = null)
{
    private readonly ConcurrentDictionary<(string, string), ((int?, int?) Masks, DateTimeOffset Expires)> _cache = new();
    private readonly TimeSpan _lifetime = cacheLifetime ?? TimeSpan.FromSeconds(60);
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    /// <summary>Whether <paramref name="imsi"/> may use <paramref name="service"/> with <paramref name="easId"/>.</summary>
    public bool Authorise(string imsi, string easId, BestService service)
    {
        var now = _time.GetUtcNow();
        if (!_cache.TryGetValue((imsi, easId), out var entry) || entry.Expires <= now)
        {
            if (_cache.Count > 100_000)
            {
                _cache.Clear();
            }

            entry = (store.Services(imsi, easId), now + _lifetime);
            _cache[(imsi, easId)] = entry;
        }

        return ServicePolicy.Allows(entry.Masks.Item1, service) && ServicePolicy.Allows(entry.Masks.Item2, service);
    }
}
