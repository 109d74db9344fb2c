using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace OpenBest.Gsup.Tests;

/// <summary>
/// A real osmo-hlr (Debian package <c>osmo-hlr</c>) as a child process on a temporary folder: its own config file and
/// database, bound to an address of its own in 127.0.0.0/8. osmo-hlr's GSUP port (4222) and CTRL port (4259) cannot be
/// configured, and its VTY ignores a port in <c>line vty / bind</c>, so each instance gets a fresh loopback address and
/// keeps the default ports there (4222 GSUP, 4258 VTY, 4259 CTRL): instances of parallel tests never meet.
/// </summary>
internal sealed class OsmoHlr : IAsyncDisposable
{
    public const int GsupPort = 4222;
    public const int VtyPort = 4258;
    public const int CtrlPort = 4259;

    private static readonly TimeSpan StartDeadline = TimeSpan.FromSeconds(60);

    private readonly string _executable;
    private readonly string _folder;
    private readonly string _config;
    private readonly StringBuilder _log = new();
    private Process? _process;

    private OsmoHlr(string executable, IPAddress address)
    {
        _executable = executable;
        Address = address;
        _folder = Directory.CreateTempSubdirectory("openbest-osmo-hlr-").FullName;
        _config = Path.Combine(_folder, "osmo-hlr.cfg");
        File.WriteAllText(_config, $"""
            log stderr
             logging filter all 1
             logging color 0
             logging print category 1
             logging level main notice
             logging level db notice
             logging level auc info
             logging level lglobal notice
            line vty
             bind {address}
            ctrl
             bind {address}
            hlr
             database {Path.Combine(_folder, "hlr.db")}
             gsup
              bind ip {address}
            """);
    }

    public IPAddress Address { get; }

    public GsupEndpoint Gsup => new(Address.ToString(), GsupPort);

    /// <summary>What osmo-hlr wrote to stdout and stderr so far (shown when something fails).</summary>
    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    /// <summary>The path of osmo-hlr, or null when it is not installed.</summary>
    public static string? FindExecutable()
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Concat(["/usr/bin", "/usr/local/bin", "/usr/sbin"]))
        {
            var candidate = Path.Combine(dir, "osmo-hlr");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>The installed osmo-hlr's version line (<c>osmo-hlr -V</c>).</summary>
    public static string Version()
    {
        using var process = Process.Start(new ProcessStartInfo(Require(), ["-V"]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
        process.WaitForExit();
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault(l => l.Contains("OsmoHLR", StringComparison.OrdinalIgnoreCase)) ?? output.Trim();
    }

    /// <summary>Starts an instance and waits until its GSUP and VTY ports accept connections. Fails the test when osmo-hlr is missing.</summary>
    public static async Task<OsmoHlr> StartAsync()
    {
        var hlr = new OsmoHlr(Require(), FreeLoopbackAddress());
        try
        {
            await hlr.RunAsync().ConfigureAwait(false);
            return hlr;
        }
        catch
        {
            await hlr.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Kills the process (and anything it started) and waits for it to be gone.</summary>
    public void Kill()
    {
        if (_process is not { } process)
        {
            return;
        }

        _process = null;
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }

            process.WaitForExit(30_000);
        }
        catch (InvalidOperationException)
        {
        }
        finally
        {
            process.Dispose();
        }
    }

    /// <summary>Starts the process again on the same address, config and database.</summary>
    public Task RestartAsync()
    {
        Kill();
        return RunAsync();
    }

    /// <summary>Creates a subscriber with MILENAGE keys through the VTY.</summary>
    public Task CreateSubscriberAsync(string imsi, string k, string opc) =>
        VtyAsync($"subscriber imsi {imsi} create", $"subscriber imsi {imsi} update aud3g milenage k {k} opc {opc}");

    /// <summary>
    /// Runs VTY commands in enable mode over telnet and returns what they printed; fails the test when a command's
    /// answer is a VTY error (a line starting with '%' other than osmo-hlr's "% Created subscriber").
    /// </summary>
    public async Task<string> VtyAsync(params string[] commands)
    {
        using var client = new TcpClient();
        using var deadline = new CancellationTokenSource(StartDeadline);
        await client.ConnectAsync(Address, VtyPort, deadline.Token).ConfigureAwait(false);
        var stream = client.GetStream();
        var output = new StringBuilder();
        await ReadPromptAsync(stream, output, deadline.Token).ConfigureAwait(false);
        foreach (var command in new[] { "enable" }.Concat(commands))
        {
            await stream.WriteAsync(Encoding.ASCII.GetBytes(command + "\r\n"), deadline.Token).ConfigureAwait(false);
            var answer = new StringBuilder();
            await ReadPromptAsync(stream, answer, deadline.Token).ConfigureAwait(false);
            var error = answer.ToString().Split('\n').Select(l => l.Trim())
                .FirstOrDefault(l => l.StartsWith('%') && !l.StartsWith("% Created subscriber", StringComparison.Ordinal));
            if (error is not null)
            {
                Assert.Fail($"osmo-hlr VTY refused '{command}': {error}");
            }

            output.Append(answer);
        }

        return output.ToString();
    }

    public async ValueTask DisposeAsync()
    {
        Kill();
        await Task.Yield();
        try
        {
            Directory.Delete(_folder, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private static string Require() =>
        FindExecutable() ?? throw new Xunit.Sdk.XunitException(
            "osmo-hlr is not installed, and these tests run against the real one: apt-get install osmo-hlr (Debian package osmo-hlr).");

    /// <summary>An address in 127.0.0.0/8 where nothing listens on osmo-hlr's ports.</summary>
    private static IPAddress FreeLoopbackAddress()
    {
        for (var attempt = 0; attempt < 100; attempt++)
        {
            var address = new IPAddress([127, (byte)Random.Shared.Next(64, 250), (byte)Random.Shared.Next(1, 255), (byte)Random.Shared.Next(2, 254)]);
            if (new[] { GsupPort, VtyPort, CtrlPort }.All(port => Bindable(address, port)))
            {
                return address;
            }
        }

        throw new InvalidOperationException("No free address in 127.0.0.0/8 for osmo-hlr.");
    }

    private static bool Bindable(IPAddress address, int port)
    {
        try
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            socket.Bind(new IPEndPoint(address, port));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static async Task ReadPromptAsync(NetworkStream stream, StringBuilder into, CancellationToken cancellationToken)
    {
        // The VTY prompts "OsmoHLR> " or "OsmoHLR# " after every answer; telnet option bytes (0xFF ...) are skipped.
        var buffer = new byte[4096];
        while (true)
        {
            var read = await stream.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                throw new IOException($"osmo-hlr closed the VTY; so far: {into}");
            }

            into.Append(Encoding.ASCII.GetString(buffer.AsSpan(0, read).ToArray().Where(b => b is >= 0x20 and < 0x7F or (byte)'\n').ToArray()));
            var text = into.ToString().TrimEnd();
            if (text.EndsWith("OsmoHLR>", StringComparison.Ordinal) || text.EndsWith("OsmoHLR#", StringComparison.Ordinal))
            {
                return;
            }
        }
    }

    private async Task RunAsync()
    {
        var start = new ProcessStartInfo(_executable, ["-c", _config])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = _folder,
        };
        var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        if (!process.Start())
        {
            throw new InvalidOperationException($"{_executable} did not start.");
        }

        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;

        var started = Stopwatch.GetTimestamp();
        foreach (var port in new[] { GsupPort, VtyPort })
        {
            while (!await Accepts(port).ConfigureAwait(false))
            {
                if (process.HasExited)
                {
                    Assert.Fail($"osmo-hlr exited with {process.ExitCode} on {Address}: {Log}");
                }

                if (Stopwatch.GetElapsedTime(started) > StartDeadline)
                {
                    Assert.Fail($"osmo-hlr did not listen on {Address}:{port} within {StartDeadline.TotalSeconds} s: {Log}");
                }

                await Task.Delay(50).ConfigureAwait(false);
            }
        }
    }

    private async Task<bool> Accepts(int port)
    {
        try
        {
            using var client = new TcpClient();
            using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await client.ConnectAsync(Address, port, limit.Token).ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException)
        {
            return false;
        }
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_log)
        {
            _log.AppendLine(line);
        }
    }
}
