using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;

namespace OpenBest.Obf.Demo;

/// <summary>The AIS140 data classes of the demo and the beneficiaries' data-class names in the OBF rights.</summary>
public enum Ais140Class : byte
{
    /// <summary>PVT: position, velocity, time (data class <c>position</c>).</summary>
    Position = (byte)'P',

    /// <summary>Health packet (data class <c>health</c>).</summary>
    Health = (byte)'H',

    /// <summary>Panic alarm (data class <c>alarm</c>).</summary>
    Alarm = (byte)'A',
}

/// <summary>What a server answers a device.</summary>
public enum Ais140Status : byte
{
    /// <summary>Taken.</summary>
    Ok = 0,

    /// <summary>No key for this device here (no HELLO yet, or the key service refused).</summary>
    UnknownDevice = 1,

    /// <summary>The TRUST tag does not verify: altered, forged, or sealed for another card or another beneficiary.</summary>
    NotAuthentic = 2,

    /// <summary>The counter was used already.</summary>
    Replay = 3,

    /// <summary>Not a frame of this protocol, or a class this beneficiary holds no right to.</summary>
    Refused = 4,
}

/// <summary>
/// The demo's AIS140 transport over TCP (docs/protocol.md "AIS140 demo"): each frame a 2-octet big-endian length and a body
/// whose first octet is its type. <c>B</c> HELLO (ICCID, B-TID, in clear) → <c>b</c> status; <c>D</c> DATA (class, ICCID, a
/// sealed packet) → <c>d</c> status; <c>Q</c> POLL (ICCID) → <c>C</c> COMMAND (a server packet) or <c>n</c> (none); <c>R</c>
/// RESULT (ICCID, status) → <c>r</c>. Parsing never throws on peer input.
/// </summary>
public static class Ais140Wire
{
    /// <summary>The largest frame body.</summary>
    public const int MaxBody = 1024;

    /// <summary>Writes one frame.</summary>
    public static async Task WriteAsync(NetworkStream stream, byte[] body, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(body);
        var frame = new byte[2 + body.Length];
        BinaryPrimitives.WriteUInt16BigEndian(frame, (ushort)body.Length);
        body.CopyTo(frame, 2);
        await stream.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Reads one frame body; null at the end of the stream or on a frame longer than <see cref="MaxBody"/>.</summary>
    public static async Task<byte[]?> ReadAsync(NetworkStream stream, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var header = new byte[2];
        try
        {
            await stream.ReadExactlyAsync(header, cancellationToken).ConfigureAwait(false);
            var length = BinaryPrimitives.ReadUInt16BigEndian(header);
            if (length is 0 or > MaxBody)
            {
                return null;
            }

            var body = new byte[length];
            await stream.ReadExactlyAsync(body, cancellationToken).ConfigureAwait(false);
            return body;
        }
        catch (EndOfStreamException)
        {
            return null;
        }
    }

    /// <summary>HELLO: the device names its card and the B-TID the beneficiary fetches its key for.</summary>
    public static byte[] Hello(string iccid, string btid) => [(byte)'B', .. Text(iccid), .. Text(btid)];

    /// <summary>DATA: a class and a packet sealed by the card.</summary>
    public static byte[] Data(Ais140Class dataClass, string iccid, ReadOnlySpan<byte> packet) => [(byte)'D', (byte)dataClass, .. Text(iccid), .. packet];

    /// <summary>POLL: the device asks whether a command waits.</summary>
    public static byte[] Poll(string iccid) => [(byte)'Q', .. Text(iccid)];

    /// <summary>RESULT: what the device's card said of a command.</summary>
    public static byte[] Result(string iccid, Ais140Status status) => [(byte)'R', .. Text(iccid), (byte)status];

    /// <summary>A one-octet answer with a status.</summary>
    public static byte[] Answer(char type, Ais140Status status) => [(byte)type, (byte)status];

    /// <summary>Reads a length-prefixed text at <paramref name="at"/> (advanced past it); false when it does not fit.</summary>
    public static bool TryText(ReadOnlySpan<byte> body, ref int at, out string text)
    {
        text = string.Empty;
        if (at >= body.Length || body[at] == 0 || body.Length - at - 1 < body[at])
        {
            return false;
        }

        text = Encoding.ASCII.GetString(body.Slice(at + 1, body[at]));
        at += 1 + body[at];
        return true;
    }

    private static byte[] Text(string text)
    {
        var octets = Encoding.ASCII.GetBytes(text);
        return [(byte)octets.Length, .. octets];
    }
}
