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
