using System.Threading.Channels;

namespace OpenBest.Bearers;

/// <summary>One EMSDP message received on a bearer, and the peer path to answer on.</summary>
/// <param name="Message">The EMSDP message (no framing).</param>
/// <param name="Path">Where it came from: an address for datagrams, a connection for streams.</param>
public readonly record struct ReceivedMessage(ReadOnlyMemory<byte> Message, BearerPath Path);

/// <summary>A peer path: the bearer plus the address or connection on it (profile section 1, "Addressing").</summary>
public abstract class BearerPath : Protocol.IPeerSource
{
    /// <summary>The bearer the path belongs to.</summary>
    public abstract IBearer Bearer { get; }

    /// <summary>The sender this path belongs to (an address without its port; see <see cref="Protocol.PeerSource"/>): limits per source count on it.</summary>
    public virtual string Source => ToString() ?? string.Empty;

    /// <summary>Sends one message to this path.</summary>
    public ValueTask SendAsync(ReadOnlyMemory<byte> message, CancellationToken cancellationToken = default) => Bearer.SendAsync(message, this, cancellationToken);
}

/// <summary>
/// A bearer that carries EMSDP messages: datagram bearers carry one message per datagram, stream bearers
/// prefix each with its 2-octet length (profile section 1). It knows nothing of the protocol.
/// </summary>
public interface IBearer : IAsyncDisposable
{
    /// <summary>Messages as they arrive (bounded: when the reader falls behind, the oldest are dropped and counted).</summary>
    ChannelReader<ReceivedMessage> Received { get; }

    /// <summary>Messages dropped: oversized datagrams, bad frames, a full receive queue.</summary>
    long Dropped { get; }

    /// <summary>Sends one message to <paramref name="path"/>.</summary>
    ValueTask SendAsync(ReadOnlyMemory<byte> message, BearerPath path, CancellationToken cancellationToken = default);
}
