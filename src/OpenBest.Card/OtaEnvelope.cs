namespace OpenBest.Card;

/// <summary>
/// The device's half of OTA over BEST (seed 000 section 5): a command packet that arrived on the device's BEST OTA channel is
/// handed to the card as the SMS-PP data download of TS 31.111 7.1.1.2 — ENVELOPE with D1 { device identities, SMS TPDU },
/// the TPDU an SMS-DELIVER (TS 23.040 9.2.2.1, PID 7F, DCS F6) whose user data header names a command packet (TS 31.115:
/// IEI 70) — and the card's answer (the user data header 02 71 00 and the response packet) goes back unchanged. The device
/// identities say where the packet came from: the terminal (0x82) for a protected BEST OTA channel, which is the only way a
/// card takes a packet without TS 102 225 security; a fully secured packet is verified by the card either way.
/// </summary>
public static class OtaEnvelope
{
    /// <summary>The ENVELOPE's data (the D1 template) for <paramref name="commandPacket"/>.</summary>
    public static byte[] SmsPpDownload(ReadOnlySpan<byte> commandPacket, bool overBest = true)
    {
        byte[] ud = [0x02, 0x70, 0x00, .. commandPacket];
        if (ud.Length > 140)
        {
            throw new ArgumentException("The command packet does not fit one SMS (140 octets of user data with its header).", nameof(commandPacket));
        }

        // SMS-DELIVER with a user data header from the address 0 (national, unknown): a packet that came by BEST has no SMS origin.
        byte[] tpdu = [0x40, 0x01, 0x81, 0xF0, 0x7F, 0xF6, 0, 0, 0, 0, 0, 0, 0, (byte)ud.Length, .. ud];
        byte[] content = [0x82, 0x02, overBest ? (byte)0x82 : (byte)0x83, 0x81, 0x8B, .. Length(tpdu.Length), .. tpdu];
        return [0xD1, .. Length(content.Length), .. content];
    }

    /// <summary>Hands the packet to the card and returns its answer (02 71 00 ‖ response packet, or empty when it sends no PoR).</summary>
    /// <exception cref="IOException">The card refused the ENVELOPE; the message gives its status word.</exception>
    public static byte[] Deliver(UiccClient card, ReadOnlySpan<byte> commandPacket, bool overBest = true)
    {
        ArgumentNullException.ThrowIfNull(card);
        var response = card.Send(new CommandApdu(0x80, 0xC2, 0x00, 0x00, SmsPpDownload(commandPacket, overBest)));
        if (response.Sw != StatusWord.Ok)
        {
            throw new IOException($"the card refused the SMS-PP download ({StatusWord.Describe(response.Sw)})");
        }

        return response.Data;
    }

    private static byte[] Length(int length) => length > 127 ? [0x81, (byte)length] : [(byte)length];
}
