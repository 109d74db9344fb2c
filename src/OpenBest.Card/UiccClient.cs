namespace OpenBest.Card;

/// <summary>
/// Talks to a UICC over an <see cref="IApduChannel"/> as an ME does (ETSI TS 102 221, ISO 7816-4): the T=0 procedure
/// for case 4 commands (sent without Le; '61xx' answered with GET RESPONSE), '6Cxx' (resent with the right Le), logical
/// channels in the class byte, SELECT, READ/UPDATE BINARY and READ RECORD. Not thread-safe: one command at a time.
/// </summary>
public sealed class UiccClient
{
    /// <summary>The USIM application's AID prefix (RID A000000087, application code 1002), selected with P2 = 04.</summary>
    public static readonly byte[] UsimAidPrefix = [0xA0, 0x00, 0x00, 0x00, 0x87, 0x10, 0x02];

    private readonly IApduChannel _channel;

    /// <summary>A client on <paramref name="channel"/>, logical channel <paramref name="logicalChannel"/> (0..3).</summary>
    public UiccClient(IApduChannel channel, byte logicalChannel = 0)
    {
        ArgumentNullException.ThrowIfNull(channel);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(logicalChannel, (byte)3);
        _channel = channel;
        LogicalChannel = logicalChannel;
    }

    /// <summary>The logical channel carried in the class byte.</summary>
    public byte LogicalChannel { get; }

    /// <summary>The reader's name.</summary>
    public string Name => _channel.Name;

    /// <summary>
    /// Sends <paramref name="command"/> (its class's channel bits replaced by <see cref="LogicalChannel"/>) and follows the
    /// card's procedure bytes: '61xx' → GET RESPONSE (data concatenated), '6Cxx' → the same command with Le = xx.
    /// </summary>
    /// <exception cref="IOException">The reader failed or the card answered with fewer than two octets.</exception>
    public ResponseApdu Send(CommandApdu command)
    {
        ArgumentNullException.ThrowIfNull(command);
        var cla = (byte)((command.Cla & 0xFC) | LogicalChannel);
        // T=0 carries a case 4 command as case 3; the data comes back through GET RESPONSE. T=1 keeps Le.
        var keepLe = _channel.CaseFourWithLe || command.Data.Length == 0;
        var sent = new CommandApdu(cla, command.Ins, command.P1, command.P2, command.Data, keepLe ? command.Le : null);
        // One command sequence at a time on a card, whoever shares the channel (the USIM and the secure element do).
        lock (_channel)
        {
            var response = Exchange(sent);
            if (response.Sw1 == 0x6C && (keepLe || command.Data.Length == 0))
            {
                response = Exchange(new CommandApdu(cla, command.Ins, command.P1, command.P2, command.Data, response.Sw2 == 0 ? 256 : response.Sw2));
            }

            var data = new List<byte>(response.Data);
            for (var rounds = 0; response.Sw1 == 0x61 && rounds < 64; rounds++)
            {
                System.Security.Cryptography.CryptographicOperations.ZeroMemory(response.Data);
                response = Exchange(new CommandApdu((byte)(0x00 | LogicalChannel), 0xC0, 0x00, 0x00, default, response.Sw2 == 0 ? 256 : response.Sw2));
                data.AddRange(response.Data);
            }

            System.Security.Cryptography.CryptographicOperations.ZeroMemory(response.Data);
            var all = data.ToArray();
            System.Runtime.InteropServices.CollectionsMarshal.AsSpan(data).Clear();
            return new ResponseApdu(all, response.Sw);
        }
    }

    /// <summary>SELECT by DF name (P1 = 04) with P2 = 04 (return the FCP): a full AID or a prefix of one.</summary>
    public ResponseApdu SelectAid(ReadOnlySpan<byte> aid) => Send(new CommandApdu(0x00, 0xA4, 0x04, 0x04, aid.ToArray(), 256));

    /// <summary>SELECT by file identifier (P1 = 00) with P2 = 04.</summary>
    public ResponseApdu SelectFile(ushort fid) => Send(new CommandApdu(0x00, 0xA4, 0x00, 0x04, new[] { (byte)(fid >> 8), (byte)fid }, 256));

    /// <summary>READ BINARY of the current EF.</summary>
    public ResponseApdu ReadBinary(int offset, int length) => Send(new CommandApdu(0x00, 0xB0, (byte)(offset >> 8), (byte)offset, default, length));

    /// <summary>UPDATE BINARY of the current EF.</summary>
    public ResponseApdu UpdateBinary(int offset, ReadOnlySpan<byte> data) => Send(new CommandApdu(0x00, 0xD6, (byte)(offset >> 8), (byte)offset, data.ToArray()));

    /// <summary>READ RECORD <paramref name="record"/> (absolute mode, P2 = 04) of the current linear fixed EF.</summary>
    public ResponseApdu ReadRecord(int record, int length) => Send(new CommandApdu(0x00, 0xB2, (byte)record, 0x04, default, length));

    /// <summary>MANAGE CHANNEL open: the number of the new logical channel.</summary>
    /// <exception cref="IOException">The card refused (no channel free).</exception>
    public byte OpenChannel()
    {
        var response = Send(new CommandApdu(0x00, 0x70, 0x00, 0x00, default, 1));
        if (!response.IsOk || response.Data.Length != 1 || response.Data[0] is 0 or > 3)
        {
            throw new IOException($"{Name}: MANAGE CHANNEL answered {StatusWord.Describe(response.Sw)}.");
        }

        return response.Data[0];
    }

    /// <summary>MANAGE CHANNEL close of <paramref name="channel"/>.</summary>
    public ResponseApdu CloseChannel(byte channel) => Send(new CommandApdu(0x00, 0x70, 0x80, channel));

    /// <summary>Reads the whole transparent EF <paramref name="fid"/> in the current DF (its size from the FCP).</summary>
    /// <exception cref="IOException">The card refused; the message names the file and the status word.</exception>
    public byte[] ReadTransparent(ushort fid)
    {
        var select = SelectFile(fid);
        Expect(select, $"SELECT {fid:X4}");
        var size = FileSize(select.Data) ?? throw new IOException($"{Name}: the FCP of {fid:X4} has no file size.");
        if (size > 0x7FFF)
        {
            throw new IOException($"{Name}: {fid:X4} is {size} octets; READ BINARY reaches 32767.");
        }

        var content = new byte[size];
        for (var at = 0; at < size;)
        {
            var chunk = Math.Min(256, size - at);
            var read = ReadBinary(at, chunk);
            Expect(read, $"READ BINARY {fid:X4}");
            if (read.Data.Length == 0)
            {
                throw new IOException($"{Name}: READ BINARY {fid:X4} returned no data.");
            }

            read.Data.AsSpan(0, Math.Min(read.Data.Length, size - at)).CopyTo(content.AsSpan(at));
            at += read.Data.Length;
        }

        return content;
    }

    /// <summary>Throws unless <paramref name="response"/> is '9000'.</summary>
    /// <exception cref="IOException">The status word is not '9000'.</exception>
    public void Expect(ResponseApdu response, string what)
    {
        ArgumentNullException.ThrowIfNull(response);
        if (!response.IsOk)
        {
            throw new IOException($"{Name}: {what} answered {StatusWord.Describe(response.Sw)}.");
        }
    }

    /// <summary>The file size ('80', or '81' total size) in an FCP template ('62'); null when absent or malformed.</summary>
    public static int? FileSize(ReadOnlySpan<byte> fcp)
    {
        if (fcp.Length < 2 || fcp[0] != 0x62 || fcp[1] > fcp.Length - 2)
        {
            return null;
        }

        var body = fcp.Slice(2, fcp[1]);
        while (body.Length >= 2)
        {
            var tag = body[0];
            var length = body[1];
            if (length > body.Length - 2)
            {
                return null;
            }

            var value = body.Slice(2, length);
            if (tag == 0x80 && length is >= 1 and <= 3)
            {
                var size = 0;
                foreach (var b in value)
                {
                    size = (size << 8) | b;
                }

                return size;
            }

            body = body[(2 + length)..];
        }

        return null;
    }

    private ResponseApdu Exchange(CommandApdu command)
    {
        var raw = _channel.Transmit(command.ToArray());
        try
        {
            if (!ResponseApdu.TryParse(raw, out var response))
            {
                throw new IOException($"{Name}: the card answered {raw.Length} octets, not a response APDU.");
            }

            return response!;
        }
        finally
        {
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(raw);
        }
    }
}
