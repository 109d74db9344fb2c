using System.Security.Cryptography;
using System.Text;

namespace OpenBest.Crypto.Kdf;

/// <summary>
/// GBA key material and identifiers (TS 33.220 clause 4.5.2 and Annexes B and H; TS 23.003 for the names).
/// </summary>
public static class Gba
{
    /// <summary>The Ua security protocol identifier of HTTP Digest per TS 24.109 (TS 33.220 H.3).</summary>
    public static ReadOnlySpan<byte> UaHttpDigest => [0x01, 0x00, 0x00, 0x00, 0x02];

    /// <summary>The Ua security protocol identifier of shared-key TLS 1.3 (TS 33.222 5.4.0.2).</summary>
    public static ReadOnlySpan<byte> UaSharedKeyTls13 => [0x01, 0x00, 0x00, 0x00, 0x07];

    /// <summary>The identifier used for TMPI generation (TS 33.220 B.4).</summary>
    public static ReadOnlySpan<byte> UaTmpi => [0x01, 0x00, 0x00, 0x01, 0x00];

    /// <summary>NAF_Id = FQDN of the NAF ‖ Ua security protocol identifier (5 octets) — TS 33.220 Annex H.</summary>
    /// <exception cref="ArgumentException">The identifier is not 5 octets.</exception>
    public static byte[] NafId(string fqdn, ReadOnlySpan<byte> uaSecurityProtocolId)
    {
        ArgumentNullException.ThrowIfNull(fqdn);
        KeyDerivation.RequireLength(uaSecurityProtocolId, 5, nameof(uaSecurityProtocolId));
        var name = Kdf.EncodeString(fqdn);
        var result = new byte[name.Length + 5];
        name.CopyTo(result, 0);
        uaSecurityProtocolId.CopyTo(result.AsSpan(name.Length));
        return result;
    }

    /// <summary>Ks_NAF (GBA_ME) = Ks_ext_NAF (GBA_U) = KDF(Ks, 0x01, "gba-me", RAND, IMPI, NAF_Id), Ks = CK ‖ IK — TS 33.220 B.3.</summary>
    public static void KsNaf(ReadOnlySpan<byte> ck, ReadOnlySpan<byte> ik, ReadOnlySpan<byte> rand, string impi, ReadOnlySpan<byte> nafId, Span<byte> ksNaf)
        => Derive("gba-me", ck, ik, rand, impi, nafId, ksNaf);

    /// <summary>Ks_int_NAF (GBA_U) = KDF(Ks, 0x01, "gba-u", RAND, IMPI, NAF_Id) — TS 33.220 B.3.</summary>
    public static void KsIntNaf(ReadOnlySpan<byte> ck, ReadOnlySpan<byte> ik, ReadOnlySpan<byte> rand, string impi, ReadOnlySpan<byte> nafId, Span<byte> ksIntNaf)
        => Derive("gba-u", ck, ik, rand, impi, nafId, ksIntNaf);

    /// <summary>B-TID = base64(RAND) "@" BSF server domain name (TS 33.220 4.5.2).</summary>
    public static string BTid(ReadOnlySpan<byte> rand, string bsfDomain)
    {
        ArgumentNullException.ThrowIfNull(bsfDomain);
        KeyDerivation.RequireLength(rand, 16, nameof(rand));
        return Convert.ToBase64String(rand) + "@" + bsfDomain;
    }

    /// <summary>The BSF FQDN bsf.mnc&lt;MNC&gt;.mcc&lt;MCC&gt;.pub.3gppnetwork.org, MNC padded to 3 digits (TS 23.003).</summary>
    public static string BsfDomain(string mcc, string mnc) => $"bsf.mnc{Pad(mnc)}.mcc{mcc}.pub.3gppnetwork.org";

    /// <summary>The IMPI derived from an IMSI: &lt;IMSI&gt;@ims.mnc&lt;MNC&gt;.mcc&lt;MCC&gt;.3gppnetwork.org (TS 23.003).</summary>
    public static string ImpiFromImsi(string imsi, int mncLength)
    {
        ArgumentNullException.ThrowIfNull(imsi);
        if (imsi.Length is < 6 or > 15 || !imsi.All(char.IsAsciiDigit) || mncLength is not (2 or 3))
        {
            throw new ArgumentException("An IMSI has 6..15 digits and the MNC 2 or 3.", nameof(imsi));
        }

        return $"{imsi}@ims.mnc{Pad(imsi.Substring(3, mncLength))}.mcc{imsi[..3]}.3gppnetwork.org";
    }

    /// <summary>
    /// TMPI = base64(the 24 most significant octets of KDF(Ks, 0x01, "gba-me", RAND, IMPI, BSF_Id)) "@tmpi.bsf.3gppnetwork.org",
    /// BSF_Id = BSF DNS name ‖ 01 00 00 01 00 (TS 33.220 B.4).
    /// </summary>
    public static string Tmpi(ReadOnlySpan<byte> ck, ReadOnlySpan<byte> ik, ReadOnlySpan<byte> rand, string impi, string bsfDomain)
    {
        Span<byte> output = stackalloc byte[32];
        Derive("gba-me", ck, ik, rand, impi, NafId(bsfDomain, UaTmpi), output);
        var result = Convert.ToBase64String(output[..24]) + "@tmpi.bsf.3gppnetwork.org";
        CryptographicOperations.ZeroMemory(output);
        return result;
    }

    /// <summary>The HTTP Digest AKA nonce of Ub: base64(RAND ‖ AUTN ‖ server data) (TS 33.220 4.5.2, RFC 3310).</summary>
    public static string UbNonce(ReadOnlySpan<byte> rand, ReadOnlySpan<byte> autn, ReadOnlySpan<byte> serverData = default)
    {
        var bytes = new byte[rand.Length + autn.Length + serverData.Length];
        rand.CopyTo(bytes);
        autn.CopyTo(bytes.AsSpan(rand.Length));
        serverData.CopyTo(bytes.AsSpan(rand.Length + autn.Length));
        return Convert.ToBase64String(bytes);
    }

    private static void Derive(string label, ReadOnlySpan<byte> ck, ReadOnlySpan<byte> ik, ReadOnlySpan<byte> rand, string impi, ReadOnlySpan<byte> nafId, Span<byte> output)
    {
        KeyDerivation.RequireLength(rand, 16, nameof(rand));
        ArgumentNullException.ThrowIfNull(impi);
        Span<byte> buffer = stackalloc byte[1024];
        var s = new KdfInput(buffer, FunctionCodes.GbaNaf);
        s.AppendString(label);
        s.Append(rand);
        s.AppendString(impi);
        s.Append(nafId);
        KeyDerivation.DeriveFromCkIk(ck, ik, s.Written, output);
    }

    private static string Pad(string mnc) => mnc.PadLeft(3, '0');
}
