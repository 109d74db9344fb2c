using System.Diagnostics;
using System.Text;

namespace OpenBest.Testing;

/// <summary>A <c>best</c> command run as its own process (dotnet best.dll …), its output collected line by line.</summary>
internal sealed class BestProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly StringBuilder _error = new();
    private int _disposed;

    private BestProcess(Process process)
    {
        _process = process;
        _process.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (_output) { _output.AppendLine(e.Data); } } };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (_error) { _error.AppendLine(e.Data); } } };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public string Output { get { lock (_output) { return _output.ToString(); } } }

    public string Error { get { lock (_error) { return _error.ToString(); } } }

    public int Id => _process.Id;

    /// <summary>SIGTERM: the graceful stop a service manager asks for.</summary>
    public void Terminate()
    {
        using var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
    }

    public static BestProcess Start(params string[] arguments) => Start(new Dictionary<string, string>(), arguments);

    public static BestProcess Start(IReadOnlyDictionary<string, string> environment, params string[] arguments)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var (name, value) in environment)
        {
            info.Environment[name] = value;
        }

        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "best.dll"));
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        return new BestProcess(Process.Start(info)!);
    }

    /// <summary>Runs a command to its end: exit code, standard output, standard error.</summary>
    public static Task<(int Code, string Output, string Error)> RunAsync(params string[] arguments) => RunAsync(new Dictionary<string, string>(), arguments);

    /// <summary>Runs a command to its end with <paramref name="environment"/> added.</summary>
    public static async Task<(int Code, string Output, string Error)> RunAsync(IReadOnlyDictionary<string, string> environment, params string[] arguments)
    {
        await using var process = Start(environment, arguments);
        using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await process._process.WaitForExitAsync(deadline.Token);
        process._process.WaitForExit(); // drains the output events
        return (process._process.ExitCode, process.Output, process.Error);
    }

    /// <summary>Waits until the output holds <paramref name="text"/>.</summary>
    public Task WaitForAsync(string text) => Eventually.True(() => Output.Contains(text, StringComparison.Ordinal) || _process.HasExited, $"'{text}' from best ({Error})")
        .ContinueWith(t => { t.GetAwaiter().GetResult(); Assert.True(Output.Contains(text, StringComparison.Ordinal), $"best exited: {Output} {Error}"); }, TaskScheduler.Default);

    /// <summary>Waits (within two minutes, or <paramref name="within"/>) for the process to end by itself: its exit code and output.</summary>
    public async Task<(int Code, string Output)> ExitAsync(TimeSpan? within = null)
    {
        using var deadline = new CancellationTokenSource(within ?? TimeSpan.FromMinutes(2));
        await _process.WaitForExitAsync(deadline.Token);
        _process.WaitForExit(); // drains the output events
        return (_process.ExitCode, Output);
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync(CancellationToken.None);
        }

        _process.Dispose();
    }
}
