using System.Collections.Concurrent;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using OpenBest.Protocol;
using OpenBest.Sessions;

namespace OpenBest.Hse;

/// <summary>
/// The HSE as a TLS converter (seed 000 section 2): a device's channel that names a TLS service (its EAS Id) becomes one
/// TLS connection from the HSE to that unchanged server — TLS 1.2 or 1.3, the certificate checked against the service's CA
/// (or the system's) and its host name, SNI sent — and a byte stream relayed over the channel's user plane
/// (<see cref="StreamEndpoint"/> frames: ordered, acknowledged, flow-controlled, finished cleanly each way). What the device
/// sends is protected by BEST up to the HSE and by TLS beyond it. A server that cannot be reached or verified resets the
/// device's stream with cause "unreachable". The stream's messages are not stored as uplink.
/// </summary>
public sealed partial class TlsConverter : IAsyncDisposable
{
    private readonly IHseSessions _hse;
    private readonly IReadOnlyDictionary<string, TlsService> _services;
    private readonly ILogger _log;
    private readonly ConcurrentDictionary<uint, Conversion> _conversions = new();
    private readonly Dictionary<string, X509Certificate2Collection> _anchors = new(StringComparer.Ordinal);
    private long _opened;
    private long _failed;

    /// <summary>Relays the sessions of <paramref name="host"/> that name one of <paramref name="services"/>.</summary>
    public TlsConverter(HseHost host, IReadOnlyDictionary<string, TlsService> services, ILogger? log = null)
        : this(IHseSessions.ForHost(host ?? throw new ArgumentNullException(nameof(host))), services, log)
    {
    }

    /// <summary>Relays the sessions (one host's, or a cluster's shards') that name one of <paramref name="services"/>.</summary>
    public TlsConverter(IHseSessions hse, IReadOnlyDictionary<string, TlsService> services, ILogger? log = null)
    {
        ArgumentNullException.ThrowIfNull(hse);
        ArgumentNullException.ThrowIfNull(services);
        _hse = hse;
        _services = services;
        _log = log ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        foreach (var service in services.Values.Where(s => s.CaFile is not null))
        {
            var anchors = new X509Certificate2Collection();
            anchors.ImportFromPemFile(service.CaFile!);
            _anchors[service.Id] = anchors;
        }
    }

    /// <summary>TLS connections opened to services.</summary>
    public long Opened => Interlocked.Read(ref _opened);

    /// <summary>Conversions that failed (server unreachable or not verified, or a side broke off).</summary>
    public long Failed => Interlocked.Read(ref _failed);

    /// <summary>Conversions running now.</summary>
    public int Active => _conversions.Count;

    /// <summary>
    /// On a cluster: asks the shard of a session to send that session's events (its stream's frames, its end) to this node,
    /// for a conversion this node runs of a session whose shard may run elsewhere (an inbound connection accepted here).
    /// Null for one HSE, whose events all arrive here.
    /// </summary>
    public Func<uint, Task>? Follow { get; init; }

    /// <summary>The HSE's sessions.</summary>
    internal IHseSessions Sessions => _hse;

    /// <summary>Takes the HSE's session events: a session naming a service starts a conversion; its messages feed it; its end ends it.</summary>
    public void OnEvent(SessionEvent e)
    {
        switch (e)
        {
            case SessionEstablished s when _services.TryGetValue(s.EasId, out var service) && !s.UeToEasMode && s.Service is BestService.Confidential or BestService.Integrity:
                var conversion = new Conversion(this, s.SessionId, service.Id, token => ConnectAsync(service, s.SessionId, token));
                if (_conversions.TryAdd(s.SessionId, conversion))
                {
                    conversion.Start();
                }

                break;
            case DataReceived or SessionTerminated:
                OnSessionEvent(e, followed: false);
                break;
        }
    }

    /// <summary>A session's event that its shard sent to this node (<see cref="Follow"/>): a conversion of a session that runs elsewhere.</summary>
    public void OnFollowedEvent(SessionEvent e) => OnSessionEvent(e, followed: true);

    /// <summary>
    /// Ends the conversions whose sessions are gone without an event this node saw (a cluster's shard that moved: sessions of
    /// TLS services are not stored, so they do not move with it); returns how many.
    /// </summary>
    public async Task<int> SweepAsync()
    {
        var ended = 0;
        foreach (var (id, conversion) in _conversions)
        {
            if (await _hse.DescribeAsync(id).ConfigureAwait(false) is null && _conversions.TryRemove(new KeyValuePair<uint, Conversion>(id, conversion)))
            {
                await conversion.DisposeAsync().ConfigureAwait(false);
                ended++;
            }
        }

        return ended;
    }

    private void OnSessionEvent(SessionEvent e, bool followed)
    {
        // A conversion takes its session's events from one place: its shard (followed) when it was made for a session that
        // may run elsewhere, else this node's own events. A node that is both sees each event once.
        switch (e)
        {
            case DataReceived data when _conversions.TryGetValue(data.SessionId, out var running) && running.Followed == followed:
                running.OnFrame(data.Payload);
                break;
            case SessionTerminated t when _conversions.TryGetValue(t.SessionId, out var ending) && ending.Followed == followed && _conversions.TryRemove(new KeyValuePair<uint, Conversion>(t.SessionId, ending)):
                _ = ending.DisposeAsync().AsTask();
                break;
        }
    }

    /// <summary>Ends every conversion.</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var id in _conversions.Keys)
        {
            if (_conversions.TryRemove(id, out var conversion))
            {
                await conversion.DisposeAsync().ConfigureAwait(false);
            }
        }

        foreach (var anchors in _anchors.Values)
        {
            foreach (var certificate in anchors)
            {
                certificate.Dispose();
            }
        }
    }

    /// <summary>Whether the server's certificate chains to the service's CA (or the system's) and names its host.</summary>
    private bool Verify(TlsService service, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (!_anchors.TryGetValue(service.Id, out var anchors))
        {
            return errors == SslPolicyErrors.None;
        }

        // Only the host name is judged by the platform; the chain is built against the service's own CA.
        if ((errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0 || certificate is null)
        {
            return false;
        }

        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.CustomTrustStore.AddRange(anchors);
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        if (chain is not null)
        {
            custom.ChainPolicy.ExtraStore.AddRange(chain.ChainPolicy.ExtraStore);
        }

        using var leaf = new X509Certificate2(certificate);
        return custom.Build(leaf);
    }

    private void Ended(Conversion conversion, bool failed)
    {
        if (failed)
        {
            Interlocked.Increment(ref _failed);
        }

        _conversions.TryRemove(new KeyValuePair<uint, Conversion>(conversion.SessionId, conversion));
    }

    [LoggerMessage(20, LogLevel.Information, "converter: TLS to service {Service} ({Protocol}, {Cipher}) for session {SessionId}")]
    private static partial void LogOpened(ILogger log, uint sessionId, string service, SslProtocols protocol, TlsCipherSuite cipher);

    [LoggerMessage(21, LogLevel.Warning, "session {SessionId}: TLS service {Service} unreachable or not verified ({Error})")]
    private static partial void LogUnreachable(ILogger log, uint sessionId, string service, string error);

    [LoggerMessage(22, LogLevel.Debug, "session {SessionId}: conversion to {Service} ended ({Failure}), {Up} octets up, {Down} down")]
    private static partial void LogEnded(ILogger log, uint sessionId, string service, StreamFailure failure, long up, long down);

    /// <summary>Opens the TLS connection to <paramref name="service"/>, its certificate and host name checked.</summary>
    private async Task<Stream> ConnectAsync(TlsService service, uint sessionId, CancellationToken token)
    {
        var tcp = new TcpClient { NoDelay = true };
        try
        {
            using var connecting = CancellationTokenSource.CreateLinkedTokenSource(token);
            connecting.CancelAfter(TimeSpan.FromSeconds(30));
            await tcp.ConnectAsync(service.Host, service.Port, connecting.Token).ConfigureAwait(false);
            var tls = new SslStream(tcp.GetStream(), leaveInnerStreamOpen: false);
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = service.Host,
                EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
                RemoteCertificateValidationCallback = (_, certificate, chain, errors) => Verify(service, certificate, chain, errors),
            }, connecting.Token).ConfigureAwait(false);
            Interlocked.Increment(ref _opened);
            LogOpened(_log, sessionId, service.Id, tls.SslProtocol, tls.NegotiatedCipherSuite);
            return tls;
        }
        catch
        {
            tcp.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Starts relaying an established session's stream to <paramref name="open"/>'s connection (inbound: one already
    /// accepted); <paramref name="followed"/> when its events come from its shard (<see cref="Follow"/>).
    /// </summary>
    internal void Relay(uint sessionId, string label, Func<CancellationToken, Task<Stream>> open, bool followed = false)
    {
        var conversion = new Conversion(this, sessionId, label, open) { Followed = followed };
        if (_conversions.TryAdd(sessionId, conversion))
        {
            conversion.Start();
        }
        else
        {
            _ = conversion.DisposeAsync().AsTask();
            throw new InvalidOperationException($"session {sessionId} carries a stream already");
        }
    }

    /// <summary>One session's stream and its TLS connection.</summary>
    private sealed class Conversion(TlsConverter owner, uint sessionId, string label, Func<CancellationToken, Task<Stream>> open) : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly StreamPump _pump = new(new StreamEndpoint(), async frames =>
        {
            if (await owner._hse.SendStreamAsync(sessionId, frames).ConfigureAwait(false) == SessionOutcome.NotEstablished)
            {
                throw new InvalidOperationException($"session {sessionId} is not established");
            }
        }, maxUnacknowledged: 64 * 1024);

        private Task _run = Task.CompletedTask;
        private long _up;
        private long _down;

        public uint SessionId => sessionId;

        /// <summary>Whether its events come from its shard (<see cref="Follow"/>) rather than from this node's own.</summary>
        public bool Followed { get; init; }

        public void Start() => _run = Task.Run(RunAsync);

        public void OnFrame(ReadOnlyMemory<byte> frame) => _ = _pump.OnFrameAsync(frame);

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync().ConfigureAwait(false);
            await _run.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            await _pump.DisposeAsync().ConfigureAwait(false);
            _stop.Dispose();
        }

        private async Task RunAsync()
        {
            var token = _stop.Token;
            Stream tls;
            try
            {
                tls = await open(token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or IOException or AuthenticationException or OperationCanceledException)
            {
                LogUnreachable(owner._log, sessionId, label, e.GetType().Name);
                await _pump.AbortAsync(StreamFailure.Unreachable).ConfigureAwait(false);
                owner.Ended(this, failed: true);
                return;
            }

            await using (tls.ConfigureAwait(false))
            {
                var upstream = UpAsync(tls, token);
                var downstream = DownAsync(tls, token);
                var failed = false;
                try
                {
                    await Task.WhenAll(upstream, downstream).ConfigureAwait(false);
                    await _pump.WaitClosedAsync(token).ConfigureAwait(false);
                }
                catch (Exception e) when (e is IOException or AuthenticationException or OperationCanceledException or ObjectDisposedException)
                {
                    failed = !token.IsCancellationRequested;
                    if (failed)
                    {
                        await _pump.AbortAsync(StreamFailure.Unreachable).ConfigureAwait(false);
                    }
                }

                LogEnded(owner._log, sessionId, label, _pump.Failure, Interlocked.Read(ref _up), Interlocked.Read(ref _down));
                owner.Ended(this, failed || _pump.Failure != StreamFailure.None);
            }
        }

        /// <summary>Device to server: what arrives in order goes into TLS; the device's FIN becomes close_notify.</summary>
        private async Task UpAsync(Stream tls, CancellationToken token)
        {
            var buffer = new byte[16 * 1024];
            while (true)
            {
                var read = await _pump.ReadAsync(buffer, token).ConfigureAwait(false);
                if (read == 0)
                {
                    if (tls is SslStream ssl)
                    {
                        await ssl.ShutdownAsync().ConfigureAwait(false); // close_notify: the device finished its direction
                    }

                    return;
                }

                Interlocked.Add(ref _up, read);
                await tls.WriteAsync(buffer.AsMemory(0, read), token).ConfigureAwait(false);
            }
        }

        /// <summary>Server to device: what TLS delivers goes into the stream; the server's end becomes the stream's FIN.</summary>
        private async Task DownAsync(Stream tls, CancellationToken token)
        {
            var buffer = new byte[16 * 1024];
            while (true)
            {
                int read;
                try
                {
                    read = await tls.ReadAsync(buffer, token).ConfigureAwait(false);
                }
                catch (IOException) when (_pump.Closed)
                {
                    read = 0;
                }

                if (read == 0)
                {
                    await _pump.FinishAsync().ConfigureAwait(false);
                    return;
                }

                Interlocked.Add(ref _down, read);
                await _pump.WriteAsync(buffer.AsMemory(0, read), token).ConfigureAwait(false);
            }
        }
    }
}
