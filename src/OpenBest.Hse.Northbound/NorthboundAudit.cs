using System.Threading.Channels;
using OpenBest.Storage;

namespace OpenBest.Hse.Northbound;

/// <summary>
/// Writes the northbound API's audit lines to the HSE's audit log from one background writer, in the order the calls
/// ended, so that no request waits for the HSE's database (whose writer is the HSE's group commit). A line is written
/// within milliseconds of its answer; a process killed in that moment loses those lines, and a full queue (65,536
/// lines behind) drops and counts them.
/// </summary>
public sealed class NorthboundAudit : IAsyncDisposable
{
    private readonly IHseStateStore _store;
    private readonly Channel<(string Caller, string Subject)> _lines = Channel.CreateBounded<(string, string)>(new BoundedChannelOptions(65_536) { SingleReader = true, FullMode = BoundedChannelFullMode.DropWrite });
    private readonly Task _writer;
    private long _dropped;
    private long _failed;

    /// <summary>Starts the writer.</summary>
    public NorthboundAudit(IHseStateStore store)
    {
        ArgumentNullException.ThrowIfNull(store);
        _store = store;
        _writer = Task.Run(WriteAsync);
    }

    /// <summary>Lines dropped because the queue was full.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Lines the store refused (it was down).</summary>
    public long Failed => Interlocked.Read(ref _failed);

    /// <summary>Queues one line (event "api").</summary>
    public void Add(string caller, string subject)
    {
        if (!_lines.Writer.TryWrite((caller, subject)))
        {
            Interlocked.Increment(ref _dropped);
        }
    }

    /// <summary>Writes what is queued, then stops.</summary>
    public async ValueTask DisposeAsync()
    {
        _lines.Writer.TryComplete();
        await _writer.ConfigureAwait(false);
    }

    private async Task WriteAsync()
    {
        await foreach (var (caller, subject) in _lines.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            try
            {
                _store.Audit("api", caller, subject, 0);
            }
            catch (Exception e) when (e is InvalidOperationException or System.Data.Common.DbException)
            {
                Interlocked.Increment(ref _failed);
            }
        }
    }
}
