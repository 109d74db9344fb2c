using System.Buffers.Binary;
using System.Text;

namespace OpenBest.Gsup;

/// <summary>IPA connection management message types: the first octet of a CCM payload.</summary>
public enum IpaCcmMessageType : byte
{
    /// <summary>PING: the receiver answers PONG.</summary>
    Ping = 0x00,

    /// <summary>PONG: the answer to PING.</summary>
    Pong = 0x01,

    /// <summary>ID_GET: the server asks for identity tags; the client answers ID_RESP.</summary>
    IdGet = 0x04,

    /// <summary>ID_RESP: the identity tags asked for.</summary>
    IdResponse = 0x05,

    /// <summary>ID_ACK: identity accepted.</summary>
    IdAck = 0x06,
}

/// <summary>IPA identity tags, as ID_GET asks for them and ID_RESP carries them.</summary>
public enum IpaIdTag : byte
{
    /// <summary>Serial number. osmo-hlr routes GSUP answers back to a client by this value, so it is the client's name.</summary>
    SerialNumber = 0x00,

    /// <summary>Unit name.</summary>
    UnitName = 0x01,

    /// <summary>Location 1.</summary>
    Location1 = 0x02,

    /// <summary>Location 2.</summary>
    Location2 = 0x03,

    /// <summary>Equipment version.</summary>
    EquipmentVersion = 0x04,

    /// <summary>Software version.</summary>
    SoftwareVersion = 0x05,

    /// <summary>IP address.</summary>
    IpAddress = 0x06,

    /// <summary>MAC address, <c>xx:xx:xx:xx:xx:xx</c>.</summary>
    MacAddress = 0x07,

    /// <summary>Unit ID, <c>site/bts/trx</c>.</summary>
    UnitId = 0x08,
}

/// <summary>The CCM messages without content, and the message type of a CCM payload.</summary>
public static class IpaCcm
{
    /// <summary>The PING payload.</summary>
    public static ReadOnlySpan<byte> Ping => [(byte)IpaCcmMessageType.Ping];

    /// <summary>The PONG payload.</summary>
    public static ReadOnlySpan<byte> Pong => [(byte)IpaCcmMessageType.Pong];

    /// <summary>The ID_ACK payload.</summary>
    public static ReadOnlySpan<byte> IdAck => [(byte)IpaCcmMessageType.IdAck];

    /// <summary>The message type of a CCM payload; false for an empty payload.</summary>
    public static bool TryReadType(ReadOnlySpan<byte> ccm, out IpaCcmMessageType type)
    {
        type = default;
        if (ccm.IsEmpty)
        {
            return false;
        }

        type = (IpaCcmMessageType)ccm[0];
        return true;
    }
}

/// <summary>
/// ID_GET: the tags a server asks its client for. After the message type octet come entries of
/// <code>
/// +--------+--------+------------------------+
/// | len    | tag    | value (len − 1 octets) |   len counts the tag and the value; servers send len = 1, no value
/// +--------+--------+------------------------+
/// </code>
/// </summary>
/// <param name="Tags">The tags asked for, in order.</param>
public sealed record IpaIdGet(IReadOnlyList<IpaIdTag> Tags)
{
    /// <summary>The most entries read from one ID_GET; more make it malformed (libosmocore asks for 8).</summary>
    public const int MaxTags = 32;

    /// <summary>
    /// What libosmocore's IPA servers (osmo-hlr among them) ask for on every new connection: unit ID, MAC address,
    /// location 1 and 2, equipment and software version, unit name and serial number.
    /// </summary>
    public static IpaIdGet Standard { get; } = new([
        IpaIdTag.UnitId, IpaIdTag.MacAddress, IpaIdTag.Location1, IpaIdTag.Location2,
        IpaIdTag.EquipmentVersion, IpaIdTag.SoftwareVersion, IpaIdTag.UnitName, IpaIdTag.SerialNumber]);

    /// <summary>The octets <see cref="Write"/> produces.</summary>
    public int GetEncodedLength() => 1 + (2 * Tags.Count);

    /// <summary>Writes the CCM payload (message type included); returns the octets written.</summary>
    /// <exception cref="ArgumentException">The destination is too short.</exception>
    public int Write(Span<byte> destination)
    {
        var length = GetEncodedLength();
        if (destination.Length < length)
        {
            throw new ArgumentException("The destination is too short.", nameof(destination));
        }

        destination[0] = (byte)IpaCcmMessageType.IdGet;
        for (var i = 0; i < Tags.Count; i++)
        {
            destination[1 + (2 * i)] = 1;
            destination[2 + (2 * i)] = (byte)Tags[i];
        }

        return length;
    }

    /// <summary>
    /// Reads an ID_GET CCM payload (message type included). False when it is not ID_GET, an entry declares a length
    /// of 0 or one reaching past the payload, or it has more than <see cref="MaxTags"/> entries. Never throws.
    /// </summary>
    public static bool TryRead(ReadOnlySpan<byte> ccm, out IpaIdGet? message)
    {
        message = null;
        if (ccm.IsEmpty || ccm[0] != (byte)IpaCcmMessageType.IdGet)
        {
            return false;
        }

        var tags = new List<IpaIdTag>();
        var rest = ccm[1..];
        while (!rest.IsEmpty)
        {
            if (rest.Length < 2 || rest[0] == 0 || rest[0] - 1 > rest.Length - 2 || tags.Count == MaxTags)
            {
                return false;
            }

            tags.Add((IpaIdTag)rest[1]);
            rest = rest[(2 + rest[0] - 1)..];
        }

        message = new IpaIdGet(tags);
        return true;
    }
}

/// <summary>
/// ID_RESP: the client's identity. After the message type octet come entries of
/// <code>
/// +--------+--------+--------+-----------------------------------+
/// | len (16, BE)    | tag    | value: text and a NUL (len − 1)    |   len counts the tag and the value
/// +--------+--------+--------+-----------------------------------+
/// </code>
/// as libosmocore writes them (every value a NUL-terminated string, possibly just the NUL).
/// </summary>
/// <param name="Entries">The tags and their values (without the NUL), in order.</param>
public sealed record IpaIdResponse(IReadOnlyList<KeyValuePair<IpaIdTag, string>> Entries)
{
    /// <summary>The most entries read from one ID_RESP.</summary>
    public const int MaxEntries = 32;

    /// <summary>The answer to <paramref name="request"/>: one entry per tag asked for, in its order.</summary>
    public static IpaIdResponse For(IpaIdGet request, IpaIdentity identity)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(identity);
        return new IpaIdResponse([.. request.Tags.Select(t => KeyValuePair.Create(t, identity.Value(t)))]);
    }

    /// <summary>The value of the first entry for <paramref name="tag"/>, or null when absent.</summary>
    public string? ValueOf(IpaIdTag tag)
    {
        foreach (var (key, value) in Entries)
        {
            if (key == tag)
            {
                return value;
            }
        }

        return null;
    }

    /// <summary>The octets <see cref="Write"/> produces.</summary>
    public int GetEncodedLength() => 1 + Entries.Sum(e => 3 + Encoding.ASCII.GetByteCount(e.Value) + 1);

    /// <summary>Writes the CCM payload (message type included); returns the octets written.</summary>
    /// <exception cref="ArgumentException">The destination is too short.</exception>
    public int Write(Span<byte> destination)
    {
        if (destination.Length < GetEncodedLength())
        {
            throw new ArgumentException("The destination is too short.", nameof(destination));
        }

        destination[0] = (byte)IpaCcmMessageType.IdResponse;
        var at = 1;
        foreach (var (tag, value) in Entries)
        {
            var text = Encoding.ASCII.GetBytes(value, destination[(at + 3)..]);
            destination[at + 3 + text] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(destination[at..], (ushort)(1 + text + 1));
            destination[at + 2] = (byte)tag;
            at += 3 + text + 1;
        }

        return at;
    }

    /// <summary>A new array holding the CCM payload.</summary>
    public byte[] Encode()
    {
        var bytes = new byte[GetEncodedLength()];
        Write(bytes);
        return bytes;
    }

    /// <summary>
    /// Reads an ID_RESP CCM payload (message type included). A value is read up to its first NUL. False when it is not
    /// ID_RESP, an entry's length is 0 or reaches past the payload, or there are more than <see cref="MaxEntries"/>.
    /// Never throws.
    /// </summary>
    public static bool TryRead(ReadOnlySpan<byte> ccm, out IpaIdResponse? message)
    {
        message = null;
        if (ccm.IsEmpty || ccm[0] != (byte)IpaCcmMessageType.IdResponse)
        {
            return false;
        }

        var entries = new List<KeyValuePair<IpaIdTag, string>>();
        var rest = ccm[1..];
        while (!rest.IsEmpty)
        {
            if (rest.Length < 3 || entries.Count == MaxEntries)
            {
                return false;
            }

            var length = BinaryPrimitives.ReadUInt16BigEndian(rest);
            if (length == 0 || length - 1 > rest.Length - 3)
            {
                return false;
            }

            var value = rest.Slice(3, length - 1);
            var nul = value.IndexOf((byte)0);
            entries.Add(KeyValuePair.Create((IpaIdTag)rest[2], Encoding.ASCII.GetString(nul < 0 ? value : value[..nul])));
            rest = rest[(3 + length - 1)..];
        }

        message = new IpaIdResponse(entries);
        return true;
    }
}

/// <summary>
/// What a GSUP client tells the server about itself in ID_RESP. osmo-hlr names (and routes answers to) a client by its
/// serial number, so <see cref="Name"/> must be unique among the HLR's clients.
/// </summary>
public sealed record IpaIdentity
{
    /// <summary>The longest name: libosmocore copies identity strings into 64-octet buffers, NUL included.</summary>
    public const int MaxNameLength = 63;

    /// <summary>Creates an identity named <paramref name="name"/>, sent as both unit name and serial number.</summary>
    /// <exception cref="ArgumentException">The name is empty, longer than 63 characters, or not printable ASCII.</exception>
    public IpaIdentity(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length is 0 or > MaxNameLength || name.Any(c => c is < (char)0x21 or > (char)0x7E))
        {
            throw new ArgumentException($"An IPA unit name has 1..{MaxNameLength} printable ASCII characters without spaces: '{name}'.", nameof(name));
        }

        Name = name;
    }

    /// <summary>The unit name and serial number.</summary>
    public string Name { get; }

    /// <summary>The software version sent (default "OpenBest").</summary>
    public string SoftwareVersion { get; init; } = "OpenBest";

    /// <summary>The value sent for <paramref name="tag"/>: the name for unit name and serial number, the defaults libosmocore sends for unit ID and MAC address, empty otherwise.</summary>
    public string Value(IpaIdTag tag) => tag switch
    {
        IpaIdTag.SerialNumber or IpaIdTag.UnitName => Name,
        IpaIdTag.SoftwareVersion => SoftwareVersion,
        IpaIdTag.UnitId => "0/0/0",
        IpaIdTag.MacAddress => "00:00:00:00:00:00",
        _ => string.Empty,
    };
}
