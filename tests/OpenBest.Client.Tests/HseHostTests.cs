using System.Net;
using OpenBest.Bearers;
using OpenBest.Client;
using OpenBest.Hse;
using OpenBest.Protocol;
using OpenBest.Sessions;
using OpenBest.Storage;
using OpenBest.Testing;

namespace OpenBest.Client.Tests;

/// <summary>The host's group commit: nothing leaves before it is durable, and a store that keeps failing stops the host.</summary>
public sealed class HseHostTests
{
    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    /// <summary>The real SQLite store with its commits failing on demand (failure injection: a disk cannot be made to fail here).</summary>
    private sealed class FailingStore(SqliteSubscriberStore inner) : IHseStateStore
    {
        public bool Fail { get; set; }

        public void Commit(HseBatch batch)
        {
            if (Fail)
            {
                throw new IOException("disk full");
            }

            inner.Commit(batch);
        }

        public IDisposable AcquireHseLease() => inner.AcquireHseLease();

        public IReadOnlyList<HseSessionSnapshot> LoadSessions() => inner.LoadSessions();

        public uint LoadNextSessionId() => inner.LoadNextSessionId();

        public IReadOnlyList<StoredUplink> Uplinks(long afterSeq, int limit, string? easId = null) => inner.Uplinks(afterSeq, limit, easId);

        public IReadOnlyList<OutboxEntry> DueOutbox(string easId, DateTimeOffset now, int limit) => inner.DueOutbox(easId, now, limit);

        public void OutboxDelivered(long seq) => inner.OutboxDelivered(seq);

        public void OutboxRetry(long seq, DateTimeOffset nextAttempt) => inner.OutboxRetry(seq, nextAttempt);

        public void RegisterEas(EasRegistration registration) => inner.RegisterEas(registration);

        public bool DeregisterEas(string easId) => inner.DeregisterEas(easId);

        public IReadOnlyList<EasRegistration> EasRegistrations() => inner.EasRegistrations();

        public void SetExternalId(string enterprise, string externalId, string imsi) => inner.SetExternalId(enterprise, externalId, imsi);

        public string? ImsiOf(string enterprise, string externalId) => inner.ImsiOf(enterprise, externalId);

        public string? ExternalIdOf(string enterprise, string imsi) => inner.ExternalIdOf(enterprise, imsi);

        public void SavePsk(PastPsk psk) => inner.SavePsk(psk);

        public void SetEnterpriseKeyIdentifier(string imsi, string easId, byte[]? identifier) => inner.SetEnterpriseKeyIdentifier(imsi, easId, identifier);

        public byte[]? EnterpriseKeyIdentifierOf(string imsi, string easId) => inner.EnterpriseKeyIdentifierOf(imsi, easId);

        public IReadOnlyList<PastPsk> Psks(string imsi, string easId) => inner.Psks(imsi, easId);

        public void Audit(string eventName, string easId, string subject, uint keyIdentifier) => inner.Audit(eventName, easId, subject, keyIdentifier);

        public IReadOnlyList<AuditEntry> AuditLog(int limit) => inner.AuditLog(limit);

        public bool SetSubscriberServices(string imsi, int? services) => inner.SetSubscriberServices(imsi, services);

        public void SetEasServices(string easId, int? services) => inner.SetEasServices(easId, services);

        public (int? Subscriber, int? Eas) Services(string imsi, string easId) => inner.Services(imsi, easId);
    }

    /// <summary>Runs <paramref name="test"/> on a SQLite store of its own holding the test subscriber (the folder is removed afterwards).</summary>
    private static async Task WithStoreAsync(Func<SqliteSubscriberStore, StoreSubscribers, Task> test)
    {
        var directory = Directory.CreateTempSubdirectory("openbest-host-");
        try
        {
            using var key = MasterKey.FromBytes(new byte[32]);
            using var store = SqliteSubscriberStore.Open(directory.FullName, key);
            store.Add([new NewSubscriber(TestHse.Imsi, TestHse.K, TestHse.Opc)]);
            using var subscribers = new StoreSubscribers(store);
            await test(store, subscribers);
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            directory.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task StoreFailingForGood_StopsTheHost_AndNothingUnrecordedIsAcknowledged()
    {
        await WithStoreAsync(async (store, subscribers) =>
        {
        var failing = new FailingStore(store);
        await using var udp = UdpBearer.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var host = new HseHost(new HseEngine(subscribers), [udp], TimeSpan.FromMilliseconds(100), state: failing);
        host.Start();
        await using var client = await BestClient.CreateAsync(new BestClientOptions
        {
            Imsi = TestHse.Imsi, K = TestHse.K, Opc = TestHse.Opc, Transport = new BestTransport.Udp(udp.LocalEndPoint),
            // Long enough for the open and the first send on a busy machine; the unacknowledged send waits all of it,
            // which is the time an Ack sent before its commit (the bug this catches) would have had to arrive.
            RetransmissionInterval = TimeSpan.FromMilliseconds(100), TickInterval = TimeSpan.FromMilliseconds(50), OperationTimeout = TimeSpan.FromSeconds(10),
        }, Cancel);
        var channel = (await client.OpenAsync(new UeChannelOptions { EasId = "eas.example.com", ServingNetwork = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org") }, Cancel)).Channel!;
        Assert.Equal(SendStatus.Acknowledged, await channel.SendAsync("kept"u8.ToArray(), true, Cancel));
        failing.Fail = true;
        Assert.Equal(SendStatus.NotAcknowledged, await channel.SendAsync("never acknowledged"u8.ToArray(), true, Cancel));
        await host.Faulted.WaitAsync(Eventually.Deadline, Cancel);
        Assert.Equal("IOException", host.LastError);
        Assert.Equal(["kept"], store.Uplinks(0, 10).Select(u => System.Text.Encoding.UTF8.GetString(u.Payload)));
        await host.DisposeAsync();
        });
    }

    [Fact]
    public async Task AFullWorkQueue_RefusesASessionRequestWithCongestion_AndItsBackOff()
    {
        // Profile 6.2, cause 0x0D: work the host cannot queue (its executor waits, here on a gate) is never lost silently; a
        // Session Request is refused with the back-off, and the device hears it.
        await WithStoreAsync(async (store, subscribers) =>
        {
        await using var udp = UdpBearer.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        await using var host = new HseHost(new HseEngine(subscribers, new HseOptions { CongestionBackOff = TimeSpan.FromSeconds(42) }), [udp], TimeSpan.FromMilliseconds(100), queue: 1);
        host.Start();
        using var gate = new ManualResetEventSlim();
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var blocked = host.InvokeAsync(_ =>
        {
            entered.SetResult();
            gate.Wait(Eventually.Deadline);
            return new StepResult();
        });
        await entered.Task.WaitAsync(Eventually.Deadline, Cancel);
        try
        {
            // The queue's one place fills (a tick, or the request); a retransmission of the request finds it full.
            await using var client = await BestClient.CreateAsync(new BestClientOptions
            {
                Imsi = TestHse.Imsi, K = TestHse.K, Opc = TestHse.Opc, Transport = new BestTransport.Udp(udp.LocalEndPoint),
                RetransmissionInterval = TimeSpan.FromMilliseconds(100), MaxRetransmissions = 20, OperationTimeout = TimeSpan.FromSeconds(60),
            }, Cancel);
            var opened = await client.OpenAsync(new UeChannelOptions { EasId = "eas.example.com", ServingNetwork = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org") }, Cancel);
            Assert.Null(opened.Channel);
            Assert.Equal(Cause.Congestion, opened.Rejected);
            Assert.NotNull(opened.BackOff);
            Assert.True(host.Refused >= 1 && host.Overloaded >= host.Refused, $"{host.Refused} refused, {host.Overloaded} overloaded");
        }
        finally
        {
            gate.Set();
            await blocked;
        }
        });
    }

    [Fact]
    public async Task Restore_DeletesAStateItCannotRead_AndRestoresTheOthers()
    {
        var directory = Directory.CreateTempSubdirectory("openbest-restore-");
        try
        {
            using var key = MasterKey.FromBytes(new byte[32]);
            using var store = SqliteSubscriberStore.Open(directory.FullName, key);
            var batch = new HseBatch();
            batch.Saved.Add(new HseSessionSnapshot(7, TestHse.Imsi, "eas.example.com", false, [9, 9, 9], []));
            store.Commit(batch);
            using var subscribers = new StoreSubscribers(store);
            await using var host = new HseHost(new HseEngine(subscribers), [], state: store);
            Assert.Equal(0, host.Restore());
            Assert.Equal(1, host.Unreadable);
            Assert.Empty(store.LoadSessions());
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            directory.Delete(recursive: true);
        }
    }
}
