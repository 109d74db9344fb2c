using OpenBest.Crypto;
using OpenBest.Crypto.Aka;
using OpenBest.Protocol;
using OpenBest.Sessions;
using OpenBest.Storage;
using OpenBest.Storage.Postgres;

namespace OpenBest.Storage.Tests;

/// <summary>One contract, run against every provider: SQLite on a file, PostgreSQL on a real server.</summary>
public abstract class StoreConformanceTests
{
    protected static readonly byte[] K = Convert.FromHexString("465b5ce8b199b49faa5f0a2ee238a6bc");
    protected static readonly byte[] Opc = Convert.FromHexString("cd63cb71954a9f4e48a5994e37a02baf");

    /// <summary>Opens the store under test; repeated calls open the same database (another "worker").</summary>
    protected abstract ISubscriberStore Open(MasterKey key);

    protected static MasterKey Key() => MasterKey.FromBytes(new byte[32]);

    [Fact]
    public void AddListRemove()
    {
        using var key = Key();
        using var store = Open(key);
        store.Add([new NewSubscriber("208930000000001", K, Opc), new NewSubscriber("208930000000002", K, Opc, 0x9000)]);
        Assert.Equal(["208930000000001", "208930000000002"], store.List().Select(s => s.Imsi));
        Assert.Equal(0x9000, store.List()[1].Amf);
        Assert.True(store.Remove("208930000000001"));
        Assert.False(store.Remove("208930000000001"));
        Assert.Single(store.List());
    }

    [Fact]
    public void Add_IsAllOrNothing()
    {
        using var key = Key();
        using var store = Open(key);
        store.Add([new NewSubscriber("208930000000001", K, Opc)]);
        var e = Assert.Throws<DuplicateSubscriberException>(() => store.Add([new NewSubscriber("208930000000009", K, Opc), new NewSubscriber("208930000000001", K, Opc)]));
        Assert.Equal("208930000000001", e.Imsi);
        Assert.Single(store.List());
    }

    [Fact]
    public void Secrets_RoundTrip_AndRefuseAnotherMasterKey()
    {
        using var key = Key();
        using (var store = Open(key))
        {
            store.Add([new NewSubscriber("208930000000001", K, Opc)]);
            using var secrets = store.GetSecrets("208930000000001")!;
            Assert.Equal(K, secrets.K.ToArray());
            Assert.Equal(Opc, secrets.Opc.ToArray());
            Assert.Null(store.GetSecrets("208930000000002"));
        }

        using var otherKey = MasterKey.FromBytes(Enumerable.Repeat((byte)1, 32).ToArray());
        using var wrong = Open(otherKey);
        var error = Assert.Throws<InvalidOperationException>(() => wrong.GetSecrets("208930000000001"));
        Assert.DoesNotContain(Convert.ToHexString(K), error.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void NextSeq_IsAtomic_AcrossParallelWorkers()
    {
        // Issue: SQN allocation stays correct with several HSE workers in parallel (each its own store and pool).
        using var key = Key();
        using var store = Open(key);
        store.Add([new NewSubscriber("208930000000001", K, Opc)]);
        var seen = new System.Collections.Concurrent.ConcurrentBag<ulong>();
        Parallel.For(0, 4, _ =>
        {
            using var worker = Open(key);
            for (var i = 0; i < 100; i++)
            {
                seen.Add(worker.NextSeq("208930000000001")!.Value);
            }
        });
        Assert.Equal(400, seen.Distinct().Count());
        Assert.Equal(400UL, store.SeqHe("208930000000001"));
        Assert.Null(store.NextSeq("208930000000099"));
    }

    [Fact]
    public void TrySetSeqHe_IsCompareAndSet()
    {
        using var key = Key();
        using var store = Open(key);
        store.Add([new NewSubscriber("208930000000001", K, Opc)]);
        store.NextSeq("208930000000001");
        Assert.False(store.TrySetSeqHe("208930000000001", expected: 0, seqHe: 50)); // it moved to 1 meanwhile
        Assert.True(store.TrySetSeqHe("208930000000001", expected: 1, seqHe: 50));
        Assert.Equal(50UL, store.SeqHe("208930000000001"));
    }

    [Fact]
    public void OpeningInParallel_OnAFreshDatabase_MigratesOnce()
    {
        using var key = Key();
        var errors = new System.Collections.Concurrent.ConcurrentBag<Exception>();
        Parallel.For(0, 4, _ =>
        {
            try
            {
                using var store = Open(key);
                store.List();
            }
            catch (Exception e) when (e is not Xunit.Sdk.XunitException)
            {
                errors.Add(e);
            }
        });
        Assert.Empty(errors);
    }

    [Fact]
    public void Reopening_KeepsDataAndSchema()
    {
        using var key = Key();
        using (var store = Open(key))
        {
            store.Add([new NewSubscriber("208930000000001", K, Opc)]);
            store.NextSeq("208930000000001");
        }

        using var again = Open(key);
        Assert.Equal(1UL, again.SeqHe("208930000000001"));
    }

    [Fact]
    public void OddImsis_AndManyRows()
    {
        using var key = Key();
        using var store = Open(key);
        var many = Enumerable.Range(0, 500).Select(i => new NewSubscriber($"00101{i:D10}", K, Opc)).ToList();
        store.Add(many);
        store.Add([new NewSubscriber("123456", K, Opc)]);
        Assert.Equal(501, store.List().Count);
        Assert.Equal("00101" + "0000000000", store.List()[0].Imsi);
    }

    [Fact]
    public void Hse_OverTheStore_StartsASession_AndResynchronises()
    {
        using var key = Key();
        using var store = Open(key);
        store.Add([new NewSubscriber("208930000000001", K, Opc)]);
        using var subscribers = new StoreSubscribers(store);
        using var hse = new HseEngine(subscribers);
        using var milenage = new Milenage(K, Opc);
        // The USIM is far ahead (SEQ 5000): the first Session Start fails freshness, AUTS resynchronises the store.
        var usim = new Usim(milenage, UsimSequenceState.FromSqnMs(SqnScheme.Default.Compose(5000, 0), SqnScheme.Default));
        using var ue = new UeEndpoint(usim, new UeOptions { Imsi = "208930000000001" });
        var step = ue.Open(new UeChannelOptions { EasId = "eas.example.com", ServingNetwork = ServingNetwork.FromName("5G:mnc093.mcc208.3gppnetwork.org") }, out var channel);
        var queue = new Queue<(bool Uplink, ReadOnlyMemory<byte> Message)>(step.Send.Select(s => (true, s.Message)));
        while (queue.TryDequeue(out var item))
        {
            var next = item.Uplink ? hse.Receive(item.Message.Span, "ue") : ue.Receive(item.Message.Span);
            foreach (var send in next.Send)
            {
                queue.Enqueue((!item.Uplink, send.Message));
            }
        }

        Assert.True(ue.IsEstablished(channel));
        Assert.Equal(5001UL, store.SeqHe("208930000000001"));
    }
}

public sealed class SqliteConformanceTests : StoreConformanceTests, IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-conf-");

    protected override ISubscriberStore Open(MasterKey key) => SqliteSubscriberStore.Open(_directory.FullName, key);

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _directory.Delete(recursive: true);
    }
}

public sealed class PostgresConformanceTests(PostgresServer server) : StoreConformanceTests, IClassFixture<PostgresServer>
{
    private readonly string _database = server.Unavailable is null ? server.CreateDatabase() : string.Empty;

    protected override ISubscriberStore Open(MasterKey key)
    {
        if (server.Unavailable is { } why)
        {
            Assert.True(Environment.GetEnvironmentVariable("CI") is null, $"CI must run PostgreSQL: {why}");
            Assert.Skip(why);
        }

        return PostgresSubscriberStore.Open(_database, key);
    }
}
