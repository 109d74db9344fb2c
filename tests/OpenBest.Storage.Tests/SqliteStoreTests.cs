using OpenBest.Crypto;
using OpenBest.Crypto.Aka;
using OpenBest.Protocol;
using OpenBest.Sessions;
using OpenBest.Storage;

namespace OpenBest.Storage.Tests;

/// <summary>The SQLite store on a real file: secrets at rest, atomic SQN, migrations, and an HSE on top.</summary>
public sealed class SqliteStoreTests : IDisposable
{
    private static readonly byte[] K = Convert.FromHexString("465b5ce8b199b49faa5f0a2ee238a6bc");
    private static readonly byte[] Opc = Convert.FromHexString("cd63cb71954a9f4e48a5994e37a02baf");
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-store-");
    private readonly MasterKey _key = MasterKey.FromBytes(new byte[32]);

    private SqliteSubscriberStore Open() => SqliteSubscriberStore.Open(_directory.FullName, _key);

    public void Dispose()
    {
        _key.Dispose();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _directory.Delete(recursive: true);
    }

    /// <summary>A database of schema version 3 with data in it migrates to version 4: its outbox entries learn their subscriber from their session.</summary>
    [Fact]
    public void Version3Database_WithData_MigratesToVersion4()
    {
        var migrations = (string[])typeof(SqliteSubscriberStore).GetField("Migrations", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!.GetValue(null)!;
        using (var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(_directory.FullName, SqliteSubscriberStore.FileName)}"))
        {
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "CREATE TABLE schema_version (version INTEGER NOT NULL) STRICT;";
            command.ExecuteNonQuery();
            for (var v = 0; v < 3; v++)
            {
                command.CommandText = migrations[v] + $"INSERT INTO schema_version (version) VALUES ({v + 1});";
                command.ExecuteNonQuery();
            }

            command.CommandText = """
                INSERT INTO sessions (session_id, imsi, eas_id, suspended, state_enc, updated) VALUES (7, '208930000000001', 'eas.example.com', 0, x'00', 0);
                INSERT INTO outbox (eas_id, session_id, message, next_attempt) VALUES ('eas.example.com', 7, x'01', 0), ('eas.example.com', 8, x'02', 0);
                INSERT INTO past_psks (imsi, eas_id, key_identifier, session_id, key_id, suite, service, counter_length, ue_to_eas, psk_enc, created) VALUES ('208930000000001', 'eas.example.com', 1, 7, 1, 1, 'confidential', 2, 1, x'00', 0);
                """;
            command.ExecuteNonQuery();
        }

        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        using var state = Open();
        var outbox = state.DueOutbox("eas.example.com", DateTimeOffset.UtcNow, 10);
        Assert.Equal(["208930000000001", null], outbox.Select(o => o.Imsi));
        Assert.Null(state.EnterpriseKeyIdentifierOf("208930000000001", "eas.example.com"));
        state.SetEnterpriseKeyIdentifier("208930000000001", "eas.example.com", [1, 2]);
        Assert.Equal([1, 2], state.EnterpriseKeyIdentifierOf("208930000000001", "eas.example.com"));
        Assert.Equal(5, SqliteSubscriberStore.SchemaVersion);
    }

    [Fact]
    public void Secrets_AreEncryptedAtRest_AndBoundToTheirRow()
    {
        using (var store = Open())
        {
            store.Add([new NewSubscriber("208930000000001", K, Opc)]);
            using var secrets = store.GetSecrets("208930000000001")!;
            Assert.Equal(K, secrets.K.ToArray());
            Assert.Equal(Opc, secrets.Opc.ToArray());
        }

        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        var files = Directory.GetFiles(_directory.FullName).Select(File.ReadAllBytes).ToList();
        Assert.All(files, bytes =>
        {
            Assert.True(bytes.AsSpan().IndexOf(K) < 0, "K in clear on disk");
            Assert.True(bytes.AsSpan().IndexOf(Opc) < 0, "OPc in clear on disk");
        });

        using var otherKey = MasterKey.FromBytes(Enumerable.Repeat((byte)1, 32).ToArray());
        using var wrong = SqliteSubscriberStore.Open(_directory.FullName, otherKey);
        var error = Assert.Throws<InvalidOperationException>(() => wrong.GetSecrets("208930000000001"));
        Assert.DoesNotContain(Convert.ToHexString(K), error.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void MasterKey_FileIsCreatedOwnerOnly_AndReused()
    {
        var directory = Path.Combine(_directory.FullName, "keys");
        using (MasterKey.Load(directory))
        {
        }

        var path = Path.Combine(directory, MasterKey.FileName);
        Assert.True(File.Exists(path));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }

        var first = File.ReadAllText(path);
        using (MasterKey.Load(directory))
        {
        }

        Assert.Equal(first, File.ReadAllText(path));

        // Many processes starting at once on an empty folder all end up with the one key.
        var racing = Path.Combine(_directory.FullName, "race");
        Parallel.For(0, 8, _ =>
        {
            using (MasterKey.Load(racing))
            {
            }
        });
        Assert.Single(Directory.GetFiles(racing));
        File.WriteAllText(path, "not hex");
        Assert.Throws<InvalidOperationException>(() => MasterKey.Load(directory));
    }
}

public sealed class StoreSubscribersCacheTests : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-cache-");

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _directory.Delete(recursive: true);
    }

    private sealed class ManualTime : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = DateTimeOffset.UnixEpoch;

        public override DateTimeOffset GetUtcNow() => Now;
    }

    [Fact]
    public void ReprovisionedSubscriber_NewKeyUsedAfterTheCacheLifetime()
    {
        var oldK = Convert.FromHexString("465b5ce8b199b49faa5f0a2ee238a6bc");
        var newK = Convert.FromHexString("0396eb317b6d1c36f19c1c84cd6ffd16");
        var opc = Convert.FromHexString("cd63cb71954a9f4e48a5994e37a02baf");
        using var key = MasterKey.FromBytes(new byte[32]);
        using var store = SqliteSubscriberStore.Open(_directory.FullName, key);
        store.Add([new NewSubscriber("001010000000001", oldK, opc)]);
        var time = new ManualTime();
        using var subscribers = new StoreSubscribers(store, cacheLifetime: TimeSpan.FromSeconds(60), time: time);
        using (subscribers.CreateVector("001010000000001", OpenBest.Crypto.Aka.AkaContext.FiveG))
        {
        }

        // The SIM is replaced: same IMSI, new K.
        store.Remove("001010000000001");
        store.Add([new NewSubscriber("001010000000001", newK, opc)]);
        using var newMilenage = new OpenBest.Crypto.Milenage(newK, opc);
        var usim = new OpenBest.Crypto.Aka.Usim(newMilenage, new OpenBest.Crypto.Aka.UsimSequenceState(OpenBest.Crypto.Aka.SqnScheme.Default));

        using (var stale = subscribers.CreateVector("001010000000001", OpenBest.Crypto.Aka.AkaContext.FiveG)!)
        using (var answer = usim.Authenticate(stale.Rand, stale.Autn))
        {
            Assert.Equal(OpenBest.Crypto.Aka.UsimAuthenticationStatus.MacFailure, answer.Status); // still the cached old K
        }

        time.Now += TimeSpan.FromSeconds(61);
        using var fresh = subscribers.CreateVector("001010000000001", OpenBest.Crypto.Aka.AkaContext.FiveG)!;
        using var ok = usim.Authenticate(fresh.Rand, fresh.Autn);
        Assert.Equal(OpenBest.Crypto.Aka.UsimAuthenticationStatus.Success, ok.Status);
    }
}
