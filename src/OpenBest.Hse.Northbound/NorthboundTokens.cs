using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using OpenBest.Storage;

namespace OpenBest.Hse.Northbound;

/// <summary>A registered OAuth 2.0 client of the northbound API: an enterprise's application, or an operator user.</summary>
/// <param name="ClientId">The client_id.</param>
/// <param name="Name">The enterprise's EAS Id, or the operator user's name.</param>
/// <param name="IsOperator">Whether the client acts as an operator user.</param>
/// <param name="Created">When it was registered.</param>
public sealed record NorthboundClient(string ClientId, string Name, bool IsOperator, DateTimeOffset Created);

/// <summary>
/// The HSE as its own OAuth 2.0 authorisation server for the northbound API (RFC 6749 client-credentials grant): it
/// issues short-lived signed JWT access tokens (RFC 9068 style: iss, aud, sub, client_id, exp) to registered
/// clients, whose secrets it keeps only as SHA-256 hashes. The signing key is kept in the northbound store, sealed
/// with the data folder's master key, so tokens survive a restart and every node of one database accepts them.
/// </summary>
public sealed class NorthboundTokens
{
    /// <summary>The tokens' issuer.</summary>
    public const string Issuer = "urn:openbest:hse";

    /// <summary>The tokens' audience.</summary>
    public const string Audience = "urn:openbest:northbound";

    private const string KeyName = "token-signing-key";
    private readonly NorthboundStore _store;
    private readonly TimeProvider _time;

    /// <summary>Loads (or creates and stores) the signing key.</summary>
    public NorthboundTokens(NorthboundStore store, MasterKey masterKey, TimeSpan lifetime, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(masterKey);
        _store = store;
        _time = time ?? TimeProvider.System;
        Lifetime = lifetime;
        var sealedKey = store.Setting(KeyName);
        if (sealedKey is null)
        {
            var fresh = RandomNumberGenerator.GetBytes(32);
            store.SetSettingIfAbsent(KeyName, masterKey.Seal(fresh, KeyName));
            CryptographicOperations.ZeroMemory(fresh);
            sealedKey = store.Setting(KeyName)!;
        }

        using var opened = masterKey.Open(sealedKey, KeyName) ?? throw new InvalidOperationException("the northbound token signing key does not open with this master key");
        SigningKey = new SymmetricSecurityKey(opened.Span.ToArray()) { KeyId = "hse-1" };
    }

    /// <summary>How long an access token is valid.</summary>
    public TimeSpan Lifetime { get; }

    /// <summary>The key tokens are signed (HMAC-SHA256) and checked with.</summary>
    public SymmetricSecurityKey SigningKey { get; }

    /// <summary>What a valid token must satisfy.</summary>
    public TokenValidationParameters ValidationParameters => new()
    {
        ValidIssuer = Issuer,
        ValidAudience = Audience,
        IssuerSigningKey = SigningKey,
        ValidAlgorithms = [SecurityAlgorithms.HmacSha256],
        ClockSkew = TimeSpan.FromSeconds(30),
        RequireExpirationTime = true,
        NameClaimType = "sub",
    };

    /// <summary>Registers a client; returns its secret, shown once (only its hash is kept).</summary>
    /// <exception cref="InvalidOperationException">The client_id is taken.</exception>
    public static string Register(NorthboundStore store, string clientId, string name, bool isOperator)
    {
        ArgumentNullException.ThrowIfNull(store);
        var secret = Base64UrlEncoder.Encode(RandomNumberGenerator.GetBytes(32));
        if (!store.AddClient(new NorthboundClient(clientId, name, isOperator, DateTimeOffset.UtcNow), Hash(secret)))
        {
            throw new InvalidOperationException($"the client '{clientId}' is already registered");
        }

        return secret;
    }

    /// <summary>The client whose id and secret these are, or null (checked in fixed time against the stored hash).</summary>
    public NorthboundClient? Authenticate(string clientId, string secret)
    {
        var found = _store.Client(clientId);
        var expected = found?.SecretHash ?? new byte[32];
        var ok = CryptographicOperations.FixedTimeEquals(expected, Hash(secret));
        return ok && found is not null ? found.Value.Client : null;
    }

    /// <summary>Issues an access token for <paramref name="client"/>.</summary>
    public string Issue(NorthboundClient client)
    {
        ArgumentNullException.ThrowIfNull(client);
        var now = _time.GetUtcNow().UtcDateTime;
        return new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = Issuer,
            Audience = Audience,
            IssuedAt = now,
            NotBefore = now,
            Expires = now + Lifetime,
            Subject = new ClaimsIdentity(
            [
                new Claim("sub", client.Name),
                new Claim("client_id", client.ClientId),
                new Claim("role", client.IsOperator ? "operator" : "enterprise"),
                new Claim("jti", Guid.NewGuid().ToString("N")),
            ]),
            SigningCredentials = new SigningCredentials(SigningKey, SecurityAlgorithms.HmacSha256),
        });
    }

    private static byte[] Hash(string secret) => SHA256.HashData(Encoding.UTF8.GetBytes(secret));
}
