using System.Threading.Channels;
using OpenBest.Bearers;
using OpenBest.Sessions;

namespace OpenBest.Hse;

/// <summary>
/// Runs an <see cref="HseEngine"/> over bearers: every received message, timer tick and application call is
/// a work item on one bounded queue that a single executor drains, so the engine has one owner at a time.
/// When the queue is full, received messages are dropped and counted before any crypto runs.
/// </summary>
public sealed class HseHost : IAsyncDisposable
{
    private readonly HseEngine _engine;
    private readonly IReadOnlyList<IBearer> _bearers;
    private readonly TimeSpan _tick;
    private readonly Channel<WorkItem> _work;
    private readonly Channel<SessionEvent> _events = Channel.CreateUnbounded<SessionEvent>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _tasks = [];
    private long _received;
    private long _sent;
    private long _overloaded;
    private long _errors;

    /// <summary>Creates a host; call <see cref="Start"/> to run it.</summary>
    /// <param name="engine">The engine; the host owns it from now on.</param>
    /// <param name="bearers">The listeners.</param>
    /// <param name="tick">How often timers run (1 s).</param>
    /// <param name="queue">Work items queued at most (admission control; 65 536).</param>
    public HseHost(HseEngine engine, IReadOnlyList<IBearer> bearers, TimeSpan? tick = null, int queue = 65_536)
    {
        _engine = engine;
        _bearers = bearers;
        _tick = tick ?? TimeSpan.FromSeconds(1);
        _work = Channel.CreateBounded<WorkItem>(new BoundedChannelOptions(queue) { SingleReader = true, FullMode = BoundedChannelFullMode.DropWrite },
            dropped =>
            {
                Interlocked.Increment(ref _overloaded);
                dropped.Done?.TrySetException(new InvalidOperationException("The HSE is overloaded: the work queue is full."));
            });
    }

    /// <summary>Session events, for the application (northbound delivery, EAS interface, metrics).</summary>
    public ChannelReader<SessionEvent> Events => _events.Reader;

    /// <summary>Messages received from all bearers.</summary>
    public long Received => Interlocked.Read(ref _received);

    /// <summary>Messages sent.</summary>
    public long Sent => Interlocked.Read(ref _sent);

    /// <summary>Messages refused because the work queue was full.</summary>
    public long Overloaded => Interlocked.Read(ref _overloaded);

    /// <summary>Work items or sends that failed (storage unavailable, a socket error); the host goes on.</summary>
    public long Errors => Interlocked.Read(ref _errors);

    /// <summary>The type of the last failure (never its message, which could name a subscriber), or null.</summary>
    public string? LastError { get; private set; }

    /// <summary>Starts the executor, the bearer readers and the timer.</summary>
    public void Start()
    {
        _tasks.Add(Task.Run(ExecutorAsync));
        foreach (var bearer in _bearers)
        {
            _tasks.Add(Task.Run(() => ReadAsync(bearer)));
        }

        _tasks.Add(Task.Run(TimerAsync));
    }

    /// <summary>Runs an application call (e.g. <see cref="HseEngine.SendDownlink"/>) on the executor.</summary>
    public Task<StepResult> InvokeAsync(Func<HseEngine, StepResult> call)
    {
        var done = new TaskCompletionSource<StepResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        var item = new WorkItem(
            engine =>
            {
                try
                {
                    var result = call(engine);
                    done.TrySetResult(result);
                    return result;
                }
                catch (Exception e)
                {
                    done.TrySetException(e);
                    return new StepResult();
                }
            },
            done);
        if (!_work.Writer.TryWrite(item))
        {
            done.TrySetException(new InvalidOperationException("The HSE is stopping."));
        }

        return done.Task;
    }

    /// <summary>Stops the host and disposes the engine (zeroing its keys).</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _work.Writer.TryComplete();
        try
        {
            await Task.WhenAll(_tasks).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
        {
        }
        finally
        {
            _events.Writer.TryComplete();
            _engine.Dispose();
            _stop.Dispose();
        }
    }

    private sealed record WorkItem(Func<HseEngine, StepResult> Run, TaskCompletionSource<StepResult>? Done);

    private void Failed(Exception e)
    {
        Interlocked.Increment(ref _errors);
        LastError = e.GetType().Name;
    }

    private async Task ReadAsync(IBearer bearer)
    {
        try
        {
            await foreach (var received in bearer.Received.ReadAllAsync(_stop.Token).ConfigureAwait(false))
            {
                Interlocked.Increment(ref _received);
                var message = received.Message;
                var path = received.Path;
                _work.Writer.TryWrite(new WorkItem(engine => engine.Receive(message.Span, path), null));
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task TimerAsync()
    {
        using var timer = new PeriodicTimer(_tick);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
            {
                _work.Writer.TryWrite(new WorkItem(engine => engine.Tick(), null));
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task ExecutorAsync()
    {
        try
        {
            await foreach (var item in _work.Reader.ReadAllAsync(_stop.Token).ConfigureAwait(false))
            {
                StepResult step;
                try
                {
                    step = item.Run(_engine);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // One failing item (storage down, a row sealed under another key) must not stop the HSE.
                    Failed(e);
                    continue;
                }

                foreach (var e in step.Events)
                {
                    _events.Writer.TryWrite(e);
                }

                foreach (var send in step.Send)
                {
                    if (send.Path is not BearerPath path)
                    {
                        continue;
                    }

                    try
                    {
                        // Bearers never block here: UDP sends a datagram, TCP queues to the connection's writer.
                        await path.SendAsync(send.Message, _stop.Token).ConfigureAwait(false);
                        Interlocked.Increment(ref _sent);
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        Failed(e);
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
