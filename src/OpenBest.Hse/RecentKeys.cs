using System.Collections.Concurrent;

namespace OpenBest.Hse;

/// <summary>
/// When each key last did something, to allow it once per <c>interval</c> (a rate limit per device, session or EAS).
/// Thread-safe; beyond <c>pruneAbove</c> keys, those whose interval has passed are forgotten.
/// </summary>
internal sealed class RecentKeys<TKey>(TimeSpan interval, int pruneAbove)
    where TKey : notnull
{
    private readonly ConcurrentDictionary<TKey, long> _at = new();
    private readonly long _intervalMs = (long)interval.TotalMilliseconds;

    /// <summary>Whether <paramref name="key"/> was marked less than the interval ago.</summary>
    public bool IsRecent(TKey key) => _at.TryGetValue(key, out var at) && Environment.TickCount64 - at < _intervalMs;

    /// <summary>Marks <paramref name="key"/> as having acted now.</summary>
    public void Mark(TKey key)
    {
        var now = Environment.TickCount64;
        if (_at.Count > pruneAbove)
        {
            foreach (var (old, at) in _at)
            {
                if (now - at >= _intervalMs)
                {
                    _at.TryRemove(old, out _);
                }
            }
        }

        _at[key] = now;
    }
}
