using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using OpenBest.EasInterface;
using OpenBest.Storage;

namespace OpenBest.Hse.Northbound;

/// <summary>
/// Delivers notifications to the applications' callbacks (each subscription's notificationDestination), from durable
/// queues: the uplink the HSE stored for the enterprise, and the enterprise's event outbox. One worker per
/// subscription posts batches in sequence order and moves the subscription's cursor only after a 2xx answer, so
/// delivery is at least once and in order (per enterprise, hence per device); a retry after a failure or a restart
/// carries the same sequence numbers, which the application uses to drop duplicates. Failures back off from 1 s to
/// 60 s. Callbacks are https (the server's certificate must chain to the interface's CA or to the system's roots; the
/// HSE presents its own certificate), or, where the operator allows it for development, http on a loopback address.
/// </summary>
public sealed partial class NotificationSender : IAsyncDisposable
{
    /// <summary>Notifications per callback request at most.</summary>
    public const int BatchSize = 100;

    private readonly NorthboundStore _store;
    private readonly IHseStateStore _state;
    private readonly ILogger _log;
    private readonly TimeProvider _time;
    private readonly Func<bool> _leads;
    private readonly HttpClient _http;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<string, (Task Worker, CancellationTokenSource Cancel)> _workers = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<(string Enterprise, string Imsi), string?> _externalIds = new();
    private TaskCompletionSource _wake = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _supervisor = Task.CompletedTask;
    private long _delivered;
    private long _failures;

    /// <summary>Creates the sender; <see cref="Start"/> starts it. While <paramref name="leads"/> says no (a cluster's node that does not lead), it posts nothing.</summary>
    public NotificationSender(NorthboundStore store, IHseStateStore state, X509Certificate2 certificate, X509Certificate2 ca, ILogger log, TimeProvider time, Func<bool>? leads = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(certificate);
        ArgumentNullException.ThrowIfNull(ca);
        _store = store;
        _state = state;
        _log = log;
        _time = time;
        _leads = leads ?? (() => true);
        var handler = new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5), AllowAutoRedirect = false };
        handler.SslOptions.ClientCertificates = [certificate];
        handler.SslOptions.LocalCertificateSelectionCallback = (_, _, _, _, _) => certificate;
        handler.SslOptions.RemoteCertificateValidationCallback = (_, server, _, errors) =>
            errors == SslPolicyErrors.None || (DevelopmentPki.IsIssuedBy(server as X509Certificate2, ca) && (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) == SslPolicyErrors.None);
        _http = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(10), MaxResponseContentBufferSize = 64 * 1024 };
    }

    /// <summary>Notifications the callbacks acknowledged.</summary>
    public long Delivered => Interlocked.Read(ref _delivered);

    /// <summary>Callback requests that failed (and were retried).</summary>
    public long Failures => Interlocked.Read(ref _failures);

    /// <summary>Whether <paramref name="destination"/> may be a callback: absolute https, or (when <paramref name="httpLoopback"/>) http to a loopback address.</summary>
    public static bool IsAcceptable(string? destination, bool httpLoopback, out string why)
    {
        why = string.Empty;
        if (!Uri.TryCreate(destination, UriKind.Absolute, out var uri) || uri.UserInfo.Length > 0 || destination!.Length > 2048)
        {
            why = "notificationDestination must be an absolute URI without user information";
            return false;
        }

        var address = IPAddress.TryParse(uri.Host.Trim('[', ']'), out var parsed) ? parsed : null;
        var loopback = uri.IsLoopback || (address is not null && IPAddress.IsLoopback(address));
        var linkLocal = address is not null && (address.IsIPv6LinkLocal || (address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork && address.GetAddressBytes() is [169, 254, ..]));
        if (uri.Scheme != Uri.UriSchemeHttps && !(httpLoopback && uri.Scheme == Uri.UriSchemeHttp && loopback))
        {
            why = httpLoopback ? "notificationDestination must be https (http only on a loopback address)" : "notificationDestination must be https";
            return false;
        }

        if ((loopback && !httpLoopback) || linkLocal)
        {
            // The HSE's own loopback services and link-local ones (cloud metadata) are not an enterprise's to reach.
            why = "notificationDestination may not be a loopback or link-local address";
            return false;
        }

        return true;
    }

    /// <summary>Starts the workers (one per subscription, kept in step with the store every second).</summary>
    public void Start() => _supervisor = Task.Run(() => SuperviseAsync(_stop.Token));

    /// <summary>Wakes the workers: something new may be waiting.</summary>
    public void Pulse() => Interlocked.Exchange(ref _wake, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    /// <summary>Stops the workers (what they posted and were acknowledged for is recorded).</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _supervisor.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        foreach (var (worker, cancel) in _workers.Values)
        {
            await worker.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            cancel.Dispose();
        }

        _http.Dispose();
        _stop.Dispose();
    }

    private async Task SuperviseAsync(CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            try
            {
                // A node that does not lead stops its workers; the one that does starts them from the stored cursors.
                var current = _leads() ? _store.Subscriptions().ToDictionary(s => s.Id, StringComparer.Ordinal) : [];
                foreach (var (id, subscription) in current)
                {
                    // A worker that ended (it failed) is started again from the stored cursor.
                    if (_workers.TryGetValue(id, out var running) && running.Worker.IsCompleted && _workers.TryRemove(id, out var ended))
                    {
                        ended.Cancel.Dispose();
                    }

                    if (!_workers.ContainsKey(id))
                    {
                        var cancel = CancellationTokenSource.CreateLinkedTokenSource(stop);
                        _workers[id] = (Task.Run(() => WorkAsync(subscription, cancel.Token), CancellationToken.None), cancel);
                    }
                }

                foreach (var id in _workers.Keys.Where(id => !current.ContainsKey(id)).ToList())
                {
                    if (_workers.TryRemove(id, out var gone))
                    {
                        await gone.Cancel.CancelAsync().ConfigureAwait(false);
                        await gone.Worker.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                        gone.Cancel.Dispose();
                    }
                }
            }
            catch (Exception e) when (e is InvalidOperationException or System.Data.Common.DbException)
            {
                LogStoreError(_log, e.Message);
            }

            await Task.WhenAny(Task.Delay(TimeSpan.FromSeconds(1), _time, stop), Volatile.Read(ref _wake).Task).ConfigureAwait(false);
        }
    }

    private async Task WorkAsync(NorthboundSubscription subscription, CancellationToken stop)
    {
        var cursor = subscription.Cursor;
        var backOff = TimeSpan.Zero;
        while (!stop.IsCancellationRequested)
        {
            var wake = Volatile.Read(ref _wake).Task;
            List<(long Seq, JsonNode Body)> batch;
            try
            {
                batch = Batch(subscription, cursor);
            }
            catch (Exception e) when (e is InvalidOperationException or System.Data.Common.DbException)
            {
                LogStoreError(_log, e.Message);
                batch = [];
            }

            if (batch.Count == 0)
            {
                await Task.WhenAny(Task.Delay(TimeSpan.FromSeconds(1), _time, stop), wake).ConfigureAwait(false);
                continue;
            }

            var body = new JsonObject
            {
                ["subscription"] = subscription.Id,
                ["notifications"] = new JsonArray([.. batch.Select(b => b.Body)]),
            };
            bool ok;
            try
            {
                using var content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
                using var response = await _http.PostAsync(new Uri(subscription.Destination), content, stop).ConfigureAwait(false);
                ok = response.IsSuccessStatusCode;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !stop.IsCancellationRequested)
            {
                ok = false;
            }

            if (stop.IsCancellationRequested)
            {
                return;
            }

            if (ok)
            {
                cursor = batch[^1].Seq;
                Interlocked.Add(ref _delivered, batch.Count);
                backOff = TimeSpan.Zero;
                try
                {
                    _store.Advance(subscription.Id, cursor);
                }
                catch (Exception e) when (e is InvalidOperationException or System.Data.Common.DbException)
                {
                    LogStoreError(_log, e.Message); // sent again later: the application drops it by its sequence number
                }

                continue;
            }

            Interlocked.Increment(ref _failures);
            backOff = backOff == TimeSpan.Zero ? TimeSpan.FromSeconds(1) : TimeSpan.FromSeconds(Math.Min(60, backOff.TotalSeconds * 2));
            LogCallbackFailed(_log, subscription.Id, backOff.TotalSeconds);
            await Task.Delay(backOff, _time, stop).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    private List<(long Seq, JsonNode Body)> Batch(NorthboundSubscription subscription, long cursor)
    {
        if (subscription.Kind == "EVENTS")
        {
            return [.. _store.Events(subscription.Enterprise, cursor, BatchSize).Select(e =>
            {
                var node = JsonNode.Parse(e.Body)!;
                node["sequence"] = e.Seq;
                return (e.Seq, node);
            })];
        }

        return [.. _state.Uplinks(cursor, BatchSize, subscription.Enterprise).Select(u => (u.Seq, (JsonNode)new JsonObject
        {
            ["type"] = "UPLINK",
            ["sequence"] = u.Seq,
            ["externalId"] = ExternalId(subscription.Enterprise, u.Imsi),
            ["sessionId"] = u.SessionId,
            ["keyId"] = u.KeyId,
            ["counter"] = (long)u.Counter,
            ["payload"] = Convert.ToBase64String(u.Payload),
            ["receivedAt"] = u.ReceivedAt.ToString("O", System.Globalization.CultureInfo.InvariantCulture),
        }))];
    }

    private string? ExternalId(string enterprise, string imsi)
    {
        if (_externalIds.Count > 100_000)
        {
            _externalIds.Clear();
        }

        return _externalIds.GetOrAdd((enterprise, imsi), key => _state.ExternalIdOf(key.Enterprise, key.Imsi));
    }

    [LoggerMessage(40, LogLevel.Warning, "northbound store: {Error}")]
    private static partial void LogStoreError(ILogger log, string error);

    [LoggerMessage(41, LogLevel.Debug, "subscription {Subscription}: callback failed, next attempt in {Seconds} s")]
    private static partial void LogCallbackFailed(ILogger log, string subscription, double seconds);
}
