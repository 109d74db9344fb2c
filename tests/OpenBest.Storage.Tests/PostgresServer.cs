namespace OpenBest.Storage.Tests;

/// <summary>The tests' PostgreSQL server (a fixture): a <see cref="Postgres.LocalPostgres"/> started once per test class.</summary>
public sealed class PostgresServer : IDisposable
{
    private readonly Postgres.LocalPostgres _server;

    public PostgresServer()
        : this(durable: false)
    {
    }

    /// <summary>A server; <paramref name="durable"/> keeps synchronous commits, so that an immediate stop loses nothing committed.</summary>
    internal PostgresServer(bool durable) => _server = new Postgres.LocalPostgres(durable);

    /// <summary>Why no server runs here, or null when it runs.</summary>
    public string? Unavailable => _server.Unavailable;

    public int Port => _server.Port;

    public string ConnectionString => _server.ConnectionString;

    /// <summary>Starts the server (again, after <see cref="Stop"/>).</summary>
    public void Start() => _server.Start();

    /// <summary>Stops the server at once, as a crash would (pg_ctl -m immediate): clients' connections drop.</summary>
    public void Stop() => _server.Stop();

    /// <summary>Skips the calling test when no server runs here; fails it instead under CI, which installs PostgreSQL.</summary>
    public void SkipIfUnavailable()
    {
        if (Unavailable is { } why)
        {
            Assert.True(Environment.GetEnvironmentVariable("CI") is null, $"CI must run PostgreSQL: {why}");
            Assert.Skip(why);
        }
    }

    /// <summary>A new empty database; its connection string.</summary>
    public string CreateDatabase() => _server.CreateDatabase();

    public void Dispose() => _server.Dispose();

    /// <summary>Runs a program to its end within <paramref name="within"/>; throws with its output when it fails.</summary>
    internal static void Run(TimeSpan within, string file, params string[] args) => Postgres.LocalPostgres.Run(within, file, args);
}
