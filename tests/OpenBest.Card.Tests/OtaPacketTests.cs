namespace OpenBest.Card.Tests;

/// <summary>
/// Secured packets of ETSI TS 102 225 with AES (<see cref="OtaPacket"/>), against the AES-128 vectors pySim publishes for its
/// OTA code (tests/unittests/test_ota.py, "AES128-SJA5-CIPHERED-CC": KIc 2 AES-CBC, KID 2 AES-CMAC, TAR B00011, no counter,
/// ciphered with CC, PoR required, ciphered, with CC), transcribed here; and what a receiver refuses.
/// </summary>
public sealed class OtaPacketTests
{
    private static readonly OtaKeys Keys = new(2, Convert.FromHexString("200102030405060708090a0b0c0d0e0f"), 2, Convert.FromHexString("201102030405060708090a0b0c0d0e0f"));
    private static readonly byte[] Tar = Convert.FromHexString("B00011");
    private static readonly OtaSpi CipheredCcPorCipheredCc = new(0x06, 0x19);
    private static readonly byte[] SelectMf = Convert.FromHexString("00a40004023f00");

    [Fact]
    public void Command_IsPySimsAes128Vector_AndDecodesBack()
    {
        var packet = OtaPacket.EncodeCommand(Keys, CipheredCcPorCipheredCc, Tar, 0, SelectMf);
        Assert.Equal("00281506192222b00011e87cceebb2d93083011ce294f93fc4d8de80da1abae8c37ca3e72ec4432e5058", Convert.ToHexStringLower(packet));

        Assert.Equal(OtaStatus.Ok, OtaPacket.TryDecodeCommand(_ => Keys, packet, out var command));
        Assert.Equal(SelectMf, command!.Data);
        Assert.Equal(Tar, command.Tar);
        Assert.Equal(CipheredCcPorCipheredCc, command.Spi);
        Assert.Equal(0UL, command.Counter);
    }

    [Fact]
    public void Response_DecodesPySimsAes128Vector_AndEncodesToIt()
    {
        // Over SMS the response packet follows the user data header 02 71 00 (UDHL, IEI 0x71 = response packet, IEIDL), which
        // the CC covers too (TS 31.115 7.2.2).
        var sms = Convert.FromHexString("027100002412b00011ebc6b497e2cad7aedf36ace0e3a29b38853f0fe9ccde81913be5702b73abce1f");
        var (header, response) = (sms[..3], sms[3..]);
        Assert.True(OtaPacket.TryDecodeResponse(Keys, CipheredCcPorCipheredCc, response, out var por, header));
        Assert.Equal(OtaStatus.Ok, por!.Status);
        Assert.Equal(Tar, por.Tar);
        Assert.Equal("016132", Convert.ToHexStringLower(por.Data)); // TS 102 226 5.1.1: one command, last SW 6132, no data

        Assert.Equal(response, OtaPacket.EncodeResponse(Keys, CipheredCcPorCipheredCc, Tar, por.Counter, OtaStatus.Ok, por.Data, header));
        Assert.False(OtaPacket.TryDecodeResponse(Keys, CipheredCcPorCipheredCc, response, out _)); // without the header the CC does not verify
    }

    [Fact]
    public void AnAlteredPacket_FailsItsChecksum_AndAWrongKeyOrUnknownTarIsRefused()
    {
        var packet = OtaPacket.EncodeCommand(Keys, CipheredCcPorCipheredCc, Tar, 5, SelectMf);
        var altered = (byte[])packet.Clone();
        altered[^1] ^= 0x01;
        Assert.Equal(OtaStatus.ChecksumFailed, OtaPacket.TryDecodeCommand(_ => Keys, altered, out _));
        Assert.Equal(OtaStatus.TarUnknown, OtaPacket.TryDecodeCommand(_ => null, packet, out _));
        var other = Keys with { Kid = new byte[16] };
        Assert.Equal(OtaStatus.ChecksumFailed, OtaPacket.TryDecodeCommand(_ => other, packet, out _));
    }

    [Fact]
    public void AnUnsecuredPacket_CarriesItsDataInClear()
    {
        var packet = OtaPacket.EncodeCommand(Keys, new OtaSpi(0x00, 0x01), Tar, 0, SelectMf);
        Assert.Equal(OtaStatus.Ok, OtaPacket.TryDecodeCommand(_ => null, packet, out var command));
        Assert.True(command!.Spi.Unsecured);
        Assert.Equal(SelectMf, command.Data);
        Assert.Equal(Convert.ToHexStringLower(SelectMf), Convert.ToHexStringLower(packet[^7..]));
    }

    [Fact]
    public void PeerInput_NeverThrows()
    {
        var random = new Random(3);
        for (var i = 0; i < 20_000; i++)
        {
            var bytes = new byte[random.Next(0, 80)];
            random.NextBytes(bytes);
            if (bytes.Length >= 2 && random.Next(2) == 0)
            {
                bytes[0] = (byte)((bytes.Length - 2) >> 8);
                bytes[1] = (byte)(bytes.Length - 2);
            }

            _ = OtaPacket.TryDecodeCommand(_ => Keys, bytes, out _);
            _ = OtaPacket.TryDecodeResponse(Keys, CipheredCcPorCipheredCc, bytes, out _);
        }
    }
}
