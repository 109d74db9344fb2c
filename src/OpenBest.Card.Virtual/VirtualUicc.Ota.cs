using System.Buffers.Binary;

namespace OpenBest.Card.Virtual;

/// <summary>
/// Remote file management over the air (ETSI TS 102 225 and TS 102 226, TS 31.115/31.111): ENVELOPE (SMS-PP data download)
/// carries an SMS-DELIVER whose user data header names a command packet (IEI 0x70); the packet's TAR names this card's RFM
/// application (B00000..B000FF; B00001 starts in the USIM, the others at the MF); its secured data is a compact command
/// script (C-APDUs: CLA INS P1 P2 P3 [data]) run with administrative rights on a channel of its own; the PoR (a response
/// packet after the header 02 71 00) is the ENVELOPE's answer. Counters per TAR per TS 102 225 5.1.1.
/// </summary>
/// <remarks>
/// Two termination points (docs/protocol.md, "OTA over BEST"): a packet that came by SMS (device identities: source the
/// network, 0x83) must be ciphered and carry a CC; a packet without 102 225 security is taken only when the device says it
/// came over a protected BEST OTA channel (source the terminal, 0x82), and is refused with "insufficient security level"
/// otherwise.
/// </remarks>
public sealed partial class VirtualUicc
{
    private bool _remoteAdministration;

    private ResponseApdu Envelope(CommandApdu apdu)
    {
        if (apdu.Cla != 0x80 || apdu.P1 != 0 || apdu.P2 != 0)
        {
            return new ResponseApdu([], StatusWord.IncorrectP1P2);
        }

        // D1 (SMS-PP download) { 82 device identities, [06 address], 8B SMS TPDU }.
        var envelope = apdu.Data.Span;
        if (!TryTlv(envelope, out var tag, out var body, out _) || tag != 0xD1)
        {
            return new ResponseApdu([], StatusWord.IncorrectData);
        }

        byte? source = null;
        ReadOnlySpan<byte> tpdu = default;
        while (!body.IsEmpty && TryTlv(body, out var inner, out var value, out var rest))
        {
            switch (inner & 0x7F)
            {
                case 0x02 when value.Length == 2:
                    source = value[0];
                    break;
                case 0x0B:
                    tpdu = value;
                    break;
            }

            body = rest;
        }

        if (source is not (0x82 or 0x83) || !TryCommandPacket(tpdu, out var packet))
        {
            return new ResponseApdu([], StatusWord.IncorrectData);
        }

        var overBest = source == 0x82;
        var status = OtaPacket.TryDecodeCommand(tar => IsRfm(tar) && _state.OtaKic.Length > 0 ? Keys() : null, packet, out var command);
        var spi = command?.Spi ?? new OtaSpi(packet.Length > 4 ? packet[3] : (byte)0, packet.Length > 4 ? packet[4] : (byte)0x01);
        var tar = command?.Tar ?? (packet.Length >= 10 ? packet.Slice(7, 3).ToArray() : new byte[3]);
        var counter = command?.Counter ?? 0;
        if (status == OtaStatus.Ok && !IsRfm(tar))
        {
            status = OtaStatus.TarUnknown;
        }

        // The minimum security level: over SMS ciphered with a CC; unsecured only over a protected BEST OTA channel.
        if (status == OtaStatus.Ok && !(spi.Ciphered && spi.CryptographicChecksum) && !(overBest && spi.Unsecured))
        {
            status = OtaStatus.InsufficientSecurity;
        }

        var key = Convert.ToHexString(tar);
        if (status == OtaStatus.Ok && spi.CounterMode >= 2)
        {
            var last = _state.OtaCounters.GetValueOrDefault(key);
            status = counter <= last ? OtaStatus.CounterLow : spi.CounterMode == 3 && counter != last + 1 ? OtaStatus.CounterHigh : OtaStatus.Ok;
        }

        byte[] result = [];
        if (status == OtaStatus.Ok)
        {
            if (spi.CounterMode >= 1)
            {
                _state.OtaCounters[key] = counter;
                Save(); // the counter is kept before anything runs or answers
            }

            result = RunScript(command!.Data, tar[2] == 0x01 ? Application.Usim : Application.None);
        }

        if (spi.ProofOfReceipt == 0 || (spi.ProofOfReceipt == 2 && status == OtaStatus.Ok))
        {
            return new ResponseApdu([], StatusWord.Ok);
        }

        // An error before the keys were known goes back without security; otherwise the PoR is secured as the SPI asks.
        byte[] header = [0x02, 0x71, 0x00];
        var securedPor = (status is OtaStatus.Ok or OtaStatus.CounterLow or OtaStatus.CounterHigh or OtaStatus.InsufficientSecurity) && command is not null && !spi.Unsecured;
        var por = OtaPacket.EncodeResponse(securedPor ? Keys() : null, spi, tar, counter, status, result, header);
        return new ResponseApdu([.. header, .. por], StatusWord.Ok);
    }

    private OtaKeys Keys() => new(_state.OtaKeyVersion, _state.OtaKic, _state.OtaKeyVersion, _state.OtaKid);

    private static bool IsRfm(ReadOnlySpan<byte> tar) => tar.Length == 3 && tar[0] == 0xB0 && tar[1] == 0x00;

    /// <summary>
    /// Runs a compact command script (TS 102 226 5.1.1) with administrative rights on a channel of its own; stops at the first
    /// command that does not end in 90xx/91xx. Additional response data: the number of commands run, the last one's status
    /// word and its response data.
    /// </summary>
    private byte[] RunScript(ReadOnlySpan<byte> script, Application start)
    {
        var channel = new ChannelState { Application = start };
        var count = 0;
        ushort sw = StatusWord.Ok;
        byte[] data = [];
        _remoteAdministration = true;
        try
        {
            while (script.Length >= 5)
            {
                var ins = script[1];
                var p3 = script[4];
                var caseTwo = ins is 0xB0 or 0xB2; // P3 is Le
                var length = 5 + (caseTwo ? 0 : p3);
                if (script.Length < length)
                {
                    break;
                }

                byte[] bytes = caseTwo ? [.. script[..4], p3 == 0 ? (byte)0 : p3] : [.. script[..length]];
                script = script[length..];
                count++;
                if (!CommandApdu.TryParse(bytes, out var apdu) || (apdu!.Cla & 0x80) != 0)
                {
                    sw = StatusWord.ClassNotSupported;
                    data = [];
                    break;
                }

                var answer = Interindustry(channel, apdu);
                (sw, data) = (answer.Sw, answer.Data);
                if (sw >> 8 is not (0x90 or 0x91))
                {
                    break;
                }
            }
        }
        finally
        {
            _remoteAdministration = false;
        }

        var output = new byte[3 + data.Length];
        output[0] = (byte)count;
        BinaryPrimitives.WriteUInt16BigEndian(output.AsSpan(1), sw);
        data.CopyTo(output, 3);
        return output;
    }

    /// <summary>The command packet in an SMS-DELIVER TPDU (TS 23.040 9.2.2.1) whose user data header carries IEI 0x70 (TS 31.115 4.2).</summary>
    private static bool TryCommandPacket(ReadOnlySpan<byte> tpdu, out ReadOnlySpan<byte> packet)
    {
        packet = default;
        if (tpdu.Length < 2 || (tpdu[0] & 0x03) != 0x00 || (tpdu[0] & 0x40) == 0)
        {
            return false; // not an SMS-DELIVER with a user data header
        }

        var at = 1 + 2 + ((tpdu[1] + 1) / 2); // TP-OA: digits, type of address, BCD
        at += 1 + 1 + 7; // TP-PID, TP-DCS, TP-SCTS
        if (tpdu.Length < at + 2)
        {
            return false;
        }

        var ud = tpdu[(at + 1)..];
        var udhl = ud[0];
        if (ud.Length < 1 + udhl || udhl < 2 || ud[1] != 0x70)
        {
            return false;
        }

        packet = ud[(1 + udhl)..];
        return packet.Length >= 2;
    }

    /// <summary>One BER-TLV (one-octet tag; length in one octet or 81 xx).</summary>
    private static bool TryTlv(ReadOnlySpan<byte> input, out byte tag, out ReadOnlySpan<byte> value, out ReadOnlySpan<byte> rest)
    {
        tag = 0;
        value = rest = default;
        if (input.Length < 2)
        {
            return false;
        }

        tag = input[0];
        var (length, at) = input[1] == 0x81 && input.Length >= 3 ? (input[2], 3) : (input[1], 2);
        if (input[1] > 0x81 || input.Length < at + length)
        {
            return false;
        }

        value = input.Slice(at, length);
        rest = input[(at + length)..];
        return true;
    }
}
