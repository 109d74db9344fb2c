using System.Text;

namespace OpenBest.Card;

/// <summary>The OBF secure-element application's AID, instructions and key origins (docs/protocol.md "OBF secure element").</summary>
public static class ObfSecureElementApplication
{
    /// <summary>The application's AID (a proprietary RID 'F0', "OBFSE", version 01).</summary>
    public static readonly byte[] Aid = [0xF0, 0x4F, 0x42, 0x46, 0x53, 0x45, 0x01];

    /// <summary>The proprietary class of its commands.</summary>
    public const byte Cla = 0x80;

    /// <summary>ENCRYPT DEVICE DATA (seed 003 2.2.2.2): P1 = key index, data = plaintext → sealed packet.</summary>
    public const byte InsEncryptDeviceData = 0x10;

    /// <summary>DECRYPT DATA (seed 003 2.2.2.1): P1 = key index, data = the server's packet → plaintext.</summary>
    public const byte InsDecryptData = 0x12;

    /// <summary>INSTALL KEY: P1 = new key index, P2 = the trusted key index it is sealed under; data = a server packet of (index ‖ key).</summary>
    public const byte InsInstallKey = 0x20;

    /// <summary>DERIVE KEY: P1 = key index; data = L ‖ NAF_Id ‖ L ‖ IMPI; the card puts Ks_int_NAF of its GBA bootstrap there.</summary>
    public const byte InsDeriveKey = 0x22;

    /// <summary>VERIFY AND STORE SERVER KEY: data = a <see cref="ServerKeyRecord"/> signed by the current server key.</summary>
    public const byte InsVerifyServerKey = 0x30;

    /// <summary>GET DATA: P1 P2 = 0001 the server key (sequence ‖ L ‖ endpoint ‖ key), 0002 the key slots (index ‖ origin each).</summary>
    public const byte InsGetData = 0xCA;

    /// <summary>Largest plaintext ENCRYPT DEVICE DATA takes (a packet fits 256 octets).</summary>
    public const int MaxPlaintext = 256 - SealedData.Overhead;

    /// <summary>Largest plaintext DECRYPT DATA returns (a packet fits 255 octets of command data).</summary>
    public const int MaxServerPlaintext = 255 - SealedData.Overhead;
}

/// <summary>Where a key slot's key came from.</summary>
public enum KeyOrigin : byte
{
    /// <summary>Written at personalisation (an imported key, for devices that cannot bootstrap).</summary>
    Personalised = 1,

    /// <summary>Installed under a key the card already trusted.</summary>
    Installed = 2,

    /// <summary>Ks_int_NAF of the card's GBA bootstrap.</summary>
    Bootstrap = 3,
}

/// <summary>What the card answered: the data and the status word.</summary>
/// <param name="Data">The response data (a packet, a plaintext), empty on a refusal.</param>
/// <param name="Sw">The status word; '9000' on success.</param>
public sealed record SecureElementResult(byte[] Data, ushort Sw)
{
    /// <summary>Whether the card did it.</summary>
    public bool Ok => Sw == StatusWord.Ok;

    /// <summary>Never shows the data.</summary>
    public override string ToString() => $"SecureElementResult({Data.Length} octets, {StatusWord.Describe(Sw)})";
}

/// <summary>
/// The OBF secure-element application on a card, on a logical channel of its own beside the USIM (seed 003 appendix
/// 2.2.2): the device hands bytes to the card and gets bytes back; the keys never leave the card. Thread-safe.
/// </summary>
public sealed class ObfSecureElement : IDisposable
{
    private readonly UiccClient _basic;
    private readonly UiccClient _uicc;
    private readonly Lock _gate = new();

    private ObfSecureElement(UiccClient basic, UiccClient uicc)
    {
        _basic = basic;
        _uicc = uicc;
    }

    /// <summary>Opens a logical channel on <paramref name="channel"/> and selects the application there.</summary>
    /// <exception cref="IOException">The card has no free channel or no such application.</exception>
    public static ObfSecureElement Open(IApduChannel channel)
    {
        var basic = new UiccClient(channel);
        var number = basic.OpenChannel();
        var uicc = new UiccClient(channel, number);
        var select = uicc.SelectAid(ObfSecureElementApplication.Aid);
        if (!select.IsOk)
        {
            basic.CloseChannel(number);
            throw new IOException($"{channel.Name}: the card has no OBF secure-element application ({StatusWord.Describe(select.Sw)}).");
        }

        return new ObfSecureElement(basic, uicc);
    }

    /// <summary>The logical channel in use.</summary>
    public byte LogicalChannel => _uicc.LogicalChannel;

    /// <summary>Encrypt Device Data: the card seals <paramref name="plaintext"/> under key index <paramref name="keyIndex"/>.</summary>
    public SecureElementResult EncryptDeviceData(byte keyIndex, ReadOnlySpan<byte> plaintext)
    {
        if (plaintext.Length is 0 or > ObfSecureElementApplication.MaxPlaintext)
        {
            throw new ArgumentException($"A plaintext is 1..{ObfSecureElementApplication.MaxPlaintext} octets.", nameof(plaintext));
        }

        return Run(ObfSecureElementApplication.InsEncryptDeviceData, keyIndex, 0, plaintext);
    }

    /// <summary>Decrypt Data: the card checks the TRUST data (tag) and the counter of a server packet and opens it.</summary>
    public SecureElementResult DecryptData(byte keyIndex, ReadOnlySpan<byte> packet)
    {
        if (packet.Length is < SealedData.Overhead or > 255)
        {
            throw new ArgumentException("A server packet is 26..255 octets.", nameof(packet));
        }

        return Run(ObfSecureElementApplication.InsDecryptData, keyIndex, 0, packet);
    }

    /// <summary>Installs a key at <paramref name="keyIndex"/> from a packet sealed under the trusted <paramref name="trustedIndex"/>.</summary>
    public SecureElementResult InstallKey(byte keyIndex, byte trustedIndex, ReadOnlySpan<byte> packet)
        => Run(ObfSecureElementApplication.InsInstallKey, keyIndex, trustedIndex, packet);

    /// <summary>Asks the card to put Ks_int_NAF of its GBA bootstrap for <paramref name="nafId"/> at <paramref name="keyIndex"/>.</summary>
    public SecureElementResult DeriveKey(byte keyIndex, ReadOnlySpan<byte> nafId, string impi)
    {
        var impiOctets = Encoding.UTF8.GetBytes(impi);
        if (nafId.Length + impiOctets.Length + 2 > 255)
        {
            throw new ArgumentException("NAF_Id and IMPI together are longer than one APDU carries.");
        }

        byte[] data = [(byte)nafId.Length, .. nafId, (byte)impiOctets.Length, .. impiOctets];
        return Run(ObfSecureElementApplication.InsDeriveKey, keyIndex, 0, data);
    }

    /// <summary>Verify-and-Store: the card checks the record's signature with its current server key and switches.</summary>
    public SecureElementResult VerifyAndStoreServerKey(ReadOnlySpan<byte> record) => Run(ObfSecureElementApplication.InsVerifyServerKey, 0, 0, record);

    /// <summary>The card's current server key: sequence, endpoint and public key; null when it has none.</summary>
    /// <exception cref="IOException">The card answered outside the format.</exception>
    public (ulong Sequence, string Endpoint, byte[] PublicKey)? ServerKey()
    {
        var result = Run(ObfSecureElementApplication.InsGetData, 0x00, 0x01, default);
        if (result.Sw == StatusWord.ReferencedDataNotFound)
        {
            return null;
        }

        var d = result.Data;
        if (!result.Ok || d.Length < 9 + 65 || d.Length != 9 + d[8] + 65)
        {
            throw new IOException($"{_uicc.Name}: GET DATA (server key) answered {StatusWord.Describe(result.Sw)}.");
        }

        return (System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(d), Encoding.UTF8.GetString(d, 9, d[8]), d[(9 + d[8])..]);
    }

    /// <summary>The key slots in use and where each key came from.</summary>
    public IReadOnlyList<(byte Index, KeyOrigin Origin)> KeySlots()
    {
        var result = Run(ObfSecureElementApplication.InsGetData, 0x00, 0x02, default);
        _uicc.Expect(new ResponseApdu([], result.Sw), "GET DATA (key slots)");
        return [.. result.Data.Chunk(2).Where(c => c.Length == 2).Select(c => (c[0], (KeyOrigin)c[1]))];
    }

    /// <summary>Closes the logical channel.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            try
            {
                _basic.CloseChannel(_uicc.LogicalChannel);
            }
            catch (IOException)
            {
                // The card is gone; its channels went with it.
            }
        }
    }

    private SecureElementResult Run(byte ins, byte p1, byte p2, ReadOnlySpan<byte> data)
    {
        lock (_gate)
        {
            var response = _uicc.Send(new CommandApdu(ObfSecureElementApplication.Cla, ins, p1, p2, data.ToArray(), 256));
            return new SecureElementResult(response.IsOk ? response.Data : [], response.Sw);
        }
    }
}
