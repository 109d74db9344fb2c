using System.CommandLine;
using System.Globalization;
using OpenBest.Bench;
using Spectre.Console;

namespace OpenBest.Cli;

/// <summary><c>best obf bench</c>: the options and the table; the measurement is <see cref="ObfBench"/>.</summary>
internal static class ObfBenchCommand
{
    public static Command Create()
    {
        var elements = new Option<int>("--secure-elements") { Description = "secure elements registered and bootstrapped, 1..100000", DefaultValueFactory = _ => 1000, HelpName = "N" };
        var concurrency = new Option<int>("--concurrency") { Description = "requests in flight at once, 1..1024", DefaultValueFactory = _ => 64, HelpName = "C" };
        var seconds = new Option<int>("--duration") { Description = "seconds of each phase, 1..600", DefaultValueFactory = _ => 5, HelpName = "SECONDS" };
        var postgres = new Option<string>("--postgres") { Description = "run on this PostgreSQL database (its obf_ tables) instead of a fresh SQLite one; the bench removes its secure elements at the end", HelpName = "CONNECTION" };
        elements.Within(1, 100_000);
        concurrency.Within(1, 1024);
        seconds.Within(1, 600, "seconds");
        var command = new Command("bench", "Measure the OBF server: software USIMs bootstrap over HTTPS on loopback (full Ub round trips, Ks stored), then an application\n" +
            "fetches their keys over mutual TLS (Nbsp_GBA, rights checked, each release audited). Bootstraps and key retrievals per second.");
        foreach (var option in new Option[] { elements, concurrency, seconds, postgres })
        {
            command.Options.Add(option);
        }

        command.SetAction(async (result, cancel) =>
        {
            var output = result.InvocationConfiguration.Output;
            var console = Terminal.For(output);
            var options = new ObfBenchOptions { SecureElements = result.GetValue(elements), Concurrency = result.GetValue(concurrency), Seconds = result.GetValue(seconds), Postgres = result.GetValue(postgres) };
            ObfBenchResult figures = null!;
            await console.Progress().StartAsync(async context =>
            {
                var progress = Terminal.Phases(context);
                figures = await ObfBench.RunAsync(options, progress, cancel);
            });
            var table = new Table().AddColumn("measure").AddColumn("value");
            table.AddRow("bootstraps per second (Ub over HTTPS, two round trips, Ks stored)", Invariant($"{figures.BootstrapsPerSecond:N0}"));
            table.AddRow("bootstrap latency p50 / p99 (ms)", Invariant($"{figures.BootstrapLatency.P50:0.0} / {figures.BootstrapLatency.P99:0.0}"));
            table.AddRow("key retrievals per second (Nbsp_GBA, mutual TLS, audited)", Invariant($"{figures.RetrievalsPerSecond:N0}"));
            table.AddRow("key retrieval latency p50 / p99 (ms)", Invariant($"{figures.RetrievalLatency.P50:0.0} / {figures.RetrievalLatency.P99:0.0}"));
            table.AddRow("bootstraps / retrievals / failures", Invariant($"{figures.Bootstraps:N0} / {figures.Retrievals:N0} / {figures.Failures:N0}"));
            table.AddRow("store", figures.Store);
            table.AddRow("machine", Invariant($"{Environment.ProcessorCount} cores, {Environment.OSVersion.VersionString}, .NET {Environment.Version}"));
            console.Write(table);
            return figures.Failures == 0 && figures.Bootstraps > 0 ? ExitCodes.Success : ExitCodes.CheckFailed;
        });
        return command;
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
