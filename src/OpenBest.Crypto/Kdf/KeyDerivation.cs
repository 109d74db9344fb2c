using System.Security.Cryptography;

namespace OpenBest.Crypto.Kdf;

/// <summary>The FC values of the derivations this project uses (TS 33.220 B.2.2 and the calling specifications).</summary>
public static class FunctionCodes
{
    /// <summary>Ks_NAF, Ks_int_NAF, Ks_ext_NAF and TMPI (TS 33.220 B.3, B.4).</summary>
    public const ushort GbaNaf = 0x01;

    /// <summary>K_ASME (TS 33.401 A.2).</summary>
    public const ushort KAsme = 0x10;

    /// <summary>CK' and IK' (TS 33.402 A.2, TS 33.501 A.3).</summary>
    public const ushort CkIkPrime = 0x20;

    /// <summary>K_HSE from CK ‖ IK after 5G AKA (TS 33.163 5.1.0a).</summary>
    public const ushort KHse5GAka = 0x63;

    /// <summary>K_HSE from CK' ‖ IK' after EAP-AKA' (TS 33.163 5.1.0a).</summary>
    public const ushort KHseEapAkaPrime = 0x64;

    /// <summary>K_AUSF after 5G AKA (TS 33.501 A.2).</summary>
    public const ushort KAusf = 0x6A;

    /// <summary>RES* and XRES* (TS 33.501 A.4).</summary>
    public const ushort ResStar = 0x6B;

    /// <summary>K_SEAF (TS 33.501 A.6).</summary>
    public const ushort KSeaf = 0x6C;

    /// <summary>K_AMF (TS 33.501 A.7).</summary>
    public const ushort KAmf = 0x6D;

    /// <summary>K_AKMA (TS 33.535 A.2).</summary>
    public const ushort KAkma = 0x80;

    /// <summary>A-TID (TS 33.535 A.3).</summary>
    public const ushort ATid = 0x81;

    /// <summary>K_AF (TS 33.535 A.4).</summary>
    public const ushort KAf = 0x82;

    /// <summary>The two-octet FC 0xFF 0xBE that EMSDP wire profile 1 uses for every BEST key set derivation (profile section 5).</summary>
    public const ushort BestProfile1 = 0xFFBE;
}

/// <summary>
/// Key derivations of EPS, 5G and BEST from the AKA outputs (TS 33.401 Annex A, TS 33.501 Annex A,
/// TS 33.163 5.1.0a). Every method writes into caller-provided spans and allocates nothing.
/// </summary>
public static class KeyDerivation
{
    private const int BufferSize = 512;

    /// <summary>K_ASME = KDF(CK ‖ IK, 0x10, serving PLMN ID (3 octets), SQN ⊕ AK) — TS 33.401 A.2.</summary>
    public static void KAsme(ReadOnlySpan<byte> ck, ReadOnlySpan<byte> ik, ReadOnlySpan<byte> plmnId, ReadOnlySpan<byte> sqnXorAk, Span<byte> kAsme)
    {
        RequireLength(plmnId, 3, nameof(plmnId));
        RequireLength(sqnXorAk, 6, nameof(sqnXorAk));
        Span<byte> buffer = stackalloc byte[BufferSize];
        var s = new KdfInput(buffer, FunctionCodes.KAsme);
        s.Append(plmnId);
        s.Append(sqnXorAk);
        DeriveFromCkIk(ck, ik, s.Written, kAsme);
    }

    /// <summary>
    /// CK' ‖ IK' = KDF(CK ‖ IK, 0x20, access network identity (the serving network name in 5G), SQN ⊕ AK):
    /// CK' is octets 0..15, IK' octets 16..31 — TS 33.402 A.2, TS 33.501 A.3.
    /// </summary>
    public static void CkIkPrime(ReadOnlySpan<byte> ck, ReadOnlySpan<byte> ik, string networkName, ReadOnlySpan<byte> sqnXorAk, Span<byte> ckPrime, Span<byte> ikPrime)
    {
        RequireLength(sqnXorAk, 6, nameof(sqnXorAk));
        Span<byte> buffer = stackalloc byte[BufferSize];
        Span<byte> output = stackalloc byte[32];
        var s = new KdfInput(buffer, FunctionCodes.CkIkPrime);
        s.AppendString(networkName);
        s.Append(sqnXorAk);
        DeriveFromCkIk(ck, ik, s.Written, output);
        output[..16].CopyTo(ckPrime);
        output[16..].CopyTo(ikPrime);
        CryptographicOperations.ZeroMemory(output);
    }

    /// <summary>K_AUSF = KDF(CK ‖ IK, 0x6A, SNN, SQN ⊕ AK) — TS 33.501 A.2.</summary>
    public static void KAusf(ReadOnlySpan<byte> ck, ReadOnlySpan<byte> ik, string servingNetworkName, ReadOnlySpan<byte> sqnXorAk, Span<byte> kAusf)
        => SnnAndSqn(FunctionCodes.KAusf, ck, ik, servingNetworkName, sqnXorAk, kAusf);

    /// <summary>K_HSE = KDF(CK ‖ IK, 0x63, SNN, SQN ⊕ AK) after 5G AKA — TS 33.163 5.1.0a.</summary>
    public static void KHse5GAka(ReadOnlySpan<byte> ck, ReadOnlySpan<byte> ik, string servingNetworkName, ReadOnlySpan<byte> sqnXorAk, Span<byte> kHse)
        => SnnAndSqn(FunctionCodes.KHse5GAka, ck, ik, servingNetworkName, sqnXorAk, kHse);

    /// <summary>K_HSE = KDF(CK' ‖ IK', 0x64, SNN, SQN ⊕ AK) after EAP-AKA' — TS 33.163 5.1.0a.</summary>
    public static void KHseEapAkaPrime(ReadOnlySpan<byte> ckPrime, ReadOnlySpan<byte> ikPrime, string servingNetworkName, ReadOnlySpan<byte> sqnXorAk, Span<byte> kHse)
        => SnnAndSqn(FunctionCodes.KHseEapAkaPrime, ckPrime, ikPrime, servingNetworkName, sqnXorAk, kHse);

    /// <summary>RES* (UE) or XRES* (network) = last 16 octets of KDF(CK ‖ IK, 0x6B, SNN, RAND, RES) — TS 33.501 A.4.</summary>
    public static void ResStar(ReadOnlySpan<byte> ck, ReadOnlySpan<byte> ik, string servingNetworkName, ReadOnlySpan<byte> rand, ReadOnlySpan<byte> res, Span<byte> resStar)
    {
        RequireLength(rand, 16, nameof(rand));
        if (res.Length is < 4 or > 16)
        {
            throw new ArgumentException("RES has 4 to 16 octets.", nameof(res));
        }

        Span<byte> buffer = stackalloc byte[BufferSize];
        Span<byte> output = stackalloc byte[32];
        var s = new KdfInput(buffer, FunctionCodes.ResStar);
        s.AppendString(servingNetworkName);
        s.Append(rand);
        s.Append(res);
        DeriveFromCkIk(ck, ik, s.Written, output);
        output[16..].CopyTo(resStar);
        CryptographicOperations.ZeroMemory(output);
    }

    /// <summary>HRES* / HXRES* = last 16 octets of SHA-256(RAND ‖ RES*) — TS 33.501 A.5.</summary>
    public static void HResStar(ReadOnlySpan<byte> rand, ReadOnlySpan<byte> resStar, Span<byte> hResStar)
    {
        Span<byte> input = stackalloc byte[rand.Length + resStar.Length];
        Span<byte> hash = stackalloc byte[32];
        rand.CopyTo(input);
        resStar.CopyTo(input[rand.Length..]);
        SHA256.HashData(input, hash);
        hash[16..].CopyTo(hResStar);
    }

    /// <summary>K_SEAF = KDF(K_AUSF, 0x6C, SNN) — TS 33.501 A.6.</summary>
    public static void KSeaf(ReadOnlySpan<byte> kAusf, string servingNetworkName, Span<byte> kSeaf)
    {
        Span<byte> buffer = stackalloc byte[BufferSize];
        var s = new KdfInput(buffer, FunctionCodes.KSeaf);
        s.AppendString(servingNetworkName);
        Kdf.Derive(kAusf, s.Written, kSeaf);
    }

    /// <summary>K_AMF = KDF(K_SEAF, 0x6D, SUPI (IMSI digits or NAI), ABBA) — TS 33.501 A.7.</summary>
    public static void KAmf(ReadOnlySpan<byte> kSeaf, string supi, ReadOnlySpan<byte> abba, Span<byte> kAmf)
    {
        Span<byte> buffer = stackalloc byte[BufferSize];
        var s = new KdfInput(buffer, FunctionCodes.KAmf);
        s.AppendString(supi);
        s.Append(abba);
        Kdf.Derive(kSeaf, s.Written, kAmf);
    }

    /// <summary>K_AKMA = KDF(K_AUSF, 0x80, "AKMA", SUPI) — TS 33.535 A.2.</summary>
    public static void KAkma(ReadOnlySpan<byte> kAusf, string supi, Span<byte> kAkma) => LabelAndSupi(FunctionCodes.KAkma, "AKMA", kAusf, supi, kAkma);

    /// <summary>A-TID = KDF(K_AUSF, 0x81, "A-TID", SUPI) — TS 33.535 A.3.</summary>
    public static void ATid(ReadOnlySpan<byte> kAusf, string supi, Span<byte> aTid) => LabelAndSupi(FunctionCodes.ATid, "A-TID", kAusf, supi, aTid);

    /// <summary>K_AF = KDF(K_AKMA, 0x82, AF_ID) with AF_ID = FQDN ‖ Ua* security protocol identifier — TS 33.535 A.4.</summary>
    public static void KAf(ReadOnlySpan<byte> kAkma, ReadOnlySpan<byte> afId, Span<byte> kAf)
    {
        Span<byte> buffer = stackalloc byte[BufferSize];
        var s = new KdfInput(buffer, FunctionCodes.KAf);
        s.Append(afId);
        Kdf.Derive(kAkma, s.Written, kAf);
    }

    /// <summary>The 5G serving network name "5G:mnc&lt;MNC&gt;.mcc&lt;MCC&gt;.3gppnetwork.org", MNC zero-padded to three digits (TS 24.501 9.12.1, TS 33.501 6.1.1.4).</summary>
    /// <exception cref="ArgumentException">MCC is not 3 digits or MNC not 2 or 3 digits.</exception>
    public static string ServingNetworkName(string mcc, string mnc)
    {
        ArgumentNullException.ThrowIfNull(mcc);
        ArgumentNullException.ThrowIfNull(mnc);
        if (mcc.Length != 3 || !mcc.All(char.IsAsciiDigit))
        {
            throw new ArgumentException("MCC has 3 digits.", nameof(mcc));
        }

        if (mnc.Length is < 2 or > 3 || !mnc.All(char.IsAsciiDigit))
        {
            throw new ArgumentException("MNC has 2 or 3 digits.", nameof(mnc));
        }

        return $"5G:mnc{mnc.PadLeft(3, '0')}.mcc{mcc}.3gppnetwork.org";
    }

    private static void SnnAndSqn(ushort fc, ReadOnlySpan<byte> ck, ReadOnlySpan<byte> ik, string servingNetworkName, ReadOnlySpan<byte> sqnXorAk, Span<byte> output)
    {
        RequireLength(sqnXorAk, 6, nameof(sqnXorAk));
        Span<byte> buffer = stackalloc byte[BufferSize];
        var s = new KdfInput(buffer, fc);
        s.AppendString(servingNetworkName);
        s.Append(sqnXorAk);
        DeriveFromCkIk(ck, ik, s.Written, output);
    }

    private static void LabelAndSupi(ushort fc, string label, ReadOnlySpan<byte> key, string supi, Span<byte> output)
    {
        Span<byte> buffer = stackalloc byte[BufferSize];
        var s = new KdfInput(buffer, fc);
        s.AppendString(label);
        s.AppendString(supi);
        Kdf.Derive(key, s.Written, output);
    }

    internal static void DeriveFromCkIk(ReadOnlySpan<byte> ck, ReadOnlySpan<byte> ik, ReadOnlySpan<byte> s, Span<byte> output)
    {
        RequireLength(ck, 16, nameof(ck));
        RequireLength(ik, 16, nameof(ik));
        Span<byte> key = stackalloc byte[32];
        ck.CopyTo(key);
        ik.CopyTo(key[16..]);
        Kdf.Derive(key, s, output);
        CryptographicOperations.ZeroMemory(key);
    }

    internal static void RequireLength(ReadOnlySpan<byte> value, int length, string name)
    {
        if (value.Length != length)
        {
            throw new ArgumentException($"{name} must be {length} octets, not {value.Length}.", name);
        }
    }
}
