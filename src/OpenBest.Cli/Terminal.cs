using OpenBest.Bench;
using Spectre.Console;

namespace OpenBest.Cli;

/// <summary>How the long-running commands (demo, bench, obf bench) talk to their terminal.</summary>
internal static class Terminal
{
    /// <summary>
    /// A console over <paramref name="output"/>: colours and live progress only when it is the process's own, unredirected
    /// standard output; plain text when redirected or captured (tests, pipes, CI logs).
    /// </summary>
    public static IAnsiConsole For(TextWriter output)
    {
        var terminal = ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected;
        return AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output),
            Ansi = terminal ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = terminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = terminal ? InteractionSupport.Detect : InteractionSupport.No,
        });
    }

    /// <summary>A bench's progress as one bar per phase, added when the phase first reports; a bar never moves back.</summary>
    public static IProgress<BenchProgress> Phases(ProgressContext context)
    {
        var tasks = new Dictionary<string, ProgressTask>();
        return new Progress<BenchProgress>(p =>
        {
            lock (tasks)
            {
                if (!tasks.TryGetValue(p.Phase, out var task))
                {
                    tasks[p.Phase] = task = context.AddTask(p.Phase, maxValue: p.Total);
                }

                task.Value = Math.Max(task.Value, p.Done);
            }
        });
    }
}
