using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Xml.Linq;
using OpenBest.Crypto;
using OpenBest.Crypto.Aka;
using OpenBest.Crypto.Kdf;

namespace OpenBest.Obf;

/// <summary>How a bootstrapping ended.</summary>
public enum GbaBootstrapStatus
{
    /// <summary>200 with BootstrappingInfo, and rspauth verified: the server knows RES, so it ran the same AKA.</summary>
    Bootstrapped,

    /// <summary>The USIM refused AUTN's MAC: the server is not the subscriber's (or its keys are wrong). Nothing was sent back.</summary>
    NetworkNotAuthenticated,

    /// <summary>The server refused the answer (401/403 after the response): the USIM's keys do not match the server's.</summary>
    Refused,

    /// <summary>The server's answers did not follow TS 24.109 (no challenge, a malformed nonce, rspauth missing or wrong).</summary>
    ProtocolError,

    /// <summary>
    /// The secure element was transferred to another server (403, cause TRANSFERRED): <see cref="GbaBootstrap.TransferRecord"/>
    /// holds the record the card verifies before it trusts <see cref="GbaBootstrap.NewServer"/>.
    /// </summary>
    Transferred,
}

/// <summary>A resource right of the bootstrapped device, as the server lists it in BootstrappingInfo (docs/protocol.md).</summary>
/// <param name="Naf">The beneficiary application's FQDN.</param>
/// <param name="DataClass">The data class it controls.</param>
public sealed record BootstrapRight(string Naf, string DataClass)
{
    /// <summary>The namespace of the <c>rights</c> element in BootstrappingInfo's extension point.</summary>
    public const string Namespace = "urn:openbest:obf";
}

/// <summary>
/// The outcome of one bootstrapping: the B-TID, the key lifetime and Ks = CK ‖ IK, which <see cref="DeriveKsNaf"/> turns into
/// a NAF's key. Ks and RAND are zeroed by <see cref="Dispose"/>.
/// </summary>
public sealed class GbaBootstrap : IDisposable
{
    private readonly SecretBuffer? _ks;
    private readonly byte[] _rand;

    internal GbaBootstrap(GbaBootstrapStatus status, string detail, string? btid = null, DateTimeOffset lifetime = default, byte[]? rand = null, SecretBuffer? ks = null, bool resynchronised = false)
    {
        Status = status;
        Detail = detail;
        BTid = btid;
        Lifetime = lifetime;
        _rand = rand ?? [];
        _ks = ks;
        Resynchronised = resynchronised;
    }

    /// <summary>How it ended.</summary>
    public GbaBootstrapStatus Status { get; }

    /// <summary>One line on what happened (never key material).</summary>
    public string Detail { get; }

    /// <summary>The bootstrapping transaction identifier, base64(RAND)@domain.</summary>
    public string? BTid { get; }

    /// <summary>When Ks expires, as the server said.</summary>
    public DateTimeOffset Lifetime { get; }

    /// <summary>Whether the USIM's SQN was out of range and the server resynchronised before this run.</summary>
    public bool Resynchronised { get; }

    /// <summary>Transferred: the signed record (for the card's Verify-and-Store), else empty.</summary>
    public byte[] TransferRecord { get; init; } = [];

    /// <summary>Transferred: the new server's Ub endpoint as the old one said (trust it only once the card verified the record).</summary>
    public string? NewServer { get; init; }

    /// <summary>The device's resource rights as the server listed them with the B-TID (covered by rspauth); empty when it listed none.</summary>
    public IReadOnlyList<BootstrapRight> Rights { get; init; } = [];

    /// <summary>GBA_U: Ks stayed in the card, so <see cref="DeriveKsNaf"/> is not available (the card derives NAF keys).</summary>
    public bool KeysInCard { get; init; }

    /// <summary>Ks_NAF = KDF(Ks, "gba-me", RAND, IMPI, NAF_Id) (TS 33.220 4.5.2, B.3): the key a NAF fetches from the key service.</summary>
    /// <exception cref="InvalidOperationException">The bootstrapping did not succeed.</exception>
    public void DeriveKsNaf(string impi, string nafFqdn, ReadOnlySpan<byte> uaSecurityProtocolId, Span<byte> ksNaf)
    {
        if (_ks is null)
        {
            throw new InvalidOperationException("There is no Ks: the bootstrapping did not succeed.");
        }

        var ks = _ks.Span;
        Gba.KsNaf(ks[..16], ks[16..], _rand, impi, Gba.NafId(nafFqdn, uaSecurityProtocolId), ksNaf);
    }

    /// <summary>Zeroes Ks.</summary>
    public void Dispose()
    {
        _ks?.Dispose();
        CryptographicOperations.ZeroMemory(_rand);
    }

    /// <summary>Never shows key material.</summary>
    public override string ToString() => $"GbaBootstrap({Status}, {BTid})";
}

/// <summary>
/// A GBA_ME on Ub (TS 24.109 4.4 and Annex A; RFC 3310 HTTP Digest AKAv1-MD5, qop=auth-int, request-URI "/"): GET / with the
/// IMPI, AKA on the USIM with the RAND and AUTN of the 401's nonce, the answer with RES as the binary password, and the
/// server's rspauth checked before Ks is trusted. A synchronisation failure sends AUTS (digest over an empty password) and
/// runs the fresh challenge that follows; a MAC failure sends nothing more.
/// </summary>
public sealed class GbaClient
{
    private readonly HttpClient _ub;
    private readonly IUsim? _usim;
    private readonly IGbaUicc? _uicc;

    /// <summary>A GBA_ME on <paramref name="ub"/> (whose base address is the server's Ub) with <paramref name="usim"/>.</summary>
    public GbaClient(HttpClient ub, IUsim usim)
    {
        ArgumentNullException.ThrowIfNull(ub);
        ArgumentNullException.ThrowIfNull(usim);
        _ub = ub;
        _usim = usim;
    }

    /// <summary>
    /// GBA_U on <paramref name="ub"/> with <paramref name="uicc"/> (TS 33.220 5.3.2, G.1): the card runs AKA in the GBA context and
    /// keeps Ks; this client only carries RAND, AUTN, RES (or AUTS) and writes the B-TID and lifetime into EF_GBABP. No key ever
    /// reaches it: <see cref="GbaBootstrap.KeysInCard"/> is true and NAF keys come from the card.
    /// </summary>
    public GbaClient(HttpClient ub, IGbaUicc uicc)
    {
        ArgumentNullException.ThrowIfNull(ub);
        ArgumentNullException.ThrowIfNull(uicc);
        _ub = ub;
        _uicc = uicc;
    }

    /// <summary>Bootstraps as <paramref name="impi"/>. Network and server failures are statuses; only cancellation throws.</summary>
    /// <exception cref="HttpRequestException">The server cannot be reached.</exception>
    public async Task<GbaBootstrap> BootstrapAsync(string impi, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(impi);
        var realm = _ub.BaseAddress?.Host ?? string.Empty;
        var resynchronised = false;
        using var first = Get($"Digest username=\"{Escape(impi)}\", realm=\"{Escape(realm)}\", nonce=\"\", uri=\"/\", response=\"\"");
        var challenge = await _ub.SendAsync(first, cancellationToken).ConfigureAwait(false);
        // At most one resynchronisation: a second synchronisation failure in a row means the server's SQN handling is broken.
        try
        {
            for (var round = 0; round < 2; round++)
            {
                if (round == 0 && challenge.StatusCode == HttpStatusCode.Forbidden && await TransferredAsync(challenge, cancellationToken).ConfigureAwait(false) is { } moved)
                {
                    return moved;
                }

                if (challenge.StatusCode != HttpStatusCode.Unauthorized || !DigestParameters.TryParse(challenge.Headers.WwwAuthenticate.ToString(), out var digest)
                    || digest["nonce"] is not { } nonce || digest["realm"] is not { } challengeRealm || !TryNonce(nonce, out var rand, out var autn))
                {
                    return new GbaBootstrap(GbaBootstrapStatus.ProtocolError, $"Ub answered {(int)challenge.StatusCode} without a Digest AKAv1-MD5 challenge (TS 24.109 4.4.3)");
                }

                var opaque = digest["opaque"];
                UsimAuthenticationResult authenticated;
                lock ((object?)_uicc ?? _usim!)
                {
                    // One card, one command at a time, as on a real card (several clients may share a USIM).
                    authenticated = _uicc is not null ? _uicc.BootstrapGba(rand, autn) : _usim!.Authenticate(rand, autn);
                }

                using var answer = authenticated;
                switch (answer.Status)
                {
                    case UsimAuthenticationStatus.MacFailure:
                        return new GbaBootstrap(GbaBootstrapStatus.NetworkNotAuthenticated, "the USIM refused AUTN (MAC failure): the server does not hold this card's keys");
                    case UsimAuthenticationStatus.SynchronisationFailure:
                        // RFC 3310 3.4: the response over an empty password, with auts.
                        var auts = Convert.ToBase64String(answer.Auts);
                        using (var resync = Get(Answer(impi, challengeRealm, nonce, opaque, [], auts, out _)))
                        {
                            var fresh = await _ub.SendAsync(resync, cancellationToken).ConfigureAwait(false);
                            challenge.Dispose();
                            challenge = fresh;
                        }

                        resynchronised = true;
                        continue;
                }

                using var second = Get(Answer(impi, challengeRealm, nonce, opaque, answer.Res, auts: null, out var cnonce));
                using var ok = await _ub.SendAsync(second, cancellationToken).ConfigureAwait(false);
                if (ok.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
                {
                    return new GbaBootstrap(GbaBootstrapStatus.Refused, $"the server refused the response ({(int)ok.StatusCode}): the card's keys do not match the server's");
                }

                var body = await ok.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
                if (ok.StatusCode != HttpStatusCode.OK || !TryBootstrappingInfo(body, out var btid, out var lifetime, out var rights))
                {
                    return new GbaBootstrap(GbaBootstrapStatus.ProtocolError, $"Ub answered {(int)ok.StatusCode} without a BootstrappingInfo (TS 24.109 4.5.1)");
                }

                // Mutual authentication: rspauth proves the server knew XRES (RFC 3310 3.3, over the body with auth-int).
                var info = ok.Headers.TryGetValues("Authentication-Info", out var values) ? string.Join(", ", values) : null;
                var expected = AkaDigest.ResponseAuth(impi, challengeRealm, answer.Res, "/", nonce, "00000001", cnonce, body);
                if (!DigestParameters.TryParse("Digest " + info, out var authInfo) || !AkaDigest.Matches(expected, authInfo["rspauth"]))
                {
                    return new GbaBootstrap(GbaBootstrapStatus.ProtocolError, "the server's rspauth is missing or wrong: it did not prove it ran the same AKA");
                }

                if (_uicc is not null)
                {
                    // GBA_U: the card keeps Ks; the ME finishes by writing B-TID and lifetime beside RAND (TS 33.220 G.1).
                    // EF_GBABP holds 255 octets: RAND, the B-TID and the lifetime with their lengths.
                    if (System.Text.Encoding.UTF8.GetByteCount(btid) > 200)
                    {
                        return new GbaBootstrap(GbaBootstrapStatus.ProtocolError, "the B-TID is longer than EF_GBABP holds (200 octets)");
                    }

                    try
                    {
                        _uicc.StoreBootstrappingParameters(rand, btid, lifetime);
                    }
                    catch (IOException e)
                    {
                        return new GbaBootstrap(GbaBootstrapStatus.ProtocolError, $"the card did not take the bootstrapping parameters: {e.Message}");
                    }

                    return new GbaBootstrap(GbaBootstrapStatus.Bootstrapped, resynchronised ? "bootstrapped (GBA_U) after resynchronising the SQN" : "bootstrapped (GBA_U: Ks stays in the card)", btid, lifetime, rand, null, resynchronised) { KeysInCard = true, Rights = rights };
                }

                var ks = new SecretBuffer(32);
                answer.Ck.CopyTo(ks.WritableSpan);
                answer.Ik.CopyTo(ks.WritableSpan[16..]);
                return new GbaBootstrap(GbaBootstrapStatus.Bootstrapped, resynchronised ? "bootstrapped after resynchronising the SQN" : "bootstrapped", btid, lifetime, rand, ks, resynchronised) { Rights = rights };
            }
        }
        finally
        {
            challenge.Dispose();
        }

        return new GbaBootstrap(GbaBootstrapStatus.ProtocolError, "a synchronisation failure again after resynchronising");
    }

    /// <summary>A 403 problem with cause TRANSFERRED, an endpoint and a record; null for any other answer.</summary>
    private static async Task<GbaBootstrap?> TransferredAsync(HttpResponseMessage answer, CancellationToken cancellationToken)
    {
        try
        {
            if (answer.Content.Headers.ContentLength is > 16_384)
            {
                return null;
            }

            var body = await answer.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
            using var problem = System.Text.Json.JsonDocument.Parse(body);
            var root = problem.RootElement;
            if (root.ValueKind == System.Text.Json.JsonValueKind.Object && Text(root, "cause") == UbServer.TransferredCause
                && Text(root, "endpoint") is { Length: > 0 and <= 1024 } newServer
                && Text(root, "record") is { Length: > 0 and <= 1024 } hex && hex.Length % 2 == 0 && hex.All(char.IsAsciiHexDigit))
            {
                return new GbaBootstrap(GbaBootstrapStatus.Transferred, $"transferred to {newServer}") { TransferRecord = Convert.FromHexString(hex), NewServer = newServer };
            }
        }
        catch (System.Text.Json.JsonException)
        {
        }

        return null;

        static string? Text(System.Text.Json.JsonElement o, string name) =>
            o.TryGetProperty(name, out var value) && value.ValueKind == System.Text.Json.JsonValueKind.String ? value.GetString() : null;
    }

    private HttpRequestMessage Get(string authorization)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, "/");
        request.Headers.TryAddWithoutValidation("Authorization", authorization);
        request.Headers.UserAgent.Add(new ProductInfoHeaderValue(_uicc is null ? "OpenBest-GBA_ME" : "OpenBest-GBA_U", "1"));
        if (_uicc is not null)
        {
            // TS 24.109 4.4.3: a UE whose UICC is GBA_U capable says so with the product token "3gpp-gba-uicc".
            request.Headers.UserAgent.Add(new ProductInfoHeaderValue("3gpp-gba-uicc", null));
        }

        return request;
    }

    private static string Answer(string impi, string realm, string nonce, string? opaque, ReadOnlySpan<byte> password, string? auts, out string cnonce)
    {
        cnonce = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        var response = AkaDigest.Response(impi, realm, password, "GET", "/", nonce, "00000001", cnonce, []);
        var header = $"Digest username=\"{Escape(impi)}\", realm=\"{Escape(realm)}\", nonce=\"{Escape(nonce)}\", uri=\"/\", qop={AkaDigest.Qop}, nc=00000001, cnonce=\"{cnonce}\", response=\"{response}\", algorithm={AkaDigest.Algorithm}";
        if (opaque is not null)
        {
            header += $", opaque=\"{Escape(opaque)}\"";
        }

        return auts is null ? header : header + $", auts=\"{auts}\"";
    }

    private static bool TryNonce(string nonce, out byte[] rand, out byte[] autn)
    {
        rand = autn = [];
        var raw = new byte[nonce.Length];
        if (!Convert.TryFromBase64String(nonce, raw, out var length) || length < 32)
        {
            return false;
        }

        rand = raw[..16];
        autn = raw[16..32];
        return true;
    }

    private static bool TryBootstrappingInfo(byte[] body, out string btid, out DateTimeOffset lifetime, out IReadOnlyList<BootstrapRight> rights)
    {
        btid = string.Empty;
        lifetime = default;
        rights = [];
        try
        {
            using var stream = new MemoryStream(body);
            using var reader = System.Xml.XmlReader.Create(stream, new System.Xml.XmlReaderSettings { DtdProcessing = System.Xml.DtdProcessing.Prohibit, XmlResolver = null });
            var root = XDocument.Load(reader, LoadOptions.None).Root;
            XNamespace gba = "uri:3gpp-gba";
            if (root?.Name != gba + "BootstrappingInfo" || root.Element(gba + "btid")?.Value is not { Length: > 0 } id
                || !DateTimeOffset.TryParse(root.Element(gba + "lifetime")?.Value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out lifetime))
            {
                return false;
            }

            btid = id;
            XNamespace obf = BootstrapRight.Namespace;
            rights = [.. root.Elements(obf + "rights").Elements(obf + "right")
                .Select(r => (Naf: (string?)r.Attribute("naf"), Class: (string?)r.Attribute("class")))
                .Where(r => r is { Naf.Length: > 0 and <= 253, Class.Length: > 0 and <= 64 })
                .Select(r => new BootstrapRight(r.Naf!, r.Class!))];
            return true;
        }
        catch (System.Xml.XmlException)
        {
            return false;
        }
    }

    private static string Escape(string value) => value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal);
}
