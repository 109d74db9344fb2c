using System.CommandLine;
using System.Globalization;
using OpenBest.Card;
using OpenBest.Card.Virtual;

namespace OpenBest.Cli;

/// <summary>
/// <c>best card</c>: a virtual UICC (USIM and the OBF secure-element application) inserted into a vsmartcard vpcd reader, so
/// that pcscd, our PC/SC client and independent tools (opensc-tool, scriptor) reach it as a real card.
/// </summary>
internal static class CardCommand
{
    public static Command Create()
    {
        var command = new Command("card", "A virtual UICC behind pcscd: connects to a vpcd reader (vsmartcard) and answers APDUs as a card does — a USIM\n" +
            "(MILENAGE, SQN array, AUTHENTICATE in the 3G and GBA contexts, EF_IMSI, EF_ICCID, EF_GBABP, EF_GBANL) and the OBF\n" +
            "secure-element application. Its state (SQN array, GBA and secure-element keys) is kept encrypted in --state. Runs until Ctrl+C.");
        var imsi = new Option<string>("--imsi") { Description = "the IMSI in EF_IMSI, 6..15 digits", HelpName = "DIGITS" };
        imsi.Validators.Add(r => { if (r.GetValueOrDefault<string>() is not { Length: >= 6 and <= 15 } v || !v.All(char.IsAsciiDigit)) { r.AddError("--imsi must be 6..15 decimal digits"); } });
        var k = HexOption.Create("--k", 16, "the subscriber key K");
        var opc = HexOption.Create("--opc", 16, "OPc (or --op)");
        var op = HexOption.Create("--op", 16, "OP, from which OPc is computed (or --opc)");
        var state = new Option<FileInfo>("--state") { Description = "the card's state file (created when missing, mode 0600, encrypted under a key derived from K and OPc)", HelpName = "FILE" };
        var iccid = new Option<string>("--iccid") { Description = "the ICCID in EF_ICCID, 19 or 20 digits (default: derived from the IMSI, with its Luhn digit)", HelpName = "ICCID" };
        iccid.Validators.Add(r => { if (r.GetValueOrDefault<string>() is not { Length: 19 or 20 } v || !v.All(char.IsAsciiDigit)) { r.AddError("--iccid must be 19 or 20 digits"); } });
        var vpcd = new Option<string>("--vpcd") { Description = "the vpcd reader to connect to", HelpName = "HOST:PORT", DefaultValueFactory = _ => "localhost:35963" };
        vpcd.Validators.Add(r => { if (!TrySplit(r.GetValueOrDefault<string>(), out _, out _)) { r.AddError("--vpcd must be HOST:PORT, e.g. localhost:35963"); } });
        var obfKey = HexOption.Create("--obf-key", 65, "a new card's authentication server public key (uncompressed P-256), which Verify-and-Store records must be signed with");
        var obfEndpoint = new Option<string>("--obf-endpoint") { Description = "the authentication server's endpoint stored with --obf-key", HelpName = "URL", DefaultValueFactory = _ => string.Empty };
        var seKeys = HexOption.IndexedKeys("--se-key", "a new card's imported secure-element key at a key index (for devices that cannot bootstrap); repeat for several");
        var otaKey = new Option<string>("--ota-key") { Description = "a new card's OTA key set for remote file management (TS 102 225/226): the key version (1..15), KIc (AES-CBC) and KID (AES-CMAC), 32 hex digits each", HelpName = "VERSION:KIC:KID" };
        otaKey.Validators.Add(r => { if (ParseOtaKey(r.GetValueOrDefault<string>()) is null) { r.AddError("--ota-key must be VERSION:KIC:KID, a version 1..15 and two AES-128 keys in hex"); } });
        foreach (var option in new Option[] { imsi, k, opc, op, state, iccid, vpcd, obfKey, obfEndpoint, seKeys, otaKey })
        {
            command.Options.Add(option);
        }

        command.Validators.Add(r =>
        {
            HexOption.Require(r, imsi, k, state);
            if ((r.GetResult(opc) is null) == (r.GetResult(op) is null))
            {
                r.AddError("give one of --opc and --op");
            }
        });
        command.SetAction(async (result, cancel) =>
        {
            var output = result.InvocationConfiguration.Output;
            var kValue = result.GetValue(k)!;
            var opcValue = result.GetResult(opc) is not null ? result.GetValue(opc)! : ObfCommand.ComputeOpc(kValue, result.GetValue(op)!);
            _ = TrySplit(result.GetValue(vpcd), out var host, out var port);
            using var card = new VirtualUicc(new VirtualUiccOptions
            {
                Imsi = result.GetValue(imsi)!,
                Iccid = result.GetValue(iccid),
                K = kValue,
                Opc = opcValue,
                StateFile = result.GetValue(state)!.FullName,
                ServerPublicKey = result.GetResult(obfKey) is not null ? result.GetValue(obfKey)! : ReadOnlyMemory<byte>.Empty,
                ServerEndpoint = result.GetValue(obfEndpoint)!,
                PersonalisedKeys = result.GetValue(seKeys)!.ToDictionary(e => e.Index, e => (ReadOnlyMemory<byte>)e.Key),
                OtaKeys = ParseOtaKey(result.GetValue(otaKey)),
            });
            output.WriteLine($"best card: USIM {result.GetValue(imsi)}, ICCID {card.Iccid}, state {result.GetValue(state)!.FullName}");
            output.Flush();
            var connection = new VpcdConnection(card, host, port) { Log = line => { output.WriteLine(line); output.Flush(); } };
            await connection.RunAsync(cancel);
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"stopped after {card.Commands} commands"));
            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary>VERSION:KIC:KID as an OTA key set (AES-128), or null when absent or malformed.</summary>
    internal static OtaKeys? ParseOtaKey(string? text)
    {
        var parts = text?.Split(':') ?? [];
        if (parts.Length != 3 || !byte.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var version) || version is < 1 or > 15
            || parts[1].Length != 32 || parts[2].Length != 32 || !parts[1].All(char.IsAsciiHexDigit) || !parts[2].All(char.IsAsciiHexDigit))
        {
            return null;
        }

        return new OtaKeys(version, Convert.FromHexString(parts[1]), version, Convert.FromHexString(parts[2]));
    }

    private static bool TrySplit(string? value, out string host, out int port)
    {
        host = string.Empty;
        port = 0;
        var colon = value?.LastIndexOf(':') ?? -1;
        if (colon <= 0 || !int.TryParse(value![(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out port) || port is < 1 or > 65535)
        {
            return false;
        }

        host = value[..colon];
        return true;
    }
}
