using System.Numerics;
using System.Security.Cryptography;
using Org.BouncyCastle.Math.EC.Rfc7748;

namespace OpenBest.Crypto.Suci;

/// <summary>
/// An ECIES protection scheme for the SUCI (TS 33.501 clause 6.12.2 and Annex C.3): the UE conceals
/// the MSIN (or NAI user name) under the home network's public key; the home network's SIDF deconceals it.
/// </summary>
public abstract class SuciProtectionScheme
{
    private protected SuciProtectionScheme()
    {
    }

    /// <summary>Profile A: X25519 (Annex C.3.4.1).</summary>
    public static SuciProtectionScheme ProfileA { get; } = new ProfileAScheme();

    /// <summary>Profile B: NIST P-256 with compressed points (Annex C.3.4.2).</summary>
    public static SuciProtectionScheme ProfileB { get; } = new ProfileBScheme();

    /// <summary>The protection scheme identifier (1 for profile A, 2 for profile B).</summary>
    public abstract byte SchemeId { get; }

    /// <summary>The size of the ephemeral public key in the scheme output.</summary>
    public abstract int PublicKeySize { get; }

    /// <summary>The size of a private key in octets (both profiles).</summary>
    public const int PrivateKeySize = 32;

    /// <summary>Creates a home network (or ephemeral) key pair: (private key, public key as transmitted).</summary>
    public abstract (byte[] PrivateKey, byte[] PublicKey) GenerateKeyPair();

    /// <summary>The public key (as transmitted) for <paramref name="privateKey"/>.</summary>
    public abstract byte[] GetPublicKey(ReadOnlySpan<byte> privateKey);

    /// <summary>
    /// Conceals <paramref name="plaintext"/> under the home network public key with a fresh ephemeral key:
    /// returns the scheme output EphPub ‖ ciphertext ‖ MAC (8).
    /// </summary>
    /// <exception cref="ArgumentException">The home network public key is malformed.</exception>
    public byte[] Conceal(ReadOnlySpan<byte> homeNetworkPublicKey, ReadOnlySpan<byte> plaintext)
    {
        var (ephemeralPrivate, _) = GenerateKeyPair();
        try
        {
            return Conceal(homeNetworkPublicKey, plaintext, ephemeralPrivate);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(ephemeralPrivate);
        }
    }

    /// <summary>Conceals with a given ephemeral private key (for test vectors; never reuse one).</summary>
    /// <exception cref="ArgumentException">A key is malformed.</exception>
    public byte[] Conceal(ReadOnlySpan<byte> homeNetworkPublicKey, ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> ephemeralPrivateKey)
    {
        var ephemeralPublic = GetPublicKey(ephemeralPrivateKey);
        var z = SharedSecret(ephemeralPrivateKey, homeNetworkPublicKey)
            ?? throw new ArgumentException("The home network public key is not a valid point.", nameof(homeNetworkPublicKey));
        try
        {
            return Ecies.Seal(z, ephemeralPublic, plaintext);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(z);
        }
    }

    /// <summary>
    /// Deconceals a scheme output with the home network private key. Returns <see langword="false"/>
    /// when the output is malformed or its MAC does not verify (checked first, in fixed time).
    /// </summary>
    public bool TryDeconceal(ReadOnlySpan<byte> homeNetworkPrivateKey, ReadOnlySpan<byte> schemeOutput, out byte[] plaintext)
    {
        plaintext = [];
        if (schemeOutput.Length < PublicKeySize + Ecies.MacSize)
        {
            return false;
        }

        var ephemeralPublic = schemeOutput[..PublicKeySize];
        var z = SharedSecret(homeNetworkPrivateKey, ephemeralPublic);
        if (z is null)
        {
            return false;
        }

        try
        {
            var ciphertext = schemeOutput[PublicKeySize..^Ecies.MacSize];
            var result = Ecies.Open(z, ephemeralPublic, ciphertext, schemeOutput[^Ecies.MacSize..]);
            if (result is null)
            {
                return false;
            }

            plaintext = result;
            return true;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(z);
        }
    }

    /// <summary>Z: the shared secret, or null when the peer key is invalid.</summary>
    private protected abstract byte[]? SharedSecret(ReadOnlySpan<byte> privateKey, ReadOnlySpan<byte> peerPublicKey);

    private sealed class ProfileAScheme : SuciProtectionScheme
    {
        public override byte SchemeId => 1;

        public override int PublicKeySize => X25519.PointSize;

        public override (byte[] PrivateKey, byte[] PublicKey) GenerateKeyPair()
        {
            var privateKey = RandomNumberGenerator.GetBytes(X25519.ScalarSize);
            return (privateKey, GetPublicKey(privateKey));
        }

        public override byte[] GetPublicKey(ReadOnlySpan<byte> privateKey)
        {
            RequirePrivate(privateKey);
            var k = privateKey.ToArray();
            var result = new byte[X25519.PointSize];
            X25519.ScalarMultBase(k, 0, result, 0);
            CryptographicOperations.ZeroMemory(k);
            return result;
        }

        private protected override byte[]? SharedSecret(ReadOnlySpan<byte> privateKey, ReadOnlySpan<byte> peerPublicKey)
        {
            RequirePrivate(privateKey);
            if (peerPublicKey.Length != X25519.PointSize)
            {
                return null;
            }

            var k = privateKey.ToArray();
            var z = new byte[X25519.PointSize];
            // RFC 7748 section 6.1: an all-zero output means a low-order point; reject it.
            var ok = X25519.CalculateAgreement(k, 0, peerPublicKey.ToArray(), 0, z, 0);
            CryptographicOperations.ZeroMemory(k);
            return ok ? z : null;
        }

        private static void RequirePrivate(ReadOnlySpan<byte> privateKey)
        {
            if (privateKey.Length != X25519.ScalarSize)
            {
                throw new ArgumentException($"An X25519 private key has {X25519.ScalarSize} octets.", nameof(privateKey));
            }
        }
    }

    private sealed class ProfileBScheme : SuciProtectionScheme
    {
        public override byte SchemeId => 2;

        public override int PublicKeySize => 33;

        public override (byte[] PrivateKey, byte[] PublicKey) GenerateKeyPair()
        {
            using var ecdh = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
            var parameters = ecdh.ExportParameters(includePrivateParameters: true);
            var publicKey = P256.Compress(parameters.Q);
            return (parameters.D!, publicKey);
        }

        public override byte[] GetPublicKey(ReadOnlySpan<byte> privateKey)
        {
            using var ecdh = ImportPrivate(privateKey);
            return P256.Compress(ecdh.ExportParameters(false).Q);
        }

        private protected override byte[]? SharedSecret(ReadOnlySpan<byte> privateKey, ReadOnlySpan<byte> peerPublicKey)
        {
            if (!P256.TryDecompress(peerPublicKey, out var q))
            {
                return null;
            }

            using var mine = ImportPrivate(privateKey);
            try
            {
                using var peer = ECDiffieHellman.Create(new ECParameters { Curve = ECCurve.NamedCurves.nistP256, Q = q });
                // Cofactor 1: plain ECDH; Z is the x-coordinate of the shared point.
                return mine.DeriveRawSecretAgreement(peer.PublicKey);
            }
            catch (CryptographicException)
            {
                return null;
            }
        }

        private static ECDiffieHellman ImportPrivate(ReadOnlySpan<byte> privateKey)
        {
            if (privateKey.Length != 32)
            {
                throw new ArgumentException("A P-256 private key has 32 octets.", nameof(privateKey));
            }

            var d = privateKey.ToArray();
            try
            {
                var parameters = new ECParameters { Curve = ECCurve.NamedCurves.nistP256, D = d };
                var ecdh = ECDiffieHellman.Create();
                ecdh.ImportParameters(parameters);
                return ecdh;
            }
            catch (CryptographicException e)
            {
                throw new ArgumentException("The P-256 private key is out of range.", nameof(privateKey), e);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(d);
            }
        }
    }
}

/// <summary>SEC 1 point compression and decompression on NIST P-256 (2.3.3 and 2.3.4).</summary>
public static class P256
{
    private static readonly BigInteger Prime = BigInteger.Parse("0FFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF", System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture);
    private static readonly BigInteger B = BigInteger.Parse("05AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B", System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Compresses a point: 02 or 03 (the parity of y) ‖ x.</summary>
    public static byte[] Compress(ECPoint point)
    {
        if (point.X is not { Length: 32 } x || point.Y is not { Length: 32 } y)
        {
            throw new ArgumentException("A P-256 point has 32-octet coordinates.", nameof(point));
        }

        var result = new byte[33];
        result[0] = (byte)(0x02 | (y[31] & 1));
        x.CopyTo(result, 1);
        return result;
    }

    /// <summary>Decompresses 02/03 ‖ x (or accepts an uncompressed 04 ‖ x ‖ y); false when it is not a point on the curve.</summary>
    public static bool TryDecompress(ReadOnlySpan<byte> encoded, out ECPoint point)
    {
        point = default;
        if (encoded.Length == 65 && encoded[0] == 0x04)
        {
            point = new ECPoint { X = encoded[1..33].ToArray(), Y = encoded[33..].ToArray() };
            return IsOnCurve(point);
        }

        if (encoded.Length != 33 || (encoded[0] != 0x02 && encoded[0] != 0x03))
        {
            return false;
        }

        var x = new BigInteger(encoded[1..], isUnsigned: true, isBigEndian: true);
        if (x >= Prime)
        {
            return false;
        }

        // y² = x³ − 3x + b (mod p); p ≡ 3 (mod 4), so y = (y²)^((p+1)/4).
        var rhs = Mod((BigInteger.ModPow(x, 3, Prime) - (3 * x) + B), Prime);
        var y = BigInteger.ModPow(rhs, (Prime + 1) / 4, Prime);
        if (BigInteger.ModPow(y, 2, Prime) != rhs)
        {
            return false;
        }

        if ((int)(y & 1) != (encoded[0] & 1))
        {
            y = Prime - y;
        }

        point = new ECPoint { X = encoded[1..].ToArray(), Y = ToFixed(y) };
        return true;
    }

    private static bool IsOnCurve(ECPoint point)
    {
        var x = new BigInteger(point.X, isUnsigned: true, isBigEndian: true);
        var y = new BigInteger(point.Y, isUnsigned: true, isBigEndian: true);
        if (x >= Prime || y >= Prime)
        {
            return false;
        }

        return Mod(BigInteger.ModPow(y, 2, Prime) - (BigInteger.ModPow(x, 3, Prime) - (3 * x) + B), Prime).IsZero;
    }

    private static BigInteger Mod(BigInteger value, BigInteger modulus)
    {
        var r = value % modulus;
        return r.Sign < 0 ? r + modulus : r;
    }

    private static byte[] ToFixed(BigInteger value)
    {
        var bytes = value.ToByteArray(isUnsigned: true, isBigEndian: true);
        if (bytes.Length == 32)
        {
            return bytes;
        }

        var result = new byte[32];
        bytes.CopyTo(result, 32 - bytes.Length);
        return result;
    }
}
