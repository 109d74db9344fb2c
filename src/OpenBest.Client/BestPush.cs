using System.Collections.Concurrent;
using OpenBest.Protocol;
using OpenBest.Sessions;

namespace OpenBest.Client;

/// <summary>Opening a push or management channel failed: the HSE refused it, or nothing answered in time.</summary>
public sealed class BestPushChannelException : Exception
{
    /// <summary>Creates the exception.</summary>
    public BestPushChannelException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public BestPushChannelException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and its cause.</summary>
    public BestPushChannelException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates the exception from what the network answered to the open.</summary>
    public BestPushChannelException(string easId, Cause? rejected, TimeSpan? backOff)
        : base(rejected is { } cause ? $"The HSE refused the channel {easId}: {cause}." : $"The HSE did not answer the open of {easId} in time.")
    {
        Rejected = rejected;
        BackOff = backOff;
    }

    /// <summary>The HSE's cause, or null when nothing answered in time.</summary>
    public Cause? Rejected { get; }

    /// <summary>How long the HSE asked the device to wait before it tries again.</summary>
    public TimeSpan? BackOff { get; }
}

/// <summary>
/// The device's push channel (profile 6.2 "Suspend / Resume / push"): a BEST session naming the reserved EAS Id
/// <see cref="PushMessage.PushEasId"/> (or <see cref="PushMessage.ManagementEasId"/> for a management channel), opened at
/// boot and kept suspended, so that the HSE reaches the device with a network push while it sleeps. Each UP message is a
/// <see cref="PushMessage"/>: malformed ones are dropped and counted, a repeat (the same message id among the last 1024) is
/// dropped, and the others go to the handler registered for their port, one at a time in order of arrival. Port 1 (a
/// BEST session request) goes to <see cref="SessionRequested"/>. The channel never sends user data and never resumes:
/// the engine's Data Ack answers each push, and the session stays suspended at both ends.
/// </summary>
public sealed class BestPushChannel : IAsyncDisposable
{
    /// <summary>How many message ids the channel remembers to drop repeats.</summary>
    public const int RememberedMessageIds = 1024;

    private readonly ConcurrentDictionary<ushort, Func<PushMessage, CancellationToken, Task>> _handlers = new();
    private readonly HashSet<uint> _seen = [];
    private readonly Queue<uint> _seenOrder = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly BestClient _client;
    private Task _dispatch = Task.CompletedTask;
    private long _delivered;
    private long _malformed;
    private long _unhandled;
    private long _duplicates;
    private long _handlerFailures;

    private BestPushChannel(BestClient client, BestChannel channel)
    {
        _client = client;
        Channel = channel;
    }

    /// <summary>The underlying channel (send nothing on it: sending data would resume it).</summary>
    public BestChannel Channel { get; }

    /// <summary>Pushes handed to a handler (or to <see cref="SessionRequested"/>), each once, whether or not the handler failed.</summary>
    public long Delivered => Interlocked.Read(ref _delivered);

    /// <summary>Payloads that were not push messages (or session requests with an invalid body), dropped.</summary>
    public long Malformed => Interlocked.Read(ref _malformed);

    /// <summary>Pushes for a port without a handler (port 1 without <see cref="SessionRequested"/>), dropped.</summary>
    public long Unhandled => Interlocked.Read(ref _unhandled);

    /// <summary>Repeats of a push already seen (by message id), dropped.</summary>
    public long Duplicates => Interlocked.Read(ref _duplicates);

    /// <summary>Handlers that threw; the channel goes on with the next push.</summary>
    public long HandlerFailures => Interlocked.Read(ref _handlerFailures);

    /// <summary>
    /// Called for a BEST session request (port 1) with the EAS Id and the service the enterprise asks for: the device
    /// opens that session itself (<see cref="BestClient.OpenAsync"/>), when it agrees.
    /// </summary>
    public Func<string, BestService, CancellationToken, Task>? SessionRequested { get; set; }

    /// <summary>
    /// Opens the push channel: a BEST session naming <paramref name="easId"/>, suspended right away, and starts dispatching
    /// pushes. The other settings come from <paramref name="template"/> (typically the device's user channel, with its serving
    /// network), always in UE-to-HSE mode: the HSE seals the pushes. Without a template the channel asks for integrity with
    /// the default key agreements; without a serving network only UMTS AKA can then be selected, so a device that knows its
    /// serving network gives a template with it.
    /// </summary>
    /// <exception cref="ArgumentException">The template asks for key agreement only or accepts the no-security service.</exception>
    /// <exception cref="BestPushChannelException">The HSE refused the channel, or did not answer in time.</exception>
    public static async Task<BestPushChannel> OpenAsync(BestClient client, string easId = PushMessage.PushEasId, UeChannelOptions? template = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentException.ThrowIfNullOrEmpty(easId);
        if (template?.Service == BestService.KeyAgreementOnly || template?.Service == BestService.None || template?.MinimumService == BestService.None)
        {
            // Key agreement only has no user plane; on the no-security channel anyone on the path could forge a push or a session request.
            throw new ArgumentException("A push channel needs an authenticated user plane: not key agreement only, not the no-security service.", nameof(template));
        }

        var options = template is null
            ? new UeChannelOptions { EasId = easId, Service = BestService.Integrity }
            : template with { EasId = easId, UeToEasMode = false };
        var opened = await client.OpenAsync(options, ct).ConfigureAwait(false);
        if (opened.Channel is not { } channel)
        {
            throw new BestPushChannelException(easId, opened.Rejected, opened.BackOff);
        }

        await channel.SuspendAsync().ConfigureAwait(false);
        var push = new BestPushChannel(client, channel);
        push._dispatch = Task.Run(push.DispatchAsync, CancellationToken.None);
        return push;
    }

    /// <summary>Registers the handler of a port (replacing any earlier one); it gets the push and a token cancelled at dispose.</summary>
    /// <exception cref="ArgumentException">Port 1 is the session request's: use <see cref="SessionRequested"/>.</exception>
    public void Register(ushort port, Func<PushMessage, CancellationToken, Task> handler)
    {
        ArgumentNullException.ThrowIfNull(handler);
        if (port == PushMessage.SessionRequestPort)
        {
            throw new ArgumentException("Port 1 carries session requests: set SessionRequested.", nameof(port));
        }

        _handlers[port] = handler;
    }

    /// <summary>The handler of every port without one of its own (null: such pushes are counted as <see cref="Unhandled"/> and dropped).</summary>
    public Func<PushMessage, CancellationToken, Task>? Fallback { get; set; }

    /// <summary>Removes the handler of a port: its pushes are counted as <see cref="Unhandled"/> from then on.</summary>
    public bool Unregister(ushort port) => _handlers.TryRemove(port, out _);

    /// <summary>
    /// Whether the channel is suspended at the device (it stays so after pushes; false once it is closed, or when the
    /// application resumed it through <see cref="Channel"/>).
    /// </summary>
    public async Task<bool> IsSuspendedAsync()
    {
        var suspended = false;
        await _client.DoAsync(ue =>
        {
            try
            {
                suspended = ue.IsSuspended(Channel.Handle);
            }
            catch (ArgumentException)
            {
                // The channel is gone (its open was abandoned).
            }

            return new StepResult();
        }).ConfigureAwait(false);
        return suspended;
    }

    /// <summary>Stops dispatching and terminates the channel's session; true when the HSE confirmed.</summary>
    public async Task<bool> CloseAsync(CancellationToken cancellationToken = default)
    {
        await StopAsync().ConfigureAwait(false);
        return await Channel.CloseAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Stops dispatching. The session stays suspended at the HSE (call <see cref="CloseAsync"/> to end it).</summary>
    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        _stop.Dispose();
    }

    private async Task StopAsync()
    {
        if (!_stop.IsCancellationRequested)
        {
            await _stop.CancelAsync().ConfigureAwait(false);
        }

        await _dispatch.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    private async Task DispatchAsync()
    {
        try
        {
            await foreach (var received in Channel.Received.ReadAllAsync(_stop.Token).ConfigureAwait(false))
            {
                await DispatchAsync(received).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task DispatchAsync(BestMessage received)
    {
        if (!PushMessage.TryParse(received.Payload.Span, out var push))
        {
            Interlocked.Increment(ref _malformed);
            return;
        }

        if (!Remember(push.MessageId))
        {
            Interlocked.Increment(ref _duplicates); // sent again after a resume: the device already had it
            return;
        }

        Task? handled;
        if (push.Port == PushMessage.SessionRequestPort)
        {
            if (!push.TryGetSessionRequest(out var service, out var easId))
            {
                Interlocked.Increment(ref _malformed);
                return;
            }

            handled = SessionRequested is { } requested ? Invoke(() => requested(easId, service, _stop.Token)) : null;
        }
        else
        {
            handled = _handlers.TryGetValue(push.Port, out var handler) ? Invoke(() => handler(push, _stop.Token))
                : Fallback is { } fallback ? Invoke(() => fallback(push, _stop.Token)) : null;
        }

        if (handled is null)
        {
            Interlocked.Increment(ref _unhandled);
            return;
        }

        Interlocked.Increment(ref _delivered);
        try
        {
            await handled.ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // An application's handler failing must not stop the channel: counted, and the next push goes on.
            if (!_stop.IsCancellationRequested)
            {
                Interlocked.Increment(ref _handlerFailures);
            }
        }
    }

    /// <summary>Starts a handler; one that throws before its first await becomes a faulted task.</summary>
    private static Task Invoke(Func<Task> handler)
    {
        try
        {
            return handler() ?? Task.CompletedTask;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return Task.FromException(e);
        }
    }

    /// <summary>Remembers a message id (the last 1024); false when it was already there.</summary>
    private bool Remember(uint messageId)
    {
        if (!_seen.Add(messageId))
        {
            return false;
        }

        _seenOrder.Enqueue(messageId);
        if (_seenOrder.Count > RememberedMessageIds)
        {
            _seen.Remove(_seenOrder.Dequeue());
        }

        return true;
    }
}
