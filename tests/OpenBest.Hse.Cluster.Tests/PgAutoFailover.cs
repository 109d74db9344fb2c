using System.Diagnostics;
using System.Globalization;
using Npgsql;
using OpenBest.Hse.Cluster.Demo;

namespace OpenBest.Hse.Cluster.Tests;

/// <summary>
/// A pg_auto_failover formation made by the tests with Debian's packages (postgresql-15-auto-failover): a monitor, a primary
/// and a synchronous secondary on loopback ports, each pg_autoctl in a process group of its own (so the test can kill a whole
/// node), run as the postgres user in a temporary folder. Removed afterwards.
/// </summary>
public sealed class PgAutoFailover : IDisposable
{
    private const string Bin = "/usr/lib/postgresql/15/bin";
    private readonly string? _directory;
    private readonly Dictionary<string, Process> _nodes = [];

    public PgAutoFailover()
    {
        if (!File.Exists("/usr/bin/pg_autoctl") || !File.Exists(Path.Combine(Bin, "initdb")))
        {
            Unavailable = "pg_auto_failover is not installed (apt-get install postgresql-15-auto-failover)";
            return;
        }

        _directory = Path.Combine(Path.GetTempPath(), "openbest-paf-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(_directory);
        Run("chown", "postgres:postgres", _directory);
        MonitorPort = LoopbackPorts.Free();
        Ports = [LoopbackPorts.Free(), LoopbackPorts.Free()];
        Autoctl("create", "monitor", "--pgdata", Data("monitor"), "--pgport", Text(MonitorPort), "--auth", "trust", "--no-ssl", "--hostname", "127.0.0.1");
        _nodes["monitor"] = Background("run", "--pgdata", Data("monitor"));
        var monitor = $"postgres://autoctl_node@127.0.0.1:{MonitorPort}/pg_auto_failover?sslmode=disable";
        for (var i = 0; i < 2; i++)
        {
            var name = $"node{i + 1}";
            _nodes[name] = Background("create", "postgres", "--pgdata", Data(name), "--pgport", Text(Ports[i]), "--monitor", monitor, "--auth", "trust", "--no-ssl",
                "--hostname", "127.0.0.1", "--name", name, "--run");
            // Alone, the first node is "single"; with the second one it becomes primary and the second its secondary.
            WaitFor(name, i == 0 ? "single" : "secondary", TimeSpan.FromSeconds(120));
        }

        WaitFor("node1", "primary", TimeSpan.FromSeconds(60));
    }

    /// <summary>Why no formation runs here, or null.</summary>
    public string? Unavailable { get; }

    public int MonitorPort { get; }

    /// <summary>The two data nodes' ports.</summary>
    public int[] Ports { get; } = [];

    /// <summary>A connection string to <paramref name="database"/> on whichever node is primary.</summary>
    public string ConnectionString(string database) =>
        $"Host=127.0.0.1:{Ports[0]},127.0.0.1:{Ports[1]};Username=postgres;Database={database};Target Session Attributes=primary;Timeout=5;Command Timeout=10";

    /// <summary>The node the monitor reports as primary (wait_primary: a primary whose standby is gone), or null.</summary>
    public string? Primary() => States().FirstOrDefault(s => s.Reported is "primary" or "wait_primary" && s.Goal == s.Reported).Name;

    /// <summary>Every data node's reported and assigned states.</summary>
    public IReadOnlyList<(string Name, string Reported, string Goal)> States()
    {
        using var connection = new NpgsqlConnection($"Host=127.0.0.1;Port={MonitorPort};Username=postgres;Database=pg_auto_failover;Pooling=false");
        connection.Open();
        using var command = new NpgsqlCommand("SELECT nodename, reportedstate::text, goalstate::text FROM pgautofailover.node ORDER BY nodeid", connection);
        using var reader = command.ExecuteReader();
        var states = new List<(string, string, string)>();
        while (reader.Read())
        {
            states.Add((reader.GetString(0), reader.GetString(1), reader.GetString(2)));
        }

        return states;
    }

    /// <summary>Kills a data node at once: its pg_autoctl and its postgres (SIGKILL to its process group).</summary>
    public void Kill(string name)
    {
        Run("kill", "-KILL", "--", "-" + Text(_nodes[name].Id));
        _nodes[name].WaitForExit(10_000);
    }

    public void WaitFor(string name, string state, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                if (States().Any(s => s.Name == name && s.Reported == state && s.Goal == state))
                {
                    return;
                }
            }
            catch (NpgsqlException)
            {
            }

            Thread.Sleep(500);
        }

        throw new TimeoutException($"{name} did not become {state}: {string.Join(", ", States())}");
    }

    public void Dispose()
    {
        NpgsqlConnection.ClearAllPools();
        foreach (var node in _nodes.Values)
        {
            try
            {
                Run("kill", "-KILL", "--", "-" + Text(node.Id));
            }
            catch (InvalidOperationException)
            {
                // Already gone.
            }

            node.WaitForExit(10_000);
            node.Dispose();
        }

        if (_directory is not null)
        {
            KillLeftovers(_directory);
            Directory.Delete(_directory, recursive: true);
        }
    }

    /// <summary>
    /// Kills what still runs in the formation's folders. Postgres's children put themselves in sessions of their own, and
    /// pg_auto_failover's health-check worker (with the logger that waits for it) does not end when its postmaster is killed:
    /// they would outlive the test. Each runs in its node's data folder.
    /// </summary>
    private static void KillLeftovers(string directory)
    {
        foreach (var entry in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(entry), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }

            try
            {
                if (new DirectoryInfo(Path.Combine(entry, "cwd")).LinkTarget is { } cwd && cwd.StartsWith(directory, StringComparison.Ordinal))
                {
                    using var leftover = Process.GetProcessById(pid);
                    leftover.Kill();
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
            {
                // Gone meanwhile, or not ours to look at.
            }
        }
    }

    private static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);

    private string Data(string name) => Path.Combine(_directory!, name);

    private void Autoctl(params string[] args) => Run("runuser", ["-u", "postgres", "--", .. Environment(), "pg_autoctl", .. args]);

    private string[] Environment() => ["env", $"PATH={Bin}:/usr/bin:/bin", $"XDG_CONFIG_HOME={_directory}/config", $"XDG_DATA_HOME={_directory}/share"];

    /// <summary>A pg_autoctl that runs until killed, in a session (and process group) of its own.</summary>
    private Process Background(params string[] args)
    {
        var info = new ProcessStartInfo("setsid") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = _directory! };
        foreach (var arg in (string[])["runuser", "-u", "postgres", "--", .. Environment(), "pg_autoctl", .. args])
        {
            info.ArgumentList.Add(arg);
        }

        var process = Process.Start(info)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private static void Run(string file, params string[] args) => OpenBest.Storage.Tests.PostgresServer.Run(TimeSpan.FromMinutes(3), file, args);
}
