using System.CommandLine;
using System.Globalization;
using OpenBest.Bench;
using Spectre.Console;

namespace OpenBest.Cli;

/// <summary><c>best bench northbound</c>: the options and the table; the measurement is <see cref="NorthboundBench"/>.</summary>
internal static class NorthboundBenchCommand
{
    public static Command Create()
    {
        var devices = new Option<int>("--devices") { Description = "devices, each with a UE-to-HSE session, 1..1000", DefaultValueFactory = _ => 20, HelpName = "K" };
        var uplink = new Option<int>("--uplink") { Description = "uplink messages stored before the callback phase, 1..1000000", DefaultValueFactory = _ => 5000, HelpName = "N" };
        var downlinks = new Option<int>("--downlinks") { Description = "downlink requests by external identifier, 1..1000000", DefaultValueFactory = _ => 2000, HelpName = "N" };
        var concurrency = new Option<int>("--concurrency") { Description = "downlink requests in flight at once, 1..1024", DefaultValueFactory = _ => 16, HelpName = "C" };
        devices.Within(1, 1000);
        uplink.Within(1, 1_000_000);
        downlinks.Within(1, 1_000_000);
        concurrency.Within(1, 1024);
        var command = new Command("northbound",
            "Measure the northbound API: an HSE in this process (as 'best hse', fresh SQLite folder, enterprise port on loopback),\n" +
            "K devices over UDP and an application on loopback HTTP. Uplink callbacks per second (draining a full durable queue),\n" +
            "downlink requests per second (OAuth token, every call audited) and downlinks delivered (acknowledged by the devices) per second.");
        foreach (var option in new Option[] { devices, uplink, downlinks, concurrency })
        {
            command.Options.Add(option);
        }

        command.SetAction(async (result, cancel) =>
        {
            var options = new NorthboundBenchOptions { Devices = result.GetValue(devices), Uplink = result.GetValue(uplink), Downlinks = result.GetValue(downlinks), Concurrency = result.GetValue(concurrency) };
            var console = Terminal.For(result.InvocationConfiguration.Output);
            NorthboundBenchResult figures = null!;
            await console.Progress().StartAsync(async context => figures = await NorthboundBench.RunAsync(options, Terminal.Phases(context), cancel));
            var table = new Table().AddColumn("measure").AddColumn("value");
            table.AddRow("uplink notifications to the callback per second", Invariant($"{figures.CallbacksPerSecond:N0} ({figures.CallbackRequestsPerSecond:N0} callback requests/s)"));
            table.AddRow("uplink notifications received / stored", Invariant($"{figures.Callbacks.Received} / {figures.Callbacks.Expected}"));
            table.AddRow(Invariant($"downlink requests per second ({options.Concurrency} in flight)"), Invariant($"{figures.DownlinkRequestsPerSecond:N0}"));
            table.AddRow("downlink request latency p50 / p99 (ms)", Invariant($"{figures.DownlinkLatency.P50:0.0} / {figures.DownlinkLatency.P99:0.0}"));
            table.AddRow("downlinks DELIVERED (device Data Ack) per second", Invariant($"{figures.DeliveredPerSecond:N0}"));
            table.AddRow("DELIVERED notifications / downlinks", Invariant($"{figures.Delivered.Received} / {figures.Delivered.Expected}"));
            table.AddRow("devices", options.Devices.ToString(CultureInfo.InvariantCulture));
            table.AddRow("machine", Invariant($"{Environment.ProcessorCount} cores, {Environment.OSVersion.VersionString}, .NET {Environment.Version}"));
            console.Write(table);
            return figures.Ok ? ExitCodes.Success : ExitCodes.CheckFailed;
        });
        return command;
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
