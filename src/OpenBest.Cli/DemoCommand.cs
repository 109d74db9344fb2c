using System.CommandLine;
using System.Globalization;
using OpenBest.Demo;
using Spectre.Console;

namespace OpenBest.Cli;

/// <summary>
/// <c>best demo</c>: the options, the progress bars and the table; the run is <see cref="HseDemo"/>. Exit 0 only if every
/// message was delivered and verified.
/// </summary>
internal static class DemoCommand
{
    public static Command Create()
    {
        var devices = new Option<int>("--devices") { Description = "simulated devices, 1..2000", DefaultValueFactory = _ => 100, HelpName = "N" };
        var messages = new Option<int>("--messages") { Description = "acknowledged uplink messages per device, 1..1000", DefaultValueFactory = _ => 5, HelpName = "M" };
        devices.Within(1, 2000);
        messages.Within(1, 1000);
        var duration = new Option<int>("--duration") { Description = "keep the devices sending acknowledged messages for this many seconds (0: just --messages each), 0..3600", DefaultValueFactory = _ => 0, HelpName = "SECONDS" };
        duration.Within(0, 3600, "seconds");
        var postgres = StoreFactory.PostgresOption();
        var command = new Command("demo",
            "Run an HSE on a fresh SQLite database and N simulated devices over UDP on loopback.\n" +
            "Each device opens a session (services and suites mixed), sends acknowledged messages, refreshes its keys,\n" +
            "suspends while the HSE queues a downlink message, resumes, receives it and terminates. Exit 0 only if all of it worked.");
        command.Options.Add(devices);
        command.Options.Add(messages);
        command.Options.Add(duration);
        command.Options.Add(postgres);
        command.SetAction((result, cancel) => RunAsync(result.GetValue(devices), result.GetValue(messages), result.GetValue(duration), result.GetValue(postgres), result.InvocationConfiguration.Output, cancel));
        return command;
    }

    private static async Task<int> RunAsync(int deviceCount, int messageCount, int seconds, string? postgres, TextWriter output, CancellationToken cancel)
    {
        // Colours and the live progress bar only on a terminal; plain text into pipes, files and tests.
        var console = Terminal.For(output);
        var options = new HseDemoOptions { Devices = deviceCount, Messages = messageCount, Seconds = seconds, Postgres = postgres };
        HseDemoResult outcome = null!;
        await console.Progress().AutoClear(false).StartAsync(async context =>
        {
            var devices = context.AddTask($"[green]{deviceCount} devices[/]", maxValue: options.DeviceSteps);
            var enterprise = context.AddTask($"[green]{options.EnterpriseDevices} UE-to-EAS and {options.EnterpriseDevices} DTLS-PSK devices[/]", maxValue: 2 * options.EnterpriseDevices);
            outcome = await HseDemo.RunAsync(options, () => devices.Increment(1), () => enterprise.Increment(1), cancel);
        });

        var table = new Table().AddColumns("measure", "value");
        table.AddRow("devices / sessions established at the HSE", $"{outcome.Devices} / {outcome.Established}");
        table.AddRow("uplink messages delivered and verified", $"{outcome.Uplink.Delivered} of {outcome.Uplink.Expected}");
        table.AddRow("acknowledged at the devices", $"{outcome.Acknowledged} of {outcome.Uplink.Expected}");
        table.AddRow("key refreshes / downlinks queued while suspended", $"{outcome.Refreshes} / {outcome.Resumed}");
        table.AddRow("octets on the wire per session setup", outcome.Octets.Setup);
        table.AddRow("octets of overhead per uplink message", outcome.Octets.Overhead);
        table.AddRow("ack latency p50 / p99 (ms)", outcome.AckLatencyMs is { } ms ? string.Create(CultureInfo.InvariantCulture, $"{ms.P50:F2} / {ms.P99:F2}") : "-");
        table.AddRow("UE-to-EAS: uplink opened at the EAS", string.Create(CultureInfo.InvariantCulture, $"{outcome.EndToEnd.AtEas} of {outcome.EndToEnd.Expected} from {outcome.EndToEnd.Devices} devices"));
        table.AddRow("UE-to-EAS: keys on the EAS's Enterprise Key", string.Create(CultureInfo.InvariantCulture, $"{outcome.EndToEnd.NamedKeys} of {outcome.EndToEnd.Devices} devices (named to them by the HSE)"));
        table.AddRow("key agreement only: DTLS-PSK handshakes", string.Create(CultureInfo.InvariantCulture, $"{outcome.KeyAgreementOnly.Handshakes} from {outcome.KeyAgreementOnly.Devices} devices"));
        table.AddRow("rejects / drops at the HSE", $"{outcome.Refused.Rejects} / {outcome.Refused.Drops}");
        table.AddRow("store", outcome.Store);
        table.AddRow("elapsed", string.Create(CultureInfo.InvariantCulture, $"{outcome.Elapsed.TotalSeconds:F1} s"));
        console.Write(table);
        console.MarkupLine(outcome.Ok ? "[green]every message was delivered and verified[/]" : $"[red]FAILED[/]: {Markup.Escape(string.Join("; ", outcome.Failures.Take(5)))}");
        return outcome.Ok ? ExitCodes.Success : ExitCodes.CheckFailed;
    }
}
