using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Xml;
using System.Xml.Linq;
using OpenBest.Crypto.Aka;
using OpenBest.Crypto.Kdf;

namespace OpenBest.Obf.Tests;

/// <summary>What the USIM's AUTHENTICATE (3G context) returned.</summary>
internal enum AkaAnswerKind
{
    /// <summary>MAC and SQN verified: RES, CK and IK.</summary>
    Success,

    /// <summary>MAC verified, SQN out of range: AUTS.</summary>
    SynchronisationFailure,

    /// <summary>MAC did not verify: the network is not authentic; nothing is returned.</summary>
    MacFailure,
}

/// <summary>The USIM's answer to one (RAND, AUTN). Dispose zeroes the key material.</summary>
internal sealed class AkaAnswer : IDisposable
{
    private AkaAnswer(AkaAnswerKind kind, byte[] res, byte[] ck, byte[] ik, byte[] auts)
    {
        Kind = kind;
        Res = res;
        Ck = ck;
        Ik = ik;
        Auts = auts;
    }

    public AkaAnswerKind Kind { get; }

    public byte[] Res { get; }

    public byte[] Ck { get; }

    public byte[] Ik { get; }

    public byte[] Auts { get; }

    public static AkaAnswer Success(ReadOnlySpan<byte> res, ReadOnlySpan<byte> ck, ReadOnlySpan<byte> ik)
    {
        if (res.Length is < 4 or > 16 || ck.Length != 16 || ik.Length != 16)
        {
            throw new ArgumentException("RES is 4 to 16 octets (TS 33.102 6.3.2), CK and IK 16 each.");
        }

        return new AkaAnswer(AkaAnswerKind.Success, res.ToArray(), ck.ToArray(), ik.ToArray(), []);
    }

    public static AkaAnswer SynchronisationFailure(ReadOnlySpan<byte> auts)
    {
        if (auts.Length != 14)
        {
            throw new ArgumentException("AUTS is 14 octets.", nameof(auts));
        }

        return new AkaAnswer(AkaAnswerKind.SynchronisationFailure, [], [], [], auts.ToArray());
    }

    public static AkaAnswer MacFailure() => new(AkaAnswerKind.MacFailure, [], [], [], []);

    /// <summary>Runs <paramref name="usim"/> on (RAND, AUTN) and copies its answer.</summary>
    public static AkaAnswer FromUsim(Usim usim, ReadOnlySpan<byte> rand, ReadOnlySpan<byte> autn)
    {
        ArgumentNullException.ThrowIfNull(usim);
        using var result = usim.Authenticate(rand, autn);
        return result.Status switch
        {
            UsimAuthenticationStatus.Success => Success(result.Res, result.Ck, result.Ik),
            UsimAuthenticationStatus.SynchronisationFailure => SynchronisationFailure(result.Auts),
            _ => MacFailure(),
        };
    }

    public void Dispose()
    {
        CryptographicOperations.ZeroMemory(Res);
        CryptographicOperations.ZeroMemory(Ck);
        CryptographicOperations.ZeroMemory(Ik);
    }
}

/// <summary>The USIM seen by the ME: AUTHENTICATE on 16-octet RAND and AUTN.</summary>
internal delegate AkaAnswer UsimFunction(byte[] rand, byte[] autn);

/// <summary>How a bootstrapping run ended.</summary>
internal enum GbaBootstrapOutcome
{
    /// <summary>AKA succeeded, the BSF proved knowledge of XRES (rspauth) over the 200 OK body, and the body held a usable B-TID and lifetime.</summary>
    Bootstrapped,

    /// <summary>The USIM found the AUTN's MAC wrong (TS 24.109 4.4): the BSF is not authentic; no response was sent.</summary>
    NetworkAuthenticationFailed,

    /// <summary>The USIM found the SQN out of range again after one resynchronisation (TS 24.109 4.5); the client gave up.</summary>
    SynchronisationFailed,

    /// <summary>The BSF refused (a status other than 401 to the first request, anything but 200 to the digest response).</summary>
    Rejected,

    /// <summary>The 200 OK had no valid Authentication-Info rspauth: the answer is not from a BSF that knows XRES, or its body was altered.</summary>
    ServerNotAuthenticated,

    /// <summary>The BSF broke the protocol (an unusable challenge, a wrong body or media type, an inconsistent B-TID, …).</summary>
    ProtocolViolation,
}

/// <summary>
/// The result of <see cref="GbaMeClient.RunAsync"/>. On <see cref="GbaBootstrapOutcome.Bootstrapped"/> it
/// holds the bootstrapped security association: B-TID, key lifetime, RAND and Ks = CK ‖ IK.
/// Dispose zeroes Ks.
/// </summary>
internal sealed class GbaBootstrapResult : IDisposable
{
    private readonly byte[]? _ks;

    internal GbaBootstrapResult(GbaBootstrapOutcome outcome, string impi, string? reason, int requests, bool resynchronised, HttpStatusCode? lastStatus, string? bTid = null, DateTimeOffset? lifetime = null, byte[]? rand = null, byte[]? ks = null)
    {
        Outcome = outcome;
        Impi = impi;
        Reason = reason;
        Requests = requests;
        Resynchronised = resynchronised;
        LastStatus = lastStatus;
        BTid = bTid;
        Lifetime = lifetime;
        Rand = rand;
        _ks = ks;
    }

    public GbaBootstrapOutcome Outcome { get; }

    public bool Succeeded => Outcome == GbaBootstrapOutcome.Bootstrapped;

    /// <summary>Why the run did not bootstrap (null on success). Never holds key material.</summary>
    public string? Reason { get; }

    /// <summary>The IMPI the run authenticated.</summary>
    public string Impi { get; }

    /// <summary>How many HTTP requests the client sent.</summary>
    public int Requests { get; }

    /// <summary>Whether a synchronisation failure (AUTS) was sent during the run.</summary>
    public bool Resynchronised { get; }

    /// <summary>The status of the last HTTP response received, if any.</summary>
    public HttpStatusCode? LastStatus { get; }

    /// <summary>The bootstrapping transaction identifier from the 200 OK body.</summary>
    public string? BTid { get; }

    /// <summary>The key lifetime from the 200 OK body (UTC).</summary>
    public DateTimeOffset? Lifetime { get; }

    /// <summary>The RAND of the successful challenge.</summary>
    public byte[]? Rand { get; }

    /// <summary>Ks = CK ‖ IK (32 octets) on success.</summary>
    public ReadOnlySpan<byte> Ks => _ks;

    /// <summary>Ks_NAF = KDF(Ks, 0x01, "gba-me", RAND, IMPI, NAF_Id), NAF_Id = FQDN ‖ Ua security protocol id (TS 33.220 B.3, H).</summary>
    /// <exception cref="InvalidOperationException">The run did not bootstrap.</exception>
    public byte[] DeriveKsNaf(string nafFqdn, ReadOnlySpan<byte> uaSecurityProtocolId)
    {
        ArgumentNullException.ThrowIfNull(nafFqdn);
        if (_ks is null || Rand is null)
        {
            throw new InvalidOperationException($"No key: the bootstrapping run ended with {Outcome}.");
        }

        var ksNaf = new byte[32];
        Gba.KsNaf(_ks.AsSpan(0, 16), _ks.AsSpan(16, 16), Rand, Impi, Gba.NafId(nafFqdn, uaSecurityProtocolId), ksNaf);
        return ksNaf;
    }

    public void Dispose()
    {
        if (_ks is not null)
        {
            CryptographicOperations.ZeroMemory(_ks);
        }
    }

    public override string ToString() => Succeeded ? $"Bootstrapped({BTid}, until {Lifetime:O})" : $"{Outcome}: {Reason}";
}

/// <summary>Settings of a <see cref="GbaMeClient"/>.</summary>
internal sealed class GbaMeClientOptions
{
    /// <summary>The realm of the initial request (TS 24.109 A.3: the BSF host name); null = the host of the HttpClient's base address.</summary>
    public string? Realm { get; init; }

    /// <summary>The User-Agent product of the requests.</summary>
    public string UserAgent { get; init; } = "OpenBest-GBA_ME-test-client/1";

    /// <summary>The clock used to judge the key lifetime.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;
}

/// <summary>
/// A GBA_ME bootstrapping client for the Ub reference point, written from RFC 3310, RFC 2617 and
/// TS 24.109 clause 4 / annex A alone: the ME side of HTTP Digest AKA (AKAv1-MD5, qop=auth-int) against
/// a BSF at the HttpClient's base address.
/// </summary>
/// <remarks>
/// <para>Flow (TS 24.109 A.3 / A.4):</para>
/// <list type="number">
/// <item>GET / with <c>Authorization: Digest username="IMPI", realm="BSF host", nonce="", uri="/", response=""</c>.</item>
/// <item>The 401's WWW-Authenticate must carry a Digest challenge with algorithm=AKAv1-MD5 and a qop list
/// containing auth-int; its nonce is base64(RAND ‖ AUTN ‖ server data).</item>
/// <item>The USIM runs AKA. On success the client answers with the digest response (password = RES as raw
/// octets, qop=auth-int, nc=00000001, a random cnonce, the opaque echoed). On a synchronisation failure it
/// answers with <c>auts</c> and a response computed over an empty password, then expects a fresh 401 (one
/// resynchronisation per run). On a MAC failure it stops: the BSF is not authentic.</item>
/// <item>On 200 OK it checks Authentication-Info (rspauth computed with A2 = ":" uri ":" MD5(response body),
/// and the echoed cnonce, nc and qop) before it reads anything of the body, then the media type
/// application/vnd.3gpp.bsf+xml and the BootstrappingInfo document: the B-TID must be base64(RAND)@domain
/// (TS 33.220 4.5.2) and the lifetime a UTC time still in the future.</item>
/// </list>
/// <para>The client never trusts the server: every deviation ends the run with a result naming it.</para>
/// </remarks>
internal sealed class GbaMeClient
{
    private const string DigestUri = "/";
    private const string NonceCount = "00000001";
    private const string BsfMediaType = "application/vnd.3gpp.bsf+xml";
    private const string GbaNamespace = "uri:3gpp-gba";

    private readonly HttpClient _http;
    private readonly UsimFunction _usim;
    private readonly GbaMeClientOptions _options;
    private readonly string _realm;

    /// <summary>Creates a client over the software USIM <paramref name="usim"/>.</summary>
    public GbaMeClient(HttpClient http, string impi, Usim usim, GbaMeClientOptions? options = null)
        : this(http, impi, UsimOf(usim), options)
    {
    }

    /// <summary>Creates a client over a USIM given as a function of (RAND, AUTN).</summary>
    /// <exception cref="ArgumentException">The HttpClient has no base address, or the IMPI is empty.</exception>
    public GbaMeClient(HttpClient http, string impi, UsimFunction usim, GbaMeClientOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentException.ThrowIfNullOrEmpty(impi);
        ArgumentNullException.ThrowIfNull(usim);
        if (http.BaseAddress is null)
        {
            throw new ArgumentException("The HttpClient needs the BSF as its base address.", nameof(http));
        }

        _http = http;
        Impi = impi;
        _usim = usim;
        _options = options ?? new GbaMeClientOptions();
        _realm = _options.Realm ?? http.BaseAddress.Host;
    }

    /// <summary>The private user identity used as the Digest username.</summary>
    public string Impi { get; }

    /// <summary>The last successful bootstrapping, if any.</summary>
    public GbaBootstrapResult? Current { get; private set; }

    /// <summary>Ks_NAF of the last successful bootstrapping (see <see cref="GbaBootstrapResult.DeriveKsNaf"/>).</summary>
    /// <exception cref="InvalidOperationException">No run has bootstrapped yet.</exception>
    public byte[] DeriveKsNaf(string nafFqdn, ReadOnlySpan<byte> uaSecurityProtocolId)
        => (Current ?? throw new InvalidOperationException("Nothing bootstrapped yet.")).DeriveKsNaf(nafFqdn, uaSecurityProtocolId);

    /// <summary>Runs one bootstrapping procedure.</summary>
    public async Task<GbaBootstrapResult> RunAsync(CancellationToken cancellationToken = default)
    {
        var run = new Run(this);
        var result = await run.ExecuteAsync(cancellationToken).ConfigureAwait(false);
        if (result.Succeeded)
        {
            Current = result;
        }

        return result;
    }

    /// <summary>Splits a Ub nonce: base64(RAND ‖ AUTN ‖ server data), the server data ignored (RFC 3310 3.2, TS 33.220 4.5.2).</summary>
    public static bool TrySplitNonce(string? nonce, out byte[] rand, out byte[] autn, out string? error)
    {
        rand = [];
        autn = [];
        byte[] decoded;
        try
        {
            decoded = Convert.FromBase64String(nonce ?? string.Empty);
        }
        catch (FormatException)
        {
            error = "the nonce is not base64";
            return false;
        }

        if (decoded.Length < 32)
        {
            error = $"the nonce holds {decoded.Length} octets, fewer than RAND ‖ AUTN (32)";
            return false;
        }

        rand = decoded[..16];
        autn = decoded[16..32];
        error = null;
        return true;
    }

    /// <summary>Picks the AKAv1-MD5 Digest challenge of a 401 and checks what a GBA_ME needs of it.</summary>
    public static bool TrySelectChallenge(IEnumerable<string> wwwAuthenticate, out AuthChallenge? challenge, out string? error)
    {
        ArgumentNullException.ThrowIfNull(wwwAuthenticate);
        challenge = null;
        var digest = new List<AuthChallenge>();
        var any = false;
        foreach (var field in wwwAuthenticate)
        {
            any = true;
            if (!HttpAuthHeaders.TryParseChallenges(field, out var challenges, out error))
            {
                error = $"malformed WWW-Authenticate: {error}";
                return false;
            }

            digest.AddRange(challenges.Where(c => string.Equals(c.Scheme, "Digest", StringComparison.OrdinalIgnoreCase)));
        }

        if (!any)
        {
            error = "the 401 has no WWW-Authenticate";
            return false;
        }

        // RFC 2617: algorithm is a token, compared case-insensitively; absent means MD5, which is not AKA.
        challenge = digest.FirstOrDefault(c => string.Equals(c["algorithm"], DigestAka.Algorithm, StringComparison.OrdinalIgnoreCase));
        if (challenge is null)
        {
            error = digest.Count == 0 ? "no Digest challenge" : $"no Digest challenge with algorithm={DigestAka.Algorithm} (got {string.Join(", ", digest.Select(c => c["algorithm"] ?? "none"))})";
            return false;
        }

        if (string.IsNullOrEmpty(challenge["realm"]))
        {
            error = "the challenge has no realm";
            return false;
        }

        if (challenge["nonce"] is null)
        {
            error = "the challenge has no nonce";
            return false;
        }

        var qop = challenge["qop"];
        if (qop is null || !qop.Split(',').Select(q => q.Trim()).Contains(DigestAka.QopAuthInt, StringComparer.OrdinalIgnoreCase))
        {
            error = $"the challenge does not offer qop={DigestAka.QopAuthInt} (TS 24.109 4.2)";
            return false;
        }

        error = null;
        return true;
    }

    private static UsimFunction UsimOf(Usim usim)
    {
        ArgumentNullException.ThrowIfNull(usim);
        return (rand, autn) => AkaAnswer.FromUsim(usim, rand, autn);
    }

    /// <summary>The state of one bootstrapping run.</summary>
    private sealed class Run(GbaMeClient client)
    {
        private int _requests;
        private bool _resynchronised;
        private HttpStatusCode? _lastStatus;

        public async Task<GbaBootstrapResult> ExecuteAsync(CancellationToken cancellationToken)
        {
            var initial = $"Digest username={HttpAuthHeaders.Quote(client.Impi)}, realm={HttpAuthHeaders.Quote(client._realm)}, nonce=\"\", uri=\"/\", response=\"\"";
            using var first = await SendAsync(initial, cancellationToken).ConfigureAwait(false);
            if (first.StatusCode != HttpStatusCode.Unauthorized)
            {
                return first.IsSuccessStatusCode
                    ? End(GbaBootstrapOutcome.ProtocolViolation, $"the BSF answered {(int)first.StatusCode} to a request with an empty response, without authenticating")
                    : End(GbaBootstrapOutcome.Rejected, $"the BSF answered {(int)first.StatusCode} to the initial request");
            }

            var challengeFields = WwwAuthenticate(first);
            while (true)
            {
                if (!TrySelectChallenge(challengeFields, out var challenge, out var error))
                {
                    return End(GbaBootstrapOutcome.ProtocolViolation, error!);
                }

                var nonce = challenge!["nonce"]!;
                if (!TrySplitNonce(nonce, out var rand, out var autn, out error))
                {
                    return End(GbaBootstrapOutcome.ProtocolViolation, error!);
                }

                using var aka = client._usim(rand, autn);
                var realm = challenge["realm"]!;
                var opaque = challenge["opaque"];
                switch (aka.Kind)
                {
                    case AkaAnswerKind.MacFailure:
                        return End(GbaBootstrapOutcome.NetworkAuthenticationFailed, "the USIM found the MAC in AUTN wrong: the BSF is not authentic");

                    case AkaAnswerKind.SynchronisationFailure:
                    {
                        if (_resynchronised)
                        {
                            return End(GbaBootstrapOutcome.SynchronisationFailed, "the SQN was still out of range after a resynchronisation");
                        }

                        _resynchronised = true;

                        // RFC 3310 3.4: the response is computed with an empty password, and auts is added.
                        var header = Authorization(realm, nonce, opaque, [], Convert.ToBase64String(aka.Auts), out _);
                        using var next = await SendAsync(header, cancellationToken).ConfigureAwait(false);
                        if (next.StatusCode != HttpStatusCode.Unauthorized)
                        {
                            return next.IsSuccessStatusCode
                                ? End(GbaBootstrapOutcome.ProtocolViolation, $"the BSF answered {(int)next.StatusCode} to a synchronisation failure instead of a new challenge")
                                : End(GbaBootstrapOutcome.Rejected, $"the BSF answered {(int)next.StatusCode} to the synchronisation failure");
                        }

                        challengeFields = WwwAuthenticate(next);
                        continue;
                    }

                    default:
                    {
                        var header = Authorization(realm, nonce, opaque, aka.Res, auts: null, out var cnonce);
                        using var answer = await SendAsync(header, cancellationToken).ConfigureAwait(false);
                        if (answer.StatusCode != HttpStatusCode.OK)
                        {
                            return End(GbaBootstrapOutcome.Rejected, $"the BSF answered {(int)answer.StatusCode} to the digest response");
                        }

                        return await AcceptAsync(answer, realm, nonce, cnonce, aka, rand, cancellationToken).ConfigureAwait(false);
                    }
                }
            }
        }

        private async Task<GbaBootstrapResult> AcceptAsync(HttpResponseMessage answer, string realm, string nonce, string cnonce, AkaAnswer aka, byte[] rand, CancellationToken cancellationToken)
        {
            var body = await answer.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);

            // 1. Authentication-Info (RFC 2617 3.2.3): the BSF proves it knows XRES, over this very body.
            if (!answer.Headers.NonValidated.TryGetValues("Authentication-Info", out var infoValues) || infoValues.Count != 1)
            {
                return End(GbaBootstrapOutcome.ServerNotAuthenticated, infoValues.Count > 1 ? "the 200 OK has more than one Authentication-Info" : "the 200 OK has no Authentication-Info");
            }

            if (!HttpAuthHeaders.TryParseParameters(infoValues.ToString(), out var info, out var error))
            {
                return End(GbaBootstrapOutcome.ServerNotAuthenticated, $"malformed Authentication-Info: {error}");
            }

            if (!info.TryGetValue("rspauth", out var rspauth))
            {
                return End(GbaBootstrapOutcome.ServerNotAuthenticated, "Authentication-Info has no rspauth");
            }

            if (info.TryGetValue("qop", out var qop) && !string.Equals(qop, DigestAka.QopAuthInt, StringComparison.OrdinalIgnoreCase))
            {
                return End(GbaBootstrapOutcome.ServerNotAuthenticated, $"Authentication-Info has qop={qop}, the request used {DigestAka.QopAuthInt}");
            }

            if (!info.TryGetValue("cnonce", out var echoedCnonce) || !string.Equals(echoedCnonce, cnonce, StringComparison.Ordinal))
            {
                return End(GbaBootstrapOutcome.ServerNotAuthenticated, "Authentication-Info does not echo the request's cnonce");
            }

            if (!info.TryGetValue("nc", out var echoedNc) || !string.Equals(echoedNc, NonceCount, StringComparison.OrdinalIgnoreCase))
            {
                return End(GbaBootstrapOutcome.ServerNotAuthenticated, "Authentication-Info does not echo the request's nc");
            }

            var expected = DigestAka.ResponseAuth(client.Impi, realm, aka.Res, DigestUri, nonce, DigestAka.QopAuthInt, NonceCount, cnonce, body);
            if (!DigestAka.DigestEquals(expected, rspauth))
            {
                return End(GbaBootstrapOutcome.ServerNotAuthenticated, "rspauth does not verify: the answer is not from a BSF holding XRES, or its body was changed");
            }

            // 2. The body, now authenticated (TS 24.109 annex C).
            var mediaType = answer.Content.Headers.ContentType?.MediaType;
            if (!string.Equals(mediaType, BsfMediaType, StringComparison.OrdinalIgnoreCase))
            {
                return End(GbaBootstrapOutcome.ProtocolViolation, $"the 200 OK body is {mediaType ?? "untyped"}, not {BsfMediaType}");
            }

            if (!TryReadBootstrappingInfo(body, out var bTid, out var lifetime, out error))
            {
                return End(GbaBootstrapOutcome.ProtocolViolation, error!);
            }

            // 3. TS 33.220 4.5.2: B-TID = base64(RAND)@BSF server domain name, for the RAND just used.
            var at = bTid!.LastIndexOf('@');
            if (at <= 0 || at == bTid.Length - 1 || !string.Equals(bTid[..at], Convert.ToBase64String(rand), StringComparison.Ordinal))
            {
                return End(GbaBootstrapOutcome.ProtocolViolation, "the B-TID is not base64(RAND)@domain for the RAND of this run");
            }

            if (lifetime <= client._options.Time.GetUtcNow())
            {
                return End(GbaBootstrapOutcome.ProtocolViolation, $"the key lifetime {lifetime:O} has already passed");
            }

            var ks = new byte[32];
            aka.Ck.CopyTo(ks, 0);
            aka.Ik.CopyTo(ks, 16);
            return new GbaBootstrapResult(GbaBootstrapOutcome.Bootstrapped, client.Impi, null, _requests, _resynchronised, _lastStatus, bTid, lifetime, rand, ks);
        }

        private string Authorization(string realm, string nonce, string? opaque, ReadOnlySpan<byte> password, string? auts, out string cnonce)
        {
            Span<byte> random = stackalloc byte[16];
            RandomNumberGenerator.Fill(random);
            cnonce = Convert.ToHexStringLower(random);
            var response = DigestAka.RequestDigest(client.Impi, realm, password, "GET", DigestUri, nonce, DigestAka.QopAuthInt, NonceCount, cnonce, []);
            var header = new StringBuilder("Digest ")
                .Append(CultureInfo.InvariantCulture, $"username={HttpAuthHeaders.Quote(client.Impi)}, realm={HttpAuthHeaders.Quote(realm)}, nonce={HttpAuthHeaders.Quote(nonce)}, uri=\"{DigestUri}\", ")
                .Append(CultureInfo.InvariantCulture, $"qop={DigestAka.QopAuthInt}, nc={NonceCount}, cnonce=\"{cnonce}\", response=\"{response}\"");
            if (opaque is not null)
            {
                header.Append(", opaque=").Append(HttpAuthHeaders.Quote(opaque));
            }

            header.Append(", algorithm=").Append(DigestAka.Algorithm);
            if (auts is not null)
            {
                header.Append(", auts=").Append(HttpAuthHeaders.Quote(auts));
            }

            return header.ToString();
        }

        private async Task<HttpResponseMessage> SendAsync(string authorization, CancellationToken cancellationToken)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, DigestUri);
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
            request.Headers.TryAddWithoutValidation("User-Agent", client._options.UserAgent);
            request.Headers.TryAddWithoutValidation("Accept", "*/*");
            _requests++;
            var response = await client._http.SendAsync(request, cancellationToken).ConfigureAwait(false);
            _lastStatus = response.StatusCode;
            return response;
        }

        private static List<string> WwwAuthenticate(HttpResponseMessage response) =>
            response.Headers.NonValidated.TryGetValues("WWW-Authenticate", out var values) ? [.. values] : [];

        private GbaBootstrapResult End(GbaBootstrapOutcome outcome, string reason) =>
            new(outcome, client.Impi, reason, _requests, _resynchronised, _lastStatus);
    }

    private static bool TryReadBootstrappingInfo(byte[] body, out string? bTid, out DateTimeOffset lifetime, out string? error)
    {
        bTid = null;
        lifetime = default;
        XDocument document;
        try
        {
            var settings = new XmlReaderSettings { DtdProcessing = DtdProcessing.Prohibit, XmlResolver = null, MaxCharactersInDocument = 64 * 1024 };
            using var stream = new MemoryStream(body, writable: false);
            using var reader = XmlReader.Create(stream, settings);
            document = XDocument.Load(reader);
        }
        catch (XmlException e)
        {
            error = $"the 200 OK body is not well-formed XML: {e.Message}";
            return false;
        }

        XNamespace ns = GbaNamespace;
        var root = document.Root!;
        if (root.Name != ns + "BootstrappingInfo")
        {
            error = $"the body's root is {root.Name}, not {{{GbaNamespace}}}BootstrappingInfo";
            return false;
        }

        var btids = root.Elements(ns + "btid").ToList();
        var lifetimes = root.Elements(ns + "lifetime").ToList();
        if (btids.Count != 1 || lifetimes.Count != 1)
        {
            error = "BootstrappingInfo must hold exactly one btid and one lifetime";
            return false;
        }

        bTid = btids[0].Value.Trim();
        if (bTid.Length == 0)
        {
            error = "the btid is empty";
            return false;
        }

        var text = lifetimes[0].Value.Trim();
        if (!text.EndsWith('Z')
            || !DateTimeOffset.TryParseExact(text, ["yyyy-MM-dd'T'HH:mm:ss'Z'", "yyyy-MM-dd'T'HH:mm:ss.FFFFFFF'Z'"], CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out lifetime))
        {
            error = $"the lifetime \"{text}\" is not an xs:dateTime in UTC (…Z)";
            return false;
        }

        error = null;
        return true;
    }
}
