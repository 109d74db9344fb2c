using System.Buffers.Binary;

namespace OpenBest.Card;

/// <summary>ISO 7816-4 status words (clause 5.1.3) and those of TS 31.102 / ETSI TS 102 221 this code uses.</summary>
public static class StatusWord
{
    /// <summary>'9000': normal processing.</summary>
    public const ushort Ok = 0x9000;

    /// <summary>'6700': wrong length (Lc or Le).</summary>
    public const ushort WrongLength = 0x6700;

    /// <summary>'6881': logical channel not supported.</summary>
    public const ushort ChannelNotSupported = 0x6881;

    /// <summary>'6982': security status not satisfied.</summary>
    public const ushort SecurityStatusNotSatisfied = 0x6982;

    /// <summary>'6985': conditions of use not satisfied.</summary>
    public const ushort ConditionsNotSatisfied = 0x6985;

    /// <summary>'6986': command not allowed (no current EF).</summary>
    public const ushort CommandNotAllowed = 0x6986;

    /// <summary>'6A80': incorrect parameters in the data field.</summary>
    public const ushort IncorrectData = 0x6A80;

    /// <summary>'6A82': file or application not found.</summary>
    public const ushort FileNotFound = 0x6A82;

    /// <summary>'6A83': record not found.</summary>
    public const ushort RecordNotFound = 0x6A83;

    /// <summary>'6A84': not enough memory space in the file.</summary>
    public const ushort NotEnoughMemory = 0x6A84;

    /// <summary>'6A86': incorrect parameters P1-P2.</summary>
    public const ushort IncorrectP1P2 = 0x6A86;

    /// <summary>'6A88': referenced data (a key) not found.</summary>
    public const ushort ReferencedDataNotFound = 0x6A88;

    /// <summary>'6B00': wrong parameters P1-P2 (offset outside the EF).</summary>
    public const ushort WrongP1P2 = 0x6B00;

    /// <summary>'6D00': instruction code not supported.</summary>
    public const ushort InsNotSupported = 0x6D00;

    /// <summary>'6E00': class not supported.</summary>
    public const ushort ClassNotSupported = 0x6E00;

    /// <summary>'6F00': no precise diagnosis.</summary>
    public const ushort NoDiagnosis = 0x6F00;

    /// <summary>'9862': authentication error, incorrect MAC (TS 31.102 7.3).</summary>
    public const ushort AuthenticationMacFailure = 0x9862;

    /// <summary>'9864': authentication error, security context not supported (TS 31.102 7.3).</summary>
    public const ushort SecurityContextNotSupported = 0x9864;

    /// <summary>One line for a status word, for messages.</summary>
    public static string Describe(ushort sw) => sw switch
    {
        Ok => "9000 (ok)",
        WrongLength => "6700 (wrong length)",
        ChannelNotSupported => "6881 (logical channel not supported)",
        SecurityStatusNotSatisfied => "6982 (security status not satisfied)",
        ConditionsNotSatisfied => "6985 (conditions of use not satisfied)",
        CommandNotAllowed => "6986 (command not allowed)",
        IncorrectData => "6A80 (incorrect data)",
        FileNotFound => "6A82 (file or application not found)",
        RecordNotFound => "6A83 (record not found)",
        IncorrectP1P2 => "6A86 (incorrect P1-P2)",
        ReferencedDataNotFound => "6A88 (referenced data not found)",
        WrongP1P2 => "6B00 (wrong P1-P2)",
        InsNotSupported => "6D00 (instruction not supported)",
        ClassNotSupported => "6E00 (class not supported)",
        AuthenticationMacFailure => "9862 (authentication error, incorrect MAC)",
        SecurityContextNotSupported => "9864 (security context not supported)",
        _ => $"{sw:X4}",
    };
}

/// <summary>
/// A command APDU in the short form (ISO 7816-4 5.1): CLA INS P1 P2 [Lc data] [Le]. Cases 1 to 4; Le 0 means 256.
/// </summary>
public sealed class CommandApdu
{
    /// <summary>A command; <paramref name="le"/> null means no Le field (case 1 or 3).</summary>
    public CommandApdu(byte cla, byte ins, byte p1, byte p2, ReadOnlyMemory<byte> data = default, int? le = null)
    {
        if (data.Length > 255)
        {
            throw new ArgumentException("A short APDU carries at most 255 octets of data.", nameof(data));
        }

        if (le is < 0 or > 256)
        {
            throw new ArgumentOutOfRangeException(nameof(le), "Le is 0..256.");
        }

        Cla = cla;
        Ins = ins;
        P1 = p1;
        P2 = p2;
        Data = data;
        Le = le;
    }

    /// <summary>The class byte; its low two bits carry the logical channel (0..3) in the first interindustry classes.</summary>
    public byte Cla { get; }

    /// <summary>The instruction.</summary>
    public byte Ins { get; }

    /// <summary>Parameter 1.</summary>
    public byte P1 { get; }

    /// <summary>Parameter 2.</summary>
    public byte P2 { get; }

    /// <summary>The command data (empty in cases 1 and 2).</summary>
    public ReadOnlyMemory<byte> Data { get; }

    /// <summary>The expected response length (1..256), or null when the command has no Le field.</summary>
    public int? Le { get; }

    /// <summary>The encoded APDU; Le 256 is written as 00.</summary>
    public byte[] ToArray()
    {
        var length = 4 + (Data.Length > 0 ? 1 + Data.Length : 0) + (Le is null ? 0 : 1);
        var bytes = new byte[length];
        bytes[0] = Cla;
        bytes[1] = Ins;
        bytes[2] = P1;
        bytes[3] = P2;
        var at = 4;
        if (Data.Length > 0)
        {
            bytes[at++] = (byte)Data.Length;
            Data.Span.CopyTo(bytes.AsSpan(at));
            at += Data.Length;
        }

        if (Le is { } le)
        {
            bytes[at] = (byte)(le == 256 ? 0 : le);
        }

        return bytes;
    }

    /// <summary>
    /// Parses a short APDU. Returns false (never throws) when the bytes are not one: fewer than 4 octets, or a body
    /// whose Lc does not match its length.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> bytes, out CommandApdu? apdu)
    {
        apdu = null;
        if (bytes.Length < 4)
        {
            return false;
        }

        var body = bytes[4..];
        if (body.Length == 0)
        {
            apdu = new CommandApdu(bytes[0], bytes[1], bytes[2], bytes[3]);
            return true;
        }

        if (body.Length == 1)
        {
            // Case 2: Le only (00 = 256).
            apdu = new CommandApdu(bytes[0], bytes[1], bytes[2], bytes[3], default, body[0] == 0 ? 256 : body[0]);
            return true;
        }

        var lc = body[0];
        if (lc == 0)
        {
            return false; // an extended-length APDU, which this card does not support
        }

        if (body.Length == 1 + lc)
        {
            apdu = new CommandApdu(bytes[0], bytes[1], bytes[2], bytes[3], body.Slice(1, lc).ToArray());
            return true;
        }

        if (body.Length == 2 + lc)
        {
            var le = body[1 + lc];
            apdu = new CommandApdu(bytes[0], bytes[1], bytes[2], bytes[3], body.Slice(1, lc).ToArray(), le == 0 ? 256 : le);
            return true;
        }

        return false;
    }

    /// <summary>The header as hex, for traces (the data can be key material and is never shown).</summary>
    public override string ToString() => $"{Cla:X2} {Ins:X2} {P1:X2} {P2:X2} Lc={Data.Length}";
}

/// <summary>A response APDU: data and the status word SW1 SW2.</summary>
/// <param name="Data">The response data.</param>
/// <param name="Sw">The status word.</param>
public sealed record ResponseApdu(byte[] Data, ushort Sw)
{
    /// <summary>SW1.</summary>
    public byte Sw1 => (byte)(Sw >> 8);

    /// <summary>SW2.</summary>
    public byte Sw2 => (byte)Sw;

    /// <summary>Whether the status word is '9000'.</summary>
    public bool IsOk => Sw == StatusWord.Ok;

    /// <summary>Data ‖ SW1 ‖ SW2.</summary>
    public byte[] ToArray()
    {
        var bytes = new byte[Data.Length + 2];
        Data.CopyTo(bytes, 0);
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(Data.Length), Sw);
        return bytes;
    }

    /// <summary>Splits a response; false when it has fewer than 2 octets.</summary>
    public static bool TryParse(ReadOnlySpan<byte> bytes, out ResponseApdu? response)
    {
        response = null;
        if (bytes.Length < 2)
        {
            return false;
        }

        response = new ResponseApdu(bytes[..^2].ToArray(), BinaryPrimitives.ReadUInt16BigEndian(bytes[^2..]));
        return true;
    }

    /// <summary>Never shows the data (it can be key material).</summary>
    public override string ToString() => $"ResponseApdu({Data.Length} octets, {Sw:X4})";
}

/// <summary>
/// A path to a card: it sends one command APDU and returns the card's response APDU as the reader delivered it
/// (T=0 procedure bytes such as '61xx' are left to <see cref="UiccClient"/>).
/// </summary>
public interface IApduChannel : IDisposable
{
    /// <summary>Names the reader or line, for messages.</summary>
    string Name { get; }

    /// <summary>
    /// Whether a case 4 command keeps its Le (T=1). False (T=0, the default): it goes as case 3 and the data comes through
    /// GET RESPONSE.
    /// </summary>
    bool CaseFourWithLe => false;

    /// <summary>Sends <paramref name="command"/> and returns the response (data ‖ SW1 SW2).</summary>
    /// <exception cref="IOException">The reader or card failed; the message names the reader.</exception>
    byte[] Transmit(ReadOnlySpan<byte> command);
}
