using OpenBest.Card.Virtual;

namespace OpenBest.Card.Tests;

/// <summary>
/// The virtual UICC's remote file management over the air (ETSI TS 102 225/226, TS 31.111 SMS-PP data download, TS 31.115):
/// the ENVELOPE is built here from the standards (BER-TLV D1 with device identities and the SMS-DELIVER TPDU), and the first
/// TPDU is pySim's published one (AES-128, KIc/KID 2, TAR B00011) byte for byte. The script runs, its PoR verifies, counters
/// refuse a replay with "CNTR low", and an unsecured packet runs only when the device says it came over a protected BEST
/// OTA channel.
/// </summary>
public sealed class RemoteFileManagementTests : IDisposable
{
    private static readonly OtaKeys Keys = new(2, Convert.FromHexString("200102030405060708090a0b0c0d0e0f"), 2, Convert.FromHexString("201102030405060708090a0b0c0d0e0f"));
    private static readonly byte[] SmsHeader = [0x02, 0x71, 0x00];
    private readonly VirtualUicc _card = new(new VirtualUiccOptions
    {
        Imsi = "001010000000555",
        K = Convert.FromHexString("465b5ce8b199b49faa5f0a2ee238a6bc"),
        Opc = Convert.FromHexString("cd63cb71954a9f4e48a5994e37a02baf"),
        OtaKeys = Keys,
    });

    public void Dispose() => _card.Dispose();

    [Fact]
    public void PySimsSmsDeliver_RunsSelectMf_AndThePorVerifies()
    {
        // pySim test_ota.py AES128-SJA5-CIPHERED-CC "encoded_tpdu": SMS-DELIVER, UDHI, OA 12345678, PID 7F (SIM data download),
        // DCS F6, UDH 02 70 00 (command packet), then the secured packet carrying SELECT MF.
        var tpdu = Convert.FromHexString("400881214365877ff6227052000000000302700000281506192222b00011e87cceebb2d93083011ce294f93fc4d8de80da1abae8c37ca3e72ec4432e5058");
        var por = Download(tpdu, fromNetwork: true);
        Assert.True(OtaPacket.TryDecodeResponse(Keys, new OtaSpi(0x06, 0x19), por.AsSpan(3), out var response, SmsHeader));
        Assert.Equal(OtaStatus.Ok, response!.Status);
        Assert.Equal(1, response.Data[0]); // one command run
        Assert.Equal("9000", Convert.ToHexString(response.Data, 1, 2));
    }

    [Fact]
    public void AScript_UpdatesEfSpn_WhichTheTerminalMayOnlyRead()
    {
        byte[] name = [0x01, .. "Remote SPN"u8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        byte[] script = [0x00, 0xA4, 0x00, 0x04, 0x02, 0x6F, 0x46, 0x00, 0xD6, 0x00, 0x00, 0x11, .. name, 0x00, 0xB0, 0x00, 0x00, 0x11];
        var response = Run(Secured(script, counter: 1), fromNetwork: true);
        Assert.Equal(OtaStatus.Ok, response.Status);
        Assert.Equal(3, response.Data[0]);
        Assert.Equal("9000", Convert.ToHexString(response.Data, 1, 2));
        Assert.Equal(name, response.Data[3..]);

        var terminal = new UiccClient(new VirtualUiccChannel(_card));
        terminal.Expect(terminal.SelectAid(VirtualUicc.UsimAid), "SELECT USIM");
        Assert.Equal(name, terminal.ReadTransparent(0x6F46));
        Assert.Equal(StatusWord.SecurityStatusNotSatisfied, terminal.UpdateBinary(0, "x"u8).Sw);
    }

    [Fact]
    public void AReplayedCounter_IsRefusedWithCounterLow_AndNothingRuns()
    {
        byte[] select = [0x00, 0xA4, 0x00, 0x04, 0x02, 0x6F, 0x46];
        Assert.Equal(OtaStatus.Ok, Run(Secured(select, counter: 7), fromNetwork: true).Status);
        var replay = Run(Secured(select, counter: 7), fromNetwork: true);
        Assert.Equal(OtaStatus.CounterLow, replay.Status);
        Assert.Empty(replay.Data);
        Assert.Equal(OtaStatus.Ok, Run(Secured(select, counter: 8), fromNetwork: true).Status);
    }

    [Fact]
    public void AnUnsecuredPacket_RunsOnlyOverAProtectedBestChannel()
    {
        byte[] select = [0x00, 0xA4, 0x00, 0x04, 0x02, 0x6F, 0x46];
        var packet = OtaPacket.EncodeCommand(Keys, new OtaSpi(0x00, 0x01), [0xB0, 0x00, 0x01], 0, select);
        Assert.Equal(OtaStatus.InsufficientSecurity, Run(packet, fromNetwork: true, secured: false).Status);
        var overBest = Run(packet, fromNetwork: false, secured: false);
        Assert.Equal(OtaStatus.Ok, overBest.Status);
        Assert.Equal("9000", Convert.ToHexString(overBest.Data, 1, 2));
    }

    [Fact]
    public void AnAlteredPacketOrUnknownTar_IsRefusedWithItsStatus()
    {
        var packet = Secured([0x00, 0xA4, 0x00, 0x04, 0x02, 0x3F, 0x00], counter: 1);
        packet[^1] ^= 0x01;
        var altered = Download(Deliver(packet), fromNetwork: true);
        Assert.True(OtaPacket.TryDecodeResponse(null, new OtaSpi(0x16, 0x39), altered.AsSpan(3), out var por, SmsHeader));
        Assert.Equal(OtaStatus.ChecksumFailed, por!.Status);

        var unknown = OtaPacket.EncodeCommand(Keys, new OtaSpi(0x16, 0x39), [0xC0, 0x00, 0x01], 1, [0x00, 0xA4, 0x00, 0x04, 0x02, 0x3F, 0x00]);
        var answer = Download(Deliver(unknown), fromNetwork: true);
        Assert.True(OtaPacket.TryDecodeResponse(null, new OtaSpi(0x16, 0x39), answer.AsSpan(3), out por, SmsHeader));
        Assert.Equal(OtaStatus.TarUnknown, por!.Status);
    }

    /// <summary>A packet for the USIM's RFM (TAR B00001): ciphered, CC, counter "process if higher", PoR required, ciphered, CC.</summary>
    private static byte[] Secured(byte[] script, ulong counter) => OtaPacket.EncodeCommand(Keys, new OtaSpi(0x16, 0x39), [0xB0, 0x00, 0x01], counter, script);

    private OtaResponse Run(byte[] packet, bool fromNetwork, bool secured = true)
    {
        var por = Download(Deliver(packet), fromNetwork);
        Assert.True(OtaPacket.TryDecodeResponse(secured ? Keys : null, new OtaSpi(packet[3], packet[4]), por.AsSpan(3), out var response, SmsHeader), Convert.ToHexString(por));
        return response!;
    }

    /// <summary>An SMS-DELIVER (TS 23.040 9.2.2.1) with a user data header naming a command packet (TS 31.115 4.2: IEI 70, length 0).</summary>
    private static byte[] Deliver(byte[] packet)
    {
        byte[] ud = [0x02, 0x70, 0x00, .. packet];
        return [0x40, 0x08, 0x81, 0x21, 0x43, 0x65, 0x87, 0x7F, 0xF6, 0x22, 0x70, 0x52, 0x00, 0x00, 0x00, 0x00, (byte)ud.Length, .. ud];
    }

    /// <summary>ENVELOPE (SMS-PP download, TS 31.111 7.1.1.2): D1 { 82 02 source 81, 8B TPDU }; the card's answer, GET RESPONSE followed.</summary>
    private byte[] Download(byte[] tpdu, bool fromNetwork)
    {
        byte[] identities = [0x82, 0x02, fromNetwork ? (byte)0x83 : (byte)0x82, 0x81];
        byte[] tpduTlv = tpdu.Length > 127 ? [0x8B, 0x81, (byte)tpdu.Length, .. tpdu] : [0x8B, (byte)tpdu.Length, .. tpdu];
        byte[] content = [.. identities, .. tpduTlv];
        byte[] envelope = content.Length > 127 ? [0xD1, 0x81, (byte)content.Length, .. content] : [0xD1, (byte)content.Length, .. content];
        var response = new UiccClient(new VirtualUiccChannel(_card)).Send(new CommandApdu(0x80, 0xC2, 0x00, 0x00, envelope));
        Assert.Equal(StatusWord.Ok, response.Sw);
        Assert.Equal(SmsHeader, response.Data[..3]);
        return response.Data;
    }
}
