using System.Security.Cryptography;

namespace OpenBest.Crypto;

/// <summary>
/// The MILENAGE authentication and key generation functions f1, f1*, f2, f3, f4, f5 and f5*
/// (3GPP TS 35.206) for one subscriber key K and operator variant OPc.
/// </summary>
/// <remarks>
/// <code>
/// TEMP = E_K(RAND ⊕ OPc)
/// OUT1 = E_K(TEMP ⊕ rot(IN1 ⊕ OPc, r1) ⊕ c1) ⊕ OPc,  IN1 = SQN ‖ AMF ‖ SQN ‖ AMF
/// OUTk = E_K(rot(TEMP ⊕ OPc, rk) ⊕ ck) ⊕ OPc         k = 2..5
/// r1..r5 = 64, 0, 32, 64, 96 bits; c1..c5 = 0, 1, 2, 4, 8 (in the last octet)
/// f1 = OUT1[0..7]  f1* = OUT1[8..15]  f5 = OUT2[0..5]  f2 = OUT2[8..15]
/// f3 = OUT3        f4 = OUT4          f5* = OUT5[0..5]
/// </code>
/// The instance holds the expanded K and a copy of OPc in pinned memory and zeroes both when disposed.
/// It is not thread-safe only in the sense that disposing it while another thread uses it is an error;
/// all functions are otherwise pure.
/// </remarks>
public sealed class Milenage : IDisposable
{
    /// <summary>Length of K, OP and OPc in octets.</summary>
    public const int KeySize = 16;

    /// <summary>Length of RAND in octets.</summary>
    public const int RandSize = 16;

    /// <summary>Length of SQN (and of AK) in octets.</summary>
    public const int SqnSize = 6;

    /// <summary>Length of AMF in octets.</summary>
    public const int AmfSize = 2;

    /// <summary>Length of MAC-A and MAC-S in octets.</summary>
    public const int MacSize = 8;

    /// <summary>Length of RES as MILENAGE produces it, in octets.</summary>
    public const int ResSize = 8;

    private readonly Aes128 _cipher;
    private readonly SecretBuffer _opc;

    /// <summary>Prepares the functions for the subscriber key <paramref name="k"/> and <paramref name="opc"/>.</summary>
    /// <exception cref="ArgumentException">K or OPc is not 16 octets.</exception>
    public Milenage(ReadOnlySpan<byte> k, ReadOnlySpan<byte> opc)
    {
        RequireLength(k, KeySize, nameof(k));
        RequireLength(opc, KeySize, nameof(opc));
        _cipher = new Aes128(k);
        _opc = new SecretBuffer(opc);
    }

    /// <summary>Creates the functions from K and the operator variant OP (OPc is computed).</summary>
    /// <exception cref="ArgumentException">K or OP is not 16 octets.</exception>
    public static Milenage FromOp(ReadOnlySpan<byte> k, ReadOnlySpan<byte> op)
    {
        Span<byte> opc = stackalloc byte[KeySize];
        try
        {
            ComputeOpc(k, op, opc);
            return new Milenage(k, opc);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(opc);
        }
    }

    /// <summary>OPc = OP ⊕ E_K(OP) (TS 35.206 section 4.1).</summary>
    /// <exception cref="ArgumentException">A span has the wrong length.</exception>
    public static void ComputeOpc(ReadOnlySpan<byte> k, ReadOnlySpan<byte> op, Span<byte> opc)
    {
        RequireLength(k, KeySize, nameof(k));
        RequireLength(op, KeySize, nameof(op));
        if (opc.Length < KeySize)
        {
            throw new ArgumentException($"OPc needs {KeySize} octets.", nameof(opc));
        }

        using var aes = new Aes128(k);
        aes.EncryptBlock(op, opc);
        Xor(opc, op);
    }

    /// <summary>
    /// f1 and f1*: writes MAC-A (the network authentication code) and MAC-S (the resynchronisation code)
    /// for <paramref name="rand"/>, <paramref name="sqn"/> and <paramref name="amf"/>.
    /// Either output may be empty when it is not wanted.
    /// </summary>
    public void F1(ReadOnlySpan<byte> rand, ReadOnlySpan<byte> sqn, ReadOnlySpan<byte> amf, Span<byte> macA, Span<byte> macS)
    {
        RequireLength(rand, RandSize, nameof(rand));
        RequireLength(sqn, SqnSize, nameof(sqn));
        RequireLength(amf, AmfSize, nameof(amf));
        RequireOptional(macA, MacSize, nameof(macA));
        RequireOptional(macS, MacSize, nameof(macS));

        Span<byte> temp = stackalloc byte[16];
        Span<byte> in1 = stackalloc byte[16];
        Span<byte> block = stackalloc byte[16];
        try
        {
            ComputeTemp(rand, temp);
            sqn.CopyTo(in1);
            amf.CopyTo(in1[6..]);
            sqn.CopyTo(in1[8..]);
            amf.CopyTo(in1[14..]);
            Xor(in1, _opc.Span);

            // rot(IN1 ⊕ OPc, r1 = 64 bits), c1 = 0.
            for (var i = 0; i < 16; i++)
            {
                block[i] = (byte)(temp[i] ^ in1[(i + 8) & 15]);
            }

            _cipher.EncryptBlock(block, block);
            Xor(block, _opc.Span);
            if (!macA.IsEmpty)
            {
                block[..8].CopyTo(macA);
            }

            if (!macS.IsEmpty)
            {
                block[8..].CopyTo(macS);
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(temp);
            CryptographicOperations.ZeroMemory(in1);
            CryptographicOperations.ZeroMemory(block);
        }
    }

    /// <summary>
    /// f2, f3, f4 and f5 in one pass (they share TEMP): writes RES, CK, IK and AK for <paramref name="rand"/>.
    /// Any output may be empty when it is not wanted.
    /// </summary>
    public void F2345(ReadOnlySpan<byte> rand, Span<byte> res, Span<byte> ck, Span<byte> ik, Span<byte> ak)
    {
        RequireLength(rand, RandSize, nameof(rand));
        RequireOptional(res, ResSize, nameof(res));
        RequireOptional(ck, KeySize, nameof(ck));
        RequireOptional(ik, KeySize, nameof(ik));
        RequireOptional(ak, SqnSize, nameof(ak));

        Span<byte> temp = stackalloc byte[16];
        Span<byte> outk = stackalloc byte[16];
        try
        {
            ComputeTemp(rand, temp);
            if (!res.IsEmpty || !ak.IsEmpty)
            {
                ComputeOut(temp, rotateOctets: 0, constant: 1, outk);
                if (!ak.IsEmpty)
                {
                    outk[..6].CopyTo(ak);
                }

                if (!res.IsEmpty)
                {
                    outk[8..].CopyTo(res);
                }
            }

            if (!ck.IsEmpty)
            {
                ComputeOut(temp, rotateOctets: 4, constant: 2, ck);
            }

            if (!ik.IsEmpty)
            {
                ComputeOut(temp, rotateOctets: 8, constant: 4, ik);
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(temp);
            CryptographicOperations.ZeroMemory(outk);
        }
    }

    /// <summary>f5*: writes AK* (the anonymity key for resynchronisation) for <paramref name="rand"/>.</summary>
    public void F5Star(ReadOnlySpan<byte> rand, Span<byte> akStar)
    {
        RequireLength(rand, RandSize, nameof(rand));
        if (akStar.Length < SqnSize)
        {
            throw new ArgumentException($"AK* needs {SqnSize} octets.", nameof(akStar));
        }

        Span<byte> temp = stackalloc byte[16];
        Span<byte> outk = stackalloc byte[16];
        try
        {
            ComputeTemp(rand, temp);
            ComputeOut(temp, rotateOctets: 12, constant: 8, outk);
            outk[..6].CopyTo(akStar);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(temp);
            CryptographicOperations.ZeroMemory(outk);
        }
    }

    /// <summary>Zeroes K's schedule and OPc.</summary>
    public void Dispose()
    {
        _cipher.Dispose();
        _opc.Dispose();
    }

    private void ComputeTemp(ReadOnlySpan<byte> rand, Span<byte> temp)
    {
        rand.CopyTo(temp);
        Xor(temp, _opc.Span);
        _cipher.EncryptBlock(temp, temp);
    }

    // OUTk = E_K(rot(TEMP ⊕ OPc, rk) ⊕ ck) ⊕ OPc; every rk is a whole number of octets.
    private void ComputeOut(ReadOnlySpan<byte> temp, int rotateOctets, byte constant, Span<byte> output)
    {
        Span<byte> block = stackalloc byte[16];
        var opc = _opc.Span;
        for (var i = 0; i < 16; i++)
        {
            var j = (i + rotateOctets) & 15;
            block[i] = (byte)(temp[j] ^ opc[j]);
        }

        block[15] ^= constant;
        _cipher.EncryptBlock(block, block);
        Xor(block, opc);
        block.CopyTo(output);
        CryptographicOperations.ZeroMemory(block);
    }

    internal static void Xor(Span<byte> target, ReadOnlySpan<byte> other)
    {
        for (var i = 0; i < target.Length; i++)
        {
            target[i] ^= other[i];
        }
    }

    private static void RequireLength(ReadOnlySpan<byte> value, int length, string name)
    {
        if (value.Length != length)
        {
            throw new ArgumentException($"{name} must be {length} octets, not {value.Length}.", name);
        }
    }

    private static void RequireOptional(Span<byte> value, int length, string name)
    {
        if (!value.IsEmpty && value.Length < length)
        {
            throw new ArgumentException($"{name} needs {length} octets.", name);
        }
    }
}
