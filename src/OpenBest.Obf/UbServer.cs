using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using OpenBest.Crypto.Kdf;
using OpenBest.Storage;

namespace OpenBest.Obf;

/// <summary>Policy of the bootstrapping server (RPB = Ub).</summary>
public sealed record UbOptions
{
    /// <summary>The server's domain: the realm of the challenges and the part of every B-TID after "@" (TS 33.220 4.5.2).</summary>
    public string Domain { get; init; } = "bsf.obf.local";

    /// <summary>The lifetime of Ks by local policy (TS 33.220 4.5.2), unless the provider has its own (1 day).</summary>
    public TimeSpan KeyLifetime { get; init; } = TimeSpan.FromDays(1);

    /// <summary>Ks lifetimes of providers that set their own, by provider name.</summary>
    public IReadOnlyDictionary<string, TimeSpan> KeyLifetimeByProvider { get; init; } = new Dictionary<string, TimeSpan>();

    /// <summary>How long a challenge can be answered (60 s).</summary>
    public TimeSpan ChallengeLifetime { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Challenges outstanding at most; beyond it new bootstrappings get 503 (100 000).</summary>
    public int MaxPendingChallenges { get; init; } = 100_000;

    /// <summary>Challenges per identity per minute at most; beyond it 429 (each costs the secure element a SEQ) (20).</summary>
    public int MaxChallengesPerIdentityPerMinute { get; init; } = 20;

    /// <summary>Answer an unknown identity with a challenge nobody can answer, so the server tells no one who is registered (on).</summary>
    public bool HideUnknownIdentities { get; init; } = true;

    /// <summary>The secret of decoy challenges: 32 random octets by default, per process.</summary>
    public ReadOnlyMemory<byte> ServerSecret { get; init; } = RandomNumberGenerator.GetBytes(32);
}

/// <summary>What the Ub endpoint answers: the HTTP status, the headers it needs and the body.</summary>
/// <param name="Status">200, 400, 401, 403, 404, 405, 429 or 503.</param>
/// <param name="WwwAuthenticate">The challenge of a 401, or null.</param>
/// <param name="AuthenticationInfo">Authentication-Info of a 200, or null.</param>
/// <param name="ContentType">The body's media type, or null.</param>
/// <param name="Body">The body.</param>
public sealed record UbAnswer(int Status, string? WwwAuthenticate, string? AuthenticationInfo, string? ContentType, byte[] Body);

/// <summary>
/// The bootstrapping server function of the Open Bootstrap Framework, byte-compatible with a 3GPP BSF on Ub (TS 24.109
/// clause 4 and Annex A; RFC 3310 HTTP Digest AKA, AKAv1-MD5, qop=auth-int, request-URI "/"):
/// <list type="number">
/// <item>GET / with <c>Authorization: Digest username="IMPI", nonce="", uri="/", response=""</c> → 401 with a challenge:
/// nonce = base64(RAND ‖ AUTN ‖ 16 octets of server data), algorithm AKAv1-MD5, qop="auth-int", an opaque.</item>
/// <item>The answer, digest computed with RES as the binary password → Ks = CK ‖ IK kept (sealed) with its lifetime, and
/// 200 with <c>application/vnd.3gpp.bsf+xml</c> BootstrappingInfo (B-TID = base64(RAND)@domain, lifetime) and
/// Authentication-Info with rspauth.</item>
/// <item>An answer with <c>auts</c> (digest with an empty password) → the AuC resynchronises and a fresh challenge comes (401).</item>
/// </list>
/// An identity is an IMPI, or <c>iccid:DIGITS</c> / <c>eid:DIGITS</c> for secure elements that are not USIMs (Y.OBF_trust
/// appendix 2.1: the ICCID or EID is the primary identifier). Nothing a peer sends makes it throw.
/// </summary>
public sealed class UbServer
{
    private readonly IObfStore _store;
    private readonly IObfAuc _auc;
    private readonly ObfWriter _writer;
    private readonly BootstrapCache _cache;
    private readonly UbOptions _options;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<string, Challenge> _pending = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, (long Minute, int Count)> _budget = new(StringComparer.Ordinal);
    private long _sweptAt;

    /// <summary>Creates the server.</summary>
    public UbServer(IObfStore store, IObfAuc auc, ObfWriter writer, BootstrapCache cache, UbOptions? options = null, TimeProvider? time = null)
    {
        _store = store;
        _auc = auc;
        _writer = writer;
        _cache = cache;
        _options = options ?? new UbOptions();
        _time = time ?? TimeProvider.System;
    }

    /// <summary>The media type of the 200 OK body (TS 24.109 annex C).</summary>
    public const string MediaType = "application/vnd.3gpp.bsf+xml";

    /// <summary>The cause of a 403 for a secure element transferred to another server; the problem carries <c>endpoint</c> and <c>record</c>.</summary>
    public const string TransferredCause = "TRANSFERRED";

    /// <summary>Bootstrappings that succeeded.</summary>
    public long Bootstrapped => Interlocked.Read(ref _bootstrapped);

    /// <summary>Answers that failed the digest check, AUTS that did not verify, and answers to unknown identities.</summary>
    public long Refused => Interlocked.Read(ref _refused);

    /// <summary>Resynchronisations done.</summary>
    public long Resynchronised => Interlocked.Read(ref _resynchronised);

    private long _bootstrapped;
    private long _refused;
    private long _resynchronised;

    /// <summary>Handles one request of Ub.</summary>
    public async Task<UbAnswer> HandleAsync(string method, string path, string? authorization, ReadOnlyMemory<byte> body, CancellationToken cancellationToken = default)
    {
        if (path != "/")
        {
            return Text(404, "Ub is served at /");
        }

        if (method != "GET")
        {
            return Text(405, "Ub takes GET /");
        }

        if (!DigestParameters.TryParse(authorization, out var digest) || digest["username"] is not { Length: > 0 and <= 255 } username)
        {
            return Text(400, "an Authorization: Digest header with the username (IMPI) is required (TS 24.109 4.3)");
        }

        Sweep();
        var nonce = digest["nonce"];
        if (string.IsNullOrEmpty(nonce) || !_pending.TryRemove(nonce, out var challenge))
        {
            // The first request, or an answer to a challenge that expired or was used: a (fresh) challenge.
            return NewChallenge(username, stale: !string.IsNullOrEmpty(nonce));
        }

        if (challenge.Expires < _time.GetUtcNow())
        {
            challenge.Zero();
            return NewChallenge(username, stale: true);
        }

        try
        {
            return await AnswerAsync(challenge, digest, username, body, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            challenge.Zero();
        }
    }

    private async Task<UbAnswer> AnswerAsync(Challenge challenge, DigestParameters digest, string username, ReadOnlyMemory<byte> body, CancellationToken cancellationToken)
    {
        // Everything the challenge fixed must come back as it was sent.
        if (username != challenge.Username || digest["realm"] != _options.Domain || digest["uri"] != "/" || digest["qop"] != AkaDigest.Qop
            || !string.Equals(digest["algorithm"] ?? AkaDigest.Algorithm, AkaDigest.Algorithm, StringComparison.OrdinalIgnoreCase)
            || digest["opaque"] != challenge.Opaque || digest["nc"] is not { Length: 8 } nc || digest["cnonce"] is not { Length: > 0 and <= 256 } cnonce)
        {
            return Refuse(400, "the answer does not match its challenge (realm, uri, qop, algorithm, opaque, nc and cnonce are required)");
        }

        var nonce = challenge.Nonce;
        if (digest["auts"] is { } autsText)
        {
            // Synchronisation failure (RFC 3310 3.3, TS 24.109 A.4): the digest uses an empty password.
            var expectedEmpty = AkaDigest.Response(username, _options.Domain, [], "GET", "/", nonce, nc, cnonce, body.Span);
            if (challenge.Element is null || !AkaDigest.Matches(expectedEmpty, digest["response"]) || !TryBase64(autsText, 14, out var auts)
                || !_auc.Resynchronise(challenge.Element, challenge.Rand, auts))
            {
                return Refuse(403, "the synchronisation failure does not verify");
            }

            Interlocked.Increment(ref _resynchronised);
            return NewChallenge(username, stale: false, resynchronised: true);
        }

        var expected = AkaDigest.Response(username, _options.Domain, challenge.Xres, "GET", "/", nonce, nc, cnonce, body.Span);
        if (challenge.Element is null || !AkaDigest.Matches(expected, digest["response"]))
        {
            return Refuse(403, "authentication failed");
        }

        // Ks = CK ‖ IK, the B-TID, the lifetime by the provider's policy (TS 33.220 4.5.2).
        var now = _time.GetUtcNow();
        var element = challenge.Element;
        var lifetime = element.Provider is { } provider && _options.KeyLifetimeByProvider.TryGetValue(provider, out var own) ? own : _options.KeyLifetime;
        var btid = Gba.BTid(challenge.Rand, _options.Domain);
        var record = new BootstrapRecord(btid, element.Impi, challenge.Rand.ToArray(), now, now + lifetime);
        var ks = new byte[32];
        try
        {
            challenge.Ck.CopyTo(ks);
            challenge.Ik.CopyTo(ks.AsSpan(16));
            await _writer.SaveBootstrapAsync(record, ks, new ObfAuditRecord("bootstrapped", element.Impi, btid), cancellationToken).ConfigureAwait(false);
            _cache.Add(record, ks);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(ks);
        }

        Interlocked.Increment(ref _bootstrapped);
        // The device's resource rights ride in the answer that rspauth covers (auth-int), so the device learns, authenticated,
        // which data class goes to which beneficiary (Y.OBF_trust 6.2 g, i).
        var rights = _store.Rights(element.Impi).Select(r => new BootstrapRight(r.NafFqdn, r.DataClass)).ToList();
        var xml = Encoding.UTF8.GetBytes(BootstrappingInfo(btid, record.Expires, rights));
        var rspauth = AkaDigest.ResponseAuth(username, _options.Domain, challenge.Xres, "/", nonce, nc, cnonce, xml);
        return new UbAnswer(200, null, $"qop={AkaDigest.Qop}, rspauth=\"{rspauth}\", cnonce=\"{Escape(cnonce)}\", nc={nc}", MediaType, xml);
    }

    /// <summary>
    /// The 200 OK body of TS 24.109 annex C; the device's rights, when it has any, in the schema's extension point (an element
    /// of another namespace after the lifetime): <c>&lt;rights xmlns="urn:openbest:obf"&gt;&lt;right naf="…" class="…"/&gt;…</c>.
    /// </summary>
    public static string BootstrappingInfo(string btid, DateTimeOffset lifetime, IReadOnlyList<BootstrapRight>? rights = null)
    {
        var text = new StringBuilder("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
        text.Append(CultureInfo.InvariantCulture, $"<BootstrappingInfo xmlns=\"uri:3gpp-gba\"><btid>{System.Security.SecurityElement.Escape(btid)}</btid><lifetime>{lifetime.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture)}</lifetime>");
        if (rights is { Count: > 0 })
        {
            text.Append(CultureInfo.InvariantCulture, $"<rights xmlns=\"{BootstrapRight.Namespace}\">");
            foreach (var right in rights)
            {
                text.Append(CultureInfo.InvariantCulture, $"<right naf=\"{System.Security.SecurityElement.Escape(right.Naf)}\" class=\"{System.Security.SecurityElement.Escape(right.DataClass)}\"/>");
            }

            text.Append("</rights>");
        }

        return text.Append("</BootstrappingInfo>").ToString();
    }

    private UbAnswer NewChallenge(string username, bool stale, bool resynchronised = false)
    {
        if (_pending.Count >= _options.MaxPendingChallenges)
        {
            return Text(503, "too many bootstrappings in progress; try again later");
        }

        // The budget is taken before anything tells a known identity from an unknown one.
        if (!resynchronised && !TakeToken(username))
        {
            return Text(429, "too many bootstrappings of this identity; try again in a minute");
        }

        var element = Resolve(username);
        // A finished transfer forgets the keys in the same transaction, so only an element without keys here can have moved:
        // the store is asked about transfers off the path of every other bootstrap.
        if (element is { HasKeys: false } && _store.Transfer(element.Impi) is { Direction: "out", State: ProviderTransfer.Done } moved)
        {
            // Transferred (Y.OBF_trust 7.5 b): no more bootstrapping here; the answer carries the record the card verifies.
            Interlocked.Increment(ref _refused);
            var package = ProviderTransfer.PackageOf(moved);
            var problem = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(new { title = "transferred", status = 403, cause = TransferredCause, detail = $"this secure element is served by {moved.Peer} now", endpoint = moved.Peer, record = package?.Record },
                System.Text.Json.JsonSerializerOptions.Web);
            return new UbAnswer(403, null, null, "application/problem+json", problem);
        }

        Challenge challenge;
        if (element is not null && _auc.CreateVector(element) is { } vector)
        {
            using (vector)
            {
                challenge = new Challenge(username, element, vector.Rand, vector.Autn, vector.Xres, vector.Ck, vector.Ik);
            }
        }
        else if (element is null && _options.HideUnknownIdentities)
        {
            // A challenge like any other, from (secret, identity, minute): nobody can answer it (Y.OBF_trust: no oracle of who is registered).
            var seed = HMACSHA256.HashData(_options.ServerSecret.Span, Encoding.UTF8.GetBytes($"{username}|{_time.GetUtcNow().ToUnixTimeSeconds() / 60}"));
            var more = SHA256.HashData(seed);
            challenge = new Challenge(username, null, seed.AsSpan(0, 16), more.AsSpan(0, 16), more.AsSpan(16, 8), default, default);
        }
        else
        {
            Interlocked.Increment(ref _refused);
            return Text(403, "unknown identity");
        }

        challenge.Expires = _time.GetUtcNow() + _options.ChallengeLifetime;
        _pending[challenge.Nonce] = challenge;
        var header = $"Digest realm=\"{Escape(_options.Domain)}\", nonce=\"{challenge.Nonce}\", algorithm={AkaDigest.Algorithm}, qop=\"{AkaDigest.Qop}\", opaque=\"{challenge.Opaque}\"" + (stale ? ", stale=TRUE" : string.Empty);
        return new UbAnswer(401, header, null, "text/plain; charset=utf-8", "authentication required\n"u8.ToArray());
    }

    private SecureElementInfo? Resolve(string username)
    {
        if (username.StartsWith("iccid:", StringComparison.Ordinal) || username.StartsWith("eid:", StringComparison.Ordinal))
        {
            var id = username[(username.IndexOf(':', StringComparison.Ordinal) + 1)..];
            return id.Length is >= 10 and <= 32 && id.All(char.IsAsciiDigit) ? _store.SecureElementByCardId(id) : null;
        }

        return _store.SecureElement(username);
    }

    private bool TakeToken(string username)
    {
        var minute = _time.GetUtcNow().ToUnixTimeSeconds() / 60;
        var allowed = true;
        _budget.AddOrUpdate(username, _ => (minute, 1), (_, old) =>
        {
            var count = old.Minute == minute ? old.Count + 1 : 1;
            allowed = count <= _options.MaxChallengesPerIdentityPerMinute;
            return (minute, count);
        });
        return allowed;
    }

    private void Sweep()
    {
        // Expired challenges and old budgets go, at most once a second (never a scan per request).
        var second = _time.GetUtcNow().ToUnixTimeSeconds();
        var last = Interlocked.Read(ref _sweptAt);
        if (second == last || Interlocked.CompareExchange(ref _sweptAt, second, last) != last)
        {
            return;
        }

        var now = _time.GetUtcNow();
        foreach (var (nonce, challenge) in _pending)
        {
            if (challenge.Expires < now && _pending.TryRemove(nonce, out var gone))
            {
                gone.Zero();
            }
        }

        foreach (var (name, (minute, _)) in _budget)
        {
            if (minute < second / 60)
            {
                _budget.TryRemove(name, out _);
            }
        }
    }

    private UbAnswer Refuse(int status, string text)
    {
        Interlocked.Increment(ref _refused);
        return Text(status, text);
    }

    private static UbAnswer Text(int status, string text) => new(status, null, null, "text/plain; charset=utf-8", Encoding.UTF8.GetBytes(text + "\n"));

    private static bool TryBase64(string text, int length, out byte[] bytes)
    {
        bytes = new byte[length];
        return Convert.TryFromBase64String(text, bytes, out var written) && written == length;
    }

    private static string Escape(string value) => value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal);

    /// <summary>A challenge sent and not answered yet: what checking its answer needs. Its keys are zeroed once it is used or expires.</summary>
    private sealed class Challenge
    {
        private readonly byte[] _material = new byte[16 + 16 + 16 + 16 + 16]; // RAND, (unused), XRES up to 16 octets, CK, IK

        public Challenge(string username, SecureElementInfo? element, ReadOnlySpan<byte> rand, ReadOnlySpan<byte> autn, ReadOnlySpan<byte> xres, ReadOnlySpan<byte> ck, ReadOnlySpan<byte> ik)
        {
            Username = username;
            Element = element;
            rand.CopyTo(_material);
            XresLength = Math.Min(xres.Length, 16);
            xres[..XresLength].CopyTo(_material.AsSpan(32, 16));
            ck.CopyTo(_material.AsSpan(48, 16));
            ik.CopyTo(_material.AsSpan(64, 16));
            // nonce = base64(RAND ‖ AUTN ‖ server data): 16 random octets make every nonce unique (TS 24.109 4.3, RFC 3310 3.1).
            Nonce = Gba.UbNonce(rand, autn, RandomNumberGenerator.GetBytes(16));
            Opaque = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        }

        public string Username { get; }

        public SecureElementInfo? Element { get; }

        public string Nonce { get; }

        public string Opaque { get; }

        public DateTimeOffset Expires { get; set; }

        private int XresLength { get; }

        public ReadOnlySpan<byte> Rand => _material.AsSpan(0, 16);

        public ReadOnlySpan<byte> Xres => _material.AsSpan(32, XresLength);

        public ReadOnlySpan<byte> Ck => _material.AsSpan(48, 16);

        public ReadOnlySpan<byte> Ik => _material.AsSpan(64, 16);

        public void Zero() => CryptographicOperations.ZeroMemory(_material);
    }
}
