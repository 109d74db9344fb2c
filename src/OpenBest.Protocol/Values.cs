using System.Text;

namespace OpenBest.Protocol;

/// <summary>
/// The UE configuration TLV 0x03 (5 octets): o1 BEST release; o2 key agreements; o3 requested service
/// (mask 0x03) and UE-to-EAS mode (0x04); o4 suites bitmap; o5 counter schemes.
/// </summary>
public readonly record struct UeConfiguration(byte Release, KeyAgreements KeyAgreements, BestService Service, bool UeToEasMode, byte Suites, CounterSchemes CounterSchemes)
{
    /// <summary>The BEST release this implementation announces.</summary>
    public const byte CurrentRelease = 18;

    internal void Write(Span<byte> o)
    {
        o[0] = Release;
        o[1] = (byte)KeyAgreements;
        o[2] = (byte)((byte)Service | (UeToEasMode ? 0x04 : 0));
        o[3] = Suites;
        o[4] = (byte)CounterSchemes;
    }

    internal static bool TryRead(ReadOnlySpan<byte> o, out UeConfiguration value)
    {
        value = new UeConfiguration(o[0], (KeyAgreements)o[1], (BestService)(o[2] & 0x03), (o[2] & 0x04) != 0, o[3], (CounterSchemes)o[4]);
        // Value ranges: at least one key agreement, suite and counter scheme; no undefined bits.
        return o[1] is not 0 and <= 0x3F && (o[2] & ~0x07) == 0 && o[3] is not 0 and <= 0x0F && o[4] is not 0 and <= 0x07;
    }
}

/// <summary>
/// The HSE configuration TLV 0x09 (4 octets): o1 selected service (coded as UE configuration o3);
/// o2 the selected key agreement (one bit); o3 the suite ID; o4 n (1, 2 or 4).
/// </summary>
public readonly record struct HseConfiguration(BestService Service, bool UeToEasMode, KeyAgreements KeyAgreement, byte SuiteId, byte CounterLength)
{
    internal void Write(Span<byte> o)
    {
        o[0] = (byte)((byte)Service | (UeToEasMode ? 0x04 : 0));
        o[1] = (byte)KeyAgreement;
        o[2] = SuiteId;
        o[3] = CounterLength;
    }

    internal static bool TryRead(ReadOnlySpan<byte> o, out HseConfiguration value)
    {
        value = new HseConfiguration((BestService)(o[0] & 0x03), (o[0] & 0x04) != 0, (KeyAgreements)o[1], o[2], o[3]);
        var oneBit = o[1] != 0 && (o[1] & (o[1] - 1)) == 0 && o[1] <= 0x20;
        // Service "none" runs without keys: suite 0. Every other service names a suite 1..4.
        var suiteOk = value.Service == BestService.None ? o[2] <= 4 : o[2] is >= 1 and <= 4;
        return (o[0] & ~0x07) == 0 && oneBit && suiteOk && o[3] is 1 or 2 or 4;
    }
}

/// <summary>The Serving Network TLV 0x05: a 3-octet PLMN ID (TS 24.008 coding) or a network name (4..255 octets UTF-8).</summary>
public sealed record ServingNetwork
{
    private ServingNetwork(ReadOnlyMemory<byte> plmnId, string? name)
    {
        PlmnId = plmnId;
        Name = name;
    }

    /// <summary>The PLMN ID form, or empty.</summary>
    public ReadOnlyMemory<byte> PlmnId { get; }

    /// <summary>The name form (e.g. a 5G serving network name), or null.</summary>
    public string? Name { get; }

    /// <summary>A PLMN ID (3 octets).</summary>
    public static ServingNetwork FromPlmnId(ReadOnlySpan<byte> plmnId) =>
        plmnId.Length == 3 ? new ServingNetwork(plmnId.ToArray(), null) : throw new ArgumentException("A PLMN ID has 3 octets.", nameof(plmnId));

    /// <summary>A serving network name (4..255 octets in UTF-8).</summary>
    public static ServingNetwork FromName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var length = Encoding.UTF8.GetByteCount(name);
        return length is >= 4 and <= 255 ? new ServingNetwork(default, name) : throw new ArgumentException("A serving network name has 4..255 octets.", nameof(name));
    }

    internal byte[] Encode() => Name is null ? PlmnId.ToArray() : Encoding.UTF8.GetBytes(Name);

    internal static bool TryRead(ReadOnlySpan<byte> value, out ServingNetwork? network)
    {
        network = null;
        if (value.Length == 3)
        {
            network = new ServingNetwork(value.ToArray(), null);
            return true;
        }

        if (!Utf8.TryDecode(value, out var name) || !name.IsNormalized(NormalizationForm.FormKC))
        {
            return false;
        }

        network = new ServingNetwork(default, name);
        return true;
    }

    /// <summary>Equality over the content.</summary>
    public bool Equals(ServingNetwork? other) => other is not null && Name == other.Name && PlmnId.Span.SequenceEqual(other.PlmnId.Span);

    /// <summary>Hash over the content.</summary>
    public override int GetHashCode() => HashCode.Combine(Name, PlmnId.Length);

    /// <summary>Readable form.</summary>
    public override string ToString() => Name ?? "PLMN " + Convert.ToHexStringLower(PlmnId.Span);
}

/// <summary>The IMSI in EF_IMSI coding (TS 31.102 4.2.2, octets 2..9): type 001 and parity, then BCD digits, F-filled.</summary>
public static class ImsiCodec
{
    /// <summary>Encodes 6..15 IMSI digits into 8 octets.</summary>
    /// <exception cref="ArgumentException">The IMSI is not 6..15 digits.</exception>
    public static byte[] Encode(string imsi)
    {
        ArgumentNullException.ThrowIfNull(imsi);
        if (imsi.Length is < 6 or > 15 || !imsi.All(char.IsAsciiDigit))
        {
            throw new ArgumentException("An IMSI has 6 to 15 digits.", nameof(imsi));
        }

        // Nibble string: (parity << 3 | 001), d1, d2, ..., padded with F; each octet holds two nibbles low first.
        var nibbles = new List<int> { ((imsi.Length % 2) << 3) | 0x1 };
        nibbles.AddRange(imsi.Select(c => c - '0'));
        while (nibbles.Count < 16)
        {
            nibbles.Add(0xF);
        }

        var result = new byte[8];
        for (var i = 0; i < 8; i++)
        {
            result[i] = (byte)(nibbles[2 * i] | (nibbles[(2 * i) + 1] << 4));
        }

        return result;
    }

    /// <summary>Decodes 8 octets; false when the type is not IMSI, a digit is not BCD, or the parity is wrong.</summary>
    public static bool TryDecode(ReadOnlySpan<byte> value, out string imsi)
    {
        imsi = string.Empty;
        if (value.Length != 8 || (value[0] & 0x07) != 0x01)
        {
            return false;
        }

        var digits = new StringBuilder(15);
        var ended = false;
        for (var i = 1; i < 16; i++)
        {
            var nibble = i % 2 == 1 ? value[i / 2] >> 4 : value[i / 2] & 0x0F;
            if (nibble == 0xF)
            {
                ended = true;
                continue;
            }

            if (nibble > 9 || ended)
            {
                return false;
            }

            digits.Append((char)('0' + nibble));
        }

        var odd = (value[0] & 0x08) != 0;
        if (digits.Length < 6 || odd != (digits.Length % 2 == 1))
        {
            return false;
        }

        imsi = digits.ToString();
        return true;
    }
}

internal static class Utf8
{
    /// <summary>
    /// Decodes well-formed UTF-8; false (no exception) for anything else. Callers that feed the text to the
    /// KDF also require it to be NFKC already, so normalisation cannot grow it past its TLV's bound.
    /// </summary>
    public static bool TryDecode(ReadOnlySpan<byte> value, out string text)
    {
        if (!System.Text.Unicode.Utf8.IsValid(value))
        {
            text = string.Empty;
            return false;
        }

        text = Encoding.UTF8.GetString(value);
        return true;
    }
}
