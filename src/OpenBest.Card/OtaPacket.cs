using System.Buffers.Binary;
using System.Security.Cryptography;
using Org.BouncyCastle.Crypto.Engines;
using Org.BouncyCastle.Crypto.Macs;
using Org.BouncyCastle.Crypto.Parameters;

namespace OpenBest.Card;

/// <summary>What a secured packet's receiver found (the Response Status Code of ETSI TS 102 225 table 5.4).</summary>
public enum OtaStatus : byte
{
    /// <summary>PoR OK.</summary>
    Ok = 0x00,

    /// <summary>RC/CC/DS failed.</summary>
    ChecksumFailed = 0x01,

    /// <summary>CNTR low: a counter not above the last one (a replay).</summary>
    CounterLow = 0x02,

    /// <summary>CNTR high: more than one above the last one, where exactly one was required.</summary>
    CounterHigh = 0x03,

    /// <summary>CNTR blocked.</summary>
    CounterBlocked = 0x04,

    /// <summary>Ciphering error.</summary>
    CipheringError = 0x05,

    /// <summary>Unidentified security error (a packet that does not parse).</summary>
    SecurityError = 0x06,

    /// <summary>TAR unknown.</summary>
    TarUnknown = 0x09,

    /// <summary>Insufficient security level (the application's minimum security level is not met).</summary>
    InsufficientSecurity = 0x0A,
}

/// <summary>
/// The security parameter indicator of ETSI TS 102 225 5.1.1 (two octets). First octet: b2b1 RC/CC/DS (00 none, 01 RC, 10 CC,
/// 11 DS), b3 ciphering, b5b4 counter (00 none, 01 available, not checked, 10 process if higher, 11 process if one higher).
/// Second octet: b2b1 PoR (00 none, 01 required, 10 on error), b4b3 PoR RC/CC/DS, b5 PoR ciphered, b6 PoR by SMS-SUBMIT.
/// </summary>
/// <param name="First">The first octet.</param>
/// <param name="Second">The second octet.</param>
public readonly record struct OtaSpi(byte First, byte Second)
{
    /// <summary>Counter handling (b5b4 of the first octet).</summary>
    public int CounterMode => (First >> 3) & 0x03;

    /// <summary>Whether the command is ciphered.</summary>
    public bool Ciphered => (First & 0x04) != 0;

    /// <summary>Whether the command carries a CC (the only RC/CC/DS this implementation does).</summary>
    public bool CryptographicChecksum => (First & 0x03) == 0x02;

    /// <summary>Whether a PoR is wanted: 1 always, 2 on error only, 0 never.</summary>
    public int ProofOfReceipt => Second & 0x03;

    /// <summary>Whether the PoR carries a CC.</summary>
    public bool PorChecksum => (Second & 0x0C) == 0x08;

    /// <summary>Whether the PoR is ciphered.</summary>
    public bool PorCiphered => (Second & 0x10) != 0;

    /// <summary>Whether the command is unsecured at this level (no RC/CC/DS, no ciphering).</summary>
    public bool Unsecured => (First & 0x07) == 0;
}

/// <summary>An OTA key set of AES keys: KIc (AES-CBC) and KID (AES-CMAC), with the key versions the KIc/KID octets name.</summary>
/// <param name="KicVersion">KIc's key version (1..15).</param>
/// <param name="Kic">The ciphering key (16, 24 or 32 octets).</param>
/// <param name="KidVersion">KID's key version.</param>
/// <param name="Kid">The CC key.</param>
public sealed record OtaKeys(byte KicVersion, byte[] Kic, byte KidVersion, byte[] Kid)
{
    /// <summary>The KIc octet: AES (b2b1 = 10), CBC (b4b3 = 00), the key version in b8..b5.</summary>
    public byte KicOctet => (byte)((KicVersion << 4) | 0x02);

    /// <summary>The KID octet: AES (b2b1 = 10), CMAC (b4b3 = 00), the key version in b8..b5.</summary>
    public byte KidOctet => (byte)((KidVersion << 4) | 0x02);

    /// <summary>Never shows the keys.</summary>
    public override string ToString() => $"OtaKeys(KIc {KicVersion}, KID {KidVersion})";
}

/// <summary>A command packet as the receiver read it.</summary>
/// <param name="Spi">Its SPI.</param>
/// <param name="Kic">Its KIc octet.</param>
/// <param name="Kid">Its KID octet.</param>
/// <param name="Tar">Its TAR (3 octets).</param>
/// <param name="Counter">Its CNTR (40 bits).</param>
/// <param name="Data">The secured data, padding removed.</param>
public sealed record OtaCommand(OtaSpi Spi, byte Kic, byte Kid, byte[] Tar, ulong Counter, byte[] Data);

/// <summary>A response packet as the sending entity read it.</summary>
/// <param name="Tar">Its TAR.</param>
/// <param name="Counter">Its CNTR.</param>
/// <param name="Status">The Response Status Code.</param>
/// <param name="Data">The additional response data, padding removed.</param>
public sealed record OtaResponse(byte[] Tar, ulong Counter, OtaStatus Status, byte[] Data);

/// <summary>
/// Secured packets of ETSI TS 102 225 (5.1 command packet, 5.2 response packet) with AES: ciphering AES-CBC with a zero IV over
/// CNTR, PCNTR, CC and the data, padded with zeros to the block; the CC is the first 8 octets of AES-CMAC over the packet
/// from CPL (RPL) to the end, ciphering padding included, the CC itself left out. Checked against pySim's published AES
/// vectors. Parsers never throw on peer input: a packet that does not parse or verify is a status.
/// </summary>
public static class OtaPacket
{
    private const int CcLength = 8;
    private const int Block = 16;

    /// <summary>A command packet (CPL first) carrying <paramref name="data"/> for the application at <paramref name="tar"/>.</summary>
    public static byte[] EncodeCommand(OtaKeys keys, OtaSpi spi, ReadOnlySpan<byte> tar, ulong counter, ReadOnlySpan<byte> data)
    {
        ArgumentNullException.ThrowIfNull(keys);
        if (tar.Length != 3 || counter > 0xFF_FFFF_FFFF)
        {
            throw new ArgumentException("TAR is 3 octets and CNTR 40 bits.");
        }

        var cc = spi.CryptographicChecksum ? CcLength : 0;
        var secured = 5 + 1 + cc + data.Length;
        var padding = spi.Ciphered ? (Block - (secured % Block)) % Block : 0;
        var chl = 2 + 1 + 1 + 3 + 5 + 1 + cc;
        var cpl = 1 + chl + data.Length + padding;
        var packet = new byte[2 + cpl];
        BinaryPrimitives.WriteUInt16BigEndian(packet, (ushort)cpl);
        packet[2] = (byte)chl;
        packet[3] = spi.First;
        packet[4] = spi.Second;
        packet[5] = spi.Ciphered ? keys.KicOctet : (byte)0;
        packet[6] = spi.CryptographicChecksum ? keys.KidOctet : (byte)0;
        tar.CopyTo(packet.AsSpan(7));
        WriteCounter(packet.AsSpan(10), counter);
        packet[15] = (byte)padding;
        data.CopyTo(packet.AsSpan(16 + cc));
        if (cc > 0)
        {
            Cmac(keys.Kid, packet, 16, cc).CopyTo(packet.AsSpan(16));
        }

        if (spi.Ciphered)
        {
            Encrypt(keys.Kic, packet.AsSpan(10));
        }

        return packet;
    }

    /// <summary>Reads a command packet: Ok with the command, or why it is refused (the command then carries what could be read).</summary>
    public static OtaStatus TryDecodeCommand(Func<byte[], OtaKeys?> keysForTar, ReadOnlySpan<byte> packet, out OtaCommand? command)
    {
        ArgumentNullException.ThrowIfNull(keysForTar);
        command = null;
        if (packet.Length < 16 || BinaryPrimitives.ReadUInt16BigEndian(packet) != packet.Length - 2)
        {
            return OtaStatus.SecurityError;
        }

        var chl = packet[2];
        var spi = new OtaSpi(packet[3], packet[4]);
        var tar = packet.Slice(7, 3).ToArray();
        var cc = spi.CryptographicChecksum ? CcLength : 0;
        if (chl != 2 + 1 + 1 + 3 + 5 + 1 + cc || (spi.First & 0x03) is 0x01 or 0x03)
        {
            return OtaStatus.SecurityError; // RC and DS are not offered; a header that does not add up is not a packet
        }

        var copy = packet.ToArray();
        var keys = keysForTar(tar);
        if (spi.Ciphered || cc > 0)
        {
            if (keys is null)
            {
                return OtaStatus.TarUnknown;
            }

            if ((spi.Ciphered && copy[5] != keys.KicOctet) || (cc > 0 && copy[6] != keys.KidOctet))
            {
                return OtaStatus.SecurityError; // another key or algorithm than the TAR's
            }
        }

        if (spi.Ciphered)
        {
            if ((copy.Length - 10) % Block != 0)
            {
                return OtaStatus.CipheringError;
            }

            Decrypt(keys!.Kic, copy.AsSpan(10));
        }

        var padding = copy[15];
        var dataLength = copy.Length - 16 - cc - padding;
        if (dataLength < 0)
        {
            return OtaStatus.CipheringError;
        }

        var counter = ReadCounter(copy.AsSpan(10));
        if (cc > 0 && !CryptographicOperations.FixedTimeEquals(Cmac(keys!.Kid, copy, 16, cc), copy.AsSpan(16, cc)))
        {
            return OtaStatus.ChecksumFailed;
        }

        command = new OtaCommand(spi, copy[5], copy[6], tar, counter, copy.AsSpan(16 + cc, dataLength).ToArray());
        CryptographicOperations.ZeroMemory(copy);
        return OtaStatus.Ok;
    }

    /// <summary>A response packet (RPL first) answering with <paramref name="status"/> and <paramref name="data"/>, secured as the command's SPI asks for its PoR.</summary>
    /// <param name="keys">The TAR's keys, or null for an unsecured PoR.</param>
    /// <param name="commandSpi">The command's SPI (its second octet says how to secure the PoR).</param>
    /// <param name="tar">The TAR.</param>
    /// <param name="counter">The CNTR to answer with (the command's).</param>
    /// <param name="status">The Response Status Code.</param>
    /// <param name="data">The additional response data.</param>
    /// <param name="coveredHeader">Octets before RPL that the CC also covers: over SMS, the user data header (TS 31.115 7.2.2: UDHL, IEI 0x71, IEIDL).</param>
    public static byte[] EncodeResponse(OtaKeys? keys, OtaSpi commandSpi, ReadOnlySpan<byte> tar, ulong counter, OtaStatus status, ReadOnlySpan<byte> data, ReadOnlySpan<byte> coveredHeader = default)
    {
        var secure = keys is not null;
        var cc = secure && commandSpi.PorChecksum ? CcLength : 0;
        var ciphered = secure && commandSpi.PorCiphered;
        var secured = 5 + 1 + 1 + cc + data.Length;
        var padding = ciphered ? (Block - (secured % Block)) % Block : 0;
        var rhl = 3 + 5 + 1 + 1 + cc;
        var rpl = 1 + rhl + data.Length + padding;
        var packet = new byte[2 + rpl];
        BinaryPrimitives.WriteUInt16BigEndian(packet, (ushort)rpl);
        packet[2] = (byte)rhl;
        tar.CopyTo(packet.AsSpan(3));
        WriteCounter(packet.AsSpan(6), counter);
        packet[11] = (byte)padding;
        packet[12] = (byte)status;
        data.CopyTo(packet.AsSpan(13 + cc));
        if (cc > 0)
        {
            Cmac(keys!.Kid, [.. coveredHeader, .. packet], coveredHeader.Length + 13, cc).CopyTo(packet.AsSpan(13));
        }

        if (ciphered)
        {
            Encrypt(keys!.Kic, packet.AsSpan(6));
        }

        return packet;
    }

    /// <summary>Reads a response packet to a command sent with <paramref name="commandSpi"/>; false when it does not parse or its CC is wrong.</summary>
    public static bool TryDecodeResponse(OtaKeys? keys, OtaSpi commandSpi, ReadOnlySpan<byte> packet, out OtaResponse? response, ReadOnlySpan<byte> coveredHeader = default)
    {
        response = null;
        if (packet.Length < 13 || BinaryPrimitives.ReadUInt16BigEndian(packet) != packet.Length - 2)
        {
            return false;
        }

        var secure = keys is not null;
        var cc = secure && commandSpi.PorChecksum ? CcLength : 0;
        var ciphered = secure && commandSpi.PorCiphered;
        var copy = packet.ToArray();
        if (copy[2] != 3 + 5 + 1 + 1 + cc)
        {
            // A PoR sent without the security asked for (e.g. an error before the keys were known) still says its status.
            if (copy[2] != 3 + 5 + 1 + 1)
            {
                return false;
            }

            cc = 0;
            ciphered = false;
        }

        if (ciphered)
        {
            if ((copy.Length - 6) % Block != 0)
            {
                return false;
            }

            Decrypt(keys!.Kic, copy.AsSpan(6));
        }

        var dataLength = copy.Length - 13 - cc - copy[11];
        if (dataLength < 0 || (cc > 0 && !CryptographicOperations.FixedTimeEquals(Cmac(keys!.Kid, [.. coveredHeader, .. copy], coveredHeader.Length + 13, cc), copy.AsSpan(13, cc))))
        {
            return false;
        }

        response = new OtaResponse(copy.AsSpan(3, 3).ToArray(), ReadCounter(copy.AsSpan(6)), (OtaStatus)copy[12], copy.AsSpan(13 + cc, dataLength).ToArray());
        return true;
    }

    /// <summary>AES-CMAC (RFC 4493) over the packet with the CC field (at <paramref name="ccAt"/>, <paramref name="ccLength"/> octets) left out; its first 8 octets.</summary>
    private static byte[] Cmac(byte[] key, byte[] packet, int ccAt, int ccLength)
    {
        var mac = new CMac(new AesEngine());
        mac.Init(new KeyParameter(key));
        mac.BlockUpdate(packet, 0, ccAt);
        mac.BlockUpdate(packet, ccAt + ccLength, packet.Length - ccAt - ccLength);
        var output = new byte[mac.GetMacSize()];
        mac.DoFinal(output, 0);
        return output[..CcLength];
    }

    private static void Encrypt(byte[] key, Span<byte> blocks)
    {
        using var aes = Aes.Create();
        aes.Key = key;
        aes.EncryptCbc(blocks, new byte[Block], blocks, PaddingMode.None);
    }

    private static void Decrypt(byte[] key, Span<byte> blocks)
    {
        using var aes = Aes.Create();
        aes.Key = key;
        aes.DecryptCbc(blocks, new byte[Block], blocks, PaddingMode.None);
    }

    private static void WriteCounter(Span<byte> at, ulong counter)
    {
        for (var i = 4; i >= 0; i--)
        {
            at[i] = (byte)counter;
            counter >>= 8;
        }
    }

    private static ulong ReadCounter(ReadOnlySpan<byte> at)
    {
        ulong counter = 0;
        for (var i = 0; i < 5; i++)
        {
            counter = (counter << 8) | at[i];
        }

        return counter;
    }
}
