namespace OpenBest.Gsup;

/// <summary>
/// Reads the IEs of a GSUP message or container, one at a time: tag (1), length (1), value. Offsets are relative to
/// the span the reader was made over, so a caller holding the same octets as memory can slice values without copying.
/// </summary>
internal ref struct GsupTlvReader(ReadOnlySpan<byte> ies)
{
    private readonly ReadOnlySpan<byte> _ies = ies;
    private int _at;

    /// <summary>
    /// The next IE: true with its tag and value position, false at the end or when the IE is truncated; then
    /// <paramref name="malformed"/> tells which. Never reads past the span.
    /// </summary>
    public bool TryRead(out byte tag, out int valueOffset, out int valueLength, out bool malformed)
    {
        tag = 0;
        valueOffset = 0;
        valueLength = 0;
        malformed = false;
        if (_at == _ies.Length)
        {
            return false;
        }

        if (_ies.Length - _at < 2 || _ies[_at + 1] > _ies.Length - _at - 2)
        {
            malformed = true;
            return false;
        }

        tag = _ies[_at];
        valueLength = _ies[_at + 1];
        valueOffset = _at + 2;
        _at = valueOffset + valueLength;
        return true;
    }
}

/// <summary>Writes IEs into a span, advancing a position.</summary>
internal static class GsupTlvWriter
{
    public static void Write(Span<byte> destination, ref int at, GsupIei tag, ReadOnlySpan<byte> value)
    {
        destination[at] = (byte)tag;
        destination[at + 1] = (byte)value.Length;
        value.CopyTo(destination[(at + 2)..]);
        at += 2 + value.Length;
    }

    public static void Write(Span<byte> destination, ref int at, GsupIei tag, byte value) =>
        Write(destination, ref at, tag, [value]);
}

/// <summary>
/// The IMSI IE's value (GSUP specification, "IMSI"): BCD digits as octets 4..N of the Called Party BCD Number
/// (TS 24.008 10.5.4.7): digit 1 in the low nibble of the first octet, and for an odd count a filler 1111 in the
/// last high nibble.
/// </summary>
public static class GsupImsi
{
    /// <summary>The fewest digits of an IMSI: MCC, a 2-digit MNC and one MSIN digit (osmo-hlr refuses fewer than 6).</summary>
    public const int MinDigits = 6;

    /// <summary>The most digits of an IMSI (TS 23.003 2.2).</summary>
    public const int MaxDigits = 15;

    /// <summary>The most octets of an encoded IMSI.</summary>
    public const int MaxEncodedLength = (MaxDigits + 1) / 2;

    /// <summary>Whether <paramref name="imsi"/> is 6..15 decimal digits.</summary>
    public static bool IsValid(string? imsi) =>
        imsi is { Length: >= MinDigits and <= MaxDigits } && imsi.All(char.IsAsciiDigit);

    /// <summary>The octets <paramref name="imsi"/> encodes to.</summary>
    public static int GetEncodedLength(string imsi)
    {
        ArgumentNullException.ThrowIfNull(imsi);
        return (imsi.Length + 1) / 2;
    }

    /// <summary>Encodes <paramref name="imsi"/>; returns the octets written.</summary>
    /// <exception cref="ArgumentException">The IMSI is not 6..15 digits, or the destination is too short.</exception>
    public static int Write(string imsi, Span<byte> destination)
    {
        if (!IsValid(imsi))
        {
            throw new ArgumentException($"An IMSI has {MinDigits}..{MaxDigits} decimal digits: '{imsi}'.", nameof(imsi));
        }

        var length = GetEncodedLength(imsi);
        if (destination.Length < length)
        {
            throw new ArgumentException("The destination is too short.", nameof(destination));
        }

        for (var i = 0; i < length; i++)
        {
            var low = imsi[2 * i] - '0';
            var high = 2 * i + 1 < imsi.Length ? imsi[(2 * i) + 1] - '0' : 0xF;
            destination[i] = (byte)((high << 4) | low);
        }

        return length;
    }

    /// <summary>
    /// Decodes an IMSI IE value: 1..8 octets of digits 0..9, a filler 1111 allowed only as the very last nibble.
    /// False otherwise (or when it gives fewer than 6 or more than 15 digits). Never throws.
    /// </summary>
    public static bool TryRead(ReadOnlySpan<byte> value, out string? imsi)
    {
        imsi = null;
        if (value.IsEmpty || value.Length > MaxEncodedLength)
        {
            return false;
        }

        Span<char> digits = stackalloc char[2 * MaxEncodedLength];
        var count = 0;
        for (var i = 0; i < value.Length; i++)
        {
            var low = value[i] & 0xF;
            var high = value[i] >> 4;
            if (low > 9)
            {
                return false;
            }

            digits[count++] = (char)('0' + low);
            if (high == 0xF && i == value.Length - 1)
            {
                break;
            }

            if (high > 9)
            {
                return false;
            }

            digits[count++] = (char)('0' + high);
        }

        if (count is < MinDigits or > MaxDigits)
        {
            return false;
        }

        imsi = new string(digits[..count]);
        return true;
    }
}
