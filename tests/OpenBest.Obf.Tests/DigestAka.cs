using System.Diagnostics.CodeAnalysis;
using System.Security.Cryptography;
using System.Text;

namespace OpenBest.Obf.Tests;

/// <summary>
/// HTTP Digest with AKAv1-MD5 (RFC 3310 section 3 over RFC 2617 section 3.2): ordinary MD5 Digest where
/// the password is the AKA RES as raw octets (or empty, on a synchronisation failure).
/// </summary>
[SuppressMessage("Security", "CA5351:Do Not Use Broken Cryptographic Algorithms", Justification = "AKAv1-MD5 is defined over MD5 (RFC 3310 3.1); the strength comes from the one-time AKA RES.")]
internal static class DigestAka
{
    /// <summary>The algorithm token of RFC 3310 3.1 for AKA version 1 with MD5.</summary>
    public const string Algorithm = "AKAv1-MD5";

    /// <summary>The quality of protection TS 24.109 requires on Ub: authentication with integrity of the entity body.</summary>
    public const string QopAuthInt = "auth-int";

    /// <summary>The quality of protection without body integrity.</summary>
    public const string QopAuth = "auth";

    /// <summary>
    /// The request-digest of RFC 2617 3.2.2.1: with a qop,
    /// MD5(H(A1) ":" nonce ":" nc ":" cnonce ":" qop ":" H(A2)); without one (the RFC 2069 form),
    /// MD5(H(A1) ":" nonce ":" H(A2)). A1 = username ":" realm ":" password (password as raw octets);
    /// A2 = method ":" uri, and for auth-int also ":" H(entity-body).
    /// </summary>
    /// <remarks>
    /// The response-auth (rspauth) of RFC 2617 3.2.3 is this same digest with an empty method, i.e.
    /// A2 = ":" uri [":" H(entity-body of the response)]: see <see cref="ResponseAuth"/>.
    /// </remarks>
    public static string RequestDigest(string username, string realm, ReadOnlySpan<byte> password, string method, string digestUri, string nonce, string? qop, string? nc, string? cnonce, ReadOnlySpan<byte> entityBody)
    {
        ArgumentNullException.ThrowIfNull(username);
        ArgumentNullException.ThrowIfNull(realm);
        ArgumentNullException.ThrowIfNull(method);
        ArgumentNullException.ThrowIfNull(digestUri);
        ArgumentNullException.ThrowIfNull(nonce);
        var ha1 = HashA1(username, realm, password);
        var ha2 = HashA2(method, digestUri, qop, entityBody);
        var kd = qop is null
            ? $"{ha1}:{nonce}:{ha2}"
            : $"{ha1}:{nonce}:{nc ?? throw new ArgumentNullException(nameof(nc))}:{cnonce ?? throw new ArgumentNullException(nameof(cnonce))}:{qop}:{ha2}";
        return Md5Hex(Encoding.UTF8.GetBytes(kd));
    }

    /// <summary>The rspauth of RFC 2617 3.2.3 for the server's answer carrying <paramref name="responseBody"/>.</summary>
    public static string ResponseAuth(string username, string realm, ReadOnlySpan<byte> password, string digestUri, string nonce, string qop, string nc, string cnonce, ReadOnlySpan<byte> responseBody)
        => RequestDigest(username, realm, password, string.Empty, digestUri, nonce, qop, nc, cnonce, responseBody);

    /// <summary>H(A1) = MD5(username ":" realm ":" password), the password appended as raw octets.</summary>
    public static string HashA1(string username, string realm, ReadOnlySpan<byte> password)
    {
        var prefix = Encoding.UTF8.GetBytes($"{username}:{realm}:");
        var a1 = new byte[prefix.Length + password.Length];
        prefix.CopyTo(a1, 0);
        password.CopyTo(a1.AsSpan(prefix.Length));
        var result = Md5Hex(a1);
        CryptographicOperations.ZeroMemory(a1);
        return result;
    }

    /// <summary>H(A2): MD5(method ":" uri) or, for auth-int, MD5(method ":" uri ":" MD5(entity-body)).</summary>
    public static string HashA2(string method, string digestUri, string? qop, ReadOnlySpan<byte> entityBody)
    {
        var a2 = string.Equals(qop, QopAuthInt, StringComparison.Ordinal)
            ? $"{method}:{digestUri}:{Md5Hex(entityBody)}"
            : $"{method}:{digestUri}";
        return Md5Hex(Encoding.UTF8.GetBytes(a2));
    }

    /// <summary>MD5 as 32 lower-case hex digits.</summary>
    public static string Md5Hex(ReadOnlySpan<byte> data)
    {
        Span<byte> digest = stackalloc byte[16];
        MD5.HashData(data, digest);
        return Convert.ToHexStringLower(digest);
    }

    /// <summary>Compares two 32-hex-digit digests in fixed time (case-insensitive hex); false if either is not one.</summary>
    public static bool DigestEquals(string expected, string? received)
    {
        ArgumentNullException.ThrowIfNull(expected);
        Span<byte> a = stackalloc byte[16];
        Span<byte> b = stackalloc byte[16];
        if (received is null || received.Length != 32 || expected.Length != 32
            || Convert.FromHexString(expected, a, out _, out var writtenA) != System.Buffers.OperationStatus.Done || writtenA != 16
            || Convert.FromHexString(received, b, out _, out var writtenB) != System.Buffers.OperationStatus.Done || writtenB != 16)
        {
            return false;
        }

        return CryptographicOperations.FixedTimeEquals(a, b);
    }
}
