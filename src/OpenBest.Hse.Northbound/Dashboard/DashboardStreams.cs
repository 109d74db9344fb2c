namespace OpenBest.Hse.Northbound.Dashboard;

/// <summary>
/// The dashboard's open events streams, bounded: <see cref="MaxStreams"/> in all and <see cref="MaxStreamsPerCaller"/>
/// per caller, so that one caller cannot take them all. Each stream costs a snapshot per sample.
/// </summary>
internal sealed class DashboardStreams
{
    /// <summary>Events streams open at once at most (100: a dashboard is for people).</summary>
    public const int MaxStreams = 100;

    /// <summary>Events streams one caller may have open at once (10: a few tabs).</summary>
    public const int MaxStreamsPerCaller = 10;

    private readonly Lock _gate = new();
    private readonly Dictionary<string, int> _byCaller = new(StringComparer.Ordinal);
    private int _count;

    /// <summary>Takes a stream for <paramref name="caller"/>; false when none is free (in all, or for this caller).</summary>
    public bool TryOpen(string caller)
    {
        lock (_gate)
        {
            var own = _byCaller.GetValueOrDefault(caller);
            if (_count >= MaxStreams || own >= MaxStreamsPerCaller)
            {
                return false;
            }

            _byCaller[caller] = own + 1;
            _count++;
            return true;
        }
    }

    /// <summary>Gives back a stream <see cref="TryOpen"/> took for <paramref name="caller"/>.</summary>
    public void Close(string caller)
    {
        lock (_gate)
        {
            if (!_byCaller.TryGetValue(caller, out var own))
            {
                return;
            }

            if (own <= 1)
            {
                _byCaller.Remove(caller);
            }
            else
            {
                _byCaller[caller] = own - 1;
            }

            _count--;
        }
    }
}
