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
        // The new vector used SEQ 5001; the store holds the end of the block reserved after the resynchronisation.
        Assert.Equal(5000UL + 16, store.SeqHe("208930000000001"));
        Assert.Equal(5000UL + 16 + 4, store.ReserveSeq("208930000000001", 4));
    }

    private static HseSessionSnapshot Snapshot(uint id, bool suspended = false, params QueuedDownlink[] queue) =>
        new(id, "208930000000001", "eas.example.com", suspended, [1, 2, 3, (byte)id], queue);

    [Fact]
    public void Sessions_AreSealedAtRest_ReplacedDeleted_WithTheirQueues()
    {
        using var key = Key();
        using var store = Open(key);
        var state = (IHseStateStore)store;
        var batch = new HseBatch { NextSessionId = 7 };
        batch.Saved.Add(Snapshot(1));
        batch.Saved.Add(Snapshot(2, true, new QueuedDownlink("a"u8.ToArray(), false, DateTimeOffset.FromUnixTimeMilliseconds(1_000)), new QueuedDownlink("b"u8.ToArray(), true, DateTimeOffset.FromUnixTimeMilliseconds(2_000))));
        state.Commit(batch);
        var loaded = state.LoadSessions();
        Assert.Equal([1u, 2u], loaded.Select(s => s.SessionId));
        Assert.Equal([1, 2, 3, 1], loaded[0].State);
        Assert.True(loaded[1].Suspended);
        Assert.Equal(["a", "b"], loaded[1].Queue.Select(q => System.Text.Encoding.ASCII.GetString(q.Payload.Span)));
        Assert.True(loaded[1].Queue[1].AckRequested);
        Assert.Equal(7u, state.LoadNextSessionId());

        batch = new HseBatch { NextSessionId = 3 }; // the high-water mark never goes back
        batch.Saved.Add(Snapshot(2));
        batch.Ended.Add(1);
        state.Commit(batch);
        loaded = state.LoadSessions();
        Assert.Equal(2u, Assert.Single(loaded).SessionId);
        Assert.Empty(loaded[0].Queue);
        Assert.False(loaded[0].Suspended);
        Assert.Equal(7u, state.LoadNextSessionId());

        using var otherKey = MasterKey.FromBytes(Enumerable.Repeat((byte)1, 32).ToArray());
        using var wrong = Open(otherKey);
        Assert.Contains("session 2", Assert.Throws<InvalidOperationException>(() => ((IHseStateStore)wrong).LoadSessions()).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Uplink_AndOutbox_AreStoredInOrder()
    {
        using var key = Key();
        using var store = Open(key);
        var state = (IHseStateStore)store;
        var batch = new HseBatch();
        for (var i = 0; i < 5; i++)
        {
            batch.Uplinks.Add(new UplinkToStore(1, "208930000000001", "eas.example.com", 1, (ulong)i, new[] { (byte)i }, DateTimeOffset.UnixEpoch));
            batch.Outbox.Add(new OutboxItem(i % 2 == 0 ? "even" : "odd", (uint)i, new[] { (byte)i }, i == 4 ? null : "20893000000000" + i));
        }

        state.Commit(batch);
        var uplinks = state.Uplinks(0, 100);
        Assert.Equal([0ul, 1, 2, 3, 4], uplinks.Select(u => u.Counter));
        Assert.Equal([3ul, 4], state.Uplinks(uplinks[2].Seq, 100).Select(u => u.Counter));
        var due = state.DueOutbox("even", DateTimeOffset.UtcNow.AddSeconds(1), 10);
        Assert.Equal([0u, 2, 4], due.Select(d => d.SessionId));
        Assert.Equal(["208930000000000", "208930000000002", null], due.Select(d => d.Imsi));
        state.OutboxRetry(due[0].Seq, DateTimeOffset.UtcNow.AddHours(1));
        state.OutboxDelivered(due[1].Seq);
        // The head waits for its retry, and nothing behind it overtakes it.
        Assert.Empty(state.DueOutbox("even", DateTimeOffset.UtcNow.AddSeconds(1), 10));
        var later = state.DueOutbox("even", DateTimeOffset.UtcNow.AddHours(2), 10);
        Assert.Equal([0u, 4], later.Select(d => d.SessionId));
        Assert.Equal(1, later[0].Attempts);
    }

    [Fact]
    public void EasRegistrations_ExternalIds_Psks_Audit_Policy()
    {
        using var key = Key();
        using var store = Open(key);
        store.Add([new NewSubscriber("208930000000001", K, Opc)]);
        var state = (IHseStateStore)store;
        state.RegisterEas(new EasRegistration("eas.example.com", "r1", "https://127.0.0.1:1/", DateTimeOffset.UnixEpoch));
        state.RegisterEas(new EasRegistration("eas.example.com", "r2", "https://127.0.0.1:2/", DateTimeOffset.UnixEpoch));
        Assert.Equal("r2", Assert.Single(state.EasRegistrations()).RegistrationId);
        Assert.True(state.DeregisterEas("eas.example.com"));
        Assert.False(state.DeregisterEas("eas.example.com"));

        state.SetExternalId("acme", "meter-1@acme", "208930000000001");
        state.SetExternalId("acme", "meter-9@acme", "208930000000001"); // replaces the first
        Assert.Null(state.ImsiOf("acme", "meter-1@acme"));
        Assert.Equal("208930000000001", state.ImsiOf("acme", "meter-9@acme"));
        Assert.Equal("meter-9@acme", state.ExternalIdOf("acme", "208930000000001"));
        Assert.Null(state.ExternalIdOf("other", "208930000000001"));

        // Profile 5: the last three per UE and EAS.
        for (uint i = 1; i <= 5; i++)
        {
            state.SavePsk(new PastPsk("208930000000001", "eas.example.com", 0x1000 + i, 9, (byte)i, 1, "confidential", 2, true, Enumerable.Repeat((byte)i, 32).ToArray(), DateTimeOffset.FromUnixTimeMilliseconds(i * 1000),
                i == 5 ? "ek-1"u8.ToArray() : null));
        }

        var psks = state.Psks("208930000000001", "eas.example.com");
        Assert.Equal([0x1005u, 0x1004, 0x1003], psks.Select(p => p.KeyIdentifier));
        Assert.Equal(Enumerable.Repeat((byte)5, 32), psks[0].Psk);
        Assert.Equal("ek-1"u8.ToArray(), psks[0].EnterpriseKeyIdentifier);
        Assert.Null(psks[1].EnterpriseKeyIdentifier);


        // The Enterprise Key Identifier an EAS chose for a UE.
        Assert.Null(state.EnterpriseKeyIdentifierOf("208930000000001", "eas.example.com"));
        state.SetEnterpriseKeyIdentifier("208930000000001", "eas.example.com", "ek-1"u8.ToArray());
        state.SetEnterpriseKeyIdentifier("208930000000001", "eas.example.com", "ek-2"u8.ToArray());
        Assert.Equal("ek-2"u8.ToArray(), state.EnterpriseKeyIdentifierOf("208930000000001", "eas.example.com"));
        Assert.Null(state.EnterpriseKeyIdentifierOf("208930000000001", "other.example.com"));
        state.SetEnterpriseKeyIdentifier("208930000000001", "eas.example.com", null);
        Assert.Null(state.EnterpriseKeyIdentifierOf("208930000000001", "eas.example.com"));
        Assert.Equal((1, "confidential", 2, true), (psks[0].Suite, psks[0].Service, psks[0].CounterLength, psks[0].UeToEasMode));
        Assert.DoesNotContain("0505050505", psks[0].ToString(), StringComparison.Ordinal);

        state.Audit("key-delivered", "eas.example.com", "meter-9@acme", 0x1005);
        state.Audit("key-requested", "eas.example.com", "meter-9@acme", 0x1004);
        Assert.Equal(["key-requested", "key-delivered"], state.AuditLog(10).Select(a => a.Event));

        Assert.Equal((null, null), state.Services("208930000000001", "eas.example.com"));
        Assert.True(state.SetSubscriberServices("208930000000001", ServicePolicy.Parse("integrity")));
        Assert.False(state.SetSubscriberServices("208930000000999", null));
        state.SetEasServices("eas.example.com", ServicePolicy.Parse("integrity,confidential"));
        var (subscriber, eas) = state.Services("208930000000001", "eas.example.com");
        Assert.True(ServicePolicy.Allows(subscriber, BestService.Integrity));
        Assert.False(ServicePolicy.Allows(subscriber, BestService.Confidential));
        Assert.True(ServicePolicy.Allows(eas, BestService.Confidential));
        state.SetEasServices("eas.example.com", null);
        Assert.Null(state.Services("208930000000001", "eas.example.com").Eas);
    }

    [Fact]
    public void HseLease_IsExclusive_AndReleasedOnDispose()
    {
        using var key = Key();
        using var store = Open(key);
        using var other = Open(key);
        var lease = ((IHseStateStore)store).AcquireHseLease();
        Assert.Contains("another HSE is running", Assert.Throws<InvalidOperationException>(() => ((IHseStateStore)other).AcquireHseLease()).Message, StringComparison.Ordinal);
        lease.Dispose();
        ((IHseStateStore)other).AcquireHseLease().Dispose();
    }

    [Fact]
    public void RemovingASubscriber_RemovesItsSessionsUplinkKeysAndExternalIds()
    {
        using var key = Key();
        using var store = Open(key);
        store.Add([new NewSubscriber("208930000000001", K, Opc)]);
        var state = (IHseStateStore)store;
        var batch = new HseBatch();
        batch.Saved.Add(Snapshot(1));
        batch.Uplinks.Add(new UplinkToStore(1, "208930000000001", "eas.example.com", 1, 0, new byte[] { 1 }, DateTimeOffset.UnixEpoch));
        batch.Outbox.Add(new OutboxItem("eas.example.com", 1, new byte[] { 1 }, "208930000000001"));
        state.Commit(batch);
        state.SetExternalId("eas.example.com", "x", "208930000000001");
        state.SetEnterpriseKeyIdentifier("208930000000001", "eas.example.com", [1]);
        state.SavePsk(new PastPsk("208930000000001", "eas.example.com", 1, 1, 1, 1, "confidential", 2, true, new byte[32], DateTimeOffset.UnixEpoch));
        Assert.True(store.Remove("208930000000001"));
        Assert.Empty(state.LoadSessions());
        Assert.Empty(state.Uplinks(0, 10));
        Assert.Empty(state.Psks("208930000000001", "eas.example.com"));
        Assert.Null(state.ImsiOf("eas.example.com", "x"));
        Assert.Empty(state.DueOutbox("eas.example.com", DateTimeOffset.UtcNow.AddHours(1), 10));
        Assert.Null(state.EnterpriseKeyIdentifierOf("208930000000001", "eas.example.com"));
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
        server.SkipIfUnavailable();

        return PostgresSubscriberStore.Open(_database, key);
    }
}
