using System.Text;

namespace OpenBest.Card.Virtual;

/// <summary>The file system: SELECT, READ/UPDATE BINARY, READ RECORD and MANAGE CHANNEL (ETSI TS 102 221 clauses 8, 11).</summary>
public sealed partial class VirtualUicc
{
    private ResponseApdu Select(ChannelState channel, CommandApdu apdu)
    {
        if (apdu.P2 is not (0x04 or 0x0C or 0x00))
        {
            return new ResponseApdu([], StatusWord.IncorrectP1P2);
        }

        var data = apdu.Data.Span;
        byte[] fcp;
        switch (apdu.P1)
        {
            case 0x00:
                if (data.Length != 2)
                {
                    return new ResponseApdu([], StatusWord.WrongLength);
                }

                var fid = (ushort)((data[0] << 8) | data[1]);
                if (fid == Mf)
                {
                    channel.Application = Application.None;
                    channel.CurrentEf = 0;
                    fcp = DfFcp(Mf, []);
                }
                else if (fid == Adf && channel.Application == Application.Usim)
                {
                    channel.CurrentEf = 0;
                    fcp = DfFcp(Adf, UsimAid);
                }
                else if (EfFcp(channel.Application, fid) is { } efFcp)
                {
                    channel.CurrentEf = fid;
                    fcp = efFcp;
                }
                else
                {
                    return new ResponseApdu([], StatusWord.FileNotFound);
                }

                break;
            case 0x04:
                if (data.Length is < 5 or > 16)
                {
                    return new ResponseApdu([], data.Length == 0 ? StatusWord.WrongLength : StatusWord.FileNotFound);
                }

                if (UsimAid.AsSpan().StartsWith(data))
                {
                    channel.Application = Application.Usim;
                    fcp = DfFcp(Adf, UsimAid);
                }
                else if (ObfSecureElementApplication.Aid.AsSpan().StartsWith(data))
                {
                    channel.Application = Application.SecureElement;
                    fcp = DfFcp(Adf, ObfSecureElementApplication.Aid);
                }
                else
                {
                    return new ResponseApdu([], StatusWord.FileNotFound);
                }

                channel.CurrentEf = 0;
                break;
            default:
                return new ResponseApdu([], StatusWord.IncorrectP1P2);
        }

        return new ResponseApdu(apdu.P2 == 0x0C ? [] : fcp, StatusWord.Ok);
    }

    private ResponseApdu ReadBinary(ChannelState channel, CommandApdu apdu)
    {
        if (!TryTarget(channel, apdu, out var fid, out var offset, out var refusal))
        {
            return new ResponseApdu([], refusal);
        }

        if (Transparent(channel.Application, fid) is not { } content)
        {
            return new ResponseApdu([], StatusWord.CommandNotAllowed);
        }

        if (apdu.Le is not { } le || apdu.Data.Length > 0)
        {
            return new ResponseApdu([], StatusWord.WrongLength);
        }

        if (offset >= content.Length)
        {
            return new ResponseApdu([], StatusWord.WrongP1P2);
        }

        channel.CurrentEf = fid;
        return new ResponseApdu(content[offset..Math.Min(content.Length, offset + le)], StatusWord.Ok);
    }

    private ResponseApdu UpdateBinary(ChannelState channel, CommandApdu apdu)
    {
        if (!TryTarget(channel, apdu, out var fid, out var offset, out var refusal))
        {
            return new ResponseApdu([], refusal);
        }

        if (Transparent(channel.Application, fid) is null)
        {
            return new ResponseApdu([], StatusWord.CommandNotAllowed);
        }

        if (apdu.Data.Length == 0 || apdu.Le is not null)
        {
            return new ResponseApdu([], StatusWord.WrongLength);
        }

        if (fid == EfSpn && _remoteAdministration)
        {
            // Remote file management has the administrative right to EF_SPN (the operator renames its service OTA).
            if (offset + apdu.Data.Length > SpnSize)
            {
                return new ResponseApdu([], StatusWord.WrongLength);
            }

            var spn = Padded(_state.Spn, SpnSize);
            apdu.Data.Span.CopyTo(spn.AsSpan(offset));
            _state.Spn = spn;
            channel.CurrentEf = fid;
            Save();
            return new ResponseApdu([], StatusWord.Ok);
        }

        if (fid != EfGbabp)
        {
            return new ResponseApdu([], StatusWord.SecurityStatusNotSatisfied); // ADM only
        }

        if (offset + apdu.Data.Length > GbabpSize)
        {
            return new ResponseApdu([], StatusWord.WrongLength);
        }

        var content = Transparent(Application.Usim, EfGbabp)!;
        apdu.Data.Span.CopyTo(content.AsSpan(offset));
        _state.Gbabp = content;
        channel.CurrentEf = fid;
        Save();
        return new ResponseApdu([], StatusWord.Ok);
    }

    private ResponseApdu ReadRecord(ChannelState channel, CommandApdu apdu)
    {
        if (apdu.P2 != 0x04)
        {
            return new ResponseApdu([], StatusWord.IncorrectP1P2);
        }

        if (channel.CurrentEf == 0 || Records(channel.Application, channel.CurrentEf) is not { } records)
        {
            return new ResponseApdu([], StatusWord.CommandNotAllowed);
        }

        if (apdu.Le is null || apdu.Data.Length > 0)
        {
            return new ResponseApdu([], StatusWord.WrongLength);
        }

        if (apdu.P1 == 0 || apdu.P1 > records.Count)
        {
            return new ResponseApdu([], StatusWord.RecordNotFound);
        }

        return new ResponseApdu(records[apdu.P1 - 1], StatusWord.Ok);
    }

    private ResponseApdu ManageChannel(CommandApdu apdu)
    {
        if (apdu.Data.Length > 0)
        {
            return new ResponseApdu([], StatusWord.WrongLength);
        }

        if (apdu.P1 == 0x00 && apdu.P2 == 0x00)
        {
            for (byte n = 1; n < _channels.Length; n++)
            {
                if (_channels[n] is null)
                {
                    _channels[n] = new ChannelState();
                    return new ResponseApdu([n], StatusWord.Ok);
                }
            }

            return new ResponseApdu([], 0x6A81); // function not supported: no channel left
        }

        if (apdu.P1 == 0x80 && apdu.P2 is >= 1 and <= 3)
        {
            if (_channels[apdu.P2] is null)
            {
                return new ResponseApdu([], StatusWord.ChannelNotSupported);
            }

            _channels[apdu.P2] = null;
            return new ResponseApdu([], StatusWord.Ok);
        }

        return new ResponseApdu([], StatusWord.IncorrectP1P2);
    }

    /// <summary>The EF a READ/UPDATE BINARY addresses: by SFI (P1 b8 = 1, offset P2) or the current EF (offset P1 ‖ P2).</summary>
    private static bool TryTarget(ChannelState channel, CommandApdu apdu, out ushort fid, out int offset, out ushort refusal)
    {
        refusal = 0;
        if ((apdu.P1 & 0x80) != 0)
        {
            offset = apdu.P2;
            fid = (apdu.P1 & 0x60) != 0 ? (ushort)0 : Sfi(channel.Application, apdu.P1 & 0x1F);
            if (fid == 0)
            {
                refusal = (apdu.P1 & 0x60) != 0 ? StatusWord.IncorrectP1P2 : StatusWord.FileNotFound;
                return false;
            }

            return true;
        }

        offset = (apdu.P1 << 8) | apdu.P2;
        fid = channel.CurrentEf;
        if (fid == 0)
        {
            refusal = StatusWord.CommandNotAllowed;
            return false;
        }

        return true;
    }

    private static ushort Sfi(Application application, int sfi) => (application, sfi) switch
    {
        (Application.None, 0x02) => EfIccid,
        (Application.Usim, 0x07) => EfImsi,
        (Application.Usim, 0x03) => EfAd,
        (Application.Usim, 0x04) => EfUst,
        _ => 0,
    };

    private byte[]? Transparent(Application application, ushort fid) => (application, fid) switch
    {
        (Application.None, EfIccid) => OpenBest.Card.Iccid.Encode(_state.Iccid),
        (Application.Usim, EfImsi) => Imsi.Encode(_state.Imsi),
        (Application.Usim, EfAd) => [0x00, 0x00, 0x00, 0x02],
        (Application.Usim, EfUst) => UsimServiceTable(),
        (Application.Usim, EfGbabp) => Padded(_state.Gbabp, GbabpSize),
        (Application.Usim, EfSpn) => Padded(_state.Spn, SpnSize),
        _ => null,
    };

    private List<byte[]>? Records(Application application, ushort fid)
    {
        switch (application, fid)
        {
            case (Application.None, EfDir):
                // An application template: 61 L 4F L AID 50 L label (TS 102 221 13.1).
                byte[] label = [.. "USIM"u8];
                byte[] template = [0x61, (byte)(4 + UsimAid.Length + label.Length), 0x4F, (byte)UsimAid.Length, .. UsimAid, 0x50, (byte)label.Length, .. label];
                return [Padded(template, 32)];
            case (Application.Usim, EfGbanl):
                var records = new List<byte[]>();
                for (var i = 0; i < GbanlRecords; i++)
                {
                    records.Add(i < _state.Naf.Count ? Padded(GbanlRecord(_state.Naf[i]), GbanlRecordLength) : Padded([], GbanlRecordLength));
                }

                return records;
            default:
                return null;
        }
    }

    private byte[]? EfFcp(Application application, ushort fid)
    {
        if (Transparent(application, fid) is { } content)
        {
            // 82: transparent working EF; 83: FID; 80: size.
            return [0x62, 0x0C, 0x82, 0x02, 0x41, 0x21, 0x83, 0x02, (byte)(fid >> 8), (byte)fid, 0x80, 0x02, (byte)(content.Length >> 8), (byte)content.Length];
        }

        if (Records(application, fid) is { } records)
        {
            var length = records[0].Length;
            var size = length * records.Count;
            // 82: linear fixed working EF with its record length and count.
            return [0x62, 0x0F, 0x82, 0x05, 0x42, 0x21, 0x00, (byte)length, (byte)records.Count, 0x83, 0x02, (byte)(fid >> 8), (byte)fid, 0x80, 0x02, (byte)(size >> 8), (byte)size];
        }

        return null;
    }

    private static byte[] DfFcp(ushort fid, byte[] aid)
    {
        byte[] body = [0x82, 0x02, 0x78, 0x21, 0x83, 0x02, (byte)(fid >> 8), (byte)fid, .. aid.Length > 0 ? [0x84, (byte)aid.Length, .. aid] : Array.Empty<byte>()];
        return [0x62, (byte)body.Length, .. body];
    }

    private static byte[] UsimServiceTable()
    {
        // Services n°2 (FDN… unused here) off; n°27 (GSM access) off; n°68 (GBA) on: byte 9 bit 4.
        var table = new byte[9];
        table[(68 - 1) / 8] |= (byte)(1 << ((68 - 1) % 8));
        return table;
    }

    private static byte[] GbanlRecord(NafEntry entry)
    {
        var btid = Encoding.UTF8.GetBytes(entry.BTid);
        return [0x80, (byte)entry.NafId.Length, .. entry.NafId, 0x81, (byte)btid.Length, .. btid];
    }

    private static byte[] Padded(byte[] content, int size)
    {
        var padded = new byte[size];
        Array.Fill(padded, (byte)0xFF);
        content.AsSpan(0, Math.Min(size, content.Length)).CopyTo(padded);
        return padded;
    }
}
