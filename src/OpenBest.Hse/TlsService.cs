using System.Globalization;

namespace OpenBest.Hse;

/// <summary>
/// A TLS server the HSE's converter relays devices to (seed 000 section 2): the EAS Id a device's channel names, the
/// server's host (its certificate must name it; it is also the SNI) and port, and optionally the CA its certificate must
/// chain to (else the system's trust store).
/// </summary>
/// <param name="Id">The EAS Id devices name.</param>
/// <param name="Host">The server's host name or address.</param>
/// <param name="Port">Its TCP port.</param>
/// <param name="CaFile">A PEM file of the CA to trust for it, or null for the system's.</param>
public sealed record TlsService(string Id, string Host, int Port, string? CaFile)
{
    /// <summary>Parses <c>ID=HOST:PORT[,ca=PEMFILE]</c>; false with why when it is not that (or the CA file is missing).</summary>
    public static bool TryParse(string text, out TlsService service, out string why)
    {
        service = null!;
        why = string.Empty;
        var equals = text.IndexOf('=', StringComparison.Ordinal);
        if (equals <= 0)
        {
            why = "expected ID=HOST:PORT[,ca=PEMFILE]";
            return false;
        }

        var id = text[..equals].Trim();
        var parts = text[(equals + 1)..].Split(',', StringSplitOptions.TrimEntries);
        var colon = parts[0].LastIndexOf(':');
        if (id.Length > 255 || colon <= 0 || !int.TryParse(parts[0].AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
        {
            why = "expected ID=HOST:PORT[,ca=PEMFILE] with a port 1..65535";
            return false;
        }

        var host = parts[0][..colon].Trim('[', ']');
        string? ca = null;
        foreach (var option in parts.Skip(1))
        {
            if (option.StartsWith("ca=", StringComparison.Ordinal) && option.Length > 3)
            {
                ca = option[3..];
                if (!File.Exists(ca))
                {
                    why = $"the CA file {ca} does not exist";
                    return false;
                }
            }
            else
            {
                why = $"unknown option '{option}' (only ca=PEMFILE)";
                return false;
            }
        }

        service = new TlsService(id, host, port, ca);
        return true;
    }
}
