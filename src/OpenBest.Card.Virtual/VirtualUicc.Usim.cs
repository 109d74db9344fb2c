using System.Security.Cryptography;
using System.Text;
using OpenBest.Crypto.Aka;
using OpenBest.Crypto.Kdf;

namespace OpenBest.Card.Virtual;

/// <summary>AUTHENTICATE (TS 31.102 7.1.2) in the 3G/EPS/5G context and in the GBA context (TS 33.220 G.1, G.2).</summary>
public sealed partial class VirtualUicc
{
    private ResponseApdu Authenticate(ChannelState channel, CommandApdu apdu)
    {
        if (channel.Application != Application.Usim)
        {
            return new ResponseApdu([], StatusWord.ConditionsNotSatisfied);
        }

        if (apdu.P1 != 0x00)
        {
            return new ResponseApdu([], StatusWord.IncorrectP1P2);
        }

        var data = apdu.Data.Span;
        switch (apdu.P2)
        {
            case 0x81:
                if (data.Length != 34)
                {
                    return new ResponseApdu([], StatusWord.WrongLength);
                }

                return data[0] != 16 || data[17] != 16 ? new ResponseApdu([], StatusWord.IncorrectData) : Aka(data.Slice(1, 16), data.Slice(18, 16), gba: false);
            case 0x84 when data.Length > 0 && data[0] == 0xDD:
                if (data.Length != 35)
                {
                    return new ResponseApdu([], StatusWord.WrongLength);
                }

                return data[1] != 16 || data[18] != 16 ? new ResponseApdu([], StatusWord.IncorrectData) : Aka(data.Slice(2, 16), data.Slice(19, 16), gba: true);
            case 0x84 when data.Length > 0 && data[0] == 0xDE:
                return NafDerivation(data[1..]);
            case 0x84:
                return new ResponseApdu([], data.Length == 0 ? StatusWord.WrongLength : StatusWord.IncorrectData);
            case 0x80 or 0x82 or 0x85 or 0x86:
                return new ResponseApdu([], StatusWord.SecurityContextNotSupported); // GSM, VGCS/VBS, MBMS, local key establishment
            default:
                return new ResponseApdu([], StatusWord.IncorrectP1P2);
        }
    }

    private ResponseApdu Aka(ReadOnlySpan<byte> rand, ReadOnlySpan<byte> autn, bool gba)
    {
        using var answer = _usim.Authenticate(rand, autn);
        switch (answer.Status)
        {
            case UsimAuthenticationStatus.MacFailure:
                return new ResponseApdu([], StatusWord.AuthenticationMacFailure);
            case UsimAuthenticationStatus.SynchronisationFailure:
                return new ResponseApdu([0xDC, 14, .. answer.Auts], StatusWord.Ok);
        }

        if (!gba)
        {
            return new ResponseApdu([0xDB, 8, .. answer.Res, 16, .. answer.Ck, 16, .. answer.Ik], StatusWord.Ok);
        }

        // GBA_U: Ks = CK ‖ IK and RAND stay in the card; a new bootstrap replaces the previous one (TS 33.220 G.1).
        CryptographicOperations.ZeroMemory(_state.Ks);
        _state.Ks = [.. answer.Ck, .. answer.Ik];
        _state.GbaRand = rand.ToArray();
        _state.Gbabp = [16, .. rand, 0, 0];
        foreach (var entry in _state.Naf)
        {
            CryptographicOperations.ZeroMemory(entry.KsIntNaf);
        }

        _state.Naf.Clear();
        Save();
        return new ResponseApdu([0xDB, 8, .. answer.Res], StatusWord.Ok);
    }

    private ResponseApdu NafDerivation(ReadOnlySpan<byte> body)
    {
        if (!TryNafAndImpi(body, out var nafId, out var impi))
        {
            return new ResponseApdu([], StatusWord.IncorrectData);
        }

        if (_state.Ks.Length != 32)
        {
            return new ResponseApdu([], StatusWord.ConditionsNotSatisfied); // no bootstrap yet (TS 33.220 G.2 NOTE)
        }

        var ext = new byte[32];
        var ksInt = new byte[32];
        try
        {
            Gba.KsNaf(_state.Ks.AsSpan(0, 16), _state.Ks.AsSpan(16), _state.GbaRand, impi, nafId, ext);
            Gba.KsIntNaf(_state.Ks.AsSpan(0, 16), _state.Ks.AsSpan(16), _state.GbaRand, impi, nafId, ksInt);
            // The newest entry first; the oldest is overwritten when the list is full (TS 33.220 G.2).
            _state.Naf.RemoveAll(e => e.NafId.AsSpan().SequenceEqual(nafId));
            _state.Naf.Insert(0, new NafEntry { NafId = nafId, BTid = CurrentBTid(), KsIntNaf = ksInt });
            if (_state.Naf.Count > GbanlRecords)
            {
                _state.Naf.RemoveRange(GbanlRecords, _state.Naf.Count - GbanlRecords);
            }

            Save();
            return new ResponseApdu([0xDB, 32, .. ext], StatusWord.Ok);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(ext);
        }
    }

    /// <summary>L ‖ NAF_Id ‖ L ‖ IMPI, every length checked; the IMPI must be UTF-8 text.</summary>
    private static bool TryNafAndImpi(ReadOnlySpan<byte> body, out byte[] nafId, out string impi)
    {
        nafId = [];
        impi = string.Empty;
        if (body.Length < 2 || body[0] == 0 || body.Length < 2 + body[0])
        {
            return false;
        }

        var impiLength = body[1 + body[0]];
        if (impiLength == 0 || body.Length != 2 + body[0] + impiLength)
        {
            return false;
        }

        try
        {
            impi = new UTF8Encoding(false, true).GetString(body.Slice(2 + body[0], impiLength));
        }
        catch (DecoderFallbackException)
        {
            return false;
        }

        nafId = body.Slice(1, body[0]).ToArray();
        return true;
    }

    /// <summary>The B-TID the ME wrote into EF_GBABP after the bootstrap (empty when it has not).</summary>
    private string CurrentBTid()
    {
        var g = _state.Gbabp;
        if (g.Length < 2 || g[0] > g.Length - 2)
        {
            return string.Empty;
        }

        var at = 1 + g[0];
        var length = g[at];
        return length == 0xFF || length > g.Length - at - 1 ? string.Empty : Encoding.UTF8.GetString(g, at + 1, length);
    }
}
