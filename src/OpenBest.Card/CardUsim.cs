using System.Security.Cryptography;
using System.Text;
using OpenBest.Crypto.Aka;

namespace OpenBest.Card;

/// <summary>
/// The USIM application of a real card, reached over APDUs: AUTHENTICATE (INS '88') in the 3G context (P2 = '81') and in
/// the GBA context (P2 = '84', bootstrapping and NAF derivation modes) per TS 31.102 7.1.2, EF_IMSI, EF_GBABP. Every
/// operation selects the USIM by its AID prefix first, so a card reset between two operations does no harm.
/// Thread-safe: one command sequence at a time.
/// </summary>
public sealed class CardUsim : IUsim, IGbaUicc, IDisposable
{
    private const ushort EfImsi = 0x6F07;
    private const ushort EfGbabp = 0x6FD6;
    private readonly IApduChannel _channel;
    private readonly UiccClient _uicc;
    private readonly bool _ownsChannel;
    private readonly Lock _gate = new();

    /// <summary>A USIM on <paramref name="channel"/>; disposing it disposes the channel when <paramref name="ownsChannel"/>.</summary>
    public CardUsim(IApduChannel channel, bool ownsChannel = true)
    {
        ArgumentNullException.ThrowIfNull(channel);
        _channel = channel;
        _uicc = new UiccClient(channel);
        _ownsChannel = ownsChannel;
    }

    /// <summary>The reader's name.</summary>
    public string Name => _channel.Name;

    /// <summary>The channel the card is reached on.</summary>
    public IApduChannel Channel => _channel;

    /// <inheritdoc />
    public UsimAuthenticationResult Authenticate(ReadOnlySpan<byte> rand, ReadOnlySpan<byte> autn) => Aka(0x00, 0x81, rand, autn);

    /// <inheritdoc />
    public UsimAuthenticationResult BootstrapGba(ReadOnlySpan<byte> rand, ReadOnlySpan<byte> autn) => Aka(0xDD, 0x84, rand, autn);

    /// <inheritdoc />
    public void StoreBootstrappingParameters(ReadOnlySpan<byte> rand, string btid, DateTimeOffset lifetime)
    {
        ArgumentException.ThrowIfNullOrEmpty(btid);
        var content = EfGbabpContent(rand, btid, lifetime);
        lock (_gate)
        {
            SelectUsim();
            _uicc.Expect(_uicc.SelectFile(EfGbabp), "SELECT EF_GBABP");
            _uicc.Expect(_uicc.UpdateBinary(0, content), "UPDATE BINARY EF_GBABP");
        }
    }

    /// <inheritdoc />
    public void DeriveNafKey(ReadOnlySpan<byte> nafId, string impi, Span<byte> ksExtNaf)
    {
        ArgumentException.ThrowIfNullOrEmpty(impi);
        var impiOctets = Encoding.UTF8.GetBytes(impi);
        if (nafId.Length > 255 || impiOctets.Length > 255 || nafId.Length + impiOctets.Length + 3 > 255)
        {
            throw new ArgumentException("NAF_Id and IMPI together are longer than one APDU carries.");
        }

        if (ksExtNaf.Length != 32)
        {
            throw new ArgumentException("Ks_ext_NAF is 32 octets.", nameof(ksExtNaf));
        }

        var data = new byte[3 + nafId.Length + impiOctets.Length];
        data[0] = 0xDE;
        data[1] = (byte)nafId.Length;
        nafId.CopyTo(data.AsSpan(2));
        data[2 + nafId.Length] = (byte)impiOctets.Length;
        impiOctets.CopyTo(data.AsSpan(3 + nafId.Length));
        lock (_gate)
        {
            SelectUsim();
            var response = _uicc.Send(new CommandApdu(0x00, 0x88, 0x00, 0x84, data, 256));
            try
            {
                _uicc.Expect(response, "AUTHENTICATE (GBA, NAF derivation)");
                if (response.Data is not [0xDB, 32, ..] || response.Data.Length != 34)
                {
                    throw new IOException($"{Name}: the NAF derivation answer is not 'DB' 20 Ks_ext_NAF (TS 31.102 7.1.2).");
                }

                response.Data.AsSpan(2, 32).CopyTo(ksExtNaf);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(response.Data);
            }
        }
    }

    /// <summary>Reads the IMSI from EF_IMSI (TS 31.102 4.2.2).</summary>
    /// <exception cref="IOException">The card refused or the file is not an IMSI.</exception>
    public string ReadImsi()
    {
        lock (_gate)
        {
            SelectUsim();
            var content = _uicc.ReadTransparent(EfImsi);
            return Imsi.Decode(content) ?? throw new IOException($"{Name}: EF_IMSI does not hold an IMSI.");
        }
    }

    /// <summary>EF_GBABP: L ‖ RAND ‖ L ‖ B-TID ‖ L ‖ key lifetime (TS 31.102 4.2.79; the lifetime as the BSF's UTC text).</summary>
    public static byte[] EfGbabpContent(ReadOnlySpan<byte> rand, string btid, DateTimeOffset lifetime)
    {
        var btidOctets = Encoding.UTF8.GetBytes(btid);
        var lifetimeOctets = Encoding.ASCII.GetBytes(lifetime.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture));
        if (rand.Length != 16 || btidOctets.Length > 255)
        {
            throw new ArgumentException("RAND is 16 octets and the B-TID at most 255.");
        }

        var content = new byte[3 + rand.Length + btidOctets.Length + lifetimeOctets.Length];
        content[0] = (byte)rand.Length;
        rand.CopyTo(content.AsSpan(1));
        content[1 + rand.Length] = (byte)btidOctets.Length;
        btidOctets.CopyTo(content.AsSpan(2 + rand.Length));
        content[2 + rand.Length + btidOctets.Length] = (byte)lifetimeOctets.Length;
        lifetimeOctets.CopyTo(content.AsSpan(3 + rand.Length + btidOctets.Length));
        return content;
    }

    /// <summary>Disposes the channel when this USIM owns it.</summary>
    public void Dispose()
    {
        if (_ownsChannel)
        {
            _channel.Dispose();
        }
    }

    /// <summary>Names the reader only.</summary>
    public override string ToString() => $"CardUsim({Name})";

    private void SelectUsim() => _uicc.Expect(_uicc.SelectAid(UiccClient.UsimAidPrefix), "SELECT USIM");

    /// <summary>AUTHENTICATE in the 3G context (no tag, P2 81) or the GBA bootstrapping mode (tag DD, P2 84).</summary>
    private UsimAuthenticationResult Aka(byte tag, byte p2, ReadOnlySpan<byte> rand, ReadOnlySpan<byte> autn)
    {
        var data = AuthenticateData(tag, rand, autn);
        lock (_gate)
        {
            SelectUsim();
            var response = _uicc.Send(new CommandApdu(0x00, 0x88, 0x00, p2, data, 256));
            return Result(response, autn, expectKeys: tag == 0x00);
        }
    }

    private static byte[] AuthenticateData(byte tag, ReadOnlySpan<byte> rand, ReadOnlySpan<byte> autn)
    {
        if (rand.Length != 16 || autn.Length != 16)
        {
            throw new ArgumentException("RAND and AUTN are 16 octets each.");
        }

        var prefix = tag == 0 ? 0 : 1;
        var data = new byte[prefix + 34];
        if (tag != 0)
        {
            data[0] = tag;
        }

        data[prefix] = 16;
        rand.CopyTo(data.AsSpan(prefix + 1));
        data[prefix + 17] = 16;
        autn.CopyTo(data.AsSpan(prefix + 18));
        return data;
    }

    private UsimAuthenticationResult Result(ResponseApdu response, ReadOnlySpan<byte> autn, bool expectKeys)
    {
        var amf = (ushort)((autn[6] << 8) | autn[7]);
        var data = response.Data;
        try
        {
            if (response.Sw == StatusWord.AuthenticationMacFailure)
            {
                return UsimAuthenticationResult.MacFailureFromCard(amf);
            }

            _uicc.Expect(response, expectKeys ? "AUTHENTICATE (3G)" : "AUTHENTICATE (GBA, bootstrapping)");
            if (data is [0xDC, 14, ..] && data.Length == 16)
            {
                return UsimAuthenticationResult.SynchronisationFailureFromCard(amf, data.AsSpan(2, 14));
            }

            // 'DB' L RES [L CK L IK [L Kc]] — every length checked against what is there.
            if (data.Length >= 2 && data[0] == 0xDB && data[1] is >= 4 and <= 16 && data.Length >= 2 + data[1])
            {
                var res = data.AsSpan(2, data[1]);
                var rest = data.AsSpan(2 + data[1]);
                if (!expectKeys && rest.IsEmpty && res.Length <= 8)
                {
                    return UsimAuthenticationResult.FromCard(amf, res, default, default);
                }

                if (expectKeys && res.Length <= 8 && rest.Length >= 34 && rest[0] == 16 && rest[17] == 16)
                {
                    return UsimAuthenticationResult.FromCard(amf, res, rest.Slice(1, 16), rest.Slice(18, 16));
                }
            }

            throw new IOException($"{Name}: the AUTHENTICATE answer is not laid out as TS 31.102 7.1.2 says.");
        }
        finally
        {
            CryptographicOperations.ZeroMemory(data);
        }
    }
}

/// <summary>EF_IMSI coding (TS 31.102 4.2.2): a length octet, then the digits in swapped nibbles after '1' (odd) or '9' (even) as parity and type.</summary>
public static class Imsi
{
    /// <summary>Encodes 6..15 digits into the 9 octets of EF_IMSI.</summary>
    /// <exception cref="ArgumentException">Not 6..15 decimal digits.</exception>
    public static byte[] Encode(string imsi)
    {
        if (imsi is not { Length: >= 6 and <= 15 } || !imsi.All(char.IsAsciiDigit))
        {
            throw new ArgumentException("An IMSI is 6..15 decimal digits.", nameof(imsi));
        }

        var nibbles = new List<int> { (imsi.Length % 2 == 1 ? 8 : 0) | 1 };
        nibbles.AddRange(imsi.Select(c => c - '0'));
        if (nibbles.Count % 2 == 1)
        {
            nibbles.Add(0xF);
        }

        var content = new byte[9];
        Array.Fill(content, (byte)0xFF);
        content[0] = (byte)(nibbles.Count / 2);
        for (var i = 0; i < nibbles.Count; i += 2)
        {
            content[1 + (i / 2)] = (byte)(nibbles[i] | (nibbles[i + 1] << 4));
        }

        return content;
    }

    /// <summary>Decodes EF_IMSI; null when it is not an IMSI.</summary>
    public static string? Decode(ReadOnlySpan<byte> content)
    {
        if (content.Length < 2 || content[0] is 0 or > 8 || content[0] > content.Length - 1 || (content[1] & 0x07) != 1)
        {
            return null;
        }

        var digits = new StringBuilder();
        var odd = (content[1] & 0x08) != 0;
        for (var i = 1; i <= content[0]; i++)
        {
            int low = content[i] & 0x0F, high = content[i] >> 4;
            if (i > 1)
            {
                if (low > 9)
                {
                    return null;
                }

                digits.Append((char)('0' + low));
            }

            if (high == 0xF && i == content[0] && !odd)
            {
                break;
            }

            if (high > 9)
            {
                return null;
            }

            digits.Append((char)('0' + high));
        }

        return digits.Length is >= 6 and <= 15 ? digits.ToString() : null;
    }
}

/// <summary>EF_ICCID coding (ETSI TS 102 221 13.2): the ICCID's digits in swapped BCD, 10 octets, F padded.</summary>
public static class Iccid
{
    /// <summary>Encodes 19 or 20 digits into EF_ICCID's 10 octets: the identity secure-element packets are bound to.</summary>
    /// <exception cref="ArgumentException">Not 19 or 20 decimal digits.</exception>
    public static byte[] Encode(string iccid)
    {
        if (iccid is not { Length: 19 or 20 } || !iccid.All(char.IsAsciiDigit))
        {
            throw new ArgumentException("An ICCID is 19 or 20 decimal digits.", nameof(iccid));
        }

        var content = new byte[10];
        Array.Fill(content, (byte)0xFF);
        for (var i = 0; i < iccid.Length; i++)
        {
            var nibble = iccid[i] - '0';
            content[i / 2] = i % 2 == 0 ? (byte)((content[i / 2] & 0xF0) | nibble) : (byte)((content[i / 2] & 0x0F) | (nibble << 4));
        }

        return content;
    }
}
