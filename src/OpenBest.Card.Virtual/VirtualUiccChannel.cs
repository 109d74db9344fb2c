namespace OpenBest.Card.Virtual;

/// <summary>
/// A card in this process: APDUs go straight to a <see cref="VirtualUicc"/>, byte for byte as through a reader, for machines
/// without pcscd (the device code is the same; only the reader differs).
/// </summary>
public sealed class VirtualUiccChannel(VirtualUicc card, string name = "in-process card") : IApduChannel
{
    /// <inheritdoc />
    public string Name => name;

    /// <inheritdoc />
    public byte[] Transmit(ReadOnlySpan<byte> command) => card.Process(command);

    /// <summary>Leaves the card to its owner.</summary>
    public void Dispose()
    {
    }
}
