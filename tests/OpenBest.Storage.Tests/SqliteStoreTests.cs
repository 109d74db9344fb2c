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
    public void AddListRemove()
    {
        using var store = Open();
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
        using var store = Open();
        store.Add([new NewSubscriber("208930000000001", K, Opc)]);
        var e = Assert.Throws<DuplicateSubscriberException>(() => store.Add([new NewSubscriber("208930000000009", K, Opc), new NewSubscriber("208930000000001", K, Opc)]));
        Assert.Equal("208930000000001", e.Imsi);
        Assert.Single(store.List());
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
    public void NextSeq_IsAtomic_AcrossParallelWorkers()
    {
        // Issue 4: SQN allocation stays correct with several HSE workers in parallel (separate connections).
        using var store = Open();
        store.Add([new NewSubscriber("208930000000001", K, Opc)]);
        var seen = new System.Collections.Concurrent.ConcurrentBag<ulong>();
        Parallel.For(0, 4, _ =>
        {
            using var worker = SqliteSubscriberStore.Open(_directory.FullName, _key);
            for (var i = 0; i < 150; i++)
            {
                seen.Add(worker.NextSeq("208930000000001")!.Value);
            }
        });
        Assert.Equal(600, seen.Distinct().Count());
        Assert.Equal(600UL, store.SeqHe("208930000000001"));
        Assert.Null(store.NextSeq("unknown"));
    }

    [Fact]
    public void Reopening_KeepsDataAndSchema()
    {
        using (var store = Open())
        {
            store.Add([new NewSubscriber("208930000000001", K, Opc)]);
            store.NextSeq("208930000000001");
        }

        using var again = Open();
        Assert.Equal(1UL, again.SeqHe("208930000000001"));
        Assert.Equal(1, SqliteSubscriberStore.SchemaVersion);
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
        File.WriteAllText(path, "not hex");
        Assert.Throws<InvalidOperationException>(() => MasterKey.Load(directory));
    }

    [Fact]
    public void Hse_OverTheStore_StartsASession_AndResynchronises()
    {
        using var store = Open();
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
