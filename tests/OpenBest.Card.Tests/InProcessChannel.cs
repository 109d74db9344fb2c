using OpenBest.Card.Virtual;

namespace OpenBest.Card.Tests;

/// <summary>A channel straight into a <see cref="VirtualUicc"/> in this process, recording every response it carried.</summary>
internal sealed class InProcessChannel(VirtualUicc card) : IApduChannel
{
    public List<byte[]> Responses { get; } = [];

    public string Name => "in-process";

    public byte[] Transmit(ReadOnlySpan<byte> command)
    {
        var response = card.Process(command);
        lock (Responses)
        {
            Responses.Add((byte[])response.Clone());
        }

        return response;
    }

    public void Dispose()
    {
    }
}
