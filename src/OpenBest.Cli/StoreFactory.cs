using System.CommandLine;
using OpenBest.Storage;
using OpenBest.Storage.Postgres;

namespace OpenBest.Cli;

/// <summary>Chooses the store: SQLite in the data folder by default, PostgreSQL with <c>--postgres</c> (or <c>BEST_POSTGRES</c>).</summary>
internal static class StoreFactory
{
    public static Option<string> PostgresOption() => new("--postgres")
    {
        Description = "a PostgreSQL connection string, e.g. \"Host=127.0.0.1;Username=best;Database=best\", instead of SQLite in the data folder; $BEST_POSTGRES when set",
        HelpName = "CONNECTION",
        DefaultValueFactory = _ => Environment.GetEnvironmentVariable("BEST_POSTGRES") ?? string.Empty,
    };

    public static ISubscriberStore Open(string dataDirectory, string? postgres, MasterKey key) =>
        string.IsNullOrWhiteSpace(postgres) ? SqliteSubscriberStore.Open(dataDirectory, key) : PostgresSubscriberStore.Open(postgres, key);

    public static string Describe(string? postgres) => string.IsNullOrWhiteSpace(postgres) ? "SQLite" : "PostgreSQL";
}
