using OpenBest.Protocol;

namespace OpenBest.Protocol.Tests;

internal static class Hex
{
    public static byte[] Bytes(string hex) => Convert.FromHexString(hex.Replace(" ", string.Empty, StringComparison.Ordinal));

    public static string String(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(bytes);
}

/// <summary>One valid instance of every command, with every optional TLV present where one exists.</summary>
internal static class Samples
{
    public static readonly UeConfiguration UeConfig = new(18, KeyAgreements.FiveGAka | KeyAgreements.UmtsAka, BestService.Confidential, false, 0x0F, CounterSchemes.OneOctet | CounterSchemes.TwoOctets);

    public static readonly HseConfiguration HseConfig = new(BestService.Confidential, false, KeyAgreements.FiveGAka, 1, 2);

    public static IEnumerable<ControlCommand> All()
    {
        yield return new SessionRequest("208930000000001", null, UeConfig, "eas.example.com", Hex.Bytes("0001020304050607"), ServingNetwork.FromName("5G:mnc093.mcc208.3gppnetwork.org"));
        yield return new SessionRequest(null, Hex.Bytes("0102f839f0ff0100aabbcc"), UeConfig with { Service = BestService.Integrity, UeToEasMode = true }, "urn:best:push", Hex.Bytes("08090a0b0c0d0e0f"), ServingNetwork.FromPlmnId(Hex.Bytes("02f839")), Hex.Bytes("1122334455667788"));
        yield return new SessionStart(HseConfig, Hex.Bytes("81e92b6c0ee0e12ebceba8d92a99dfa5"), Hex.Bytes("bb52e91c747ac3ab2a5c23d15ee351d5"), Hex.Bytes("0102030405060708"));
        yield return new SessionStart(HseConfig with { Service = BestService.KeyAgreementOnly }, Hex.Bytes("81e92b6c0ee0e12ebceba8d92a99dfa5"), Hex.Bytes("bb52e91c747ac3ab2a5c23d15ee351d5"), Hex.Bytes("0102030405060708"), true, 86400, 0x2a99dfa5, Hex.Bytes("e1"));
        yield return SessionStartConfirmation.Instance;
        yield return new SessionTerminateRequest();
        yield return new SessionTerminateRequest(Cause.KeySetExhausted);
        yield return SessionTerminateResponse.Instance;
        yield return ManageKeysRequest.FromUe;
        yield return new ManageKeysRequest(2, Hex.Bytes("81e92b6c0ee0e12ebceba8d92a99dfa5"), Hex.Bytes("bb52e91c747ac3ab2a5c23d15ee351d5"), Hex.Bytes("e2e3"), 3600, 0x12345678);
        yield return ManageKeysResponse.Instance;
        yield return new MessageReject(Cause.MalformedMessage, (byte)CommandCode.SessionRequest, Hex.Bytes("0102030405060708"));
        yield return new MessageReject(Cause.AkaSynchronisationFailure, (byte)CommandCode.SessionStart, null, Hex.Bytes("451e8beca03b87423afbed548cbd"));
        yield return new MessageReject(Cause.Congestion, (byte)CommandCode.SessionRequest, Hex.Bytes("0102030405060708"), null, 900, Hex.Bytes("a1a2a3a4a5a6a7a8"));
        yield return SessionSuspend.Instance;
        yield return SessionResume.Instance;
        yield return new DataAck(42);
        yield return new DataAck(0xFFFFFFFF, 3, Hex.Bytes("deadbeef"));
    }
}
