using System.Buffers.Binary;

namespace OpenBest.Crypto.Aka;

/// <summary>
/// Sequence numbers of AKA (TS 33.102 Annex C): 48 bits, SQN = SEQ ‖ IND, where IND is the low
/// <see cref="IndLength"/> bits and selects one entry of the USIM's SEQ_MS array.
/// </summary>
public readonly record struct SqnScheme
{
    /// <summary>The largest SQN value, 2^48 − 1.</summary>
    public const ulong MaxSqn = 0xFFFF_FFFF_FFFFUL;

    /// <summary>The default IND length: 5 bits, an array of 32 entries (TS 33.102 Annex C.3.2).</summary>
    public const int DefaultIndLength = 5;

    /// <summary>The wrap-around limit Δ = 2^28 recommended by TS 33.102 Annex C.2.1.</summary>
    public const ulong DefaultDelta = 1UL << 28;

    /// <summary>Creates a scheme with an IND of <paramref name="indLength"/> bits (0..10).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="indLength"/> is outside 0..10.</exception>
    public SqnScheme(int indLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(indLength);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(indLength, 10);
        IndLength = indLength;
    }

    /// <summary>The scheme with the default IND length of 5 bits.</summary>
    public static SqnScheme Default { get; } = new(DefaultIndLength);

    /// <summary>The number of IND bits.</summary>
    public int IndLength { get; }

    /// <summary>The number of entries of the SEQ_MS array, 2^IND length.</summary>
    public int ArraySize => 1 << IndLength;

    /// <summary>The SEQ part of <paramref name="sqn"/>.</summary>
    public ulong Seq(ulong sqn) => (sqn & MaxSqn) >> IndLength;

    /// <summary>The IND part of <paramref name="sqn"/>.</summary>
    public int Ind(ulong sqn) => (int)(sqn & (ulong)(ArraySize - 1));

    /// <summary>Builds SQN = SEQ ‖ IND.</summary>
    /// <exception cref="ArgumentOutOfRangeException">IND does not fit, or the SQN would exceed 48 bits.</exception>
    public ulong Compose(ulong seq, int ind)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(ind);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(ind, ArraySize);
        if (seq > (MaxSqn >> IndLength))
        {
            throw new ArgumentOutOfRangeException(nameof(seq), "SEQ exhausted: the SQN would exceed 48 bits.");
        }

        return (seq << IndLength) | (uint)ind;
    }

    /// <summary>
    /// The SQN the AuC uses next: SEQ_HE + 1 with the given IND (TS 33.102 Annex C.1.1, C.3.2).
    /// </summary>
    public ulong Next(ulong seqHe, int ind) => Compose(seqHe + 1, ind);

    /// <summary>Reads a 6-octet big-endian SQN.</summary>
    /// <exception cref="ArgumentException"><paramref name="octets"/> is not 6 octets.</exception>
    public static ulong Read(ReadOnlySpan<byte> octets)
    {
        if (octets.Length != 6)
        {
            throw new ArgumentException("An SQN is 6 octets.", nameof(octets));
        }

        return ((ulong)BinaryPrimitives.ReadUInt16BigEndian(octets) << 32) | BinaryPrimitives.ReadUInt32BigEndian(octets[2..]);
    }

    /// <summary>Writes <paramref name="sqn"/> as 6 octets big-endian.</summary>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is shorter than 6 octets.</exception>
    public static void Write(ulong sqn, Span<byte> destination)
    {
        if (destination.Length < 6)
        {
            throw new ArgumentException("An SQN needs 6 octets.", nameof(destination));
        }

        BinaryPrimitives.WriteUInt16BigEndian(destination, (ushort)(sqn >> 32));
        BinaryPrimitives.WriteUInt32BigEndian(destination[2..], (uint)sqn);
    }
}
