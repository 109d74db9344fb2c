using System.Text;
using Org.BouncyCastle.Tls;

namespace OpenBest.Dtls;

/// <summary>Which GBA the device bootstrapped with, as the PSK identity prefix and identity hint name it (TS 33.222 5.4, TS 24.109 5.3.3).</summary>
public enum GbaMode
{
    /// <summary>GBA_ME: the key is Ks_NAF; prefix "3GPP-bootstrapping".</summary>
    Me,

    /// <summary>GBA_U: the key is Ks_ext_NAF (the same derivation, done by the UICC); prefix "3GPP-bootstrapping-uicc".</summary>
    Uicc,

    /// <summary>GBA_Digest: prefix "3GPP-bootstrapping-digest". Recognised and refused: the OBF server does not run GBA_Digest.</summary>
    Digest,
}

/// <summary>
/// The NAF's key lookup: the Ks_(ext)_NAF of a B-TID for this NAF and the Ua security protocol identifier of the connection
/// (<c>01 00 01 yy zz</c> for a TLS 1.2 cipher suite yy zz, <c>01 00 00 00 07</c> for TLS 1.3), or null when the B-TID is
/// unknown or expired. In production it asks the OBF server (the BSF); it may take its time (it runs within the handshake deadline).
/// </summary>
/// <param name="bTid">The B-TID the device presented.</param>
/// <param name="uaSecurityProtocolId">The 5-octet Ua security protocol identifier (NAF_Id = NAF FQDN ‖ this).</param>
/// <param name="cancellationToken">Cancelled when the handshake deadline passes or the server stops.</param>
/// <returns>The 32-octet key, which the server zeroes after the handshake, or null to refuse the B-TID.</returns>
public delegate ValueTask<byte[]?> GbaKsNafLookup(string bTid, byte[] uaSecurityProtocolId, CancellationToken cancellationToken);

/// <summary>
/// Shared-key TLS keyed from GBA (TS 33.222 clause 5.4, TS 24.109 clause 5.3.3): the rules both ends share. The NAF
/// sends the PSK identity hint "3GPP-bootstrapping" (TLS 1.2), the device answers with the identity
/// <c>"3GPP-bootstrapping" "." B-TID</c>, and both use as PSK the Ks_(ext)_NAF derived with
/// NAF_Id = NAF FQDN ‖ Ua security protocol identifier of the negotiated protocol (TS 33.220 Annex H).
/// See docs/gba-tls-psk.md for each rule and the decisions taken.
/// </summary>
public static class GbaTlsPsk
{
    /// <summary>Identity hint and identity prefix of GBA_ME.</summary>
    public const string PrefixMe = "3GPP-bootstrapping";

    /// <summary>Identity hint and identity prefix of GBA_U.</summary>
    public const string PrefixUicc = "3GPP-bootstrapping-uicc";

    /// <summary>Identity hint and identity prefix of GBA_Digest.</summary>
    public const string PrefixDigest = "3GPP-bootstrapping-digest";

    /// <summary>What separates the prefix from the B-TID in the identity the device sends (TS 36.508 table 4.7H-5).</summary>
    public const char Separator = '.';

    /// <summary>The size of Ks_NAF / Ks_ext_NAF (the output of the TS 33.220 KDF).</summary>
    public const int KeySize = 32;

    /// <summary>
    /// The TLS 1.2 cipher suites, in the NAF's order of preference: forward-secret (EC)DHE_PSK first, then plain PSK
    /// (RFC 4279, 5487, 5489, 7905). TLS_PSK_WITH_AES_128_CBC_SHA is the suite of the original TS 33.222 profile.
    /// </summary>
    public static IReadOnlyList<int> Tls12CipherSuites { get; } =
    [
        CipherSuite.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
        CipherSuite.TLS_DHE_PSK_WITH_AES_128_GCM_SHA256,
        CipherSuite.TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256,
        CipherSuite.TLS_PSK_WITH_AES_128_GCM_SHA256,
        CipherSuite.TLS_PSK_WITH_AES_256_GCM_SHA384,
        CipherSuite.TLS_PSK_WITH_AES_128_CBC_SHA256,
        CipherSuite.TLS_PSK_WITH_AES_128_CBC_SHA,
    ];

    /// <summary>
    /// The TLS 1.3 cipher suites: those whose hash is SHA-256, the hash the external PSK is bound to
    /// (RFC 8446 4.2.11: a PSK is used only with suites of its hash).
    /// </summary>
    public static IReadOnlyList<int> Tls13CipherSuites { get; } =
    [
        CipherSuite.TLS_AES_128_GCM_SHA256,
        CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
    ];

    /// <summary>The Ua security protocol identifier of shared-key TLS 1.3: 01 00 00 00 07 (TS 33.222 5.4.0.2, TS 33.220 H.3).</summary>
    public static ReadOnlySpan<byte> UaTls13 => [0x01, 0x00, 0x00, 0x00, 0x07];

    /// <summary>The Ua security protocol identifier of a TLS 1.2 PSK cipher suite yy zz: 01 00 01 yy zz (TS 33.220 H.3).</summary>
    public static byte[] UaTls12(int cipherSuite)
    {
        if (cipherSuite is < 0 or > 0xFFFF)
        {
            throw new ArgumentOutOfRangeException(nameof(cipherSuite), "A cipher suite is two octets.");
        }

        return [0x01, 0x00, 0x01, (byte)(cipherSuite >> 8), (byte)cipherSuite];
    }

    /// <summary>The identity hint and identity prefix of a GBA mode.</summary>
    public static string Prefix(GbaMode mode) => mode switch
    {
        GbaMode.Me => PrefixMe,
        GbaMode.Uicc => PrefixUicc,
        GbaMode.Digest => PrefixDigest,
        _ => throw new ArgumentOutOfRangeException(nameof(mode)),
    };

    /// <summary>The PSK identity the device sends: prefix "." B-TID.</summary>
    public static string Identity(string bTid, GbaMode mode = GbaMode.Me)
    {
        ArgumentException.ThrowIfNullOrEmpty(bTid);
        return Prefix(mode) + Separator + bTid;
    }

    /// <summary>
    /// Reads a PSK identity: <c>prefix "." B-TID</c> as sent by <see cref="Identity"/>, the prefix directly followed by the
    /// B-TID, or a bare B-TID (taken as GBA_ME). A B-TID is base64(RAND) "@" domain (TS 33.220 4.5.2), so it never starts
    /// with a prefix or a separator, and the reading is unambiguous.
    /// </summary>
    /// <returns>False for an empty identity, or one with no B-TID after its prefix.</returns>
    public static bool TryParseIdentity(string identity, out GbaMode mode, out string bTid)
    {
        ArgumentNullException.ThrowIfNull(identity);
        mode = GbaMode.Me;
        var rest = identity;
        foreach (var (prefix, prefixMode) in (ReadOnlySpan<(string, GbaMode)>)[(PrefixUicc, GbaMode.Uicc), (PrefixDigest, GbaMode.Digest), (PrefixMe, GbaMode.Me)])
        {
            if (identity.StartsWith(prefix, StringComparison.Ordinal))
            {
                mode = prefixMode;
                rest = identity[prefix.Length..];
                if (rest.Length > 0 && rest[0] == Separator)
                {
                    rest = rest[1..];
                }

                break;
            }
        }

        bTid = rest;
        return bTid.Length > 0 && !bTid.Any(char.IsControl);
    }

    /// <summary>Whether a TLS 1.2 identity hint names <paramref name="mode"/>: it is the prefix, or lists it among words separated by spaces, commas or semicolons.</summary>
    public static bool HintNames(string? hint, GbaMode mode)
    {
        if (string.IsNullOrEmpty(hint))
        {
            return false;
        }

        var prefix = Prefix(mode);
        return hint.Split([' ', ',', ';'], StringSplitOptions.RemoveEmptyEntries).Contains(prefix, StringComparer.Ordinal);
    }

    /// <summary>The OpenSSL name of a cipher suite of <see cref="Tls12CipherSuites"/> or <see cref="Tls13CipherSuites"/>.</summary>
    public static string OpenSslName(int cipherSuite) => cipherSuite switch
    {
        CipherSuite.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-PSK-CHACHA20-POLY1305",
        CipherSuite.TLS_DHE_PSK_WITH_AES_128_GCM_SHA256 => "DHE-PSK-AES128-GCM-SHA256",
        CipherSuite.TLS_ECDHE_PSK_WITH_AES_128_CBC_SHA256 => "ECDHE-PSK-AES128-CBC-SHA256",
        CipherSuite.TLS_PSK_WITH_AES_128_GCM_SHA256 => "PSK-AES128-GCM-SHA256",
        CipherSuite.TLS_PSK_WITH_AES_256_GCM_SHA384 => "PSK-AES256-GCM-SHA384",
        CipherSuite.TLS_PSK_WITH_AES_128_CBC_SHA256 => "PSK-AES128-CBC-SHA256",
        CipherSuite.TLS_PSK_WITH_AES_128_CBC_SHA => "PSK-AES128-CBC-SHA",
        CipherSuite.TLS_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        CipherSuite.TLS_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        _ => throw new ArgumentOutOfRangeException(nameof(cipherSuite), $"0x{cipherSuite:X4} is not a suite of this profile."),
    };

    internal static string Decode(byte[] identity) => Encoding.UTF8.GetString(identity);

    internal static byte[] Encode(string identity) => Encoding.UTF8.GetBytes(identity);
}
