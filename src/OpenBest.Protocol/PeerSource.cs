using System.Net;
using System.Net.Sockets;

namespace OpenBest.Protocol;

/// <summary>
/// A peer path that can name the sender it belongs to, for limits kept per source (profile 6.2 "Denial of service":
/// vectors per identity; section 7: Rejects rate limited per source). A source is what one sender controls: an IPv4
/// address without its port, an IPv6 /64 prefix (one subscriber's allocation), or a serial link.
/// </summary>
public interface IPeerSource
{
    /// <summary>The sender's source, as a short stable string.</summary>
    string Source { get; }
}

/// <summary>How a path names its source.</summary>
public static class PeerSource
{
    /// <summary>The source of <paramref name="path"/>: its <see cref="IPeerSource.Source"/>, else its text (a test's path), else empty.</summary>
    public static string Of(object? path) => path is IPeerSource peer ? peer.Source : path?.ToString() ?? string.Empty;

    /// <summary>The source of an IP address: IPv4 (also IPv4-mapped IPv6) as is, IPv6 as its /64 prefix.</summary>
    public static string Of(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (address.AddressFamily != AddressFamily.InterNetworkV6)
        {
            return address.ToString();
        }

        Span<byte> bytes = stackalloc byte[16];
        address.TryWriteBytes(bytes, out _);
        bytes[8..].Clear();
        return new IPAddress(bytes).ToString() + "/64";
    }
}
