using System.CommandLine;
using System.Globalization;
using OpenBest.Crypto;
using OpenBest.Crypto.Aka;
using OpenBest.Crypto.Kdf;

namespace OpenBest.Cli;

/// <summary>
/// <c>best aka</c>: MILENAGE/AKA tools an operator uses to provision, test and debug subscribers:
/// vector generation (the AuC), resynchronisation from AUTS, and the USIM's check of a challenge.
/// </summary>
internal static class AkaCommand
{
    public static Command Create()
    {
        var command = new Command("aka", "AKA with MILENAGE (TS 33.102, TS 35.206): generate vectors, resynchronise, play the USIM.");
        command.Subcommands.Add(CreateGenerate());
        command.Subcommands.Add(CreateResync());
        command.Subcommands.Add(CreateCheck());
        return command;
    }

    private sealed class SubscriberOptions
    {
        public Option<byte[]> K { get; } = HexOption.Create("--k", 16, "the subscriber key K");
        public Option<byte[]> Opc { get; } = HexOption.Create("--opc", 16, "the operator variant OPc (or --op)");
        public Option<byte[]> Op { get; } = HexOption.Create("--op", 16, "the operator variant OP, from which OPc is computed (or --opc)");

        public void AddTo(Command command)
        {
            command.Options.Add(K);
            command.Options.Add(Opc);
            command.Options.Add(Op);
            command.Validators.Add(result =>
            {
                HexOption.Require(result, K);
                var hasOpc = result.GetResult(Opc) is not null;
                var hasOp = result.GetResult(Op) is not null;
                if (hasOpc == hasOp)
                {
                    result.AddError("give exactly one of --opc and --op (32 hex digits, 16 octets)");
                }
            });
        }

        public Milenage CreateMilenage(ParseResult result)
        {
            var k = result.GetValue(K)!;
            return result.GetResult(Opc) is not null ? new Milenage(k, result.GetValue(Opc)!) : Milenage.FromOp(k, result.GetValue(Op)!);
        }
    }

    private static Command CreateGenerate()
    {
        var subscriber = new SubscriberOptions();
        var amf = HexOption.Create("--amf", 2, "the authentication management field AMF");
        var sqn = HexOption.CreateNumber("--sqn", 6, "the sequence number SQN to put in the vector");
        var rand = HexOption.Create("--rand", 16, "the challenge RAND; drawn from the CSPRNG when omitted");
        var snn = new Option<string>("--snn")
        {
            Description = "a 5G serving network name, e.g. 5G:mnc093.mcc208.3gppnetwork.org; adds K_AUSF, K_HSE and XRES*",
            HelpName = "NAME",
        };

        var command = new Command("generate", "Generate an authentication vector, as the AuC does (TS 33.102 6.3.2).\nPrints RAND, AUTN, XRES, CK, IK and AK; with --snn also K_AUSF, K_HSE and XRES*.");
        subscriber.AddTo(command);
        command.Options.Add(amf);
        command.Options.Add(sqn);
        command.Options.Add(rand);
        command.Options.Add(snn);
        command.Validators.Add(result => HexOption.Require(result, amf, sqn));
        snn.Validators.Add(result =>
        {
            var value = result.GetValueOrDefault<string>();
            if (string.IsNullOrEmpty(value) || !value.StartsWith("5G:", StringComparison.Ordinal) || value.Length < 4)
            {
                result.AddError("--snn must be a 5G serving network name that starts with '5G:', e.g. 5G:mnc093.mcc208.3gppnetwork.org");
            }
        });

        command.SetAction(result =>
        {
            var output = result.InvocationConfiguration.Output;
            var amfValue = (ushort)((result.GetValue(amf)![0] << 8) | result.GetValue(amf)![1]);
            var servingNetwork = result.GetValue(snn);
            if (servingNetwork is not null && !AmfBits.HasSeparationBit(amfValue))
            {
                throw new CommandLineException(string.Create(CultureInfo.InvariantCulture,
                    $"--amf must have the separation bit 0x8000 set for a 5G vector (--snn), TS 33.501 6.1.3.2; got {amfValue:x4}"));
            }

            using var milenage = subscriber.CreateMilenage(result);
            using var vector = AuthenticationCentre.Generate(milenage, result.GetValue(sqn), amfValue, result.GetValue(rand) ?? default);
            Print(output, "RAND", vector.Rand);
            Print(output, "AUTN", vector.Autn);
            Print(output, "XRES", vector.Xres);
            Print(output, "CK", vector.Ck);
            Print(output, "IK", vector.Ik);
            Print(output, "AK", vector.Ak);
            if (servingNetwork is not null)
            {
                Span<byte> key = stackalloc byte[32];
                KeyDerivation.KAusf(vector.Ck, vector.Ik, servingNetwork, vector.SqnXorAk, key);
                Print(output, "K_AUSF", key);
                KeyDerivation.KHse5GAka(vector.Ck, vector.Ik, servingNetwork, vector.SqnXorAk, key);
                Print(output, "K_HSE", key);
                KeyDerivation.ResStar(vector.Ck, vector.Ik, servingNetwork, vector.Rand, vector.Xres, key[..16]);
                Print(output, "XRES*", key[..16]);
                System.Security.Cryptography.CryptographicOperations.ZeroMemory(key);
            }

            return ExitCodes.Success;
        });
        return command;
    }

    private static Command CreateResync()
    {
        var subscriber = new SubscriberOptions();
        var rand = HexOption.Create("--rand", 16, "the RAND of the challenge the USIM refused");
        var auts = HexOption.Create("--auts", 14, "the AUTS the USIM returned");
        var command = new Command("resync", "Recover SQN_MS from a USIM's AUTS, as the AuC does (TS 33.102 6.3.5).\nVerifies MAC-S first; prints SQN_MS, or fails (exit 1) when MAC-S does not verify.");
        subscriber.AddTo(command);
        command.Options.Add(rand);
        command.Options.Add(auts);
        command.Validators.Add(result => HexOption.Require(result, rand, auts));
        command.SetAction(result =>
        {
            using var milenage = subscriber.CreateMilenage(result);
            var outcome = AuthenticationCentre.Resynchronise(milenage, result.GetValue(rand)!, result.GetValue(auts)!, 0, SqnScheme.Default);
            if (outcome.Outcome != ResynchronisationOutcome.Resynchronised)
            {
                result.InvocationConfiguration.Error.WriteLine("best aka resync: MAC-S does not verify: this AUTS was not made by this subscriber's USIM for this RAND");
                return ExitCodes.CheckFailed;
            }

            Span<byte> sqnMs = stackalloc byte[6];
            SqnScheme.Write(outcome.SqnMs, sqnMs);
            Print(result.InvocationConfiguration.Output, "SQN_MS", sqnMs);
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command CreateCheck()
    {
        var subscriber = new SubscriberOptions();
        var rand = HexOption.Create("--rand", 16, "the challenge RAND");
        var autn = HexOption.Create("--autn", 16, "the network authentication token AUTN");
        var sqnMs = HexOption.CreateNumber("--sqn-ms", 6, "the USIM's highest accepted SQN; without it freshness is not checked");
        var command = new Command("check", "Play the USIM: verify AUTN, then SQN freshness (TS 33.102 6.3.3, Annex C).\nPrints RES, CK and IK; or the failure (MAC failure, or synchronisation failure with AUTS) and exits 1.");
        subscriber.AddTo(command);
        command.Options.Add(rand);
        command.Options.Add(autn);
        command.Options.Add(sqnMs);
        command.Validators.Add(result => HexOption.Require(result, rand, autn));
        command.SetAction(result =>
        {
            var output = result.InvocationConfiguration.Output;
            var hasSqnMs = result.GetResult(sqnMs) is not null;
            using var milenage = subscriber.CreateMilenage(result);
            var usim = new Usim(milenage, UsimSequenceState.FromSqnMs(result.GetValue(sqnMs), SqnScheme.Default))
            {
                CheckFreshness = hasSqnMs,
            };
            using var answer = usim.Authenticate(result.GetValue(rand)!, result.GetValue(autn)!);
            Span<byte> sqn = stackalloc byte[6];
            SqnScheme.Write(answer.Sqn, sqn);
            switch (answer.Status)
            {
                case UsimAuthenticationStatus.MacFailure:
                    output.WriteLine("RESULT: MAC failure");
                    return ExitCodes.CheckFailed;
                case UsimAuthenticationStatus.SynchronisationFailure:
                    output.WriteLine("RESULT: synchronisation failure");
                    Print(output, "SQN", sqn);
                    Print(output, "AUTS", answer.Auts);
                    return ExitCodes.CheckFailed;
                default:
                    output.WriteLine(hasSqnMs ? "RESULT: success" : "RESULT: success (freshness not checked: no --sqn-ms)");
                    Print(output, "SQN", sqn);
                    output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"AMF: {answer.Amf:x4}"));
                    Print(output, "RES", answer.Res);
                    Print(output, "CK", answer.Ck);
                    Print(output, "IK", answer.Ik);
                    return ExitCodes.Success;
            }
        });
        return command;
    }

    private static void Print(TextWriter output, string name, ReadOnlySpan<byte> value) =>
        output.WriteLine($"{name}: {Convert.ToHexStringLower(value)}");
}
