using System.Collections.Concurrent;

namespace OpenBest.Hse;

/// <summary>
/// When each key last did something, to allow it once per <c>interval</c> (a rate limit per device, session or EAS).
/// Thread-safe; beyond <c>pruneAbove</c> keys, those whose interval has passed are forgotten.
/// </summary>
public sealed class RecentKeys<TKey>(TimeSpan interval, int pruneAbove, TimeProvider? time = null)
    where TKey : notnull
{
    private readonly ConcurrentDictionary<TKey, long> _at = new();
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    private long Now => _time.GetTimestamp();

    private bool Passed(long at, long now) => _time.GetElapsedTime(at, now) >= interval;

    /// <summary>Whether <paramref name="key"/> was marked less than the interval ago.</summary>
    public bool IsRecent(TKey key) => _at.TryGetValue(key, out var at) && !Passed(at, Now);

    /// <summary>Marks <paramref name="key"/> as having acted now.</summary>
    public void Mark(TKey key)
    {
        var now = Now;
        Prune(now);
        _at[key] = now;
    }

    /// <summary>
    /// Marks <paramref name="key"/> as acting now unless it acted less than the interval ago, in one step: of two callers at
    /// once, only one is allowed.
    /// </summary>
    public bool TryMark(TKey key)
    {
        var now = Now;
        Prune(now);
        while (true)
        {
            if (!_at.TryGetValue(key, out var at))
            {
                if (_at.TryAdd(key, now))
                {
                    return true;
                }

                continue;
            }

            if (!Passed(at, now))
            {
                return false;
            }

            if (_at.TryUpdate(key, now, at))
            {
                return true;
            }
        }
    }

    private void Prune(long now)
    {
        if (_at.Count <= pruneAbove)
        {
            return;
        }

        foreach (var (old, at) in _at)
        {
            if (Passed(at, now))
            {
                _at.TryRemove(old, out _);
            }
        }
    }
}
