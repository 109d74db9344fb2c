using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace OpenBest.Storage.Postgres;

/// <summary>
/// A throw-away PostgreSQL server on this machine, for demos and tests: initdb and pg_ctl of Debian's packages in a
/// temporary folder, on a free loopback port, as the postgres user when run as root (PostgreSQL refuses root). Fast and
/// not crash-safe (no fsync). Removed when disposed.
/// </summary>
public sealed class LocalPostgres : IDisposable
{
    private readonly string? _directory;
    private readonly string? _bin;
    private readonly bool _asPostgresUser;

    private readonly string _options = string.Empty;

    /// <summary>
    /// Starts a server; <paramref name="durable"/> keeps synchronous commits (a commit is in the WAL when it returns), so that
    /// an immediate stop loses nothing committed. Without the server binaries nothing starts and <see cref="Unavailable"/> says why.
    /// </summary>
    /// <exception cref="InvalidOperationException">initdb or pg_ctl failed (the message has their output).</exception>
    public LocalPostgres(bool durable = false)
    {
        _bin = FindBin();
        if (_bin is null)
        {
            Unavailable = "PostgreSQL server binaries not found (apt-get install postgresql)";
            return;
        }

        _asPostgresUser = Environment.UserName == "root";
        _directory = Path.Combine(Path.GetTempPath(), "openbest-pg-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(_directory);
        if (_asPostgresUser)
        {
            Run("chown", "postgres:postgres", _directory);
        }

        Port = FreePort();
        var data = Path.Combine(_directory, "data");
        RunPg("initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8");
        _options = $"-p {Port} -k {_directory} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off" + (durable ? string.Empty : " -c synchronous_commit=off");
        Start();
        ConnectionString = $"Host=127.0.0.1;Port={Port};Username=postgres;Database=postgres;Pooling=true";
    }

    /// <summary>Starts the server (again, after <see cref="Stop"/>).</summary>
    public void Start() => RunPg("pg_ctl", "-D", Path.Combine(_directory!, "data"), "-l", Path.Combine(_directory!, "log"), "-w", "-t", "60", "start", "-o", _options);

    /// <summary>Stops the server at once, as a crash would (pg_ctl -m immediate): clients' connections drop.</summary>
    public void Stop() => RunPg("pg_ctl", "-D", Path.Combine(_directory!, "data"), "-m", "immediate", "-w", "stop");

    /// <summary>Why no server runs here, or null when it runs.</summary>
    public string? Unavailable { get; }

    /// <summary>Its port on 127.0.0.1.</summary>
    public int Port { get; }

    /// <summary>The connection string of its postgres database (user postgres, trust authentication on loopback).</summary>
    public string ConnectionString { get; } = string.Empty;

    /// <summary>A new empty database; its connection string.</summary>
    public string CreateDatabase()
    {
        var name = "t" + Guid.NewGuid().ToString("N")[..12];
        using var connection = new Npgsql.NpgsqlConnection(ConnectionString);
        connection.Open();
        using var command = new Npgsql.NpgsqlCommand($"CREATE DATABASE {name}", connection);
        command.ExecuteNonQuery();
        return ConnectionString.Replace("Database=postgres", $"Database={name}", StringComparison.Ordinal);
    }

    /// <summary>Stops the server and removes its folder.</summary>
    public void Dispose()
    {
        if (_directory is null)
        {
            return;
        }

        Npgsql.NpgsqlConnection.ClearAllPools();
        try
        {
            RunPg("pg_ctl", "-D", Path.Combine(_directory, "data"), "-m", "immediate", "-w", "stop");
        }
        finally
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    private static string? FindBin()
    {
        var root = "/usr/lib/postgresql";
        return Directory.Exists(root)
            ? Directory.GetDirectories(root).Select(d => Path.Combine(d, "bin")).Where(d => File.Exists(Path.Combine(d, "initdb"))).OrderDescending().FirstOrDefault()
            : null;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private void RunPg(string tool, params string[] args)
    {
        var path = Path.Combine(_bin!, tool);
        if (_asPostgresUser)
        {
            Run("runuser", ["-u", "postgres", "--", path, .. args]);
        }
        else
        {
            Run(path, args);
        }
    }

    private static void Run(string file, params string[] args) => Run(TimeSpan.FromMinutes(2), file, args);

    /// <summary>Runs a program to its end within <paramref name="within"/>; throws with its output when it fails.</summary>
    public static void Run(TimeSpan within, string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = Path.GetTempPath() };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(within) || process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed: {error.Result} {output.Result}");
        }
    }
}
