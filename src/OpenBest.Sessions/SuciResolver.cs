using OpenBest.Crypto.Suci;

namespace OpenBest.Sessions;

/// <summary>
/// Turns the SUCI of a Session Request (TLV 0x02, the TS 24.501 9.11.3.4 value from "octet 4" on) into
/// the IMSI: SUPI format IMSI, the PLMN (MCC/MNC), the routing indicator, the protection scheme, the home
/// network public key identifier and the scheme output (null scheme or ECIES profile A/B).
/// </summary>
internal static class SuciResolver
{
    public static bool TryResolve(ReadOnlySpan<byte> suci, IReadOnlyDictionary<byte, (SuciProtectionScheme Scheme, ReadOnlyMemory<byte> PrivateKey)> keys, out string imsi)
    {
        imsi = string.Empty;
        // 1: type (0x01 = SUCI, SUPI format IMSI); 2..4 PLMN; 5..6 routing indicator; 7 scheme; 8 HNPKI; 9.. output.
        if (suci.Length < 9 || suci[0] != 0x01)
        {
            return false;
        }

        if (!TryPlmn(suci.Slice(1, 3), out var mcc, out var mnc))
        {
            return false;
        }

        var scheme = suci[6] & 0x0F;
        var output = suci[8..];
        byte[] msin;
        if (scheme == 0)
        {
            msin = output.ToArray();
        }
        else if (keys.TryGetValue(suci[7], out var key) && key.Scheme.SchemeId == scheme)
        {
            if (!key.Scheme.TryDeconceal(key.PrivateKey.Span, output, out msin))
            {
                return false;
            }
        }
        else
        {
            return false;
        }

        if (!Identities.TryUnpackBcd(msin, out var digits) || mcc.Length + mnc.Length + digits.Length is < 6 or > 15)
        {
            return false;
        }

        imsi = mcc + mnc + digits;
        return true;
    }

    private static bool TryPlmn(ReadOnlySpan<byte> plmn, out string mcc, out string mnc)
    {
        mcc = mnc = string.Empty;
        int[] d = [plmn[0] & 0x0F, plmn[0] >> 4, plmn[1] & 0x0F, plmn[2] & 0x0F, plmn[2] >> 4, plmn[1] >> 4];
        if (d[..5].Any(x => x > 9) || (d[5] > 9 && d[5] != 0xF))
        {
            return false;
        }

        mcc = $"{d[0]}{d[1]}{d[2]}";
        mnc = d[5] == 0xF ? $"{d[3]}{d[4]}" : $"{d[3]}{d[4]}{d[5]}";
        return true;
    }
}
