using System.Security.Cryptography;
using System.Text;

namespace OpenBest.Obf;

/// <summary>
/// The auth-params of an HTTP Digest header (RFC 7616 / RFC 2617 section 3.2.2): <c>Digest name=value, name="quoted"</c>.
/// Names are case-insensitive; a quoted value may hold escaped characters. Parsing never throws.
/// </summary>
public sealed class DigestParameters
{
    /// <summary>Headers longer than this are refused before any parsing (they could only be an attack).</summary>
    public const int MaxHeaderLength = 4096;

    private readonly Dictionary<string, string> _values = new(StringComparer.OrdinalIgnoreCase);

    private DigestParameters()
    {
    }

    /// <summary>A parameter's value, or null.</summary>
    public string? this[string name] => _values.GetValueOrDefault(name);

    /// <summary>Parses <c>Digest …</c>; false (and nothing) when it is not one, repeats a name, or is malformed.</summary>
    public static bool TryParse(string? header, out DigestParameters parameters)
    {
        parameters = new DigestParameters();
        if (header is null || header.Length > MaxHeaderLength || !header.StartsWith("Digest", StringComparison.OrdinalIgnoreCase)
            || (header.Length > 6 && header[6] != ' ' && header[6] != '\t'))
        {
            return false;
        }

        var i = 6;
        var text = header.AsSpan();
        while (true)
        {
            while (i < text.Length && (text[i] is ' ' or '\t' or ','))
            {
                i++;
            }

            if (i >= text.Length)
            {
                return true;
            }

            var nameStart = i;
            while (i < text.Length && IsTokenChar(text[i]))
            {
                i++;
            }

            if (i == nameStart)
            {
                return false;
            }

            var name = text[nameStart..i].ToString();
            while (i < text.Length && text[i] is ' ' or '\t')
            {
                i++;
            }

            if (i >= text.Length || text[i] != '=')
            {
                return false;
            }

            i++;
            while (i < text.Length && text[i] is ' ' or '\t')
            {
                i++;
            }

            string value;
            if (i < text.Length && text[i] == '"')
            {
                i++;
                var builder = new StringBuilder();
                var closed = false;
                while (i < text.Length)
                {
                    var c = text[i++];
                    if (c == '\\' && i < text.Length)
                    {
                        builder.Append(text[i++]);
                    }
                    else if (c == '"')
                    {
                        closed = true;
                        break;
                    }
                    else
                    {
                        builder.Append(c);
                    }
                }

                if (!closed)
                {
                    return false;
                }

                value = builder.ToString();
            }
            else
            {
                var valueStart = i;
                while (i < text.Length && IsTokenChar(text[i]))
                {
                    i++;
                }

                value = text[valueStart..i].ToString();
            }

            if (!parameters._values.TryAdd(name, value))
            {
                return false; // a repeated parameter: ambiguous, refused
            }

            while (i < text.Length && text[i] is ' ' or '\t')
            {
                i++;
            }

            if (i < text.Length && text[i] != ',')
            {
                return false;
            }
        }
    }

    private static bool IsTokenChar(char c) => c > 0x20 && c < 0x7F && "()<>@,;:\\\"/[]?={}".IndexOf(c, StringComparison.Ordinal) < 0;
}

/// <summary>
/// HTTP Digest AKA, algorithm AKAv1-MD5 (RFC 3310 section 3; TS 24.109 clause 4 and Annex A): HTTP Digest with MD5
/// where the password is RES as raw octets (an empty password when the response carries AUTS). Only the qop the Ub
/// interface uses is supported: <c>auth-int</c>, where H(A2) = MD5(method ":" uri ":" MD5(entity-body)).
/// </summary>
public static class AkaDigest
{
    /// <summary>The algorithm's name in the headers.</summary>
    public const string Algorithm = "AKAv1-MD5";

    /// <summary>The qop of Ub.</summary>
    public const string Qop = "auth-int";

    /// <summary>
    /// request-digest (RFC 2617 3.2.2.1) with qop=auth-int: MD5(HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" HA2), HA1 =
    /// MD5(username ":" realm ":" password), HA2 = MD5(method ":" uri ":" MD5(body)); lowercase hex.
    /// </summary>
    public static string Response(string username, string realm, ReadOnlySpan<byte> password, string method, string uri, string nonce, string nc, string cnonce, ReadOnlySpan<byte> body)
    {
        var ha1 = Md5Hex([.. Encoding.UTF8.GetBytes($"{username}:{realm}:"), .. password]);
        var ha2 = Md5Hex(Encoding.UTF8.GetBytes($"{method}:{uri}:{Md5Hex(body)}"));
        return Md5Hex(Encoding.UTF8.GetBytes($"{ha1}:{nonce}:{nc}:{cnonce}:{Qop}:{ha2}"));
    }

    /// <summary>
    /// rspauth of Authentication-Info (RFC 2617 3.2.3): the request-digest with an empty method, so HA2 = MD5(":" uri ":"
    /// MD5(response body)) for auth-int.
    /// </summary>
    public static string ResponseAuth(string username, string realm, ReadOnlySpan<byte> password, string uri, string nonce, string nc, string cnonce, ReadOnlySpan<byte> responseBody) =>
        Response(username, realm, password, string.Empty, uri, nonce, nc, cnonce, responseBody);

    /// <summary>Whether two digests (hex) are equal, compared in fixed time and case-insensitively.</summary>
    public static bool Matches(string expected, string? received)
    {
        if (received is null || received.Length != expected.Length)
        {
            return false;
        }

        Span<byte> a = stackalloc byte[expected.Length];
        Span<byte> b = stackalloc byte[expected.Length];
        for (var i = 0; i < expected.Length; i++)
        {
            a[i] = (byte)char.ToLowerInvariant(expected[i]);
            b[i] = (byte)(received[i] < 0x80 ? char.ToLowerInvariant(received[i]) : 0);
        }

        return CryptographicOperations.FixedTimeEquals(a, b);
    }

#pragma warning disable CA5351 // MD5 is what AKAv1-MD5 (RFC 3310) specifies; it is not used for anything else.
    private static string Md5Hex(ReadOnlySpan<byte> data) => Convert.ToHexStringLower(MD5.HashData(data));
#pragma warning restore CA5351
}
