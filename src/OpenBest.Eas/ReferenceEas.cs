using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Logging;
using OpenBest.Crypto.Aead;
using OpenBest.EasInterface;
using OpenBest.Protocol;
using OpenBest.Sessions;

namespace OpenBest.Eas;

/// <summary>What the reference EAS needs: its identity and certificates, the HSE, and a folder for its state.</summary>
public sealed record EasOptions
{
    /// <summary>The EAS Id (its certificate's common name).</summary>
    public required string EasId { get; init; }

    /// <summary>The HSE's EAS interface, e.g. https://127.0.0.1:3164/.</summary>
    public required Uri Hse { get; init; }

    /// <summary>The EAS's certificate with its key (it outlives the EAS).</summary>
    public required X509Certificate2 Certificate { get; init; }

    /// <summary>The CA the HSE's certificate must chain to.</summary>
    public required X509Certificate2 Ca { get; init; }

    /// <summary>Where the EAS listens for the HSE (port 0: any free one).</summary>
    public IPEndPoint Listen { get; init; } = new(IPAddress.Loopback, 0);

    /// <summary>
    /// Key agreement only: this server is one endpoint of the enterprise (EMSE Id, seed 004), and the PSKs it fetches are that
    /// endpoint's own (K_EMSE_PSK); null: K_EAS_PSK, the enterprise's key.
    /// </summary>
    public string? EndpointId { get; init; }

    /// <summary>The folder of its state: messages delivered (with their outbox sequence) and downlink counter reservations.</summary>
    public required string StateDirectory { get; init; }

    /// <summary>Enterprise Keys shared out of band with devices, by external id, used for key sets that name no identifier: with one, the operator cannot derive the E2E keys (profile section 5).</summary>
    public IReadOnlyDictionary<string, byte[]> EnterpriseKeys { get; init; } = new Dictionary<string, byte[]>();

    /// <summary>
    /// Enterprise Keys with identifiers, by external id. The last of a device's list is the one the EAS asks for: its
    /// identifier goes in the EAS Session Start, and the HSE names it to the device (refreshing the keys when they named
    /// another). The earlier ones still open the key sets that name them.
    /// </summary>
    public IReadOnlyDictionary<string, IReadOnlyList<EnterpriseKey>> NamedEnterpriseKeys { get; init; } = new Dictionary<string, IReadOnlyList<EnterpriseKey>>();

    /// <summary>The Enterprise Key a key set of <paramref name="externalId"/> uses: the one named, else the unnamed one; empty when none is held.</summary>
    public byte[] EnterpriseKeyFor(string externalId, byte[]? identifier)
    {
        if (identifier is null)
        {
            return EnterpriseKeys.TryGetValue(externalId, out var unnamed) ? unnamed : [];
        }

        return NamedEnterpriseKeys.TryGetValue(externalId, out var named) && named.LastOrDefault(k => k.Identifier.AsSpan().SequenceEqual(identifier)) is { } key ? key.Key : [];
    }

    /// <summary>The identifier of the Enterprise Key this EAS asks <paramref name="externalId"/> to use, or null.</summary>
    public byte[]? PreferredEnterpriseKeyIdentifier(string externalId) =>
        NamedEnterpriseKeys.TryGetValue(externalId, out var named) && named.Count > 0 ? named[^1].Identifier : null;
}

/// <summary>An uplink message the EAS opened and delivered to the application, once.</summary>
public sealed record EasReceived(long Sequence, uint SessionId, string ExternalId, byte[] Payload);

/// <summary>
/// The reference EAS (UE-to-EAS mode): it registers with the HSE over mutual TLS, takes the keys the HSE pushes (or
/// fetches them by key identifier), opens the uplink the HSE forwards with K_E2E, and hands each message to the
/// application exactly once: the outbox sequence is written with the message to an append-only log, so a message
/// the HSE delivers again (after a restart of either side) is recognised. Downlink counters are reserved in a file
/// before use, so a restarted EAS never seals two messages under one counter.
/// </summary>
public sealed class ReferenceEas : IAsyncDisposable
{
    private readonly EasOptions _options;
    private readonly Func<EasReceived, Task> _deliver;
    private readonly FileCounterReservation _reservation;
    private readonly EasEndpoint _endpoint;
    private readonly HttpClient _http;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly SemaphoreSlim _uplinkGate = new(1, 1);
    private readonly string _log;
    private readonly ConcurrentDictionary<uint, string> _externalIds = new();
    private readonly FileStream _folderLock;
    private readonly PskCache _pskCache;
    private WebApplication? _server;
    private long _lastSequence;
    private long _dropped;
    private long _refusedKeySets;
    private int _disposed;

    private ReferenceEas(EasOptions options, Func<EasReceived, Task> deliver)
    {
        _options = options;
        _deliver = deliver;
        Directory.CreateDirectory(options.StateDirectory);
        // One EAS per state folder: two would share downlink counters. The lock (flock) goes with the process, even on kill -9.
        try
        {
            _folderLock = new FileStream(Path.Combine(options.StateDirectory, "eas.lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
        }
        catch (IOException)
        {
            throw new InvalidOperationException($"another EAS is running on the state folder {options.StateDirectory} (one EAS per folder)");
        }

        _log = Path.Combine(options.StateDirectory, "received.jsonl");
        _pskCache = new PskCache(identity => FetchPskAsync(identity).GetAwaiter().GetResult());
        try
        {
            _reservation = new FileCounterReservation(Path.Combine(options.StateDirectory, "counters.json"));
            _lastSequence = LastSequenceIn(_log);
        }
        catch
        {
            _folderLock.Dispose(); // a state folder that cannot be read leaves no lock behind
            throw;
        }

        _endpoint = new EasEndpoint(reservation: _reservation);
        _http = HseClient(options);
    }

    /// <summary>The HSE's EAS interface as this EAS reaches it: mutual TLS with its certificate, the HSE's checked against the CA.</summary>
    private static HttpClient HseClient(EasOptions options)
    {
        var handler = new SocketsHttpHandler();
        handler.SslOptions.ClientCertificates = [options.Certificate];
        handler.SslOptions.LocalCertificateSelectionCallback = (_, _, _, _, _) => options.Certificate;
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, _) =>
            certificate is X509Certificate2 c && DevelopmentPki.IsIssuedBy(c, options.Ca) && DevelopmentPki.IdentityOf(c) == DevelopmentPki.HseIdentity;
        return new HttpClient(handler) { BaseAddress = options.Hse, Timeout = TimeSpan.FromSeconds(10), MaxResponseContentBufferSize = EasXml.MaxBody + 1 };
    }

    /// <summary>
    /// Key agreement only, without running an EAS: the PSK the HSE holds for <paramref name="identity"/> (K_EAS_PSK, or the
    /// endpoint's key with <see cref="EasOptions.EndpointId"/>), for a PSK peer that is not this EAS (an IKE gateway, an
    /// OpenSSL or GnuTLS server). Null when the HSE has none for this EAS. Nothing is registered.
    /// </summary>
    public static async Task<byte[]?> FetchPskOnceAsync(EasOptions options, string identity, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!PskCache.IsIdentity(identity))
        {
            return null;
        }

        using var http = HseClient(options);
        return await RequestPskAsync(http, options.EndpointId, identity, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The URL the HSE reaches this EAS at.</summary>
    public Uri Endpoint { get; private set; } = null!;

    /// <summary>The registration id the HSE gave.</summary>
    public string? RegistrationId { get; private set; }

    /// <summary>The last outbox sequence delivered to the application.</summary>
    public long LastSequence => Interlocked.Read(ref _lastSequence);

    /// <summary>Uplink that did not open (tag, unknown keys), dropped and counted.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Key sets refused: without the Enterprise Key a device shares with this EAS, or of an unknown suite.</summary>
    public long RefusedKeySets => Interlocked.Read(ref _refusedKeySets);

    /// <summary>Starts listening for the HSE, then registers with it.</summary>
    /// <exception cref="HttpRequestException">The HSE cannot be reached or refused the registration.</exception>
    public static async Task<ReferenceEas> StartAsync(EasOptions options, Func<EasReceived, Task> deliver, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(deliver);
        var eas = new ReferenceEas(options, deliver);
        try
        {
            await eas.ListenAsync(cancellationToken).ConfigureAwait(false);
            await eas.RegisterAsync(cancellationToken).ConfigureAwait(false);
            return eas;
        }
        catch
        {
            await eas.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Seals <paramref name="payload"/> for the UE of <paramref name="sessionId"/> and hands it to the HSE; false when the HSE refused it.</summary>
    /// <exception cref="InvalidOperationException">The EAS holds no keys for that session.</exception>
    public async Task<bool> SendDownlinkAsync(uint sessionId, ReadOnlyMemory<byte> payload, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) == 1, this);
        byte[] message;
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) == 1, this); // disposed while waiting
            var step = _endpoint.SendDownlink(sessionId, payload.Span);
            message = step.Send[0].Message.ToArray();
        }
        finally
        {
            _gate.Release();
        }

        using var response = await PostAsync("eas/v1/downlink", new EasDownlink(sessionId, message), cancellationToken).ConfigureAwait(false);
        return response.StatusCode == HttpStatusCode.Accepted;
    }

    /// <summary>Asks the HSE to refresh the keys of the UE known here as <paramref name="externalId"/>.</summary>
    public async Task<bool> RequestRefreshAsync(string externalId, CancellationToken cancellationToken = default)
    {
        using var response = await PostAsync("eas/v1/refresh", new EasKeyRefresh(externalId, _options.PreferredEnterpriseKeyIdentifier(externalId)), cancellationToken).ConfigureAwait(false);
        return response.StatusCode == HttpStatusCode.Accepted;
    }

    /// <summary>
    /// Key agreement only: a DTLS 1.2 PSK server (TLS_PSK_WITH_AES_128_CCM_8) whose keys come from the HSE, by the
    /// PSK identity <c>&lt;external id&gt;#&lt;key identifier&gt;</c> the device presents. The caller disposes it.
    /// </summary>
    public Dtls.DtlsPskServer StartDtls(IPEndPoint endPoint, Func<string, byte[], byte[]?> handler) =>
        new(endPoint, (identity, peer) => _pskCache.Get(identity, peer), handler);

    /// <summary>
    /// Key agreement only: a TLS-PSK server over TCP (TLS 1.3 external PSK or TLS 1.2 PSK) whose keys come from the HSE, by
    /// the PSK identity the device presents; each connection goes to <paramref name="handler"/>. The caller disposes it.
    /// </summary>
    public Dtls.PskTlsListener StartTls(IPEndPoint endPoint, Func<string, Stream, CancellationToken, Task> handler) =>
        new(endPoint, (identity, peer) => _pskCache.Get(identity, peer), handler);

    /// <summary>Key requests the DTLS server's PSK lookups made to the HSE (the rest came from the cache, or were over the rate).</summary>
    public long PskRequests => _pskCache.Requests;

    /// <summary>The K_EAS_PSK the HSE holds for a PSK identity, or null (unknown, malformed, or another EAS's device).</summary>
    public async Task<byte[]?> FetchPskAsync(string identity)
    {
        ArgumentNullException.ThrowIfNull(identity);
        return await RequestPskAsync(_http, _options.EndpointId, identity, CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>The HSE's key request for a PSK identity (<c>&lt;external id&gt;#&lt;8 hex digits&gt;</c>; anything else is null without asking), for <paramref name="endpointId"/> when given.</summary>
    private static async Task<byte[]?> RequestPskAsync(HttpClient http, string? endpointId, string identity, CancellationToken cancellationToken)
    {
        var hash = identity.LastIndexOf('#');
        if (hash <= 0 || !uint.TryParse(identity.AsSpan(hash + 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var keyIdentifier) || identity.Length - hash - 1 != 8)
        {
            return null;
        }

        using var response = await PostAsync(http, "eas/v1/keys", new EasSessionRequest(identity[..hash], keyIdentifier) { EndpointId = endpointId }, cancellationToken).ConfigureAwait(false);
        return await KeysOfAnswerAsync(response).ConfigureAwait(false) is { } keys ? keys.KEasPsk : null;
    }

    /// <summary>The keys in the HSE's answer to a key request, or null; the body (which carries the key) is zeroed.</summary>
    private static async Task<EasSessionKeys?> KeysOfAnswerAsync(HttpResponseMessage response)
    {
        if (response.StatusCode != HttpStatusCode.OK)
        {
            return null;
        }

        await using var stream = await response.Content.ReadAsStreamAsync().ConfigureAwait(false);
        using var body = await ReceivedBody.ReadAsync(stream).ConfigureAwait(false);
        return !body.TooLarge && EasXml.TryRead(body.Span, out var message, out _) && message is EasSessionStart { Keys: { } keys } ? keys : null;
    }

    /// <summary>Stops listening (the registration stays: the HSE keeps the outbox for a restarted EAS).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        try
        {
            if (_server is not null)
            {
                // Requests in progress finish (up to 5 s) before the state goes: they may be writing the log or counters.
                using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                try
                {
                    await _server.StopAsync(grace.Token).ConfigureAwait(false);
                }
                finally
                {
                    await _server.DisposeAsync().ConfigureAwait(false);
                }
            }
        }
        finally
        {
            // Whatever still holds the gates (a caller's downlink) finishes first; callers that come later see the EAS
            // disposed. The lock is released last, so a next EAS on this folder never shares a counter with this one.
            await _uplinkGate.WaitAsync().ConfigureAwait(false);
            await _gate.WaitAsync().ConfigureAwait(false);
            _pskCache.Dispose();
            _http.Dispose();
            _endpoint.Dispose();
            _gate.Release();
            _uplinkGate.Release();
            await _folderLock.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task ListenAsync(CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(_options.Listen, listen => listen.UseHttps(new HttpsConnectionAdapterOptions
        {
            ServerCertificate = _options.Certificate,
            ClientCertificateMode = ClientCertificateMode.RequireCertificate,
            // Only the HSE: a certificate of the interface's CA whose common name is "hse".
            ClientCertificateValidation = (certificate, _, _) => DevelopmentPki.IsIssuedBy(certificate, _options.Ca) && DevelopmentPki.IdentityOf(certificate) == DevelopmentPki.HseIdentity,
        })));
        var app = builder.Build();
        app.MapPost("/keys", (Func<HttpContext, Task<IResult>>)(context => HandleAsync(context, OnKeysAsync)));
        app.MapPost("/uplink", (Func<HttpContext, Task<IResult>>)(context => HandleAsync(context, OnUplinkAsync)));
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        _server = app;
        var address = app.Services.GetService(typeof(IServer)) is IServer server ? server.Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault() : null;
        Endpoint = new Uri((address ?? app.Urls.First()).Replace("[::]", "127.0.0.1", StringComparison.Ordinal) + "/");
    }

    private async Task RegisterAsync(CancellationToken cancellationToken)
    {
        using var response = await PostAsync("eas/v1/registrations", new EasSessionRegister(_options.EasId, Endpoint), cancellationToken).ConfigureAwait(false);
        var body = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.Created || !EasXml.TryRead(body, out var message, out _) || message is not EasSessionRegistered registered)
        {
            throw new HttpRequestException($"the HSE refused the registration of {_options.EasId} ({(int)response.StatusCode})");
        }

        RegistrationId = registered.RegistrationId;
    }

    private async Task<IResult> OnKeysAsync(EasMessage message)
    {
        if (message is not EasSessionRequest { Keys: { } keys } request)
        {
            return Xml(400, new EasProblem("expected EasSessionRequest with keys"));
        }

        var preferred = keys.UeToEasMode ? _options.PreferredEnterpriseKeyIdentifier(request.ExternalId) : null;
        _ = await InstallAsync(request.ExternalId, keys, request.KeyIdentifier).ConfigureAwait(false);
        // The Enterprise Key this EAS wants the device to use: when the keys named another, the HSE refreshes them.
        return Xml(200, new EasSessionStart(request.ExternalId, request.KeyIdentifier, EnterpriseKeyIdentifier: preferred));
    }

    private async Task<IResult> OnUplinkAsync(EasMessage message)
    {
        if (message is not EasUplink uplink)
        {
            return Xml(400, new EasProblem("expected EasUplink"));
        }

        // One uplink at a time, from the sequence check to the log: a retry of a message still being handled
        // waits for it, and then finds it logged.
        await _uplinkGate.WaitAsync().ConfigureAwait(false);
        try
        {
            return await OnUplinkInOrderAsync(uplink).ConfigureAwait(false);
        }
        finally
        {
            _uplinkGate.Release();
        }
    }

    private async Task<IResult> OnUplinkInOrderAsync(EasUplink uplink)
    {
        if (uplink.Sequence <= LastSequence)
        {
            return Results.StatusCode(200); // delivered before (the HSE sends again after a restart): not twice
        }

        if (HeaderPrefix.TryRead(uplink.Message, out var prefix) != ParseStatus.Ok)
        {
            Interlocked.Increment(ref _dropped);
            await RecordAsync(new EasReceived(uplink.Sequence, uplink.SessionId, uplink.ExternalId, []), deliver: false).ConfigureAwait(false);
            return Results.StatusCode(200);
        }

        bool known;
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            known = _endpoint.HasKeys(uplink.SessionId, prefix.KeyId);
        }
        finally
        {
            _gate.Release();
        }

        // Keys not held (a restart, a push that was lost): fetched from the HSE by the key identifier.
        if (!known && uplink.KeyIdentifier is { } keyIdentifier && !await FetchAsync(uplink.ExternalId, keyIdentifier).ConfigureAwait(false))
        {
            return Xml(503, new EasProblem("the keys of this message are not available yet"));
        }

        StepResult step;
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            step = _endpoint.Receive(uplink.Message);
        }
        finally
        {
            _gate.Release();
        }

        var data = step.Events.OfType<DataReceived>().FirstOrDefault();
        if (data is null)
        {
            Interlocked.Increment(ref _dropped);
        }

        await RecordAsync(new EasReceived(uplink.Sequence, uplink.SessionId, uplink.ExternalId, data?.Payload.ToArray() ?? []), deliver: data is not null).ConfigureAwait(false);
        return Results.StatusCode(200);
    }

    /// <summary>Fetches and installs the keys of a key identifier; false only when the HSE has none (yet). Keys refused here count as fetched: their messages are dropped.</summary>
    private async Task<bool> FetchAsync(string externalId, uint keyIdentifier)
    {
        using var response = await PostAsync("eas/v1/keys", new EasSessionRequest(externalId, keyIdentifier), CancellationToken.None).ConfigureAwait(false);
        if (await KeysOfAnswerAsync(response).ConfigureAwait(false) is not { } keys)
        {
            return false;
        }

        _ = await InstallAsync(externalId, keys, keyIdentifier).ConfigureAwait(false); // zeroes the key
        return true;
    }

    /// <summary>
    /// Installs a key set; false when it is refused: a device that shares an Enterprise Key with this EAS must use it, so a
    /// key set that names none (and no unnamed key is held), or names one not held here, is refused (the operator could
    /// derive its E2E keys); its messages are dropped and counted.
    /// </summary>
    private async Task<bool> InstallAsync(string externalId, EasSessionKeys keys, uint keyIdentifier)
    {
        var enterpriseKey = _options.EnterpriseKeyFor(externalId, keys.EnterpriseKeyIdentifier);
        var required = _options.EnterpriseKeys.ContainsKey(externalId) || _options.NamedEnterpriseKeys.ContainsKey(externalId);
        if (!CipherSuite.TryGet(keys.Suite, out var suite) || (keys.UeToEasMode && required && enterpriseKey.Length == 0))
        {
            CryptographicOperations.ZeroMemory(keys.KEasPsk);
            Interlocked.Increment(ref _refusedKeySets);
            return false;
        }

        var service = keys.Service == "integrity" ? BestService.Integrity : BestService.Confidential;
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            // Each key set with its own Enterprise Key (the one it names; none is the empty key).
            _endpoint.SetEnterpriseKey(keys.SessionId, enterpriseKey);

            _endpoint.Install(new EasKeysReady(keys.SessionId, _options.EasId, keys.KeyId, suite, service, keys.CounterLength, keyIdentifier, keys.KEasPsk) { UeToEasMode = true });
            if (_reservation.Limit(keys.SessionId, keys.KeyId) is { } limit)
            {
                _endpoint.ResumeDownlinkAt(keys.SessionId, keys.KeyId, limit);
            }

            _externalIds[keys.SessionId] = externalId;
            return true;
        }
        finally
        {
            _gate.Release();
            CryptographicOperations.ZeroMemory(keys.KEasPsk);
        }
    }

    /// <summary>Appends the message with its sequence (fsync), then hands it to the application: each sequence once.</summary>
    private async Task RecordAsync(EasReceived received, bool deliver)
    {
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (received.Sequence <= _lastSequence)
            {
                return;
            }

            var line = JsonSerializer.Serialize(new { seq = received.Sequence, session = received.SessionId, ue = received.ExternalId, payload = Convert.ToBase64String(received.Payload), delivered = deliver }) + "\n";
            var created = !File.Exists(_log);
            await using (var stream = new FileStream(_log, FileMode.Append, FileAccess.Write, FileShare.Read))
            {
                await stream.WriteAsync(Encoding.UTF8.GetBytes(line)).ConfigureAwait(false);
                stream.Flush(flushToDisk: true);
            }

            if (created)
            {
                DurableFile.SyncDirectory(Path.GetDirectoryName(_log)!); // the new log's name is on disk too
            }

            Interlocked.Exchange(ref _lastSequence, received.Sequence);
        }
        finally
        {
            _gate.Release();
        }

        if (deliver)
        {
            await _deliver(received).ConfigureAwait(false);
        }
    }

    private static long LastSequenceIn(string log)
    {
        if (!File.Exists(log))
        {
            return 0;
        }

        long last = 0;
        foreach (var line in File.ReadLines(log))
        {
            try
            {
                using var json = JsonDocument.Parse(line);
                last = Math.Max(last, json.RootElement.GetProperty("seq").GetInt64());
            }
            catch (JsonException)
            {
                // A line cut by a crash: the message it held was not acknowledged to the HSE, which sends it again.
            }
        }

        return last;
    }

    private Task<HttpResponseMessage> PostAsync(string path, EasMessage message, CancellationToken cancellationToken) => PostAsync(_http, path, message, cancellationToken);

    private static async Task<HttpResponseMessage> PostAsync(HttpClient http, string path, EasMessage message, CancellationToken cancellationToken)
    {
        using var content = new ByteArrayContent(EasXml.Write(message));
        content.Headers.ContentType = new MediaTypeHeaderValue(EasXml.MediaType);
        return await http.PostAsync(new Uri(path, UriKind.Relative), content, cancellationToken).ConfigureAwait(false);
    }

    private static async Task<IResult> HandleAsync(HttpContext context, Func<EasMessage, Task<IResult>> handler)
    {
        EasMessage? message = null;
        var error = "too large";
        using (var body = await ReceivedBody.ReadAsync(context.Request.Body, context.RequestAborted).ConfigureAwait(false))
        {
            if (body.TooLarge || !EasXml.TryRead(body.Span, out message, out error))
            {
                return Xml(400, new EasProblem("the body is not a valid HSE–EAS message", error));
            }
        }

        try
        {
            return await handler(message!).ConfigureAwait(false);
        }
        finally
        {
            EasXml.Zero(message);
        }
    }

    private static EasXmlResult Xml(int status, EasMessage message) => new(status, message);
}

/// <summary>Downlink counter reservations in a file, written (and synced) before a counter of a new block is used.</summary>
internal sealed class FileCounterReservation : ICounterReservation
{
    private readonly string _path;
    private readonly Dictionary<string, ulong> _limits;
    private readonly object _lock = new();

    public FileCounterReservation(string path)
    {
        _path = path;
        _limits = File.Exists(path) ? JsonSerializer.Deserialize<Dictionary<string, ulong>>(File.ReadAllText(path)) ?? [] : [];
    }

    public ulong? Limit(uint sessionId, byte keyId)
    {
        lock (_lock)
        {
            return _limits.TryGetValue(Key(sessionId, keyId), out var limit) ? limit : null;
        }
    }

    public void Reserve(uint sessionId, byte keyId, Direction direction, Plane plane, ulong limit)
    {
        lock (_lock)
        {
            _limits[Key(sessionId, keyId)] = limit;
            DurableFile.Replace(_path, JsonSerializer.SerializeToUtf8Bytes(_limits));
        }
    }

    private static string Key(uint sessionId, byte keyId) => string.Create(CultureInfo.InvariantCulture, $"{sessionId}/{keyId}");
}

/// <summary>
/// The DTLS and TLS-PSK servers' PSK lookups, in front of the HSE. A key the HSE gave is kept for 60 s and a refusal for 1 s, for 4096
/// identities at most (expired ones go first, then those closest to expiring). An identity that is not
/// <c>&lt;external id&gt;#&lt;8 hex digits&gt;</c> is refused without asking. At most 50 requests a second reach the HSE, and
/// at most 5 a second for one source address, so one peer cannot use up the others' share. Each lookup gets its own copy
/// of the key; a cached key is zeroed when it leaves the cache.
/// </summary>
internal sealed class PskCache(Func<string, byte[]?> fetch, Func<long>? clock = null) : IDisposable
{
    internal const int MaxEntries = 4096;
    internal const int RequestsPerSecond = 50;
    internal const int RequestsPerSecondPerSource = 5;
    private const long KeyLifetimeMs = 60_000;
    private const long RefusalLifetimeMs = 1_000; // short: a device may ask just before the HSE keeps its key
    private readonly Dictionary<string, (byte[]? Key, long Expires)> _entries = new(StringComparer.Ordinal);
    private readonly Dictionary<IPAddress, int> _perSource = [];
    private readonly Func<long> _clock = clock ?? (() => Environment.TickCount64);
    private readonly object _lock = new();
    private long _second = -1;
    private int _requestsThisSecond;
    private long _requests;
    private bool _disposed;

    public long Requests => Interlocked.Read(ref _requests);

    public byte[]? Get(string identity, IPEndPoint? source = null)
    {
        if (!IsIdentity(identity))
        {
            return null;
        }

        var now = _clock();
        lock (_lock)
        {
            if (_disposed)
            {
                return null;
            }

            if (_entries.TryGetValue(identity, out var entry))
            {
                if (entry.Expires > now)
                {
                    return entry.Key?.ToArray();
                }

                Forget(identity, entry.Key);
            }

            if (now / 1000 != _second)
            {
                _second = now / 1000;
                _requestsThisSecond = 0;
                _perSource.Clear();
            }

            var fromSource = source is null ? 0 : _perSource.GetValueOrDefault(source.Address);
            if (_requestsThisSecond >= RequestsPerSecond || fromSource >= RequestsPerSecondPerSource)
            {
                return null;
            }

            _requestsThisSecond++;
            if (source is not null)
            {
                _perSource[source.Address] = fromSource + 1;
            }
        }

        Interlocked.Increment(ref _requests);
        var key = fetch(identity);

        // The lifetimes count from the HSE's answer: a slow answer (a busy HSE) must not shorten them, or a refusal that
        // took over 1 s to come would be kept already expired, and every lookup of that identity would reach the HSE.
        now = _clock();
        lock (_lock)
        {
            if (_disposed)
            {
                return key;
            }

            if (_entries.Remove(identity, out var raced))
            {
                CryptographicOperations.ZeroMemory(raced.Key);
            }

            if (_entries.Count >= MaxEntries)
            {
                // Expired entries first, then the quarter closest to expiring.
                var victims = _entries.Where(e => e.Value.Expires <= now).ToList();
                if (victims.Count == 0)
                {
                    victims = [.. _entries.OrderBy(e => e.Value.Expires).Take(MaxEntries / 4)];
                }

                foreach (var (name, old) in victims)
                {
                    Forget(name, old.Key);
                }
            }

            _entries[identity] = (key?.ToArray(), now + (key is null ? RefusalLifetimeMs : KeyLifetimeMs));
        }

        return key;
    }

    /// <summary>Whether <paramref name="identity"/> has the profile's form: an external id, '#', 8 lowercase hex digits.</summary>
    internal static bool IsIdentity(string identity)
    {
        var hash = identity.LastIndexOf('#');
        return hash > 0 && identity.Length - hash - 1 == 8 && !identity.AsSpan(hash + 1).ContainsAnyExcept(LowerHex);
    }

    private static readonly System.Buffers.SearchValues<char> LowerHex = System.Buffers.SearchValues.Create("0123456789abcdef");

    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            foreach (var (name, entry) in _entries.ToList())
            {
                Forget(name, entry.Key);
            }
        }
    }

    private void Forget(string identity, byte[]? key)
    {
        _entries.Remove(identity);
        if (key is not null)
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }
}
