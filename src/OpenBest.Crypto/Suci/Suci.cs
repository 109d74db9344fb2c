namespace OpenBest.Crypto.Suci;

/// <summary>
/// Identity encodings used with SUCI and the key derivations: the PLMN ID of TS 24.008 10.5.1.13 and
/// the packed BCD MSIN of the null scheme (TS 33.501 C.3.1, TS 24.501 9.11.3.4).
/// </summary>
public static class Identities
{
    /// <summary>
    /// Encodes MCC and MNC as the 3-octet PLMN ID: MCC2‖MCC1, MNC3‖MCC3, MNC2‖MNC1 (MNC3 = F for a 2-digit MNC).
    /// </summary>
    /// <exception cref="ArgumentException">MCC is not 3 digits or MNC not 2 or 3 digits.</exception>
    public static byte[] EncodePlmnId(string mcc, string mnc)
    {
        ArgumentNullException.ThrowIfNull(mcc);
        ArgumentNullException.ThrowIfNull(mnc);
        if (mcc.Length != 3 || !mcc.All(char.IsAsciiDigit) || mnc.Length is < 2 or > 3 || !mnc.All(char.IsAsciiDigit))
        {
            throw new ArgumentException("A PLMN is a 3-digit MCC and a 2- or 3-digit MNC.");
        }

        var mnc3 = mnc.Length == 3 ? mnc[2] - '0' : 0xF;
        return
        [
            (byte)(((mcc[1] - '0') << 4) | (mcc[0] - '0')),
            (byte)((mnc3 << 4) | (mcc[2] - '0')),
            (byte)(((mnc[1] - '0') << 4) | (mnc[0] - '0')),
        ];
    }

    /// <summary>Packs decimal digits as BCD, the first digit in the low nibble, an odd count padded with F.</summary>
    /// <exception cref="ArgumentException"><paramref name="digits"/> is not all decimal digits.</exception>
    public static byte[] PackBcd(string digits)
    {
        ArgumentNullException.ThrowIfNull(digits);
        if (!digits.All(char.IsAsciiDigit))
        {
            throw new ArgumentException("Only decimal digits can be packed as BCD.", nameof(digits));
        }

        var result = new byte[(digits.Length + 1) / 2];
        for (var i = 0; i < digits.Length; i++)
        {
            var nibble = digits[i] - '0';
            result[i / 2] |= (byte)(i % 2 == 0 ? nibble : nibble << 4);
        }

        if (digits.Length % 2 == 1)
        {
            result[^1] |= 0xF0;
        }

        return result;
    }

    /// <summary>Unpacks BCD written by <see cref="PackBcd"/>; false on a nibble above 9 other than the final filler.</summary>
    public static bool TryUnpackBcd(ReadOnlySpan<byte> bcd, out string digits)
    {
        var chars = new char[bcd.Length * 2];
        var count = 0;
        for (var i = 0; i < bcd.Length; i++)
        {
            var low = bcd[i] & 0x0F;
            var high = bcd[i] >> 4;
            if (low > 9)
            {
                digits = string.Empty;
                return false;
            }

            chars[count++] = (char)('0' + low);
            if (high == 0xF && i == bcd.Length - 1)
            {
                break;
            }

            if (high > 9)
            {
                digits = string.Empty;
                return false;
            }

            chars[count++] = (char)('0' + high);
        }

        digits = new string(chars, 0, count);
        return true;
    }
}
