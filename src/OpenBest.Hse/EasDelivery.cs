using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using OpenBest.EasInterface;
using OpenBest.Protocol;
using OpenBest.Sessions;
using OpenBest.Storage;

namespace OpenBest.Hse;

/// <summary>
/// The HSE as a client of its registered EASs (mutual TLS; the EAS's certificate must chain to the interface's CA
/// and name the EAS Id): it pushes the keys of each confirmed session ("EAS Session Request" with the keys), and
/// delivers the outbox of UE-to-EAS uplink at least once, in order per EAS, retrying with back-off; a delivery
/// that fails leaves the rest of that EAS's outbox waiting, so order holds across restarts of either side.
/// </summary>
public sealed class EasDelivery : IAsyncDisposable
{
    private readonly IHseSessions _sessions;
    private readonly Func<string, bool> _delivers;
    private readonly IHseStateStore _store;
    private readonly X509Certificate2 _clientCertificate;
    private readonly X509Certificate2 _ca;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, HttpClient> _clients = new(StringComparer.Ordinal);
    // Keys to push: queued (625 per worker, 10 000 in all) and pushed by 16 workers, so an EAS that never answers cannot
    // pile up connections, and a burst of sessions is pushed in turn rather than left to the EAS to fetch. A session's key
    // sets always go to the same worker, so they reach the EAS in order.
    private const int Pushers = 16;
    private readonly System.Threading.Channels.Channel<EasKeysReady>[] _pushQueues = [.. Enumerable.Range(0, Pushers).Select(_ => System.Threading.Channels.Channel.CreateBounded<EasKeysReady>(
        new System.Threading.Channels.BoundedChannelOptions(625) { FullMode = System.Threading.Channels.BoundedChannelFullMode.Wait }))];
    private readonly Task[] _pushers;
    private int _disposed;
    private long _pushesDropped;
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _wake = new(0);
    private readonly Task _loop;
    private long _delivered;
    private long _failed;
    private long _enterpriseKeyRefreshes;
    private readonly RecentKeys<uint> _enterpriseKeyRefreshed = new(TimeSpan.FromMinutes(1), pruneAbove: 10_000);

    /// <summary>Starts delivering; <paramref name="clientCertificate"/> is the HSE's (it must outlive this object).</summary>
    public EasDelivery(HseHost host, IHseStateStore store, X509Certificate2 clientCertificate, X509Certificate2 ca, TimeSpan? poll = null)
        : this(IHseSessions.ForHost(host), store, clientCertificate, ca, poll)
    {
    }

    /// <summary>
    /// Starts delivering over <paramref name="sessions"/> (one HSE's host, or a cluster's shards); with
    /// <paramref name="delivers"/>, only the outboxes of the EASs it names (a cluster node delivers the EASs it holds).
    /// </summary>
    public EasDelivery(IHseSessions sessions, IHseStateStore store, X509Certificate2 clientCertificate, X509Certificate2 ca, TimeSpan? poll = null, Func<string, bool>? delivers = null)
    {
        ArgumentNullException.ThrowIfNull(sessions);
        ArgumentNullException.ThrowIfNull(clientCertificate);
        ArgumentNullException.ThrowIfNull(ca);
        _sessions = sessions;
        _delivers = delivers ?? (_ => true);
        _store = store;
        _clientCertificate = clientCertificate;
        _ca = ca;
        Poll = poll ?? TimeSpan.FromMilliseconds(200);
        _loop = Task.Run(LoopAsync);
        _pushers = [.. _pushQueues.Select(queue => Task.Run(() => PushLoopAsync(queue)))];
    }

    /// <summary>How often the outbox is looked at when nothing wakes the loop.</summary>
    public TimeSpan Poll { get; }

    /// <summary>Outbox messages delivered.</summary>
    public long Delivered => Interlocked.Read(ref _delivered);

    /// <summary>Deliveries and pushes that failed (and will be retried, or were left to the EAS to fetch).</summary>
    public long Failed => Interlocked.Read(ref _failed);

    /// <summary>Key refreshes (Manage Keys Requests sent) because an EAS chose another Enterprise Key in its EAS Session Start.</summary>
    public long EnterpriseKeyRefreshes => Interlocked.Read(ref _enterpriseKeyRefreshes);

    /// <summary>Looks at the outboxes now (an uplink for an EAS was stored).</summary>
    public void Wake()
    {
        if (Volatile.Read(ref _disposed) == 0)
        {
            _wake.Release();
        }
    }

    /// <summary>Something for the EASs happened (uplink forwarded, keys ready): look at the outbox now, and push keys.</summary>
    public void OnEvent(SessionEvent e)
    {
        if (Volatile.Read(ref _disposed) == 1)
        {
            if (e is EasKeysReady late)
            {
                CryptographicOperations.ZeroMemory(MemoryMarshalArray(late.KEasPsk));
            }

            return; // the host's last events after this stopped: the outbox keeps them for the next start
        }

        switch (e)
        {
            case UplinkForwarded:
                _wake.Release();
                break;
            case EnterpriseKeyRefused refused:
                _ = Task.Run(() => ForgetRefusedAsync(refused));
                break;
            case EasKeysReady keys:
                var copy = keys with { KEasPsk = keys.KEasPsk.ToArray() };
                if (!_pushQueues[keys.SessionId % Pushers].Writer.TryWrite(copy))
                {
                    // The queue is full: this key set is left to the EAS to fetch when the UE names it.
                    CryptographicOperations.ZeroMemory(MemoryMarshalArray(copy.KEasPsk));
                    Interlocked.Increment(ref _pushesDropped);
                }

                break;
        }
    }

    /// <summary>Key pushes not queued because 10 000 were waiting.</summary>
    public long PushesDropped => Interlocked.Read(ref _pushesDropped);

    private async Task PushLoopAsync(System.Threading.Channels.Channel<EasKeysReady> queue)
    {
        try
        {
            await foreach (var keys in queue.Reader.ReadAllAsync(_stop.Token).ConfigureAwait(false))
            {
                try
                {
                    await PushAsync(keys).ConfigureAwait(false);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    Interlocked.Increment(ref _failed); // one push never stops the others
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Stops delivering (the outbox stays for the next start).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        foreach (var queue in _pushQueues)
        {
            queue.Writer.TryComplete();
        }

        await _loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await Task.WhenAll(_pushers).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        foreach (var queue in _pushQueues)
        {
            while (queue.Reader.TryRead(out var waiting))
            {
                CryptographicOperations.ZeroMemory(MemoryMarshalArray(waiting.KEasPsk)); // never pushed: zeroed
            }
        }

        foreach (var client in _clients.Values)
        {
            client.Dispose();
        }

        _stop.Dispose(); // _wake stays: a late event may still release it
    }

    private async Task PushAsync(EasKeysReady keys)
    {
        var psk = (byte[])keys.KEasPsk.ToArray();
        try
        {
            if (_store.EasRegistrations().FirstOrDefault(r => r.EasId == keys.EasId) is not { } registration
                || await _sessions.DescribeAsync(keys.SessionId).ConfigureAwait(false) is not { } owner
                || _store.ExternalIdOf(keys.EasId, owner.Imsi) is not { } externalId)
            {
                return; // not registered, or no external id: the EAS fetches the key when the UE names it
            }

            var message = new EasSessionRequest(externalId, keys.EasKeyIdentifier, new EasSessionKeys(keys.SessionId, keys.KeyId, keys.Suite.Id, HseHost.ServiceName(keys.Service),
                keys.CounterLength, keys.UeToEasMode, EasXml.PskIdentity(externalId, keys.EasKeyIdentifier), psk)
            {
                EnterpriseKeyIdentifier = keys.EnterpriseKeyIdentifier,
            });
            for (var attempt = 0; attempt < 3 && !_stop.IsCancellationRequested; attempt++)
            {
                var (ok, answer) = await PostForAnswerAsync(registration, "keys", message).ConfigureAwait(false);
                if (ok)
                {
                    _store.Audit("key-pushed", keys.EasId, externalId, keys.EasKeyIdentifier);
                    if (keys.UeToEasMode && answer is EasSessionStart { EnterpriseKeyIdentifier: { } chosen }
                        && !chosen.AsSpan().SequenceEqual(keys.EnterpriseKeyIdentifier ?? []))
                    {
                        await UseEnterpriseKeyAsync(keys, owner.Imsi, externalId, chosen).ConfigureAwait(false);
                    }

                    return;
                }

                await Task.Delay(TimeSpan.FromMilliseconds(200 << attempt), _stop.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            CryptographicOperations.ZeroMemory(psk);
            CryptographicOperations.ZeroMemory(MemoryMarshalArray(keys.KEasPsk));
        }
    }

    /// <summary>
    /// The EAS answered with another Enterprise Key Identifier than the key set's: it is kept for the UE and EAS, and the
    /// session's keys are refreshed at once, so the new key set (and the UE's later sessions with the EAS) use that key.
    /// At most one such refresh per session a minute: an EAS that keeps changing its mind cannot spend vectors.
    /// </summary>
    private async Task UseEnterpriseKeyAsync(EasKeysReady keys, string imsi, string externalId, byte[] chosen)
    {
        _store.SetEnterpriseKeyIdentifier(imsi, keys.EasId, chosen);
        _store.Audit("enterprise-key-chosen", keys.EasId, externalId, keys.EasKeyIdentifier);
        if (_enterpriseKeyRefreshed.IsRecent(keys.SessionId))
        {
            return; // the next refresh (or session) names it
        }

        // A refresh in flight runs again when it ends (the engine keeps the request), naming the kept identifier. A session
        // that ended or is not established is passed over: its next session names the key.
        if (await _sessions.RefreshKeysAsync(keys.SessionId, ifKeyId: keys.KeyId).ConfigureAwait(false) == SessionOutcome.Done)
        {
            _enterpriseKeyRefreshed.Mark(keys.SessionId);
            Interlocked.Increment(ref _enterpriseKeyRefreshes); // a Manage Keys Request went out
        }
    }

    /// <summary>
    /// The UE does not hold the Enterprise Key the EAS chose: the identifier kept goes back to the one the session uses (none
    /// if it uses none), so the UE's next key sets name a key it holds; audited.
    /// </summary>
    private async Task ForgetRefusedAsync(EnterpriseKeyRefused refused)
    {
        try
        {
            if (await _sessions.DescribeAsync(refused.SessionId).ConfigureAwait(false) is { } who && _store.EnterpriseKeyIdentifierOf(who.Imsi, refused.EasId) is { } kept && kept.AsSpan().SequenceEqual(refused.EnterpriseKeyIdentifier))
            {
                _store.SetEnterpriseKeyIdentifier(who.Imsi, refused.EasId, who.EnterpriseKeyIdentifier);
                _store.Audit("enterprise-key-refused", refused.EasId, _store.ExternalIdOf(refused.EasId, who.Imsi) ?? $"session-{refused.SessionId}", 0);
            }
        }
        catch (Exception e) when (e is not OperationCanceledException and not OutOfMemoryException)
        {
            Interlocked.Increment(ref _failed);
        }
    }

    private static byte[] MemoryMarshalArray(ReadOnlyMemory<byte> memory) =>
        System.Runtime.InteropServices.MemoryMarshal.TryGetArray(memory, out var segment) && segment.Array is { } array ? array : [];

    private async Task LoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                await _wake.WaitAsync(Poll, _stop.Token).ConfigureAwait(false);
                // Each EAS on its own: a slow or failing one never holds up the others.
                await Task.WhenAll(_store.EasRegistrations().Where(r => _delivers(r.EasId)).Select(async registration =>
                {
                    try
                    {
                        await DeliverAsync(registration).ConfigureAwait(false);
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        Interlocked.Increment(ref _failed);
                    }
                })).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (Exception)
            {
                // Nothing stops delivery for good: the next round tries again.
                Interlocked.Increment(ref _failed);
            }
        }
    }

    private async Task DeliverAsync(EasRegistration registration)
    {
        var now = DateTimeOffset.UtcNow;
        // A batch's messages mostly come from a few devices: each device's external id and key identifiers are read
        // from the store once per batch, not once per message.
        var devices = new Dictionary<string, (string? ExternalId, List<(uint SessionId, byte KeyId, uint KeyIdentifier)> Keys)>(StringComparer.Ordinal);
        foreach (var entry in _store.DueOutbox(registration.EasId, now, 64))
        {
            // The subscriber was kept with the entry; entries queued before schema version 4 ask the live session.
            var imsi = entry.Imsi ?? (await _sessions.DescribeAsync(entry.SessionId).ConfigureAwait(false))?.Imsi;
            string? externalId = null;
            uint? keyIdentifier = null;
            if (imsi is not null)
            {
                if (!devices.TryGetValue(imsi, out var device))
                {
                    var psks = _store.Psks(imsi, registration.EasId);
                    device = (_store.ExternalIdOf(registration.EasId, imsi), [.. psks.Select(p => (p.SessionId, p.KeyId, p.KeyIdentifier))]);
                    foreach (var psk in psks)
                    {
                        CryptographicOperations.ZeroMemory(psk.Psk);
                    }

                    devices[imsi] = device;
                }

                externalId = device.ExternalId;
                if (HeaderPrefix.TryRead(entry.Message, out var prefix) == ParseStatus.Ok)
                {
                    keyIdentifier = device.Keys.Where(k => k.SessionId == entry.SessionId && k.KeyId == prefix.KeyId).Select(k => (uint?)k.KeyIdentifier).FirstOrDefault();
                }
            }

            var message = new EasUplink(entry.Seq, entry.SessionId, externalId ?? $"session-{entry.SessionId}", entry.Message, keyIdentifier);
            if (await PostAsync(registration, "uplink", message).ConfigureAwait(false))
            {
                _store.OutboxDelivered(entry.Seq);
                Interlocked.Increment(ref _delivered);
                continue;
            }

            // In order: the rest of this EAS's outbox waits for this one.
            var backOff = TimeSpan.FromSeconds(Math.Min(60, Math.Pow(2, Math.Min(entry.Attempts, 8)) * 0.25));
            _store.OutboxRetry(entry.Seq, now + backOff);
            return;
        }
    }

    /// <summary>A client for one EAS: its server certificate must chain to the CA and name that EAS Id.</summary>
    private HttpClient ClientFor(string easId) => _clients.GetOrAdd(easId, id =>
    {
        var handler = new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) };
        handler.SslOptions.ClientCertificates = [_clientCertificate];
        handler.SslOptions.LocalCertificateSelectionCallback = (_, _, _, _, _) => _clientCertificate;
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, _) =>
            certificate is X509Certificate2 c && DevelopmentPki.IsIssuedBy(c, _ca) && DevelopmentPki.IdentityOf(c) == id;
        // An answer larger than a body may be is refused, not buffered (HttpClient reads answers whole).
        return new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(10), MaxResponseContentBufferSize = EasXml.MaxBody + 1 };
    });

    private async Task<bool> PostAsync(EasRegistration registration, string resource, EasMessage message) =>
        (await PostForAnswerAsync(registration, resource, message, readAnswer: false).ConfigureAwait(false)).Ok;

    /// <summary>Posts a body; on success, the EAS's answer too when it is a valid body (at most 64 KiB read; anything else is no answer).</summary>
    private async Task<(bool Ok, EasMessage? Answer)> PostForAnswerAsync(EasRegistration registration, string resource, EasMessage message, bool readAnswer = true)
    {
        var body = EasXml.Write(message);
        try
        {
            using var content = new ByteArrayContent(body);
            content.Headers.ContentType = new MediaTypeHeaderValue(EasXml.MediaType);
            using var response = await ClientFor(registration.EasId).PostAsync(new Uri(new Uri(registration.Endpoint.EndsWith('/') ? registration.Endpoint : registration.Endpoint + "/"), resource), content, _stop.Token).ConfigureAwait(false);
            if (response.IsSuccessStatusCode)
            {
                if (!readAnswer)
                {
                    return (true, null);
                }

                await using var stream = await response.Content.ReadAsStreamAsync(_stop.Token).ConfigureAwait(false);
                using var answer = await ReceivedBody.ReadAsync(stream, _stop.Token).ConfigureAwait(false);
                return (true, !answer.TooLarge && EasXml.TryRead(answer.Span, out var read, out _) ? read : null);
            }
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
        {
        }
        finally
        {
            // A body with K_EAS_PSK in it is not left in memory.
            CryptographicOperations.ZeroMemory(body);
        }

        Interlocked.Increment(ref _failed);
        return (false, null);
    }
}
