using System.CommandLine;
using System.Globalization;
using OpenBest.Obf.Demo;
using Spectre.Console;

namespace OpenBest.Cli;

/// <summary><c>best obf demo</c>: the AIS140 vehicle-tracking system end to end on loopback (the logic is in OpenBest.Obf.Demo).</summary>
internal static class ObfDemoCommand
{
    public static Command Create()
    {
        var devices = new Option<int>("--devices") { Description = "vehicle devices, 1..200", DefaultValueFactory = _ => 20, HelpName = "N" };
        devices.Within(1, 200);
        var noPcsc = new Option<bool>("--no-pcsc") { Description = "reach the cards in this process instead of over PC/SC (for machines without pcscd and vsmartcard-vpcd)" };
        var postgres = new Option<string>("--postgres") { Description = "run the first authentication server on this PostgreSQL database instead of SQLite", HelpName = "CONNECTION" };
        var command = new Command("demo", "AIS140 end to end on loopback (Y.OBF_trust appendix): two authentication servers, VTAMS and emergency response over TCP, and N\n" +
            "crypto-less vehicle devices whose virtual UICCs (behind a pcscd of the demo's own, or in process) bootstrap GBA_U and seal PVT, health\n" +
            "and panic packets per beneficiary; commands with TRUST data; replayed, altered and foreign packets refused; every device transferred to\n" +
            "the second provider midway; a revoked right. Exit 0 only if every check held.");
        command.Options.Add(devices);
        command.Options.Add(noPcsc);
        command.Options.Add(postgres);
        command.SetAction(async (result, cancel) =>
        {
            var output = result.InvocationConfiguration.Output;
            var console = Terminal.For(output);
            var options = new ObfDemoOptions { Devices = result.GetValue(devices), Pcsc = !result.GetValue(noPcsc), Postgres = result.GetValue(postgres) };
            ObfDemoResult? outcome = null;
            await console.Status().StartAsync("starting", async context =>
            {
                outcome = await ObfDemo.RunAsync(options with { Progress = new Progress<string>(phase => { context.Status(phase); }) }, cancel);
            });
            var table = new Table().AddColumns("check", "held", "seen");
            foreach (var check in outcome!.Checks)
            {
                table.AddRow(Markup.Escape(check.Name), check.Held ? "yes" : "[red]NO[/]", Markup.Escape(check.Detail));
            }

            console.Write(table);
            console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{options.Devices} devices, cards {outcome.Reader}: {outcome.PacketsPerSecond:F0} packets/s sealed by the cards and verified; transfer {outcome.TransferMillisecondsPerDevice:F1} ms per device"));
            console.WriteLine(outcome.AllHeld ? "every check held" : "some checks did not hold");
            return outcome.AllHeld ? ExitCodes.Success : ExitCodes.CheckFailed;
        });
        return command;
    }
}
