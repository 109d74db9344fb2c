using System.CommandLine;
using System.Globalization;
using OpenBest.Bench;
using Spectre.Console;

namespace OpenBest.Cli;

/// <summary><c>best bench</c>: the options and the tables; the measurement is <see cref="HseBench"/>, the yardsticks <see cref="PeerBaselines"/>.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var devices = new Option<int>("--devices") { Description = "simulated devices, each with its own subscriber, session and keys, sharing one UDP socket per 250 (as devices behind a NAT), 1..10000", DefaultValueFactory = _ => 2000, HelpName = "K" };
        var sessions = new Option<int>("--session-duration") { Description = "seconds during which every device opens new sessions back to back, 1..600", DefaultValueFactory = _ => 5, HelpName = "SECONDS" };
        var seconds = new Option<int>("--duration") { Description = "seconds of uplink load, 1..600", DefaultValueFactory = _ => 10, HelpName = "SECONDS" };
        var window = new Option<int>("--window") { Description = "uplink messages per device in flight: W − 1 unacknowledged, then one acknowledged, 1..256", DefaultValueFactory = _ => 16, HelpName = "W" };
        var idle = new Option<int>("--idle-sessions") { Description = "also measure the HSE's memory per idle session over this many sessions (0: skip), up to 1000000", DefaultValueFactory = _ => 0, HelpName = "N" };
        var compare = new Option<bool>("--compare") { Description = "also run the yardsticks in the same run, before and after: the loopback UDP echo limit and OpenSSL DTLS 1.2 PSK handshakes (needs gcc, libssl-dev, openssl)" };
        devices.Within(1, 10_000);
        sessions.Within(1, 600, "seconds");
        seconds.Within(1, 600, "seconds");
        window.Within(1, 256);
        idle.Within(0, 1_000_000);
        // Never from $BEST_POSTGRES: the bench writes sessions and uplink, so it runs only on a database named here.
        var postgres = new Option<string>("--postgres") { Description = "run on this PostgreSQL database instead of a fresh SQLite one; use a database of its own (the bench takes the HSE lease and removes its subscribers and their data at the end)", HelpName = "CONNECTION" };
        var command = new Command("bench",
            "Measure the HSE: K simulated devices over UDP on loopback open their first sessions at once, then open new sessions\n" +
            "back to back for --session-duration seconds (sessions/s), then send uplink for --duration seconds (messages/s\n" +
            "delivered and stored, Ack latency). The HSE runs in this process on a fresh SQLite database in a temporary folder,\n" +
            "or on --postgres. --compare puts the loopback UDP limit and OpenSSL's DTLS 1.2 PSK handshake rate beside them.");
        foreach (var option in new Option[] { devices, sessions, seconds, window, idle, compare, postgres })
        {
            command.Options.Add(option);
        }

        command.Subcommands.Add(NorthboundBenchCommand.Create());
        command.Subcommands.Add(ClusterCommand.Bench());

        command.SetAction((result, cancel) => RunAsync(
            new HseBenchOptions
            {
                Devices = result.GetValue(devices), SessionSeconds = result.GetValue(sessions), UplinkSeconds = result.GetValue(seconds), Window = result.GetValue(window),
                IdleSessions = result.GetValue(idle), Postgres = result.GetValue(postgres),
            },
            result.GetValue(compare), result.InvocationConfiguration.Output, result.InvocationConfiguration.Error, cancel));
        return command;
    }

    private static async Task<int> RunAsync(HseBenchOptions options, bool compare, TextWriter output, TextWriter error, CancellationToken cancel)
    {
        var console = Terminal.For(output);

        using var peers = compare ? new PeerBaselines() : null;
        var peerFigures = new List<PeerFigures>();
        HseBenchResult result = null!;
        try
        {
            await console.Progress().StartAsync(async context =>
            {
                var progress = Terminal.Phases(context);
                if (peers is not null)
                {
                    var task = context.AddTask("yardsticks (before)", maxValue: 1);
                    await peers.BuildAsync(cancel);
                    peerFigures.Add(await peers.MeasureAsync(5, cancel));
                    task.Value = 1;
                }

                result = await HseBench.RunAsync(options, progress, cancel);
                if (peers is not null)
                {
                    var task = context.AddTask("yardsticks (after)", maxValue: 1);
                    peerFigures.Add(await peers.MeasureAsync(5, cancel));
                    task.Value = 1;
                }
            });
        }
        catch (InvalidOperationException e) when (peers is not null)
        {
            // A missing compiler or OpenSSL: one line that names it.
            await error.WriteLineAsync($"best bench: --compare: {e.Message}");
            return ExitCodes.CheckFailed;
        }

        var table = new Table().AddColumn("measure").AddColumn("value");
        table.AddRow("devices / first sessions established", Invariant($"{result.Devices} / {result.FirstSessionsEstablished}"));
        table.AddRow("first sessions per second (all devices at once)", Invariant($"{result.FirstSessionsPerSecond:N0}"));
        table.AddRow("first session latency p50 / p99 (ms)", Invariant($"{result.FirstSessionLatency.P50:0.0} / {result.FirstSessionLatency.P99:0.0}"));
        table.AddRow("new sessions per second (sustained)", Invariant($"{result.SustainedSessionsPerSecond:N0}"));
        table.AddRow("session setup latency p50 / p99 (ms)", Invariant($"{result.SustainedSessionLatency.P50:0.0} / {result.SustainedSessionLatency.P99:0.0}"));
        table.AddRow("processor time per new session (HSE + devices, µs)", Invariant($"{result.CpuPerSessionMicroseconds:0}"));
        table.AddRow("uplink messages stored per second", Invariant($"{result.UplinkPerSecond:N0}"));
        table.AddRow("processor time per stored message (HSE + devices, µs)", Invariant($"{result.CpuPerMessageMicroseconds:0.0}"));
        table.AddRow("messages per commit (group commit)", Invariant($"{result.MessagesPerCommit:0.0}"));
        table.AddRow("Ack latency p50 / p99 (ms)", Invariant($"{result.AckLatency.P50:0.0} / {result.AckLatency.P99:0.0}"));
        table.AddRow("overloaded / errors at the HSE", Invariant($"{result.Overloaded} / {result.Errors}"));
        if (result.IdleSessionBytes is { } bytes)
        {
            table.AddRow(Invariant($"HSE memory per idle session ({options.IdleSessions:N0} sessions)"), Invariant($"{bytes:N0} B"));
        }

        table.AddRow("store", result.Store);
        table.AddRow("machine", Invariant($"{Environment.ProcessorCount} cores, {Environment.OSVersion.VersionString}, .NET {Environment.Version}"));
        console.Write(table);

        if (peerFigures.Count > 0)
        {
            // Against the better of the two yardstick runs, so a ratio is never flattered by a slow moment of the peer.
            var udp = peerFigures.Max(p => p.UdpRoundTripsPerSecond);
            var dtls = peerFigures.Max(p => p.DtlsHandshakesPerSecond);
            var side = new Table().AddColumn("").AddColumn("BEST (this HSE)").AddColumn("yardstick, same run").AddColumn("ratio");
            side.AddRow("secure sessions per second", Invariant($"{result.SustainedSessionsPerSecond:N0}"),
                Invariant($"OpenSSL DTLS 1.2 PSK handshakes: {string.Join(" / ", peerFigures.Select(p => p.DtlsHandshakesPerSecond.ToString("N0", CultureInfo.InvariantCulture)))}"),
                Invariant($"{result.SustainedSessionsPerSecond / dtls:0.00}"));
            side.AddRow("messages per second", Invariant($"{result.UplinkPerSecond:N0} stored"),
                Invariant($"UDP echo round trips: {string.Join(" / ", peerFigures.Select(p => p.UdpRoundTripsPerSecond.ToString("N0", CultureInfo.InvariantCulture)))}"),
                Invariant($"{result.UplinkPerSecond / udp:0.00}"));
            console.Write(side);
        }

        return result.Ok ? ExitCodes.Success : ExitCodes.CheckFailed;
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
