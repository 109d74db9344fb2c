using System.Buffers.Binary;
using System.Globalization;
using OpenBest.Crypto.Aead;

namespace OpenBest.Crypto.Kdf;

/// <summary>
/// The per-key-set derivations of EMSDP wire profile 1, section 5, all with the two-octet FC 0xFF 0xBE:
/// <code>
/// K_E2Mint       = KDF(K_root, FC, "E2M-INT", a, s, k, F, N)         last 16 octets (32 for suite 4)
/// K_E2Menc       = KDF(K_root, FC, "E2M-ENC", a, s, k, F, N)         same
/// K_Intermediate = KDF(K_root, FC, "INTERMEDIATE", s, k, F, N)       32
/// K_EAS_PSK      = KDF(K_Intermediate, FC, "EAS-PSK", EAS Id)        32
/// K_EMSE_PSK     = KDF(K_EAS_PSK, FC, "EMSE-PSK", EMSE Id)           32  (one enterprise endpoint's PSK)
/// K_E2Eint       = KDF(K_EAS_PSK, FC, "E2E-INT", a, Enterprise Key)  as K_E2Mint
/// K_E2Eenc       = KDF(K_EAS_PSK, FC, "E2E-ENC", a, Enterprise Key)  as K_E2Mint
/// </code>
/// a = suite ID (1 octet), s = Session ID (4 octets big-endian), k = Key ID (1 octet), F = the key set's
/// 16-octet fresh value (the RAND, or the HSE nonce), N = the 8-octet UE nonce. The Enterprise Key may be
/// empty (L = 0).
/// </summary>
public static class BestKeys
{
    /// <summary>The size of K_Intermediate and K_EAS_PSK.</summary>
    public const int IntermediateSize = 32;

    /// <summary>K_E2Mint: integrity key between the UE and the HSE (and the key of every CP message).</summary>
    public static void KE2MInt(ReadOnlySpan<byte> kRoot, CipherSuite suite, uint sessionId, byte keyId, ReadOnlySpan<byte> fresh, ReadOnlySpan<byte> ueNonce, Span<byte> key)
        => SessionKey("E2M-INT", kRoot, suite, sessionId, keyId, fresh, ueNonce, key);

    /// <summary>K_E2Menc: confidentiality key between the UE and the HSE.</summary>
    public static void KE2MEnc(ReadOnlySpan<byte> kRoot, CipherSuite suite, uint sessionId, byte keyId, ReadOnlySpan<byte> fresh, ReadOnlySpan<byte> ueNonce, Span<byte> key)
        => SessionKey("E2M-ENC", kRoot, suite, sessionId, keyId, fresh, ueNonce, key);

    /// <summary>K_Intermediate (32 octets), the root of the per-EAS keys.</summary>
    public static void KIntermediate(ReadOnlySpan<byte> kRoot, uint sessionId, byte keyId, ReadOnlySpan<byte> fresh, ReadOnlySpan<byte> ueNonce, Span<byte> key)
    {
        CheckInputs(keyId, fresh, ueNonce);
        RequireOutput(key, IntermediateSize);
        Span<byte> buffer = stackalloc byte[128];
        var s = new KdfInput(buffer, FunctionCodes.BestProfile1);
        s.AppendString("INTERMEDIATE");
        s.AppendUInt32(sessionId);
        s.AppendByte(keyId);
        s.Append(fresh);
        s.Append(ueNonce);
        Kdf.Derive(kRoot, s.Written, key);
    }

    /// <summary>K_EAS_PSK (32 octets) for the EAS named <paramref name="easId"/>; one per EAS per K_Intermediate.</summary>
    public static void KEasPsk(ReadOnlySpan<byte> kIntermediate, string easId, Span<byte> key)
    {
        ArgumentNullException.ThrowIfNull(easId);
        RequireOutput(key, IntermediateSize);
        Span<byte> buffer = stackalloc byte[512];
        var s = new KdfInput(buffer, FunctionCodes.BestProfile1);
        s.AppendString("EAS-PSK");
        s.AppendString(easId);
        Kdf.Derive(kIntermediate, s.Written, key);
    }

    /// <summary>
    /// K_EMSE_PSK (32 octets): the PSK of one endpoint of the enterprise (EMSE Id, e.g. a gateway's or a server's name), so
    /// that the device's traffic with each endpoint has its own key, all from one AKA run (seed 004, "unique key per EMSE").
    /// </summary>
    public static void KEndpointPsk(ReadOnlySpan<byte> kEasPsk, string endpointId, Span<byte> key)
    {
        ArgumentException.ThrowIfNullOrEmpty(endpointId);
        KeyDerivation.RequireLength(kEasPsk, IntermediateSize, nameof(kEasPsk));
        RequireOutput(key, IntermediateSize);
        Span<byte> buffer = stackalloc byte[512];
        var s = new KdfInput(buffer, FunctionCodes.BestProfile1);
        s.AppendString("EMSE-PSK");
        s.AppendString(endpointId);
        Kdf.Derive(kEasPsk, s.Written, key);
    }

    /// <summary>K_E2Eint: integrity key between the UE and the EAS.</summary>
    public static void KE2EInt(ReadOnlySpan<byte> kEasPsk, CipherSuite suite, ReadOnlySpan<byte> enterpriseKey, Span<byte> key)
        => EndToEndKey("E2E-INT", kEasPsk, suite, enterpriseKey, key);

    /// <summary>K_E2Eenc: confidentiality key between the UE and the EAS.</summary>
    public static void KE2EEnc(ReadOnlySpan<byte> kEasPsk, CipherSuite suite, ReadOnlySpan<byte> enterpriseKey, Span<byte> key)
        => EndToEndKey("E2E-ENC", kEasPsk, suite, enterpriseKey, key);

    /// <summary>The EAS key identifier: RAND octets 12..15 (its 32 least significant bits), profile section 5.</summary>
    public static uint EasKeyIdentifier(ReadOnlySpan<byte> rand)
    {
        KeyDerivation.RequireLength(rand, 16, nameof(rand));
        return BinaryPrimitives.ReadUInt32BigEndian(rand[12..]);
    }

    /// <summary>The PSK identity &lt;external id&gt;#&lt;8 lowercase hex digits&gt; (profile section 5).</summary>
    public static string PskIdentity(string externalId, uint easKeyIdentifier)
    {
        ArgumentException.ThrowIfNullOrEmpty(externalId);
        return externalId + "#" + easKeyIdentifier.ToString("x8", CultureInfo.InvariantCulture);
    }

    private static void SessionKey(string label, ReadOnlySpan<byte> kRoot, CipherSuite suite, uint sessionId, byte keyId, ReadOnlySpan<byte> fresh, ReadOnlySpan<byte> ueNonce, Span<byte> key)
    {
        ArgumentNullException.ThrowIfNull(suite);
        CheckInputs(keyId, fresh, ueNonce);
        RequireOutput(key, suite.KeySize);
        Span<byte> buffer = stackalloc byte[128];
        var s = new KdfInput(buffer, FunctionCodes.BestProfile1);
        s.AppendString(label);
        s.AppendByte(suite.Id);
        s.AppendUInt32(sessionId);
        s.AppendByte(keyId);
        s.Append(fresh);
        s.Append(ueNonce);
        Kdf.DeriveTruncated(kRoot, s.Written, key[..suite.KeySize]);
    }

    private static void EndToEndKey(string label, ReadOnlySpan<byte> kEasPsk, CipherSuite suite, ReadOnlySpan<byte> enterpriseKey, Span<byte> key)
    {
        ArgumentNullException.ThrowIfNull(suite);
        RequireOutput(key, suite.KeySize);
        Span<byte> buffer = stackalloc byte[512];
        var s = new KdfInput(buffer, FunctionCodes.BestProfile1);
        s.AppendString(label);
        s.AppendByte(suite.Id);
        s.Append(enterpriseKey);
        Kdf.DeriveTruncated(kEasPsk, s.Written, key[..suite.KeySize]);
    }

    private static void CheckInputs(byte keyId, ReadOnlySpan<byte> fresh, ReadOnlySpan<byte> ueNonce)
    {
        if (keyId is < 1 or > 7)
        {
            throw new ArgumentOutOfRangeException(nameof(keyId), "A Key ID of a key set is 1..7.");
        }

        KeyDerivation.RequireLength(fresh, 16, nameof(fresh));
        KeyDerivation.RequireLength(ueNonce, 8, nameof(ueNonce));
    }

    private static void RequireOutput(Span<byte> key, int size)
    {
        if (key.Length < size)
        {
            throw new ArgumentException($"The key needs {size} octets.", nameof(key));
        }
    }
}
