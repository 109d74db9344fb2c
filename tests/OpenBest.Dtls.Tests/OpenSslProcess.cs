using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using OpenBest.Testing;

namespace OpenBest.Dtls.Tests;

/// <summary>
/// An <c>openssl</c> process as a test's peer: its standard output and error gathered into one text, its standard input
/// open for lines to send, and its whole process tree killed on dispose.
/// </summary>
internal sealed class OpenSslProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly Lock _gate = new();

    private OpenSslProcess(IEnumerable<string> args)
    {
        var info = new ProcessStartInfo("openssl")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        CommandLine = "openssl " + string.Join(' ', info.ArgumentList);
        _process = new Process { StartInfo = info };
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>What was started (for failure messages).</summary>
    public string CommandLine { get; }

    /// <summary>Everything it printed so far.</summary>
    public string Output
    {
        get
        {
            lock (_gate)
            {
                return _output.ToString();
            }
        }
    }

    public bool HasExited => _process.HasExited;

    public static OpenSslProcess Start(params string[] args) => new(args);

    /// <summary>
    /// Starts <c>openssl s_server</c> on a free loopback port and waits until it listens (it prints ACCEPT). A port that
    /// another process took in between (bind fails, the process exits) is replaced by another.
    /// </summary>
    public static async Task<(OpenSslProcess Server, int Port)> StartServerAsync(params string[] args)
    {
        for (var attempt = 1; ; attempt++)
        {
            var port = FreeTcpPort();
            var server = new OpenSslProcess(["s_server", "-accept", "127.0.0.1:" + port.ToString(CultureInfo.InvariantCulture), .. args]);
            await Eventually.True(() => server.Output.Contains("ACCEPT", StringComparison.Ordinal) || server.HasExited, "s_server starts: " + server.CommandLine);
            if (server.Output.Contains("ACCEPT", StringComparison.Ordinal) && !server.HasExited)
            {
                return (server, port);
            }

            var output = server.Output;
            await server.DisposeAsync();
            if (attempt == 3)
            {
                Assert.Fail($"s_server did not start: {server.CommandLine}\n{output}");
            }
        }
    }

    /// <summary>Waits until the output contains <paramref name="text"/>.</summary>
    public Task WaitForAsync(string text) => Eventually.True(() => Output.Contains(text, StringComparison.Ordinal), $"'{text}' from {CommandLine}; it printed:\n{Output}");

    /// <summary>Waits until the process ended.</summary>
    public Task WaitForExitAsync() => Eventually.True(() => _process.HasExited, $"{CommandLine} ends; it printed:\n{Output}");

    /// <summary>Sends a line to its standard input.</summary>
    public async Task WriteLineAsync(string line)
    {
        await _process.StandardInput.WriteAsync(line + "\n");
        await _process.StandardInput.FlushAsync();
    }

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
        if (line is null)
        {
            return;
        }

        lock (_gate)
        {
            _output.Append(line).Append('\n');
        }
    }

    private static int FreeTcpPort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }
}
