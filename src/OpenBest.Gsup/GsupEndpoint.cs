using System.Globalization;
using System.Net;

namespace OpenBest.Gsup;

/// <summary>Where an HLR listens for GSUP: <c>gsup://HOST[:PORT]</c>, the port 4222 by default.</summary>
/// <param name="Host">A host name or IP address (IPv6 without brackets).</param>
/// <param name="Port">The TCP port, 1..65535.</param>
public readonly record struct GsupEndpoint(string Host, int Port)
{
    /// <summary>The GSUP port osmo-hlr listens on (libosmocore <c>OSMO_GSUP_PORT</c>).</summary>
    public const int DefaultPort = 4222;

    /// <summary>The URI scheme.</summary>
    public const string Scheme = "gsup";

    /// <summary>Parses <c>gsup://HOST[:PORT]</c>.</summary>
    /// <exception cref="FormatException">Not such an address; the one-line message names the input and what is wrong.</exception>
    public static GsupEndpoint Parse(string? text) =>
        TryParse(text, out var endpoint, out var error) ? endpoint : throw new FormatException(error);

    /// <summary>
    /// Parses <c>gsup://HOST[:PORT]</c> (IPv6 in brackets, <c>gsup://[::1]:4222</c>). False with a one-line
    /// <paramref name="error"/> naming the input otherwise. Never throws.
    /// </summary>
    public static bool TryParse(string? text, out GsupEndpoint endpoint, out string? error)
    {
        endpoint = default;
        error = null;
        var shown = text ?? "(nothing)";
        if (string.IsNullOrWhiteSpace(text))
        {
            error = $"'{shown}' is not a GSUP address: it is empty (expected gsup://HOST:PORT).";
            return false;
        }

        const string prefix = Scheme + "://";
        if (!text.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
        {
            error = $"'{text}' is not a GSUP address: it does not start with {prefix} (expected gsup://HOST:PORT).";
            return false;
        }

        var authority = text[prefix.Length..];
        if (authority.EndsWith('/'))
        {
            authority = authority[..^1];
        }

        if (authority.Length == 0)
        {
            error = $"'{text}' is not a GSUP address: the host is missing (expected gsup://HOST:PORT).";
            return false;
        }

        if (authority.IndexOfAny(['/', '?', '#', '@', ' ']) >= 0)
        {
            error = $"'{text}' is not a GSUP address: only a host and a port may follow gsup:// (no user, path, query or spaces).";
            return false;
        }

        string host;
        string? port = null;
        if (authority[0] == '[')
        {
            var close = authority.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
            {
                error = $"'{text}' is not a GSUP address: the IPv6 address has no closing ']'.";
                return false;
            }

            host = authority[1..close];
            var after = authority[(close + 1)..];
            if (after.Length > 0)
            {
                if (after[0] != ':')
                {
                    error = $"'{text}' is not a GSUP address: expected ':PORT' after the IPv6 address.";
                    return false;
                }

                port = after[1..];
            }

            if (!IPAddress.TryParse(host, out var address) || address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetworkV6)
            {
                error = $"'{text}' is not a GSUP address: '{host}' in brackets is not an IPv6 address.";
                return false;
            }
        }
        else
        {
            var colon = authority.IndexOf(':', StringComparison.Ordinal);
            if (colon >= 0 && authority.IndexOf(':', colon + 1) >= 0)
            {
                error = $"'{text}' is not a GSUP address: write an IPv6 address in brackets, gsup://[::1]:{DefaultPort}.";
                return false;
            }

            host = colon < 0 ? authority : authority[..colon];
            port = colon < 0 ? null : authority[(colon + 1)..];
            if (Uri.CheckHostName(host) is UriHostNameType.Unknown or UriHostNameType.Basic)
            {
                error = $"'{text}' is not a GSUP address: '{host}' is not a host name or IP address.";
                return false;
            }
        }

        var number = DefaultPort;
        if (port is not null
            && (port.Length is 0 or > 5 || !port.All(char.IsAsciiDigit)
                || !int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out number) || number is < 1 or > 65535))
        {
            error = $"'{text}' is not a GSUP address: the port '{port}' is not a number from 1 to 65535.";
            return false;
        }

        endpoint = new GsupEndpoint(host, number);
        return true;
    }

    /// <summary>The address as <c>gsup://HOST:PORT</c>, IPv6 in brackets.</summary>
    public override string ToString() => Host.Contains(':', StringComparison.Ordinal)
        ? string.Create(CultureInfo.InvariantCulture, $"{Scheme}://[{Host}]:{Port}")
        : string.Create(CultureInfo.InvariantCulture, $"{Scheme}://{Host}:{Port}");
}
