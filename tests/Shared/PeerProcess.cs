using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace OpenBest.Testing;

/// <summary>An independent program as a test's peer (OpenSSL, GnuTLS, strongSwan): its output gathered, its process tree killed on dispose.</summary>
internal sealed class PeerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private PeerProcess(string program, IEnumerable<string> arguments)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        CommandLine = program + " " + string.Join(' ', info.ArgumentList);
        _process = new Process { StartInfo = info };
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public string CommandLine { get; }

    public int Port { get; private init; }

    public bool HasExited => _process.HasExited;

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    public static PeerProcess Start(string program, params string[] arguments) => new(program, arguments);

    /// <summary>Starts a server on a free loopback port and waits for <paramref name="ready"/>; a port taken in between is replaced.</summary>
    public static async Task<PeerProcess> StartServerAsync(string program, Func<int, string[]> arguments, string ready)
    {
        for (var attempt = 1; ; attempt++)
        {
            using var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            var port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            var server = new PeerProcess(program, arguments(port)) { Port = port };
            await Eventually.True(() => server.Output.Contains(ready, StringComparison.Ordinal) || server.HasExited, $"{server.CommandLine} starts");
            if (!server.HasExited)
            {
                return server;
            }

            var output = server.Output;
            await server.DisposeAsync();
            Assert.True(attempt < 3, $"{server.CommandLine} did not start: {output}");
        }
    }

    public Task WaitForAsync(string text) => Eventually.True(() => Output.Contains(text, StringComparison.Ordinal), $"'{text}' from {CommandLine}; it printed:\n{Output}");

    /// <summary>Sends a line to its standard input.</summary>
    public async Task WriteLineAsync(string line)
    {
        await _process.StandardInput.WriteAsync(line + "\n");
        await _process.StandardInput.FlushAsync();
    }

    /// <summary>Waits until it ended (within <see cref="Eventually.Deadline"/>) and its output is all read; its exit code.</summary>
    public async Task<int> ExitAsync()
    {
        using var limit = new CancellationTokenSource(Eventually.Deadline + Eventually.Deadline);
        await _process.WaitForExitAsync(limit.Token);
        _process.WaitForExit(); // drains the output events
        return _process.ExitCode;
    }

    /// <summary>Waits until it ended and its output is all read (an exited process's last lines may still be on their way).</summary>
    public async Task WaitForExitAsync()
    {
        await Eventually.True(() => _process.HasExited, $"{CommandLine} ends; it printed:\n{Output}");
        _process.WaitForExit(); // drains the output events
    }

    /// <summary>Kills its process tree (if it still runs) and waits a while for it to end.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }

            using var limit = new CancellationTokenSource(Eventually.Deadline);
            await _process.WaitForExitAsync(limit.Token);
        }
        catch (Exception e) when (e is InvalidOperationException or OperationCanceledException or System.ComponentModel.Win32Exception)
        {
        }
        finally
        {
            _process.Dispose();
        }
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_output)
            {
                _output.AppendLine(line);
            }
        }
    }
}
