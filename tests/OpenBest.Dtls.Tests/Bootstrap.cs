using System.Security.Cryptography;
using System.Text;

namespace OpenBest.Dtls.Tests;

/// <summary>
/// One device's GBA bootstrapping, with the key material of MILENAGE test set 19 (TS 35.208; CK and IK also in RFC 5448
/// Appendix C), and Ks_NAF computed here from the rules as written, independently of the code under test:
/// Ks_NAF = HMAC-SHA-256(Ks, FC ‖ P0 ‖ L0 ‖ P1 ‖ L1 ‖ P2 ‖ L2 ‖ P3 ‖ L3) with Ks = CK ‖ IK, FC = 0x01, P0 = "gba-me",
/// P1 = RAND, P2 = IMPI, P3 = NAF_Id = FQDN ‖ Ua security protocol identifier (TS 33.220 B.2, B.3, Annex H).
/// </summary>
internal static class Bootstrap
{
    public static readonly byte[] Ck = Convert.FromHexString("5349fbe098649f948f5d2e973a81c00f");
    public static readonly byte[] Ik = Convert.FromHexString("9744871ad32bf9bbd1dd5ce54e3e2e5a");
    public static readonly byte[] Rand = Convert.FromHexString("81e92b6c0ee0e12ebceba8d92a99dfa5");
    public const string Impi = "208930000000001@ims.mnc093.mcc208.3gppnetwork.org";

    /// <summary>base64(RAND) "@" the BSF's name (TS 33.220 4.5.2).</summary>
    public const string BTid = "gekrbA7g4S6866jZKpnfpQ==@bsf.mnc093.mcc208.pub.3gppnetwork.org";

    public const string NafFqdn = "naf.example.org";

    /// <summary>The identity the device sends: "3GPP-bootstrapping" "." B-TID (TS 36.508 table 4.7H-5).</summary>
    public const string Identity = "3GPP-bootstrapping." + BTid;

    public static byte[] Ks => [.. Ck, .. Ik];

    /// <summary>Ks_NAF for <see cref="NafFqdn"/> and a Ua security protocol identifier written in hex.</summary>
    public static byte[] KsNaf(string uaHex) => KsNaf(NafFqdn, Convert.FromHexString(uaHex));

    public static byte[] KsNaf(string fqdn, byte[] ua)
    {
        byte[] nafId = [.. Encoding.UTF8.GetBytes(fqdn), .. ua];
        var impi = Encoding.UTF8.GetBytes(Impi);
        byte[] s =
        [
            0x01,
            .. "gba-me"u8, 0x00, 0x06,
            .. Rand, 0x00, 0x10,
            .. impi, (byte)(impi.Length >> 8), (byte)impi.Length,
            .. nafId, (byte)(nafId.Length >> 8), (byte)nafId.Length,
        ];
        return HMACSHA256.HashData(Ks, s);
    }

    public static string Hex(byte[] key) => Convert.ToHexString(key).ToLowerInvariant();
}
