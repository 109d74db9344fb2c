using System.CommandLine;
using System.Globalization;
using System.Net;
using OpenBest.Hse.Cluster;
using OpenBest.Hse.Cluster.Demo;
using Spectre.Console;

namespace OpenBest.Cli;

/// <summary><c>best cluster</c>: several HSE nodes as one.</summary>
internal static class ClusterCommand
{
    public static Command Create()
    {
        var command = new Command("cluster", "Run several HSE nodes as one (each is 'best hse --cluster'): the load balancer in front of them, and a demo that kills a node under load.");
        var nodes = new Option<string>("--nodes") { Description = "the HSE nodes, HOST:PORT separated by commas (each node's UDP and TCP port)", HelpName = "HOST:PORT,…", Required = true };
        var listen = new Option<int>("--listen") { Description = "the port devices reach, UDP and TCP, 1..65535", HelpName = "PORT", DefaultValueFactory = _ => 3163 };
        nodes.Validators.Add(r =>
        {
            foreach (var node in (r.GetValueOrDefault<string>() ?? string.Empty).Split(',', StringSplitOptions.TrimEntries))
            {
                if (!IPEndPoint.TryParse(node, out var endPoint) || endPoint.Port == 0)
                {
                    r.AddError($"--nodes: '{node}' is not HOST:PORT with an IP address, e.g. 10.0.0.5:3163");
                    return;
                }
            }
        });
        listen.Within(1, 65_535);
        var nginx = new Command("nginx-config", "Print an nginx.conf (stream module: Debian's nginx and libnginx-mod-stream) that spreads devices over the nodes, UDP and TCP on --listen.");
        nginx.Options.Add(nodes);
        nginx.Options.Add(listen);
        nginx.SetAction(result =>
        {
            var endPoints = result.GetValue(nodes)!.Split(',', StringSplitOptions.TrimEntries).Select(IPEndPoint.Parse).ToList();
            result.InvocationConfiguration.Output.Write(NginxFront.Render(endPoints, result.GetValue(listen)));
            return ExitCodes.Success;
        });
        command.Subcommands.Add(nginx);
        command.Subcommands.Add(Demo());
        return command;
    }

    private static Command Demo()
    {
        var nodes = new Option<int>("--nodes") { Description = "HSE nodes to start, 2..9", HelpName = "N", Required = true };
        var postgres = new Option<string>("--postgres") { Description = "the PostgreSQL database the nodes share (use one of its own: the demo adds its devices and removes them at the end) [a throw-away server started here with Debian's postgresql]", HelpName = "CONNECTION" };
        var devices = new Option<int>("--devices") { Description = "simulated devices, 1..2000", HelpName = "D", DefaultValueFactory = _ => 30 };
        var killAfter = new Option<int>("--kill-after") { Description = "seconds of traffic before a node is killed (SIGKILL), 1..600; the devices go on twice as long after it (at least 20 s)", HelpName = "SECONDS", DefaultValueFactory = _ => 10 };
        nodes.Within(2, 9, "(one is killed)");
        devices.Within(1, 2000);
        killAfter.Within(1, 600, "seconds");
        var demo = new Command("demo",
            "Start N 'best hse --cluster' nodes on one PostgreSQL database (--postgres, or a throw-away server) and nginx in front of them on\n" +
            "loopback, run simulated devices through nginx (acknowledged messages, UDP; four of them end to end to a reference EAS), kill the node\n" +
            "delivering the EAS's outbox with SIGKILL midway, and print what the failover did: shards and sessions moved, messages delayed, every\n" +
            "acknowledged message read back from the store, and the EAS's messages checked. Exit 0 only if every message was delivered once.");
        demo.Options.Add(nodes);
        demo.Options.Add(postgres);
        demo.Options.Add(devices);
        demo.Options.Add(killAfter);
        demo.SetAction(async (result, cancel) =>
        {
            var output = result.InvocationConfiguration.Output;
            var console = Terminal.For(output);
            var kill = result.GetValue(killAfter);
            var options = new ClusterDemoOptions
            {
                Nodes = result.GetValue(nodes),
                Postgres = result.GetValue(postgres),
                Devices = result.GetValue(devices),
                KillAfterSeconds = kill,
                AfterKillSeconds = Math.Max(20, 2 * kill),
                Best = Self(),
            };
            ClusterDemoResult outcome;
            try
            {
                outcome = await ClusterDemo.RunAsync(options, new Progress<string>(line => console.MarkupLine(Markup.Escape(line))), cancel);
            }
            catch (Exception e) when (e is InvalidOperationException or Npgsql.NpgsqlException)
            {
                result.InvocationConfiguration.Error.WriteLine($"best cluster demo: {e.Message}");
                return ExitCodes.CheckFailed;
            }

            var table = new Table().AddColumns("node", "address", "shards before the kill", "shards at the end", "state");
            foreach (var node in outcome.Nodes)
            {
                table.AddRow(node.Name, node.Address, Text(node.ShardsBefore), Text(node.ShardsAfter), node.Killed ? "killed (SIGKILL)" : node.Died ? "stopped on its own" : "running");
            }

            console.Write(table);
            var summary = new Table().AddColumns("measure", "value");
            summary.AddRow("devices / sessions up", $"{outcome.Devices} / {outcome.Established}");
            summary.AddRow("node declared dead / nginx without it", string.Create(CultureInfo.InvariantCulture, $"{Seconds(outcome.DeclaredDeadSeconds)} / {Seconds(outcome.FrontUpdatedSeconds)} after the kill"));
            summary.AddRow("shards / sessions moved to survivors", $"{outcome.ShardsMoved} / {outcome.SessionsMoved}");
            summary.AddRow("devices that ran AKA again", Text(outcome.NewAkaRuns));
            summary.AddRow("longest outage of a moved session", string.Create(CultureInfo.InvariantCulture, $"{outcome.FailoverSeconds:F1} s"));
            summary.AddRow("acknowledged / sent", $"{outcome.Acknowledged} / {outcome.Sent}");
            summary.AddRow("delayed over 1 s / longest wait", string.Create(CultureInfo.InvariantCulture, $"{outcome.Delayed} / {outcome.MaxDelaySeconds:F1} s"));
            summary.AddRow("ack latency p50", string.Create(CultureInfo.InvariantCulture, $"{outcome.MedianMs:F1} ms"));
            summary.AddRow("in the store once / duplicated / missing", $"{outcome.StoredOnce} / {outcome.Duplicates} / {outcome.Missing}");
            if (outcome.AcknowledgedToEas > 0)
            {
                summary.AddRow("UE-to-EAS at the EAS / acked / out of order", $"{outcome.EasDelivered} / {outcome.AcknowledgedToEas} / {outcome.EasOutOfOrder}");
                summary.AddRow("EAS outbox delivered by", outcome.EasDeliverers.Count == 0 ? "none" : string.Join(", then ", outcome.EasDeliverers));
            }

            console.Write(summary);
            console.MarkupLine(outcome.Success
                ? "[green]every message was delivered once, with a node killed midway[/]"
                : $"[red]FAILED[/]: {Markup.Escape(outcome.Problem ?? string.Empty)}");
            return outcome.Success ? ExitCodes.Success : ExitCodes.CheckFailed;
        });
        return demo;
    }

    /// <summary><c>best bench cluster</c>: acknowledged messages per second through nginx and N cluster nodes, no kill.</summary>
    public static Command Bench()
    {
        var nodes = new Option<int>("--nodes") { Description = "HSE nodes to start, 1..9", HelpName = "N", Required = true };
        var postgres = new Option<string>("--postgres") { Description = "the PostgreSQL database the nodes share (use one of its own: the bench adds its devices and removes them at the end)", HelpName = "CONNECTION", Required = true };
        var devices = new Option<int>("--devices") { Description = "simulated devices, each with one acknowledged message in flight, 1..2000", HelpName = "D", DefaultValueFactory = _ => 64 };
        var seconds = new Option<int>("--seconds") { Description = "how long the devices send, 1..600", HelpName = "S", DefaultValueFactory = _ => 20 };
        var baseline = new Option<bool>("--baseline") { Description = "run one plain 'best hse' on the database instead (no cluster), with --nodes 1: what the cluster costs per message" };
        nodes.Within(1, 9);
        devices.Within(1, 2000);
        seconds.Within(1, 600);
        var bench = new Command("cluster",
            "Throughput of an HSE cluster: N 'best hse --cluster' nodes on one PostgreSQL database behind nginx on this machine, devices sending\n" +
            "acknowledged messages back to back over UDP for S seconds; messages per second, Ack latency, and every message read back from the store.");
        bench.Options.Add(nodes);
        bench.Options.Add(postgres);
        bench.Options.Add(devices);
        bench.Options.Add(seconds);
        bench.Options.Add(baseline);
        bench.SetAction(async (result, cancel) =>
        {
            var console = Terminal.For(result.InvocationConfiguration.Output);
            ClusterDemoResult outcome;
            try
            {
                outcome = await ClusterDemo.RunAsync(new ClusterDemoOptions
                {
                    Nodes = result.GetValue(nodes),
                    Postgres = result.GetValue(postgres)!,
                    Devices = result.GetValue(devices),
                    KillAfterSeconds = result.GetValue(seconds),
                    Kill = false,
                    // Throughput of the HSE alone: no EAS in the loop, so every setup runs the same devices.
                    EasDevices = 0,
                    Baseline = result.GetValue(baseline),
                    MessageInterval = TimeSpan.Zero,
                    Best = Self(),
                }, new Progress<string>(line => console.MarkupLine(Markup.Escape(line))), cancel);
            }
            catch (Exception e) when (e is InvalidOperationException or ArgumentException or Npgsql.NpgsqlException)
            {
                result.InvocationConfiguration.Error.WriteLine($"best bench cluster: {e.Message}");
                return ExitCodes.CheckFailed;
            }

            var table = new Table().AddColumns("nodes", "devices", "acked", "msg/s", "node CPU µs/msg", "ack p50 ms", "ack p99 ms", "stored once");
            table.AddRow(result.GetValue(baseline) ? "plain" : Text(outcome.Nodes.Count), Text(outcome.Established), Text(outcome.Acknowledged), string.Create(CultureInfo.InvariantCulture, $"{outcome.PerSecond:F0}"),
                string.Create(CultureInfo.InvariantCulture, $"{outcome.CpuMicrosecondsPerMessage:F0}"), string.Create(CultureInfo.InvariantCulture, $"{outcome.MedianMs:F1}"), string.Create(CultureInfo.InvariantCulture, $"{outcome.P99Ms:F1}"), outcome.StoredOnce == outcome.Acknowledged ? "all" : Text(outcome.StoredOnce));
            console.Write(table);
            return outcome.Success ? ExitCodes.Success : ExitCodes.CheckFailed;
        });
        return bench;
    }

    private static string Seconds(double? value) => value is { } v ? string.Create(CultureInfo.InvariantCulture, $"{v:F1} s") : "never";

    private static string Text(long value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>How to start this program again: the apphost, or dotnet with the assembly.</summary>
    private static (string FileName, IReadOnlyList<string> Prefix) Self()
    {
        var process = Environment.ProcessPath ?? "dotnet";
        var assembly = typeof(ClusterCommand).Assembly.Location;
        return Path.GetFileNameWithoutExtension(process) == "dotnet" ? (process, [assembly]) : (process, []);
    }
}
