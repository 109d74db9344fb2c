using System.Security.Cryptography;
using System.Text;

namespace OpenBest.Crypto.Kdf;

/// <summary>
/// The EAP-AKA' key derivation (RFC 9048 section 3.3, formerly RFC 5448): MK = PRF'(IK' ‖ CK', "EAP-AKA'" ‖ Identity)
/// split into K_encr (16), K_aut (32), K_re (32), MSK (64) and EMSK (64). In 5G, K_AUSF is the first
/// 32 octets of EMSK (TS 33.501 6.1.3.1).
/// </summary>
public sealed class EapAkaPrimeKeys : IDisposable
{
    private const int MkLength = 16 + 32 + 32 + 64 + 64;
    private readonly SecretBuffer _mk = new(MkLength);

    private EapAkaPrimeKeys()
    {
    }

    /// <summary>K_encr.</summary>
    public ReadOnlySpan<byte> KEncr => _mk.Span[..16];

    /// <summary>K_aut.</summary>
    public ReadOnlySpan<byte> KAut => _mk.Span.Slice(16, 32);

    /// <summary>K_re.</summary>
    public ReadOnlySpan<byte> KRe => _mk.Span.Slice(48, 32);

    /// <summary>MSK.</summary>
    public ReadOnlySpan<byte> Msk => _mk.Span.Slice(80, 64);

    /// <summary>EMSK.</summary>
    public ReadOnlySpan<byte> Emsk => _mk.Span.Slice(144, 64);

    /// <summary>K_AUSF for EAP-AKA' = EMSK[0..31] (TS 33.501 6.1.3.1 step 10).</summary>
    public ReadOnlySpan<byte> KAusf => Emsk[..32];

    /// <summary>Derives the keys from CK', IK' and the peer identity.</summary>
    public static EapAkaPrimeKeys Derive(ReadOnlySpan<byte> ckPrime, ReadOnlySpan<byte> ikPrime, string identity)
    {
        ArgumentNullException.ThrowIfNull(identity);
        KeyDerivation.RequireLength(ckPrime, 16, nameof(ckPrime));
        KeyDerivation.RequireLength(ikPrime, 16, nameof(ikPrime));
        var keys = new EapAkaPrimeKeys();
        Span<byte> key = stackalloc byte[32];
        ikPrime.CopyTo(key);      // note the order: IK' first
        ckPrime.CopyTo(key[16..]);
        var seed = Encoding.UTF8.GetBytes("EAP-AKA'" + identity);
        PrfPrime(key, seed, keys._mk.WritableSpan);
        CryptographicOperations.ZeroMemory(key);
        return keys;
    }

    /// <summary>
    /// PRF'(K, S) = T1 ‖ T2 ‖ …, T1 = HMAC-SHA-256(K, S ‖ 0x01), Tn = HMAC-SHA-256(K, Tn−1 ‖ S ‖ n) (RFC 9048 3.4).
    /// </summary>
    public static void PrfPrime(ReadOnlySpan<byte> key, ReadOnlySpan<byte> seed, Span<byte> output)
    {
        if (output.Length > 255 * 32)
        {
            throw new ArgumentException("PRF' produces at most 255 blocks.", nameof(output));
        }

        var input = new byte[32 + seed.Length + 1];
        Span<byte> t = stackalloc byte[32];
        var previous = 0;
        for (var n = 1; output.Length > 0; n++)
        {
            t[..previous].CopyTo(input);
            seed.CopyTo(input.AsSpan(previous));
            input[previous + seed.Length] = (byte)n;
            HMACSHA256.HashData(key, input.AsSpan(0, previous + seed.Length + 1), t);
            var take = Math.Min(32, output.Length);
            t[..take].CopyTo(output);
            output = output[take..];
            previous = 32;
        }

        CryptographicOperations.ZeroMemory(t);
        CryptographicOperations.ZeroMemory(input);
    }

    /// <summary>Zeroes every key.</summary>
    public void Dispose() => _mk.Dispose();
}
