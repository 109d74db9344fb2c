using System.Text;

namespace OpenBest.Protocol;

/// <summary>Peer data printed as data: control characters replaced, and payloads that are not UTF-8 shown as hex.</summary>
public static class PeerText
{
    /// <summary>Text with its control characters replaced by '?'.</summary>
    public static string Printable(string text) => new([.. text.Select(c => char.IsControl(c) ? '?' : c)]);

    /// <summary>A payload as UTF-8 text (control characters replaced), or 0x… hex when it is not UTF-8.</summary>
    public static string Printable(ReadOnlySpan<byte> payload)
    {
        try
        {
            return Printable(new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(payload));
        }
        catch (DecoderFallbackException)
        {
            return "0x" + Convert.ToHexString(payload).ToLowerInvariant();
        }
    }
}
