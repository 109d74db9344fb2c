using System.Runtime.InteropServices;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace OpenBest.Cli;

/// <summary>
/// Runs a long-lived service of the command line: structured logs on stderr (text or JSON lines), and SIGTERM or Ctrl+C
/// as a graceful stop that the service awaits (it finishes its work, says what it did, and its exit code is the command's).
/// </summary>
internal static class ServiceRunner
{
    public static async Task<int> RunAsync(bool jsonLogs, LogLevel level, string category, Func<ILogger, Task, Task<int>> run)
    {
        using var factory = LoggerFactory.Create(logging =>
        {
            logging.SetMinimumLevel(level);
            if (jsonLogs)
            {
                logging.AddJsonConsole(o => o.TimestampFormat = "O");
            }
            else
            {
                logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; });
            }

            logging.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        });
        var stopping = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context => { context.Cancel = true; stopping.TrySetResult(); });
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, context => { context.Cancel = true; stopping.TrySetResult(); });
        return await run(factory.CreateLogger(category), stopping.Task).ConfigureAwait(false);
    }
}
