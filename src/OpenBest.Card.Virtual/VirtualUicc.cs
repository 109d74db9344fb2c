using System.Security.Cryptography;
using OpenBest.Crypto;
using OpenBest.Crypto.Aka;

namespace OpenBest.Card.Virtual;

/// <summary>What the card is made of: its subscriber secret and the personalisation a new card starts with.</summary>
public sealed record VirtualUiccOptions
{
    /// <summary>The IMSI in EF_IMSI.</summary>
    public required string Imsi { get; init; }

    /// <summary>The ICCID in EF_ICCID (19 or 20 digits); null derives one from the IMSI (with a Luhn check digit).</summary>
    public string? Iccid { get; init; }

    /// <summary>K (16 octets).</summary>
    public required ReadOnlyMemory<byte> K { get; init; }

    /// <summary>OPc (16 octets).</summary>
    public required ReadOnlyMemory<byte> Opc { get; init; }

    /// <summary>The state file (SQN array, GBA keys, secure-element keys); null keeps everything in memory.</summary>
    public string? StateFile { get; init; }

    /// <summary>A new card's authentication server public key (65 octets, uncompressed P-256), or empty.</summary>
    public ReadOnlyMemory<byte> ServerPublicKey { get; init; }

    /// <summary>The server endpoint stored beside <see cref="ServerPublicKey"/>.</summary>
    public string ServerEndpoint { get; init; } = string.Empty;

    /// <summary>A new card's SQN_MS (every IND entry at its SEQ), as a card personalised for a network that has used SQNs already.</summary>
    public ulong InitialSqnMs { get; init; }

    /// <summary>A new card's imported secure-element keys (32 octets each) by key index.</summary>
    public IReadOnlyDictionary<byte, ReadOnlyMemory<byte>> PersonalisedKeys { get; init; } = new Dictionary<byte, ReadOnlyMemory<byte>>();

    /// <summary>A new card's OTA key set for remote file management (AES keys, one key version for KIc and KID); null: none.</summary>
    public OtaKeys? OtaKeys { get; init; }

    /// <summary>Never shows K or OPc.</summary>
    public override string ToString() => $"VirtualUiccOptions({Imsi})";
}

/// <summary>
/// A UICC in software that answers command APDUs as a card does (ETSI TS 102 221, TS 31.102, ISO 7816-4): the MF with
/// EF_DIR and EF_ICCID, the USIM ADF (EF_IMSI, EF_AD, EF_UST, EF_GBABP, EF_GBANL; AUTHENTICATE in the 3G and GBA
/// contexts), the OBF secure-element application, four logical channels, and T=0 response data through '61xx' and
/// GET RESPONSE. A command that fails gets its ISO 7816-4 status word and changes nothing. State that must survive a power
/// cut is written to the state file before the answer leaves. Thread-safe (one command at a time, as a card).
/// </summary>
public sealed partial class VirtualUicc : IDisposable
{
    /// <summary>The USIM's full AID: RID A000000087, application 1002, then country and provider bytes.</summary>
    public static readonly byte[] UsimAid = [0xA0, 0x00, 0x00, 0x00, 0x87, 0x10, 0x02, 0xFF, 0x4F, 0x42, 0xFF, 0x89, 0x00, 0x00, 0x01, 0x00];

    private const ushort Mf = 0x3F00;
    private const ushort Adf = 0x7FFF;
    private const ushort EfDir = 0x2F00;
    private const ushort EfIccid = 0x2FE2;
    private const ushort EfImsi = 0x6F07;
    private const ushort EfAd = 0x6FAD;
    private const ushort EfUst = 0x6F38;
    private const ushort EfGbabp = 0x6FD6;
    private const ushort EfGbanl = 0x6FDA;
    private const int GbabpSize = 255;
    private const ushort EfSpn = 0x6F46;
    private const int SpnSize = 17;
    private const int GbanlRecordLength = 200;
    private const int GbanlRecords = 4;
    private const int SecureElementSlots = 16;

    private readonly VirtualUiccOptions _options;
    private readonly byte[] _k;
    private readonly byte[] _opc;
    private readonly Lock _gate = new();
    private readonly ChannelState?[] _channels = new ChannelState?[4];
    private readonly Milenage _milenage;
    private readonly string _iccid;
    private CardState _state;
    private bool _mute;
    private Usim _usim;

    /// <summary>Creates the card, reading its state file when there is one.</summary>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    /// <exception cref="InvalidOperationException">The state file is not this card's; the message names it.</exception>
    public VirtualUicc(VirtualUiccOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.K.Length != 16 || options.Opc.Length != 16)
        {
            throw new ArgumentException("K and OPc are 16 octets each.", nameof(options));
        }

        _ = Imsi.Encode(options.Imsi);
        var iccid = options.Iccid ?? IccidFromImsi(options.Imsi);
        if (iccid is not { Length: 19 or 20 } || !iccid.All(char.IsAsciiDigit))
        {
            throw new ArgumentException("An ICCID is 19 or 20 digits.", nameof(options));
        }

        _options = options;
        _k = options.K.ToArray();
        _opc = options.Opc.ToArray();
        _milenage = new Milenage(_k, _opc);
        var loaded = options.StateFile is null ? null : CardStateFile.Load(options.StateFile, _k, _opc);
        if (loaded is not null && (loaded.Imsi != options.Imsi || loaded.Iccid != iccid))
        {
            throw new InvalidOperationException($"{options.StateFile} is the state of the card {loaded.Imsi} / {loaded.Iccid}, not {options.Imsi} / {iccid}.");
        }

        _iccid = iccid;
        _state = loaded ?? NewState(options, iccid);
        _usim = UsimFor(_state);
        PowerOn();
    }

    /// <summary>The answer to reset: T=0 and T=1 offered, historical bytes "OpenBest".</summary>
    public static byte[] Atr { get; } = BuildAtr();

    /// <summary>The card's ICCID.</summary>
    public string Iccid => _state.Iccid;

    /// <summary>EF_ICCID as stored (10 octets, swapped BCD): the identity the secure element binds packets to.</summary>
    public byte[] IccidOctets => OpenBest.Card.Iccid.Encode(_state.Iccid);

    /// <summary>Commands answered so far.</summary>
    public long Commands { get; private set; }

    /// <summary>Powers the card on (or after a reset): only the basic channel is open, with the MF selected.</summary>
    public void PowerOn()
    {
        lock (_gate)
        {
            Array.Clear(_channels);
            _channels[0] = new ChannelState();
        }
    }

    /// <summary>Answers one command APDU with a response APDU (data ‖ SW1 SW2). Never throws on what a reader sends.</summary>
    public byte[] Process(ReadOnlySpan<byte> command)
    {
        lock (_gate)
        {
            Commands++;
            if (_mute)
            {
                return Sw(StatusWord.NoDiagnosis); // its state could not be read back: a card that fails stays failed
            }

            if (!CommandApdu.TryParse(command, out var apdu))
            {
                return Sw(StatusWord.WrongLength);
            }

            var cla = apdu!.Cla;
            // The first interindustry class (00..03) and the proprietary class TS 102 221 and this card use (80..83).
            if ((cla & 0x7C) != 0)
            {
                return Sw(StatusWord.ClassNotSupported);
            }

            var channel = _channels[cla & 0x03];
            if (channel is null)
            {
                return Sw(StatusWord.ChannelNotSupported);
            }

            if (apdu.Ins == 0xC0)
            {
                return GetResponse(channel, apdu);
            }

            channel.Pending = null;
            ResponseApdu response;
            try
            {
                response = (cla & 0x80) == 0 ? Interindustry(channel, apdu) : Proprietary(channel, apdu);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
            {
                // The state file could not be written: the card goes back to what is on disk and says so.
                Reload();
                response = new ResponseApdu([], StatusWord.NoDiagnosis);
            }

            return Frame(channel, apdu, response);
        }
    }

    /// <summary>Zeroes the card's secrets in memory.</summary>
    public void Dispose()
    {
        Forget(_state);
        _milenage.Dispose();
        CryptographicOperations.ZeroMemory(_k);
        CryptographicOperations.ZeroMemory(_opc);
    }

    /// <summary>Never shows keys.</summary>
    public override string ToString() => $"VirtualUicc({_state.Imsi})";

    /// <summary>A default ICCID for <paramref name="imsi"/>: 89 (telecom) 882 (international) the IMSI's last 13 digits, then the Luhn digit.</summary>
    public static string IccidFromImsi(string imsi)
    {
        ArgumentNullException.ThrowIfNull(imsi);
        var body = "89882" + imsi.PadLeft(13, '0')[^13..];
        return body + Luhn(body);
    }

    private ResponseApdu Interindustry(ChannelState channel, CommandApdu apdu) => apdu.Ins switch
    {
        0xA4 => Select(channel, apdu),
        0xB0 => ReadBinary(channel, apdu),
        0xD6 => UpdateBinary(channel, apdu),
        0xB2 => ReadRecord(channel, apdu),
        0x88 => Authenticate(channel, apdu),
        0x70 => ManageChannel(apdu),
        _ => new ResponseApdu([], StatusWord.InsNotSupported),
    };

    private ResponseApdu Proprietary(ChannelState channel, CommandApdu apdu)
    {
        if (apdu.Ins == 0xC2)
        {
            return Envelope(apdu); // ENVELOPE (TS 102 221 10.1.2), whatever the channel's application
        }

        if (channel.Application != Application.SecureElement)
        {
            return new ResponseApdu([], apdu.Ins is 0xA4 or 0xB0 or 0xD6 or 0xB2 or 0x88 or 0x70 ? StatusWord.ClassNotSupported : StatusWord.InsNotSupported);
        }

        return SecureElement(apdu);
    }

    private static byte[] GetResponse(ChannelState channel, CommandApdu apdu)
    {
        if (apdu.P1 != 0 || apdu.P2 != 0)
        {
            return Sw(StatusWord.IncorrectP1P2);
        }

        if (channel.Pending is not { } pending || apdu.Le is null)
        {
            channel.Pending = null;
            return Sw(apdu.Le is null ? StatusWord.WrongLength : StatusWord.ConditionsNotSatisfied);
        }

        var take = Math.Min(apdu.Le.Value, pending.Length);
        var rest = pending[take..];
        channel.Pending = rest.Length > 0 ? rest : null;
        return [.. pending[..take], .. rest.Length > 0 ? Sw((ushort)(0x6100 | Math.Min(rest.Length, 256) % 256)) : Sw(StatusWord.Ok)];
    }

    /// <summary>
    /// T=0: a command without Le that has data to return gets '61xx' and the data waits for GET RESPONSE; with an Le shorter
    /// than the data, the first Le octets come with '61xx' for the rest.
    /// </summary>
    private static byte[] Frame(ChannelState channel, CommandApdu apdu, ResponseApdu response)
    {
        if (response.Data.Length == 0)
        {
            return Sw(response.Sw);
        }

        var data = response.Data;
        var take = apdu.Le is { } le ? Math.Min(le, data.Length) : 0;
        var rest = data[take..];
        if (rest.Length == 0)
        {
            return response.ToArray();
        }

        channel.Pending = rest;
        return [.. data[..take], .. Sw((ushort)(0x6100 | Math.Min(rest.Length, 256) % 256))];
    }

    private static byte[] Sw(ushort sw) => [(byte)(sw >> 8), (byte)sw];

    private void Save()
    {
        if (_options.StateFile is { } path)
        {
            CardStateFile.Save(path, _state, _k, _opc);
        }
    }

    /// <summary>Back to what is on disk (or to the new card's state when nothing was written yet); a card that cannot read it goes mute.</summary>
    private void Reload()
    {
        try
        {
            var state = (_options.StateFile is { } path ? CardStateFile.Load(path, _k, _opc) : null) ?? NewState(_options, _iccid);
            Forget(_state);
            _state = state;
            _usim = UsimFor(state);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            _mute = true;
        }
    }

    private static void Forget(CardState state)
    {
        CryptographicOperations.ZeroMemory(state.Ks);
        foreach (var entry in state.Naf)
        {
            CryptographicOperations.ZeroMemory(entry.KsIntNaf);
        }

        foreach (var slot in state.Slots)
        {
            CryptographicOperations.ZeroMemory(slot.Key);
        }
    }

    private Usim UsimFor(CardState state)
    {
        var scheme = new SqnScheme(state.IndLength);
        var sequence = state.SeqMs.Length == scheme.ArraySize ? UsimSequenceState.Restore(scheme, state.SeqMs, state.SqnMs) : new UsimSequenceState(scheme);
        return new Usim(_milenage, sequence)
        {
            // The SQN array is on disk before RES, CK and IK leave the card (TS 33.102 Annex C: never accept a SQN twice).
            CommitState = s =>
            {
                _state.SeqMs = [.. s.SeqMsEntries];
                _state.SqnMs = s.SqnMs;
                Save();
            },
        };
    }

    private static CardState NewState(VirtualUiccOptions options, string iccid)
    {
        var scheme = SqnScheme.Default;
        var sequence = UsimSequenceState.FromSqnMs(options.InitialSqnMs, scheme);
        var state = new CardState
        {
            Imsi = options.Imsi,
            Iccid = iccid,
            IndLength = scheme.IndLength,
            SeqMs = [.. sequence.SeqMsEntries],
            SqnMs = sequence.SqnMs,
            ServerPublicKey = options.ServerPublicKey.ToArray(),
            ServerEndpoint = options.ServerEndpoint,
            OtaKic = options.OtaKeys?.Kic.ToArray() ?? [],
            OtaKid = options.OtaKeys?.Kid.ToArray() ?? [],
            OtaKeyVersion = options.OtaKeys?.KicVersion ?? 0,
            Spn = [0x01, .. "OpenBest"u8, .. Enumerable.Repeat((byte)0xFF, 8)],
        };
        foreach (var (index, key) in options.PersonalisedKeys)
        {
            if (key.Length != 32)
            {
                throw new ArgumentException($"The key for index {index} is {key.Length} octets, not 32.", nameof(options));
            }

            state.Slots.Add(new KeySlot { Index = index, Origin = KeyOrigin.Personalised, Key = key.ToArray() });
        }

        if (state.ServerPublicKey.Length is not (0 or 65))
        {
            throw new ArgumentException("The server public key is an uncompressed P-256 point (65 octets).", nameof(options));
        }

        return state;
    }

    private static byte[] BuildAtr()
    {
        // TS = 3B (direct); T0 = 88: TD1 present, 8 historical bytes; TD1 = 80: T=0, TD2 present; TD2 = 01: T=1; TCK.
        byte[] body = [0x88, 0x80, 0x01, .. "OpenBest"u8];
        byte tck = 0;
        foreach (var b in body)
        {
            tck ^= b;
        }

        return [0x3B, .. body, tck];
    }

    private static char Luhn(string digits)
    {
        var sum = 0;
        for (var i = 0; i < digits.Length; i++)
        {
            var d = digits[digits.Length - 1 - i] - '0';
            if (i % 2 == 0)
            {
                d *= 2;
                if (d > 9)
                {
                    d -= 9;
                }
            }

            sum += d;
        }

        return (char)('0' + ((10 - (sum % 10)) % 10));
    }

    private enum Application
    {
        None,
        Usim,
        SecureElement,
    }

    private sealed class ChannelState
    {
        public Application Application { get; set; }

        /// <summary>The current EF (0 when a DF is current).</summary>
        public ushort CurrentEf { get; set; }

        public byte[]? Pending { get; set; }
    }
}
