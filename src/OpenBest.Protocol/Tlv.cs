namespace OpenBest.Protocol;

/// <summary>
/// The TLV catalogue of profile section 6.3 (tag 1 octet, length 1 octet, value): which tags exist and
/// which lengths they allow. Tags 0x00 and 0xFF are invalid; 0x01..0x7F are comprehension-required
/// (an unknown one rejects the message with cause 0x0C); 0x80..0xFE are skipped when unknown.
/// </summary>
public static class TlvCatalog
{
    private static readonly (byte Min, byte Max)[] Lengths = BuildLengths();

    /// <summary>Whether <paramref name="tag"/> is a tag this profile defines.</summary>
    public static bool IsKnown(byte tag) => Lengths[tag].Max != 0 || tag == (byte)TlvTag.ConfirmationRequired;

    /// <summary>Whether an unknown <paramref name="tag"/> must be understood (0x01..0x7F).</summary>
    public static bool IsComprehensionRequired(byte tag) => tag is >= 0x01 and <= 0x7F;

    /// <summary>Whether a value of <paramref name="length"/> octets fits a known <paramref name="tag"/>.</summary>
    public static bool IsValidLength(byte tag, int length)
    {
        var (min, max) = Lengths[tag];
        if (tag == (byte)TlvTag.ServingNetwork)
        {
            return length is 3 or (>= 4 and <= 255);
        }

        return length >= min && length <= max;
    }

    private static (byte, byte)[] BuildLengths()
    {
        var table = new (byte, byte)[256];
        void Fixed(TlvTag tag, byte length) => table[(byte)tag] = (length, length);
        void Range(TlvTag tag, byte min, byte max) => table[(byte)tag] = (min, max);
        Fixed(TlvTag.Imsi, 8);
        Range(TlvTag.Suci, 1, 255);
        Fixed(TlvTag.UeConfiguration, 5);
        Range(TlvTag.EnterpriseSetup, 1, 64);
        Range(TlvTag.ServingNetwork, 3, 255);
        Fixed(TlvTag.Rand, 16);
        Fixed(TlvTag.Autn, 16);
        Fixed(TlvTag.Auts, 14);
        Fixed(TlvTag.HseConfiguration, 4);
        Fixed(TlvTag.RequestChecksum, 8);
        Fixed(TlvTag.ConfirmationRequired, 0);
        Fixed(TlvTag.KeyId, 1);
        Fixed(TlvTag.Cause, 1);
        Range(TlvTag.EnterpriseKeyIdentifier, 1, 16);
        Fixed(TlvTag.BackOffTimer, 2);
        Fixed(TlvTag.KeyLifetime, 4);
        Fixed(TlvTag.EasKeyIdentifier, 4);
        Fixed(TlvTag.AckedCounter, 4);
        Fixed(TlvTag.UeNonce, 8);
        Fixed(TlvTag.AckedTag, 4);
        Fixed(TlvTag.RejectedCommand, 1);
        Fixed(TlvTag.Cookie, 8);
        Fixed(TlvTag.HseNonce, 16);
        return table;
    }
}

/// <summary>
/// The TLVs of one command body after the structural checks of profile section 6: no invalid tag, no
/// tag twice, no length past the body, lengths as the catalogue says, only tags the command carries,
/// unknown skippable tags skipped. Values are slices of the received body.
/// </summary>
internal ref struct TlvSet
{
    private readonly ReadOnlySpan<byte> _body;
    private readonly Span<int> _offsets;

    private TlvSet(ReadOnlySpan<byte> body, Span<int> offsets)
    {
        _body = body;
        _offsets = offsets;
    }

    /// <summary>The first tag in the body (0 when empty).</summary>
    public byte FirstTag { get; private set; }

    /// <summary>
    /// Parses <paramref name="tlvs"/> (the body after the command code) against the tags the command allows.
    /// <paramref name="offsets"/> must hold 256 entries.
    /// </summary>
    public static ParseStatus TryParse(ReadOnlySpan<byte> tlvs, ReadOnlySpan<TlvTag> allowed, Span<int> offsets, out TlvSet set)
    {
        offsets.Fill(-1);
        set = new TlvSet(tlvs, offsets);
        var position = 0;
        while (position < tlvs.Length)
        {
            if (tlvs.Length - position < 2)
            {
                return ParseStatus.Malformed;
            }

            var tag = tlvs[position];
            var length = tlvs[position + 1];
            if (tag is 0x00 or 0xFF || length > tlvs.Length - position - 2)
            {
                return ParseStatus.Malformed;
            }

            if (position == 0)
            {
                set.FirstTag = tag;
            }

            if (!TlvCatalog.IsKnown(tag))
            {
                if (TlvCatalog.IsComprehensionRequired(tag))
                {
                    return ParseStatus.UnknownComprehensionRequired;
                }
            }
            else
            {
                if (!allowed.Contains((TlvTag)tag) || offsets[tag] >= 0 || !TlvCatalog.IsValidLength(tag, length))
                {
                    return ParseStatus.Malformed;
                }

                offsets[tag] = position;
            }

            position += 2 + length;
        }

        return ParseStatus.Ok;
    }

    /// <summary>Whether <paramref name="tag"/> is present.</summary>
    public readonly bool Has(TlvTag tag) => _offsets[(byte)tag] >= 0;

    /// <summary>The value of <paramref name="tag"/> (empty when absent).</summary>
    public readonly ReadOnlySpan<byte> Get(TlvTag tag)
    {
        var offset = _offsets[(byte)tag];
        return offset < 0 ? default : _body.Slice(offset + 2, _body[offset + 1]);
    }

    /// <summary>A copy of the value, or null when absent.</summary>
    public readonly ReadOnlyMemory<byte>? GetCopy(TlvTag tag) => Has(tag) ? new ReadOnlyMemory<byte>(Get(tag).ToArray()) : (ReadOnlyMemory<byte>?)null;
}

/// <summary>Writes TLVs into a span.</summary>
internal ref struct TlvWriter
{
    private readonly Span<byte> _destination;

    public TlvWriter(Span<byte> destination)
    {
        _destination = destination;
        Written = 0;
    }

    public int Written { get; private set; }

    public void Write(TlvTag tag, scoped ReadOnlySpan<byte> value)
    {
        if (!TlvCatalog.IsValidLength((byte)tag, value.Length))
        {
            throw new ArgumentException($"TLV {tag} cannot hold {value.Length} octets (profile section 6.3).");
        }

        if (Written + 2 + value.Length > _destination.Length)
        {
            throw new ArgumentException("The destination is too short for the TLVs.");
        }

        _destination[Written] = (byte)tag;
        _destination[Written + 1] = (byte)value.Length;
        value.CopyTo(_destination[(Written + 2)..]);
        Written += 2 + value.Length;
    }

    public void WriteByte(TlvTag tag, byte value) => Write(tag, [value]);

    public void WriteUInt16(TlvTag tag, ushort value) => Write(tag, [(byte)(value >> 8), (byte)value]);

    public void WriteUInt32(TlvTag tag, uint value) => Write(tag, [(byte)(value >> 24), (byte)(value >> 16), (byte)(value >> 8), (byte)value]);
}
