using System.CommandLine;
using System.CommandLine.Help;

namespace OpenBest.Cli;

/// <summary>Exit codes of the <c>best</c> command.</summary>
internal static class ExitCodes
{
    /// <summary>The work was done and every check passed.</summary>
    public const int Success = 0;

    /// <summary>The work was done and a check failed (e.g. a MAC did not verify).</summary>
    public const int CheckFailed = 1;

    /// <summary>The command line was wrong: nothing was done.</summary>
    public const int BadInput = 2;
}

/// <summary>Builds the <c>best</c> command tree and runs it: parsing is data, invocation a separate step.</summary>
internal static class BestApp
{
    public static RootCommand CreateRootCommand()
    {
        var root = new RootCommand(
            "OpenBest: SIM-rooted, battery-efficient security for constrained IoT devices (3GPP BEST, TS 33.163), and the Open Bootstrap\n" +
            "Framework (GBA-compatible authentication any provider can run). Run the demo, an HSE or an OBF server, provision subscribers,\n" +
            "run a device on a real or virtual card, and look inside AKA and EMSDP.");
        root.Subcommands.Add(DemoCommand.Create());
        root.Subcommands.Add(BenchCommand.Create());
        root.Subcommands.Add(HseCommand.Create());
        root.Subcommands.Add(ClusterCommand.Create());
        root.Subcommands.Add(EasCommand.Create());
        root.Subcommands.Add(ObfCommand.Create());
        root.Subcommands.Add(SubscriberCommand.Create());
        root.Subcommands.Add(PkiCommand.Create());
        root.Subcommands.Add(UeCommand.Create());
        root.Subcommands.Add(CardCommand.Create());
        root.Subcommands.Add(OtaCommand.CreateSend());
        root.Subcommands.Add(EmsdpCommand.Create());
        root.Subcommands.Add(AkaCommand.Create());
        return root;
    }

    /// <summary>Parses <paramref name="args"/> and runs the command; every parse error is one line on <paramref name="error"/> and exit code 2.</summary>
    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        var root = CreateRootCommand();
        var parseResult = root.Parse(args);
        // SIGTERM and Ctrl+C cancel the action and wait for it (up to 30 s) before the process is ended; `best hse` handles them itself.
        var configuration = new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = args.FirstOrDefault() == "hse" || (args.Length > 1 && args[0] == "obf" && args[1] == "serve") ? null : TimeSpan.FromSeconds(30) };

        var command = parseResult.CommandResult.Command;
        var path = CommandPath(parseResult);
        if (command.Action is null && command.Subcommands.Count > 0 && parseResult.Action is not HelpAction && parseResult.Tokens.Count == path.Count - 1)
        {
            // A command group without a subcommand: show what it offers.
            root.Parse([.. path.Skip(1), "--help"]).Invoke(configuration);
            return ExitCodes.BadInput;
        }

        if (parseResult.Errors.Count > 0)
        {
            // An unknown word explains the rest ("required command was not provided"), so it goes first.
            var first = parseResult.UnmatchedTokens.Count > 0
                ? parseResult.Errors.FirstOrDefault(e => e.Message.Contains(parseResult.UnmatchedTokens[0], StringComparison.Ordinal)) ?? parseResult.Errors[0]
                : parseResult.Errors[0];
            var name = string.Join(' ', path);
            error.WriteLine($"{name}: {first.Message} (see '{name} --help')");
            return ExitCodes.BadInput;
        }

        try
        {
            return parseResult.Invoke(configuration);
        }
        catch (Exception e) when (e is CommandLineException or ArgumentException or InvalidOperationException or IOException or System.Text.Json.JsonException
            or UnauthorizedAccessException or System.Net.Sockets.SocketException or System.Data.Common.DbException)
        {
            // One line naming what failed (a data folder, an address, a database): messages here name inputs, never key values.
            error.WriteLine($"{string.Join(' ', path)}: {e.Message.ReplaceLineEndings(" ")}");
            return ExitCodes.BadInput;
        }
    }

    private static List<string> CommandPath(ParseResult parseResult)
    {
        var names = new List<string>();
        for (var result = parseResult.CommandResult; result is not null; result = result.Parent as System.CommandLine.Parsing.CommandResult)
        {
            names.Insert(0, result.Command is RootCommand ? "best" : result.Command.Name);
        }

        return names;
    }
}

/// <summary>A command-line input that is wrong in a way only the action can see; reported as one line, exit code 2.</summary>
internal sealed class CommandLineException(string message) : Exception(message);
