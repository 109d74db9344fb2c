using System.CommandLine;
using System.Globalization;
using OpenBest.Crypto;
using OpenBest.Crypto.Aead;
using OpenBest.Crypto.Aka;
using OpenBest.Protocol;
using OpenBest.Sessions;

namespace OpenBest.Cli;

/// <summary><c>best emsdp</c>: look inside EMSDP messages, and measure what the protocol costs on the wire.</summary>
internal static class EmsdpCommand
{
    private static readonly int[] CounterLengths = [1, 2, 4];

    public static Command Create()
    {
        var command = new Command("emsdp", "EMSDP wire profile 1: decode messages, measure bytes on the wire.");
        command.Subcommands.Add(CreateDecode());
        command.Subcommands.Add(CreateSizes());
        return command;
    }

    private static Command CreateDecode()
    {
        var message = new Argument<byte[]>("HEX")
        {
            Description = "the EMSDP message (no bearer framing), in hex",
            CustomParser = result => HexOption.ParseVariable(result, "HEX", 2, 65535),
        };
        var k = HexOption.Create("--k", 16, "the subscriber key K, to run AKA and verify the tag");
        var opc = HexOption.Create("--opc", 16, "the operator variant OPc (or --op)");
        var op = HexOption.Create("--op", 16, "the operator variant OP (or --opc)");
        var request = HexOption.CreateVariable("--request", 2, 1280, "the Session Request the session started from");
        var start = HexOption.CreateVariable("--start", 2, 1280, "the Session Start a later message belongs to");
        var command = new Command("decode", "Print every field of an EMSDP message.\nWith --k, --opc/--op and --request, run AKA on a Session Start, derive the keys and verify its tag;\nwith --start as well, verify a later message of key set 1 and show its plaintext. Exit 1 when a tag fails.");
        command.Arguments.Add(message);
        command.Options.Add(k);
        command.Options.Add(opc);
        command.Options.Add(op);
        command.Options.Add(request);
        command.Options.Add(start);
        command.Validators.Add(result =>
        {
            var hasK = result.GetResult(k) is not null;
            var hasOpc = result.GetResult(opc) is not null;
            var hasOp = result.GetResult(op) is not null;
            if (hasK && hasOpc == hasOp)
            {
                result.AddError("with --k give exactly one of --opc and --op (32 hex digits, 16 octets)");
            }
            else if (!hasK && (hasOpc || hasOp || result.GetResult(request) is not null))
            {
                result.AddError("--opc, --op and --request need --k (32 hex digits, 16 octets)");
            }
            else if (result.GetResult(start) is not null && result.GetResult(request) is null)
            {
                result.AddError("--start needs --request (the Session Request, hex)");
            }
        });
        command.SetAction(result =>
        {
            Milenage? milenage = null;
            if (result.GetResult(k) is not null)
            {
                milenage = result.GetResult(opc) is not null
                    ? new Milenage(result.GetValue(k)!, result.GetValue(opc)!)
                    : Milenage.FromOp(result.GetValue(k)!, result.GetValue(op)!);
            }

            using (milenage)
            {
                // An absent option with a custom parser reads as an empty array: ask whether it was given.
                var requestBytes = result.GetResult(request) is null ? null : result.GetValue(request);
                var startBytes = result.GetResult(start) is null ? null : result.GetValue(start);
                return new EmsdpDecoder(result.InvocationConfiguration.Output).Decode(result.GetValue(message)!, milenage, requestBytes, startBytes) ? ExitCodes.Success : ExitCodes.CheckFailed;
            }
        });
        return command;
    }

    private static Command CreateSizes()
    {
        var command = new Command("sizes", "Run real UE and HSE state machines over an in-memory bearer and print the octets on the wire:\nsession setup per configuration, and the overhead of one user-plane message per suite and counter length.");
        command.SetAction(result =>
        {
            var output = result.InvocationConfiguration.Output;
            output.WriteLine("Session setup (one round trip: Session Request + Session Start), octets of EMSDP messages:");
            output.WriteLine($"  {"configuration",-62} {"request",8} {"start",6} {"total",6}");
            foreach (var (name, options) in SetupConfigurations())
            {
                var (request, start) = MeasureSetup(options, CipherSuite.Aes128Ccm8.Id, 2);
                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {name,-62} {request,8} {start,6} {request + start,6}"));
            }

            output.WriteLine();
            output.WriteLine("Per-message overhead of a user-plane message (header + tag; Session ID < 64; payload excluded):");
            output.WriteLine($"  {"suite",-26} {"n = 1",6} {"n = 2",6} {"n = 4",6}");
            foreach (var suite in CipherSuite.Suites)
            {
                var cells = CounterLengths.Select(n => MeasureOverhead(suite, n).ToString(CultureInfo.InvariantCulture).PadLeft(6));
                output.WriteLine($"  {suite.Name,-26} {string.Join(' ', cells)}");
            }

            return ExitCodes.Success;
        });
        return command;
    }

    private static IEnumerable<(string Name, UeChannelOptions Options)> SetupConfigurations()
    {
        var fiveG = ServingNetwork.FromName("5G:mnc093.mcc208.3gppnetwork.org");
        var plmn = ServingNetwork.FromPlmnId([0x02, 0xf8, 0x39]);
        yield return ("UMTS AKA, integrity, EAS Id \"eas.example\" (11)", new UeChannelOptions { EasId = "eas.example", Service = BestService.Integrity, KeyAgreements = KeyAgreements.UmtsAka });
        yield return ("EPS AKA, confidential, PLMN ID, EAS Id \"eas.example\"", new UeChannelOptions { EasId = "eas.example", KeyAgreements = KeyAgreements.EpsAka, ServingNetwork = plmn });
        yield return ("5G AKA, confidential, 5G network name (32), \"eas.example\"", new UeChannelOptions { EasId = "eas.example", KeyAgreements = KeyAgreements.FiveGAka, ServingNetwork = fiveG });
        yield return ("5G AKA, key agreement only (+ confirmation required)", new UeChannelOptions { EasId = "eas.example", Service = BestService.KeyAgreementOnly, KeyAgreements = KeyAgreements.FiveGAka, ServingNetwork = fiveG });
    }

    private static (int Request, int Start) MeasureSetup(UeChannelOptions options, byte suite, byte n)
    {
        using var subscribers = new InMemorySubscribers();
        var k = new byte[16];
        var opc = new byte[16];
        subscribers.Add("001010000000001", k, opc);
        using var hse = new HseEngine(subscribers, new HseOptions { SuitePreference = [suite], CounterLengthPreference = [n] });
        using var milenage = new Milenage(k, opc);
        using var ue = new UeEndpoint(new Usim(milenage, new UsimSequenceState(SqnScheme.Default)), new UeOptions { Imsi = "001010000000001" });
        var request = ue.Open(options, out _).Send[0].Message;
        var start = hse.Receive(request.Span, "ue").Send[0].Message;
        return (request.Length, start.Length);
    }

    private static int MeasureOverhead(CipherSuite suite, int n)
    {
        using var keys = KeySet.Derive(EndpointRole.Ue, new byte[32], suite, BestService.Confidential, false, 5, 1, new byte[16], new byte[8]);
        var buffer = new byte[64];
        return EmsdpProtection.SealUser(keys, Direction.Uplink, 5, n, 0, false, ReadOnlySpan<byte>.Empty, buffer);
    }
}
