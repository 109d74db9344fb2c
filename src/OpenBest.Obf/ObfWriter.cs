using System.Security.Cryptography;
using System.Threading.Channels;
using OpenBest.Storage;

namespace OpenBest.Obf;

/// <summary>
/// Group commit for the OBF server: bootstrappings and audit entries wait on one bounded queue; one writer takes what is
/// waiting (up to <see cref="MaxBatch"/>), writes it in one transaction, and only then completes the callers. A B-TID is
/// therefore never given to a device, nor a key to an application, before it (and its audit entry) is durable.
/// </summary>
public sealed class ObfWriter : IAsyncDisposable
{
    private readonly IObfStore _store;
    private readonly Channel<Item> _queue = Channel.CreateBounded<Item>(new BoundedChannelOptions(65_536) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
    private readonly Task _loop;
    private long _commits;
    private long _errors;

    /// <summary>Starts the writer over <paramref name="store"/>.</summary>
    public ObfWriter(IObfStore store)
    {
        _store = store;
        _loop = Task.Run(LoopAsync);
    }

    /// <summary>Items written together at most.</summary>
    public int MaxBatch { get; init; } = 256;

    /// <summary>Transactions committed.</summary>
    public long Commits => Interlocked.Read(ref _commits);

    /// <summary>Commits that failed (their callers got the failure).</summary>
    public long Errors => Interlocked.Read(ref _errors);

    /// <summary>Writes a bootstrapping (its Ks is copied; the copy is zeroed once written) with its audit entry; completes once durable.</summary>
    public Task SaveBootstrapAsync(BootstrapRecord record, ReadOnlySpan<byte> ks, ObfAuditRecord audit, CancellationToken cancellationToken = default) =>
        EnqueueAsync(new Item((record, ks.ToArray()), audit), cancellationToken);

    /// <summary>Writes an audit entry; completes once durable.</summary>
    public Task AuditAsync(ObfAuditRecord audit, CancellationToken cancellationToken = default) => EnqueueAsync(new Item(null, audit), cancellationToken);

    /// <summary>Writes what is queued and stops.</summary>
    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _loop.ConfigureAwait(false);
    }

    private async Task EnqueueAsync(Item item, CancellationToken cancellationToken)
    {
        try
        {
            await _queue.Writer.WriteAsync(item, cancellationToken).ConfigureAwait(false);
        }
        catch (ChannelClosedException)
        {
            item.Zero();
            throw new InvalidOperationException("The OBF server is stopping.");
        }

        await item.Done.Task.ConfigureAwait(false);
    }

    private async Task LoopAsync()
    {
        var items = new List<Item>();
        var batch = new ObfBatch();
        while (await _queue.Reader.WaitToReadAsync().ConfigureAwait(false))
        {
            items.Clear();
            batch.Bootstraps.Clear();
            batch.Audit.Clear();
            while (items.Count < MaxBatch && _queue.Reader.TryRead(out var item))
            {
                items.Add(item);
                if (item.Bootstrap is { } bootstrap)
                {
                    batch.Bootstraps.Add(bootstrap);
                }

                batch.Audit.Add(item.Audit);
            }

            Exception? failure = null;
            try
            {
                _store.Commit(batch);
                Interlocked.Increment(ref _commits);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                Interlocked.Increment(ref _errors);
                failure = e;
            }

            foreach (var item in items)
            {
                item.Zero();
                if (failure is null)
                {
                    item.Done.TrySetResult();
                }
                else
                {
                    // The type only: a store's message could name a subscriber.
                    item.Done.TrySetException(new InvalidOperationException($"The OBF store failed ({failure.GetType().Name})."));
                }
            }
        }
    }

    private sealed record Item((BootstrapRecord Record, byte[] Ks)? Bootstrap, ObfAuditRecord Audit)
    {
        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Zero()
        {
            if (Bootstrap is { } b)
            {
                CryptographicOperations.ZeroMemory(b.Ks);
            }
        }
    }
}
