using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace OpenBest.Crypto.Kdf;

/// <summary>
/// The generic key derivation function of TS 33.220 Annex B.2:
/// derived key = HMAC-SHA-256(Key, S), S = FC ‖ P0 ‖ L0 ‖ P1 ‖ L1 ‖ … ‖ Pn ‖ Ln.
/// </summary>
/// <remarks>
/// FC is one octet (0x00..0xFE) or, in the extended form, 0xFF followed by a second octet; this API
/// writes an extended FC as the 16-bit value 0xFFxx. Each Li is the length of Pi as two octets
/// big-endian and follows its Pi. Strings are NFKC-normalised and then UTF-8 encoded (B.2.1.2).
/// </remarks>
public static class Kdf
{
    /// <summary>The output length of the KDF in octets.</summary>
    public const int OutputSize = 32;

    /// <summary>Computes HMAC-SHA-256(<paramref name="key"/>, <paramref name="s"/>) into <paramref name="output"/> (32 octets).</summary>
    /// <exception cref="ArgumentException"><paramref name="output"/> is shorter than 32 octets.</exception>
    public static void Derive(ReadOnlySpan<byte> key, ReadOnlySpan<byte> s, Span<byte> output)
    {
        if (output.Length < OutputSize)
        {
            throw new ArgumentException($"The KDF writes {OutputSize} octets.", nameof(output));
        }

        HMACSHA256.HashData(key, s, output);
    }

    /// <summary>
    /// Computes the KDF and keeps the last <paramref name="output"/>.Length octets: "the n least
    /// significant bits of the output", the truncation most calling specifications use.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="output"/> is empty or longer than 32 octets.</exception>
    public static void DeriveTruncated(ReadOnlySpan<byte> key, ReadOnlySpan<byte> s, Span<byte> output)
    {
        if (output.IsEmpty || output.Length > OutputSize)
        {
            throw new ArgumentException($"Truncation keeps 1..{OutputSize} octets.", nameof(output));
        }

        Span<byte> full = stackalloc byte[OutputSize];
        HMACSHA256.HashData(key, s, full);
        full[(OutputSize - output.Length)..].CopyTo(output);
        CryptographicOperations.ZeroMemory(full);
    }

    /// <summary>Encodes a character string as the KDF requires: NFKC, then UTF-8.</summary>
    public static byte[] EncodeString(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return Encoding.UTF8.GetBytes(value.Normalize(NormalizationForm.FormKC));
    }
}

/// <summary>
/// Builds the KDF input string S into a caller-provided buffer, without allocating.
/// </summary>
/// <example>
/// <code>
/// Span&lt;byte&gt; buffer = stackalloc byte[128];
/// var s = new KdfInput(buffer, 0x6A);
/// s.AppendString(servingNetworkName);
/// s.Append(sqnXorAk);
/// Kdf.Derive(ckIk, s.Written, output);
/// </code>
/// </example>
public ref struct KdfInput
{
    private readonly Span<byte> _buffer;
    private int _length;

    /// <summary>Starts S with the function code <paramref name="fc"/>: 0x00..0xFE for one octet, 0xFF00..0xFFFF for the two-octet extended form.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="fc"/> is 0xFF or 0x100..0xFEFF.</exception>
    /// <exception cref="ArgumentException">The buffer is too small.</exception>
    public KdfInput(Span<byte> buffer, ushort fc)
    {
        _buffer = buffer;
        _length = 0;
        if (fc <= 0xFE)
        {
            Reserve(1);
            _buffer[_length++] = (byte)fc;
        }
        else if (fc >= 0xFF00)
        {
            Reserve(2);
            BinaryPrimitives.WriteUInt16BigEndian(_buffer[_length..], fc);
            _length += 2;
        }
        else
        {
            throw new ArgumentOutOfRangeException(nameof(fc), "FC is one octet 0x00..0xFE or the extended 0xFF xx.");
        }
    }

    /// <summary>The octets of S written so far.</summary>
    public readonly ReadOnlySpan<byte> Written => _buffer[.._length];

    /// <summary>Appends Pi and its two-octet length Li.</summary>
    /// <exception cref="ArgumentException">The parameter exceeds 65535 octets or the buffer is too small.</exception>
    public void Append(scoped ReadOnlySpan<byte> parameter)
    {
        if (parameter.Length > ushort.MaxValue)
        {
            throw new ArgumentException("A KDF parameter has at most 65535 octets.", nameof(parameter));
        }

        Reserve(parameter.Length + 2);
        parameter.CopyTo(_buffer[_length..]);
        _length += parameter.Length;
        BinaryPrimitives.WriteUInt16BigEndian(_buffer[_length..], (ushort)parameter.Length);
        _length += 2;
    }

    /// <summary>Appends a one-octet parameter.</summary>
    public void AppendByte(byte value) => Append([value]);

    /// <summary>Appends a four-octet big-endian integer parameter.</summary>
    public void AppendUInt32(uint value)
    {
        Span<byte> octets = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(octets, value);
        Append(octets);
    }

    /// <summary>Appends a character string parameter (NFKC, UTF-8).</summary>
    public void AppendString(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        var normalized = value.IsNormalized(NormalizationForm.FormKC) ? value : value.Normalize(NormalizationForm.FormKC);
        var count = Encoding.UTF8.GetByteCount(normalized);
        if (count > ushort.MaxValue)
        {
            throw new ArgumentException("A KDF parameter has at most 65535 octets.", nameof(value));
        }

        Reserve(count + 2);
        _length += Encoding.UTF8.GetBytes(normalized, _buffer[_length..]);
        BinaryPrimitives.WriteUInt16BigEndian(_buffer[_length..], (ushort)count);
        _length += 2;
    }

    private readonly void Reserve(int count)
    {
        if (_length + count > _buffer.Length)
        {
            throw new ArgumentException("The KDF input buffer is too small for its parameters.");
        }
    }
}
