namespace OpenBest.Card;

/// <summary>
/// Opens a card from a reader specification as the command line takes it: <c>pcsc</c> (the first reader with a card),
/// <c>pcsc:READER</c> (a reader whose name starts with READER), <c>at:DEVICE</c> (a modem's AT+CSIM on a serial line) or
/// <c>at-cgla:DEVICE</c> (AT+CSIM, with AT+CCHO/AT+CGLA for logical channels).
/// </summary>
public static class CardReader
{
    /// <summary>Whether <paramref name="spec"/> has one of the accepted forms (the reader itself is not checked).</summary>
    public static bool IsValid(string? spec, out string? error)
    {
        error = null;
        if (spec is null)
        {
            error = "no card given";
            return false;
        }

        if (spec == "pcsc" || (spec.StartsWith("pcsc:", StringComparison.Ordinal) && spec.Length > 5))
        {
            return true;
        }

        if ((spec.StartsWith("at:", StringComparison.Ordinal) && spec.Length > 3) || (spec.StartsWith("at-cgla:", StringComparison.Ordinal) && spec.Length > 8))
        {
            return true;
        }

        error = $"\"{spec}\" is not pcsc, pcsc:READER, at:DEVICE or at-cgla:DEVICE";
        return false;
    }

    /// <summary>Opens the channel <paramref name="spec"/> names.</summary>
    /// <exception cref="ArgumentException">The specification has no accepted form.</exception>
    /// <exception cref="IOException">The reader, line or card is not there.</exception>
    public static IApduChannel Open(string spec)
    {
        if (!IsValid(spec, out var error))
        {
            throw new ArgumentException(error, nameof(spec));
        }

        return spec switch
        {
            "pcsc" => PcscChannel.Connect(),
            _ when spec.StartsWith("pcsc:", StringComparison.Ordinal) => PcscChannel.Connect(spec[5..]),
            _ when spec.StartsWith("at-cgla:", StringComparison.Ordinal) => AtModemChannel.Open(spec[8..], AtLogicalChannels.Cgla),
            _ => AtModemChannel.Open(spec[3..]),
        };
    }
}
