using System.Collections.Concurrent;
using System.Net;
using System.Threading.Channels;
using OpenBest.Bearers;
using OpenBest.Crypto;
using OpenBest.Crypto.Aka;
using OpenBest.Protocol;
using OpenBest.Sessions;

namespace OpenBest.Client;

/// <summary>How the device reaches its HSE.</summary>
public abstract record BestTransport
{
    private BestTransport()
    {
    }

    /// <summary>UDP to the HSE (port 3163 by default): one datagram per message.</summary>
    public sealed record Udp(IPEndPoint Hse) : BestTransport;

    /// <summary>TCP to the HSE, with the 2-octet length framing.</summary>
    public sealed record Tcp(IPEndPoint Hse) : BestTransport;

    /// <summary>A non-IP byte stream (a serial modem, a pipe), with the 2-octet length framing. The streams stay the caller's.</summary>
    public sealed record NonIp(System.IO.Stream Input, System.IO.Stream Output) : BestTransport;
}

/// <summary>The device's settings: its USIM (a card, or a software USIM from K and OPc) and how it reaches the HSE. Immutable.</summary>
public sealed record BestClientOptions
{
    /// <summary>The IMSI the device identifies with.</summary>
    public required string Imsi { get; init; }

    /// <summary>The software USIM's K (16 octets); unused when <see cref="Card"/> is set.</summary>
    public ReadOnlyMemory<byte> K { get; init; }

    /// <summary>The software USIM's OPc (16 octets); unused when <see cref="Card"/> is set.</summary>
    public ReadOnlyMemory<byte> Opc { get; init; }

    /// <summary>
    /// A USIM on a card (PC/SC, AT+CSIM) that runs AUTHENTICATE itself; it keeps its own SQN state, so
    /// <see cref="UsimStateFile"/> is unused. Null: a software USIM from <see cref="K"/> and <see cref="Opc"/>.
    /// The card stays the caller's.
    /// </summary>
    public IUsim? Card { get; init; }

    /// <summary>How to reach the HSE.</summary>
    public required BestTransport Transport { get; init; }

    /// <summary>A file that keeps the USIM's SQN state between runs (null: in memory only, for tests and simulators).</summary>
    public string? UsimStateFile { get; init; }

    /// <summary>First retransmission interval of a request or an acknowledged message; it doubles each time (2 s).</summary>
    public TimeSpan RetransmissionInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Retransmissions before the channel resynchronises with a new session (4).</summary>
    public int MaxRetransmissions { get; init; } = 4;

    /// <summary>How often timers run (250 ms).</summary>
    public TimeSpan TickInterval { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Refresh each channel's keys after this time (device-triggered refresh), or null to leave it to the HSE.</summary>
    public TimeSpan? RefreshKeysEvery { get; init; }

    /// <summary>How long <see cref="BestClient.OpenAsync"/> and acknowledged sends wait at most (60 s).</summary>
    public TimeSpan OperationTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Never shows K or OPc.</summary>
    public override string ToString() => $"BestClientOptions({Imsi}, {Transport.GetType().Name})";
}

/// <summary>What the network answered to opening a channel.</summary>
/// <param name="Channel">The channel, when established.</param>
/// <param name="Rejected">The cause, when the HSE (or the USIM's checks) refused; null when established or timed out.</param>
/// <param name="BackOff">How long the HSE asked the device to wait before trying again.</param>
public sealed record OpenResult(BestChannel? Channel, Cause? Rejected, TimeSpan? BackOff)
{
    /// <summary>Whether the channel is up.</summary>
    public bool Established => Channel is not null;
}

/// <summary>What became of a payload sent.</summary>
public enum SendStatus
{
    /// <summary>Sent without asking for an Ack.</summary>
    Sent,

    /// <summary>The peer acknowledged it (after storing it).</summary>
    Acknowledged,

    /// <summary>
    /// No Ack within the operation timeout; the channel goes on retransmitting and, if need be, resends it in a new session.
    /// A message that was still waiting for a key set with an Enterprise Key is given up instead, and never sent.
    /// </summary>
    NotAcknowledged,

    /// <summary>
    /// UE-to-EAS mode, sent without asking for an Ack: not sent yet, it waits for a key set with the Enterprise Key
    /// (<see cref="UeOptions.MaxHoldTime"/> at most; see <see cref="UeChannelOptions.RequiresEnterpriseKey"/>).
    /// </summary>
    Held,
}

/// <summary>A payload received on a channel.</summary>
public sealed record BestMessage(uint SessionId, ReadOnlyMemory<byte> Payload, bool AckRequested);

/// <summary>
/// The BEST device SDK: one software USIM and one bearer to the HSE, carrying several channels, each with its own
/// EAS, service and keys (profile 6.2). Send (optionally acknowledged: retransmitted with back-off, and resent in
/// a new session after the retries), receive, suspend, resume, refresh. Usable without a host; thread-safe.
/// Misuse (a closed channel, a payload too large) throws; what the network answered comes back as results.
/// </summary>
public sealed class BestClient : IAsyncDisposable
{
    private readonly BestClientOptions _options;
    private readonly Milenage? _milenage;
    private readonly UeEndpoint _ue;
    private readonly IBearer _bearer;
    private readonly BearerPath _hse;
    private readonly object _gate = new();
    private readonly ConcurrentDictionary<int, BestChannel> _channels = new();
    private readonly ConcurrentDictionary<long, TaskCompletionSource<SendStatus>> _acks = new();
    private readonly SemaphoreSlim _opening = new(1, 1);
    private readonly SemaphoreSlim _sendOrder = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _reader;
    private readonly Task _ticker;
    private TaskCompletionSource<SessionEvent>? _openWaiter;
    private int _openingHandle;
    private long _nextToken;
    private long _sentOctets;
    private long _receivedOctets;
    private long _sentMessages;
    private long _receivedMessages;
    private long _errors;

    private BestClient(BestClientOptions options, IBearer bearer, BearerPath hse)
    {
        _options = options;
        _bearer = bearer;
        _hse = hse;
        IUsim usim;
        if (options.Card is { } card)
        {
            usim = card;
        }
        else
        {
            _milenage = new Milenage(options.K.Span, options.Opc.Span);
            usim = new Usim(_milenage, UsimStateFile.Load(options.UsimStateFile)) { CommitState = s => UsimStateFile.Save(options.UsimStateFile, s) };
        }

        _ue = new UeEndpoint(usim, new UeOptions { Imsi = options.Imsi, RetransmissionInterval = options.RetransmissionInterval, MaxRetransmissions = options.MaxRetransmissions });
        _reader = Task.Run(ReadAsync);
        _ticker = Task.Run(TickAsync);
    }

    /// <summary>Background operations that failed and were skipped (a USIM state file that could not be written).</summary>
    public long Errors => Interlocked.Read(ref _errors);

    /// <summary>Octets of EMSDP messages sent.</summary>
    public long SentOctets => Interlocked.Read(ref _sentOctets);

    /// <summary>Octets of EMSDP messages received.</summary>
    public long ReceivedOctets => Interlocked.Read(ref _receivedOctets);

    /// <summary>EMSDP messages sent (each one datagram on UDP).</summary>
    public long SentMessages => Interlocked.Read(ref _sentMessages);

    /// <summary>EMSDP messages received.</summary>
    public long ReceivedMessages => Interlocked.Read(ref _receivedMessages);

    /// <summary>Messages the device dropped (tags, replays, malformed), by reason.</summary>
    public IReadOnlyDictionary<DropReason, long> Dropped
    {
        get
        {
            lock (_gate)
            {
                return new Dictionary<DropReason, long>(_ue.Dropped);
            }
        }
    }

    /// <summary>Creates a client: binds or connects its bearer. Nothing is sent until a channel opens.</summary>
    /// <exception cref="ArgumentException">Without a card, K or OPc is not 16 octets; or the IMSI is not 6..15 digits.</exception>
    public static async Task<BestClient> CreateAsync(BestClientOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Card is null && (options.K.Length != 16 || options.Opc.Length != 16))
        {
            throw new ArgumentException("K and OPc are 16 octets each (or give a card).", nameof(options));
        }

        if (options.Imsi is not { Length: >= 6 and <= 15 } || !options.Imsi.All(char.IsAsciiDigit))
        {
            throw new ArgumentException("The IMSI is 6..15 decimal digits.", nameof(options));
        }

        switch (options.Transport)
        {
            case BestTransport.Udp udp:
                var bearer = UdpBearer.Bind(new IPEndPoint(udp.Hse.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0));
                if (IPAddress.IsLoopback(udp.Hse.Address))
                {
                    await bearer.DisposeAsync().ConfigureAwait(false);
                    bearer = UdpBearer.Bind(new IPEndPoint(udp.Hse.Address, 0));
                }

                return new BestClient(options, bearer, bearer.PathTo(udp.Hse));
            case BestTransport.Tcp tcp:
                var connection = await TcpBearer.ConnectAsync(tcp.Hse, cancellationToken).ConfigureAwait(false);
                return new BestClient(options, connection, connection.ServerPath!);
            case BestTransport.NonIp stream:
                var link = StreamBearer.Over(stream.Input, stream.Output, "non-IP");
                return new BestClient(options, link, link.Path);
            default:
                throw new ArgumentException("Unknown transport.", nameof(options));
        }
    }

    /// <summary>
    /// Opens a channel: one round trip of AKA with the HSE (retransmitted with back-off). Returns the channel, or
    /// the HSE's refusal with its cause and back-off, or neither when nothing answered within the timeout.
    /// </summary>
    public async Task<OpenResult> OpenAsync(UeChannelOptions channel, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(channel);
        ObjectDisposedException.ThrowIf(_stop.IsCancellationRequested, this);
        await _opening.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var waiter = new TaskCompletionSource<SessionEvent>(TaskCreationOptions.RunContinuationsAsynchronously);
            var handle = 0;
            await StepAsync(() =>
            {
                var step = _ue.Open(channel, out handle);
                _openingHandle = handle;
                _openWaiter = waiter;
                _channels[handle] = new BestChannel(this, handle, channel);
                return step;
            }).ConfigureAwait(false);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stop.Token);
            timeout.CancelAfter(_options.OperationTimeout);
            SessionEvent outcome;
            try
            {
                outcome = await waiter.Task.WaitAsync(timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Nothing answered: the channel is abandoned, so its late retries can never be taken for the next open's.
                Abandon(handle);
                if (cancellationToken.IsCancellationRequested)
                {
                    throw;
                }

                return new OpenResult(null, null, null);
            }

            if (outcome is SessionRejected rejected)
            {
                Abandon(handle);
                return new OpenResult(null, rejected.Cause, rejected.BackOff);
            }

            var established = (SessionEstablished)outcome;
            var opened = _channels[handle];
            opened.OnEstablished(established);
            return new OpenResult(opened, null, null);
        }
        finally
        {
            lock (_gate)
            {
                _openWaiter = null;
                _openingHandle = 0;
            }

            _opening.Release();
        }
    }

    /// <summary>Closes every channel's bearer and zeroes the keys (channels are not terminated: call <see cref="BestChannel.CloseAsync"/> first).</summary>
    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested)
        {
            return;
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        await _bearer.DisposeAsync().ConfigureAwait(false);
        await Task.WhenAll(_reader, _ticker).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        foreach (var waiter in _acks.Values)
        {
            waiter.TrySetResult(SendStatus.NotAcknowledged);
        }

        foreach (var channel in _channels.Values)
        {
            channel.Complete();
        }

        lock (_gate)
        {
            _ue.Dispose();
            _milenage?.Dispose();
        }

        _stop.Dispose();
        _opening.Dispose();
    }

    internal TimeSpan OperationTimeout => _options.OperationTimeout;

    internal bool TryGetPsk(int handle, Span<byte> psk, out uint keyIdentifier)
    {
        lock (_gate)
        {
            return _ue.TryGetEasPsk(handle, psk, out keyIdentifier);
        }
    }

    internal byte[]? EnterpriseKeyIdentifierOf(int handle)
    {
        lock (_gate)
        {
            return _ue.EnterpriseKeyIdentifierOf(handle);
        }
    }

    internal void CancelHeld(int handle, long token)
    {
        lock (_gate)
        {
            _ue.CancelHeld(handle, token);
        }
    }

    internal bool IsEstablished(int handle)
    {
        lock (_gate)
        {
            try
            {
                return _ue.IsEstablished(handle);
            }
            catch (ArgumentException)
            {
                return false;
            }
        }
    }

    private void Abandon(int handle)
    {
        _channels.TryRemove(handle, out _);
        lock (_gate)
        {
            _ue.Abandon(handle);
        }
    }

    internal long NextToken() => Interlocked.Increment(ref _nextToken);

    internal TaskCompletionSource<SendStatus> ExpectAck(long token)
    {
        var waiter = new TaskCompletionSource<SendStatus>(TaskCreationOptions.RunContinuationsAsynchronously);
        _acks[token] = waiter;
        return waiter;
    }

    internal void ForgetAck(long token) => _acks.TryRemove(token, out _);

    internal uint SessionIdOf(int handle)
    {
        lock (_gate)
        {
            return _ue.SessionIdOf(handle);
        }
    }

    /// <summary>Runs an operation on the UE state machine and sends what it produced.</summary>
    internal Task<StepResult> DoAsync(Func<UeEndpoint, StepResult> operation)
    {
        ObjectDisposedException.ThrowIf(_stop.IsCancellationRequested, this);
        return StepAsync(() => operation(_ue));
    }

    /// <summary>
    /// Runs one step of the state machine (under its lock) and sends its messages, steps one after another, so messages
    /// leave in the order the state machine made them; only then are its events dispatched. A caller woken by an event
    /// (a session established) can never get a message of its own (a Terminate) out before the step's own (the Session Start
    /// Confirmation that key agreement only needs).
    /// </summary>
    private async Task<StepResult> StepAsync(Func<StepResult> operation)
    {
        StepResult step;
        await _sendOrder.WaitAsync().ConfigureAwait(false);
        try
        {
            lock (_gate)
            {
                step = operation();
            }

            await SendAllAsync(step).ConfigureAwait(false);
        }
        finally
        {
            _sendOrder.Release();
        }

        foreach (var e in step.Events)
        {
            Dispatch(e);
        }

        return step;
    }

    private async Task SendAllAsync(StepResult step)
    {
        foreach (var send in step.Send)
        {
            Interlocked.Add(ref _sentOctets, send.Message.Length);
            Interlocked.Increment(ref _sentMessages);
            try
            {
                await _hse.SendAsync(send.Message, _stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is System.Net.Sockets.SocketException or IOException or ObjectDisposedException or OperationCanceledException)
            {
                // A lost message is what retransmission is for.
            }
        }
    }

    private void Dispatch(SessionEvent e)
    {
        if (e is DataAcknowledged acked && acked.Token != 0 && _acks.TryRemove(acked.Token, out var waiter))
        {
            waiter.TrySetResult(SendStatus.Acknowledged);
        }
        else if (e is HeldDataDropped dropped && dropped.Token != 0 && _acks.TryRemove(dropped.Token, out var given))
        {
            given.TrySetResult(SendStatus.NotAcknowledged); // it waited too long for its Enterprise Key: never sent
        }

        TaskCompletionSource<SessionEvent>? opening;
        int openingHandle;
        lock (_gate)
        {
            opening = _openWaiter;
            openingHandle = _openingHandle;
        }

        if (opening is not null && (e is SessionEstablished || (e is SessionRejected && e.SessionId == 0)) && (e.SessionId == 0 || SessionIdOf(openingHandle) == e.SessionId))
        {
            opening.TrySetResult(e);
        }

        foreach (var channel in _channels.Values)
        {
            if (e.SessionId != 0 && (channel.SessionId == e.SessionId || SessionIdOf(channel.Handle) == e.SessionId))
            {
                channel.OnEvent(e);
                return;
            }
        }
    }

    private async Task ReadAsync()
    {
        try
        {
            await foreach (var received in _bearer.Received.ReadAllAsync(_stop.Token).ConfigureAwait(false))
            {
                Interlocked.Add(ref _receivedOctets, received.Message.Length);
                Interlocked.Increment(ref _receivedMessages);
                var message = received.Message;
                try
                {
                    await DoAsync(ue => ue.Receive(message.Span)).ConfigureAwait(false);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
                {
                    // The USIM state could not be saved (the message is dropped before its keys are used), or the
                    // message did not fit a channel's state: the reader goes on.
                    Interlocked.Increment(ref _errors);
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    private async Task TickAsync()
    {
        using var timer = new PeriodicTimer(_options.TickInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
            {
                try
                {
                    await DoAsync(ue => ue.Tick()).ConfigureAwait(false);
                    if (_options.RefreshKeysEvery is { } every)
                    {
                        foreach (var channel in _channels.Values.Where(c => IsEstablished(c.Handle)))
                        {
                            await channel.RefreshIfDueAsync(every).ConfigureAwait(false);
                        }
                    }
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException or ArgumentException)
                {
                    // One failing timer (a USIM state file that cannot be written) must not stop retransmission.
                    Interlocked.Increment(ref _errors);
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
        {
        }
    }
}

/// <summary>
/// One secure channel of a <see cref="BestClient"/>: its own EAS, service and keys. Its Session ID changes if it
/// resynchronises (a new session after an Ack never came).
/// </summary>
public sealed class BestChannel
{
    private readonly BestClient _client;
    private readonly Channel<BestMessage> _received = Channel.CreateBounded<BestMessage>(new BoundedChannelOptions(1024) { FullMode = BoundedChannelFullMode.DropOldest });
    private TaskCompletionSource<bool>? _refreshed;
    private TaskCompletionSource<bool>? _terminated;
    private DateTimeOffset _keysSince = DateTimeOffset.UtcNow;

    internal BestChannel(BestClient client, int handle, UeChannelOptions options)
    {
        _client = client;
        Handle = handle;
        Options = options;
    }

    /// <summary>What the channel was opened with.</summary>
    public UeChannelOptions Options { get; }

    /// <summary>The current Session ID.</summary>
    public uint SessionId { get; private set; }

    /// <summary>The service the HSE selected.</summary>
    public BestService Service { get; private set; }

    /// <summary>The cipher suite the HSE selected.</summary>
    public Crypto.Aead.CipherSuite? Suite { get; private set; }

    /// <summary>Whether the channel was terminated (by either end).</summary>
    public bool IsClosed { get; private set; }

    /// <summary>Times the channel resynchronised with a new session.</summary>
    public int Resynchronisations { get; private set; }

    /// <summary>Payloads received (downlink), in order of arrival.</summary>
    public ChannelReader<BestMessage> Received => _received.Reader;

    /// <summary>
    /// The converter: a byte stream to the TLS service this channel names (the HSE's <c>--tls-service</c>), carried in this
    /// channel's user-plane messages. The channel carries this one stream; dispose it before closing the channel.
    /// </summary>
    /// <param name="receiveBuffer">The octets the device buffers from the service (the window it advertises).</param>
    public BestStream OpenStream(int receiveBuffer = 64 * 1024) => new(this, receiveBuffer);

    internal TimeSpan OperationTimeout => _client.OperationTimeout;

    internal int Handle { get; }

    /// <summary>
    /// Sends a payload. Acknowledged: waits for the Data Ack (the message is retransmitted with back-off meanwhile,
    /// and after the retries resent in a new session) up to the client's operation timeout. The no-security channel
    /// (service none) has no Data Ack: there a send is always <see cref="SendStatus.Sent"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">The channel is closed, or carries no user plane (key agreement only).</exception>
    /// <exception cref="ArgumentException">The payload does not fit one message.</exception>
    public async Task<SendStatus> SendAsync(ReadOnlyMemory<byte> payload, bool acknowledged = false, CancellationToken cancellationToken = default)
    {
        if (IsClosed)
        {
            throw new InvalidOperationException($"Channel {SessionId} is closed.");
        }

        if (payload.Length > EmsdpProtection.MaxMessageLength - 32)
        {
            throw new ArgumentException($"A payload has at most {EmsdpProtection.MaxMessageLength - 32} octets, not {payload.Length}.", nameof(payload));
        }

        if (!acknowledged || Service == BestService.None)
        {
            var held = false;
            await _client.DoAsync(ue =>
            {
                var step = ue.Send(Handle, payload.Span);
                held = ue.IsHoldingData(Handle);
                return step;
            }).ConfigureAwait(false);
            return held ? SendStatus.Held : SendStatus.Sent;
        }

        var token = _client.NextToken();
        var waiter = _client.ExpectAck(token);
        try
        {
            await _client.DoAsync(ue => ue.Send(Handle, payload.Span, ackRequested: true, token)).ConfigureAwait(false);
            return await waiter.Task.WaitAsync(_client.OperationTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // A message still waiting for its Enterprise Key is given up: the caller was told it failed, so it never goes later.
            _client.CancelHeld(Handle, token);
            return SendStatus.NotAcknowledged;
        }
        catch (OperationCanceledException)
        {
            _client.CancelHeld(Handle, token);
            throw;
        }
        finally
        {
            _client.ForgetAck(token);
        }
    }

    /// <summary>
    /// The channel's K_EAS_PSK and its EAS key identifier (key agreement only, or UE-to-EAS mode): the key for an
    /// application protocol such as DTLS-PSK with the EAS, under <see cref="PskIdentity"/>. False when there is none.
    /// </summary>
    public bool TryGetPsk(Span<byte> psk, out uint keyIdentifier) => _client.TryGetPsk(Handle, psk, out keyIdentifier);

    /// <summary>
    /// The PSK of one endpoint of the enterprise (EMSE Id): K_EMSE_PSK = KDF(K_EAS_PSK, "EMSE-PSK", endpoint), so each endpoint
    /// has its own key from the same AKA run; the EAS key identifier is the channel's. False when there is no K_EAS_PSK.
    /// </summary>
    public bool TryGetPsk(string endpointId, Span<byte> psk, out uint keyIdentifier)
    {
        ArgumentException.ThrowIfNullOrEmpty(endpointId);
        Span<byte> easPsk = stackalloc byte[32];
        try
        {
            if (!_client.TryGetPsk(Handle, easPsk, out keyIdentifier))
            {
                return false;
            }

            OpenBest.Crypto.Kdf.BestKeys.KEndpointPsk(easPsk, endpointId, psk);
            return true;
        }
        finally
        {
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(easPsk);
        }
    }

    /// <summary>
    /// UE-to-EAS mode: the Enterprise Key Identifier the HSE named for the current key set (TLV 0x0E), as the EAS chose; null
    /// when it named none (the channel's unnamed <see cref="UeChannelOptions.EnterpriseKey"/>, if any, is in use).
    /// </summary>
    public byte[]? EnterpriseKeyIdentifier => _client.EnterpriseKeyIdentifierOf(Handle);

    /// <summary>The PSK identity of profile section 5: <c>&lt;external id&gt;#&lt;key identifier as 8 lowercase hex digits&gt;</c>.</summary>
    public static string PskIdentity(string externalId, uint keyIdentifier) => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{externalId}#{keyIdentifier:x8}");

    /// <summary>Suspends the channel: the HSE queues downlink until it resumes.</summary>
    public Task SuspendAsync() => _client.DoAsync(ue => ue.Suspend(Handle));

    /// <summary>Resumes the channel: the HSE delivers what it queued.</summary>
    public Task ResumeAsync() => _client.DoAsync(ue => ue.Resume(Handle));

    /// <summary>Refreshes the keys (device-triggered: a new AKA run); true when the new keys are in use.</summary>
    public async Task<bool> RefreshKeysAsync(CancellationToken cancellationToken = default)
    {
        var waiter = _refreshed = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        await _client.DoAsync(ue => ue.RequestKeyRefresh(Handle)).ConfigureAwait(false);
        try
        {
            return await waiter.Task.WaitAsync(_client.OperationTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    /// <summary>Terminates the channel's session; true when the HSE confirmed.</summary>
    public async Task<bool> CloseAsync(CancellationToken cancellationToken = default)
    {
        if (IsClosed)
        {
            return true;
        }

        var waiter = _terminated = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        await _client.DoAsync(ue => ue.Terminate(Handle)).ConfigureAwait(false);
        try
        {
            return await waiter.Task.WaitAsync(_client.OperationTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    internal void OnEstablished(SessionEstablished established)
    {
        SessionId = established.SessionId;
        Service = established.Service;
        Suite = established.Service == BestService.None ? null : established.Suite; // the no-security channel has no suite
        _keysSince = DateTimeOffset.UtcNow;
    }

    internal void OnEvent(SessionEvent e)
    {
        switch (e)
        {
            case SessionEstablished established when established.SessionId != SessionId:
                Resynchronisations += SessionId == 0 ? 0 : 1;
                OnEstablished(established);
                break;
            case DataReceived data:
                _received.Writer.TryWrite(new BestMessage(data.SessionId, data.Payload, data.AckRequested));
                break;
            case KeysRefreshed:
                _keysSince = DateTimeOffset.UtcNow;
                _refreshed?.TrySetResult(true);
                break;
            case SessionTerminated:
                IsClosed = true;
                _terminated?.TrySetResult(true);
                _received.Writer.TryComplete();
                break;
        }
    }

    internal async Task RefreshIfDueAsync(TimeSpan every)
    {
        if (!IsClosed && SessionId != 0 && DateTimeOffset.UtcNow - _keysSince >= every)
        {
            _keysSince = DateTimeOffset.UtcNow;
            await _client.DoAsync(ue => ue.RequestKeyRefresh(Handle)).ConfigureAwait(false);
        }
    }

    internal void Complete() => _received.Writer.TryComplete();
}
