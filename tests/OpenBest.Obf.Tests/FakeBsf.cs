using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using OpenBest.Crypto;
using OpenBest.Crypto.Aka;

namespace OpenBest.Obf.Tests;

/// <summary>
/// A canned BSF for the client's unit tests, built from RFC 2617 / RFC 3310 and TS 24.109 annex A only:
/// an HttpMessageHandler that answers the initial GET with a 401 carrying an AKAv1-MD5 challenge made by
/// a MILENAGE AuC, checks the digest response against XRES (or the empty password plus AUTS, and then
/// resynchronises), and answers 200 OK with a BootstrappingInfo body and an Authentication-Info rspauth.
/// Its digest arithmetic is written out here, apart from the client's, so neither can confirm a mistake
/// of the other. Knobs let a test make it misbehave.
/// </summary>
[SuppressMessage("Security", "CA5351:Do Not Use Broken Cryptographic Algorithms", Justification = "AKAv1-MD5 is defined over MD5 (RFC 3310).")]
internal sealed partial class FakeBsf : HttpMessageHandler
{
    private readonly Milenage _milenage;
    private readonly Dictionary<string, (byte[] Rand, byte[] Xres)> _challenges = new(StringComparer.Ordinal);
    private readonly List<Dictionary<string, string>> _authorizations = [];

    /// <summary>A BSF whose AuC holds the subscriber key <paramref name="k"/> and <paramref name="opc"/>.</summary>
    public FakeBsf(byte[] k, byte[] opc)
    {
        _milenage = new Milenage(k, opc);
    }

    public string Realm { get; init; } = "bsf.home1.net";

    public string BsfDomain { get; init; } = "bsf.home1.net";

    /// <summary>SEQ_HE of the AuC; every challenge uses the next SEQ with IND 0 unless <see cref="FixedSqn"/> is set.</summary>
    public ulong SeqHe { get; set; } = 1;

    /// <summary>The AMF of the vectors (GBA vectors keep the separation bit 0).</summary>
    public ushort Amf { get; init; }

    /// <summary>When set, the first challenge uses this SQN and RAND (a known test set).</summary>
    public (ulong Sqn, byte[] Rand)? FixedFirstVector { get; set; }

    /// <summary>When true, every challenge reuses the first vector's SQN: the BSF ignores AUTS.</summary>
    public bool IgnoreAuts { get; init; }

    /// <summary>Octets appended to RAND ‖ AUTN in the nonce (server-specific data).</summary>
    public byte[] ServerData { get; init; } = [];

    public string Algorithm { get; init; } = "AKAv1-MD5";

    /// <summary>The qop directive of the challenge, as written (quoted by the handler).</summary>
    public string Qop { get; init; } = "auth-int";

    public string? Opaque { get; init; } = "5ccc069c403ebaf9f0171e9517f30e41";

    /// <summary>The WWW-Authenticate field values of a 401; null = the one Digest challenge built from the knobs above.</summary>
    public Func<string, string[]>? ChallengeFields { get; init; }

    /// <summary>A status the BSF gives instead of 401 to the initial request.</summary>
    public HttpStatusCode? InitialStatus { get; init; }

    /// <summary>A status the BSF gives instead of 200 to a correct response.</summary>
    public HttpStatusCode? SuccessStatus { get; init; }

    /// <summary>A status the BSF gives to a synchronisation failure instead of resynchronising and challenging again.</summary>
    public HttpStatusCode? AutsStatus { get; init; }

    public TimeSpan KeyLifetime { get; init; } = TimeSpan.FromDays(1);

    /// <summary>Replaces the B-TID of the body (null = base64(RAND)@domain).</summary>
    public string? BTidOverride { get; init; }

    /// <summary>Replaces the lifetime text of the body.</summary>
    public string? LifetimeOverride { get; init; }

    public string ContentType { get; init; } = "application/vnd.3gpp.bsf+xml";

    /// <summary>Replaces the whole body (built from the B-TID and lifetime text).</summary>
    public Func<string, string, string>? BodyOverride { get; init; }

    /// <summary>How the Authentication-Info field is written from (rspauth, cnonce, nc); null = the RFC 2617 form, "omit" via <see cref="OmitAuthenticationInfo"/>.</summary>
    public Func<string, string, string, string>? AuthenticationInfo { get; init; }

    public bool OmitAuthenticationInfo { get; init; }

    /// <summary>Flips one hex digit of rspauth.</summary>
    public bool ForgeRspauth { get; init; }

    /// <summary>Computes rspauth over one body and sends another (an altered body in transit).</summary>
    public bool SwapBodyAfterRspauth { get; init; }

    /// <summary>Every Authorization field received, parsed with the fake's own simple reader.</summary>
    public IReadOnlyList<Dictionary<string, string>> Authorizations => _authorizations;

    /// <summary>The raw Authorization field values received.</summary>
    public List<string> RawAuthorizations { get; } = [];

    public int Requests => RawAuthorizations.Count;

    /// <summary>Whether the digest response of a synchronisation failure verified with the empty password.</summary>
    public bool? AutsResponseVerified { get; private set; }

    /// <summary>The SQN_MS the AuC recovered from AUTS.</summary>
    public ulong? RecoveredSqnMs { get; private set; }

    /// <summary>The body of the last 200 OK.</summary>
    public string? LastBody { get; private set; }

    /// <summary>The B-TID the last 200 OK carried.</summary>
    public string? LastBTid { get; private set; }

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        Assert.Equal(HttpMethod.Get, request.Method);
        Assert.Equal("/", request.RequestUri!.AbsolutePath);
        var raw = request.Headers.NonValidated.TryGetValues("Authorization", out var values) ? values.ToString() : string.Empty;
        RawAuthorizations.Add(raw);
        var p = ParseAuthorization(raw);
        _authorizations.Add(p);

        if (p.GetValueOrDefault("nonce", string.Empty).Length == 0)
        {
            return Task.FromResult(InitialStatus is { } status ? new HttpResponseMessage(status) : Challenge());
        }

        if (!_challenges.TryGetValue(p["nonce"], out var issued))
        {
            return Task.FromResult(new HttpResponseMessage(HttpStatusCode.BadRequest));
        }

        var username = p["username"];
        var realm = p["realm"];
        var nc = p.GetValueOrDefault("nc", string.Empty);
        var cnonce = p.GetValueOrDefault("cnonce", string.Empty);
        var qop = p.GetValueOrDefault("qop", string.Empty);
        if (p.TryGetValue("auts", out var autsText))
        {
            // RFC 3310 3.4: the response of a synchronisation failure is computed over an empty password.
            AutsResponseVerified = Response(username, realm, [], "GET", p["uri"], p["nonce"], nc, cnonce, qop, []) == p["response"];
            if (AutsStatus is { } autsStatus)
            {
                return Task.FromResult(new HttpResponseMessage(autsStatus));
            }

            var auts = Convert.FromBase64String(autsText);
            var resync = AuthenticationCentre.Resynchronise(_milenage, issued.Rand, auts, SeqHe, SqnScheme.Default);
            Assert.Equal(ResynchronisationOutcome.Resynchronised, resync.Outcome);
            RecoveredSqnMs = resync.SqnMs;
            if (!IgnoreAuts)
            {
                SeqHe = resync.SeqHe;
            }

            return Task.FromResult(Challenge());
        }

        if (Response(username, realm, issued.Xres, "GET", p["uri"], p["nonce"], nc, cnonce, qop, []) != p["response"])
        {
            return Task.FromResult(new HttpResponseMessage(HttpStatusCode.Forbidden));
        }

        if (SuccessStatus is { } failure)
        {
            return Task.FromResult(new HttpResponseMessage(failure));
        }

        var bTid = BTidOverride ?? Convert.ToBase64String(issued.Rand) + "@" + BsfDomain;
        var lifetime = LifetimeOverride ?? DateTimeOffset.UtcNow.Add(KeyLifetime).ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
        var body = BodyOverride?.Invoke(bTid, lifetime)
            ?? $"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<BootstrappingInfo xmlns=\"uri:3gpp-gba\">\n  <btid>{bTid}</btid>\n  <lifetime>{lifetime}</lifetime>\n</BootstrappingInfo>\n";
        var bodyBytes = Encoding.UTF8.GetBytes(body);

        // RFC 2617 3.2.3: rspauth is the response with A2 = ":" uri ":" H(entity-body) for auth-int.
        var rspauth = Response(username, realm, issued.Xres, string.Empty, p["uri"], p["nonce"], nc, cnonce, qop, bodyBytes);
        if (ForgeRspauth)
        {
            rspauth = (rspauth[0] == '0' ? "1" : "0") + rspauth[1..];
        }

        if (SwapBodyAfterRspauth)
        {
            body = body.Replace("<btid>", "<btid>X", StringComparison.Ordinal);
        }

        var ok = new HttpResponseMessage(HttpStatusCode.OK)
        {
            Content = new ByteArrayContent(Encoding.UTF8.GetBytes(body)),
        };
        ok.Content.Headers.TryAddWithoutValidation("Content-Type", ContentType);
        if (!OmitAuthenticationInfo)
        {
            var info = AuthenticationInfo?.Invoke(rspauth, cnonce, nc)
                ?? $"qop=auth-int, rspauth=\"{rspauth}\", cnonce=\"{cnonce}\", nc={nc}";
            ok.Headers.TryAddWithoutValidation("Authentication-Info", info);
        }

        LastBody = body;
        LastBTid = bTid;
        return Task.FromResult(ok);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _milenage.Dispose();
        }

        base.Dispose(disposing);
    }

    private HttpResponseMessage Challenge()
    {
        ulong sqn;
        byte[]? rand = null;
        if (FixedFirstVector is { } fixedVector)
        {
            sqn = fixedVector.Sqn;
            rand = fixedVector.Rand;
            if (!IgnoreAuts)
            {
                FixedFirstVector = null;
            }
        }
        else
        {
            SeqHe++;
            sqn = SqnScheme.Default.Compose(SeqHe, 0);
        }

        using var av = AuthenticationCentre.Generate(_milenage, sqn, Amf, rand);
        var nonce = Convert.ToBase64String([.. av.Rand, .. av.Autn, .. ServerData]);
        _challenges[nonce] = (av.Rand.ToArray(), av.Xres.ToArray());
        var fields = ChallengeFields?.Invoke(nonce)
            ?? [$"Digest realm=\"{Realm}\", nonce=\"{nonce}\", algorithm={Algorithm}, qop=\"{Qop}\"" + (Opaque is null ? string.Empty : $", opaque=\"{Opaque}\"")];
        var response = new HttpResponseMessage(HttpStatusCode.Unauthorized);
        foreach (var field in fields)
        {
            response.Headers.TryAddWithoutValidation("WWW-Authenticate", field);
        }

        return response;
    }

    /// <summary>RFC 2617 3.2.2.1 written out long-hand: MD5(MD5(A1) ":" nonce ":" nc ":" cnonce ":" qop ":" MD5(A2)).</summary>
    private static string Response(string username, string realm, byte[] password, string method, string uri, string nonce, string nc, string cnonce, string qop, byte[] body)
    {
        var ha1 = Md5([.. Encoding.UTF8.GetBytes(username + ":" + realm + ":"), .. password]);
        var a2 = qop == "auth-int" ? method + ":" + uri + ":" + Md5(body) : method + ":" + uri;
        var ha2 = Md5(Encoding.UTF8.GetBytes(a2));
        return Md5(Encoding.UTF8.GetBytes(ha1 + ":" + nonce + ":" + nc + ":" + cnonce + ":" + qop + ":" + ha2));
    }

    private static string Md5(byte[] data) => Convert.ToHexStringLower(MD5.HashData(data));

    private static Dictionary<string, string> ParseAuthorization(string raw)
    {
        var result = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        Assert.StartsWith("Digest ", raw, StringComparison.Ordinal);
        foreach (Match m in Parameter().Matches(raw["Digest ".Length..]))
        {
            var value = m.Groups["q"].Success ? Unquote().Replace(m.Groups["q"].Value, "$1") : m.Groups["t"].Value;
            result.Add(m.Groups["name"].Value, value);
        }

        return result;
    }

    [GeneratedRegex("""(?<name>[A-Za-z0-9-]+)=(?:"(?<q>(?:[^"\\]|\\.)*)"|(?<t>[^,\s]+))""")]
    private static partial Regex Parameter();

    [GeneratedRegex(@"\\(.)")]
    private static partial Regex Unquote();
}
