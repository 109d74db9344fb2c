using OpenBest.Storage;
using OpenBest.Storage.Postgres;

namespace OpenBest.Storage.Tests;

/// <summary>The Open Bootstrap Framework's store: one contract, run against SQLite on a file and PostgreSQL on a real server.</summary>
public abstract class ObfStoreConformanceTests
{
    private const string Impi = "208930000000001@ims.mnc093.mcc208.3gppnetwork.org";
    private static readonly byte[] K = Convert.FromHexString("465b5ce8b199b49faa5f0a2ee238a6bc");
    private static readonly byte[] Opc = Convert.FromHexString("cd63cb71954a9f4e48a5994e37a02baf");
    private static readonly DateTimeOffset At = new(2026, 12, 4, 12, 0, 0, TimeSpan.Zero);

    /// <summary>Opens the store under test; repeated calls open the same database.</summary>
    protected abstract IObfStore Open(MasterKey key);

    private static MasterKey Key() => MasterKey.FromBytes(new byte[32]);

    [Fact]
    public void SecureElements_AreFoundByImpiIccidOrEid_AndTheirKeysAreSealed()
    {
        using var key = Key();
        using var store = Open(key);
        store.AddSecureElements([
            new NewSecureElement(Impi, K, Opc, Iccid: "8991000000000000001", Eid: "89049032000000000000000000000001", Imsi: "208930000000001", Provider: "acme-m2m"),
            new NewSecureElement("hlr-held@obf.example", [], [], Imsi: "208930000000002"),
        ]);
        Assert.Equal(Impi, store.SecureElementByCardId("8991000000000000001")!.Impi);
        Assert.Equal(Impi, store.SecureElementByCardId("89049032000000000000000000000001")!.Impi);
        var info = store.SecureElement(Impi)!;
        Assert.True(info.HasKeys);
        Assert.Equal("208930000000001", info.Imsi);
        Assert.Equal("acme-m2m", info.Provider);
        Assert.False(store.SecureElement("hlr-held@obf.example")!.HasKeys);
        Assert.Null(store.GetSecrets("hlr-held@obf.example")); // its vectors come from the HLR
        using (var secrets = store.GetSecrets(Impi)!)
        {
            Assert.Equal(K, secrets.K.ToArray());
            Assert.Equal(Opc, secrets.Opc.ToArray());
        }

        // All or nothing: a taken ICCID refuses the whole batch and names itself.
        var error = Assert.Throws<DuplicateRecordException>(() => store.AddSecureElements([
            new NewSecureElement("new@obf.example", K, Opc),
            new NewSecureElement("other@obf.example", K, Opc, Iccid: "8991000000000000001"),
        ]));
        Assert.Contains("ICCID 8991000000000000001", error.Message, StringComparison.Ordinal);
        Assert.Null(store.SecureElement("new@obf.example"));
        Assert.Throws<DuplicateSubscriberException>(() => store.AddSecureElements([new NewSecureElement(Impi, K, Opc)]));
        Assert.Equal(2, store.SecureElements().Count);

        // Another master key opens nothing.
        using var other = MasterKey.FromBytes(Enumerable.Repeat((byte)7, 32).ToArray());
        using var wrong = Open(other);
        Assert.Throws<InvalidOperationException>(() => wrong.GetSecrets(Impi));
    }

    [Fact]
    public void SeqReservations_AreAtomicBlocks_AndCompareAndSet()
    {
        using var key = Key();
        using var store = Open(key);
        store.AddSecureElements([new NewSecureElement(Impi, K, Opc)]);
        Assert.Equal(16UL, store.ReserveSeq(Impi, 16));
        Assert.Equal(32UL, store.ReserveSeq(Impi, 16));
        Assert.False(store.TrySetSeqHe(Impi, 16, 100));
        Assert.True(store.TrySetSeqHe(Impi, 32, 100));
        Assert.Equal(100UL, store.SeqHe(Impi));
        Assert.Null(store.ReserveSeq("nobody", 1));
    }

    [Fact]
    public void Registry_ProvidersDevicesApplications_AndDuplicatesNameThemselves()
    {
        using var key = Key();
        using var store = Open(key);
        store.AddProvider(new ObfProvider("acme-m2m", "m2msp", null, At));
        store.AddApplication(new ObfApplication("vtams.example.com", "acme-m2m", null, ReleaseImpi: false, At));
        store.AddSecureElements([new NewSecureElement(Impi, K, Opc)]);
        store.AddDevice(new ObfDevice("356938035643809", Impi, At));
        Assert.Equal("acme-m2m", Assert.Single(store.Providers()).Name);
        Assert.Equal(Impi, Assert.Single(store.Devices()).Impi);
        Assert.Equal("acme-m2m", store.Application("vtams.example.com")!.Owner);
        Assert.Null(store.Application("nobody.example.com"));
        Assert.Contains("provider acme-m2m", Assert.Throws<DuplicateRecordException>(() => store.AddProvider(new ObfProvider("acme-m2m", "asp", null, At))).Message, StringComparison.Ordinal);
        Assert.Contains("device 356938035643809", Assert.Throws<DuplicateRecordException>(() => store.AddDevice(new ObfDevice("356938035643809", Impi, At))).Message, StringComparison.Ordinal);
        Assert.True(store.RemoveRecord("device", "356938035643809"));
        Assert.False(store.RemoveRecord("device", "356938035643809"));
        Assert.Empty(store.Devices());
    }

    [Fact]
    public void Rights_GrantRevokeList_AndRemovingAnApplicationRevokesItsRights()
    {
        using var key = Key();
        using var store = Open(key);
        store.AddApplication(new ObfApplication("vtams.example.com", null, null, false, At));
        Assert.True(store.Grant(new ResourceRight(Impi, "vtams.example.com", "position", At)));
        Assert.False(store.Grant(new ResourceRight(Impi, "vtams.example.com", "position", At)));
        Assert.True(store.Grant(new ResourceRight(Impi, "ers.example.gov", "alarm", At)));
        Assert.Equal(["alarm", "position"], store.Rights(Impi).Select(r => r.DataClass));
        Assert.Equal(["position"], store.Rights(Impi, "vtams.example.com").Select(r => r.DataClass));
        Assert.Equal(["alarm"], store.Rights(nafFqdn: "ers.example.gov").Select(r => r.DataClass));
        Assert.True(store.Revoke(Impi, "ers.example.gov", "alarm"));
        Assert.False(store.Revoke(Impi, "ers.example.gov", "alarm"));
        Assert.True(store.RemoveRecord("app", "vtams.example.com"));
        Assert.Empty(store.Rights());
    }

    [Fact]
    public void Bootstraps_KeepKsSealedAndBoundToTheirBtid_AndExpire()
    {
        using var key = Key();
        using var store = Open(key);
        var ks = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
        var rand = Enumerable.Repeat((byte)0xAB, 16).ToArray();
        store.SaveBootstraps([
            (new BootstrapRecord("q6urq6urq6urq6urq6urqw==@bsf.example.org", Impi, rand, At, At.AddHours(1)), ks),
            (new BootstrapRecord("old@bsf.example.org", Impi, rand, At.AddDays(-2), At.AddDays(-1)), ks),
        ]);
        var (record, sealedKs) = store.Bootstrap("q6urq6urq6urq6urq6urqw==@bsf.example.org")!.Value;
        using (sealedKs)
        {
            Assert.Equal(ks, sealedKs.Span.ToArray());
            Assert.Equal(Impi, record.Impi);
            Assert.Equal(rand, record.Rand);
            Assert.Equal(At.AddHours(1), record.Expires);
        }

        Assert.Null(store.Bootstrap("nobody@bsf.example.org"));
        Assert.Equal(1, store.PurgeBootstraps(At));
        Assert.Null(store.Bootstrap("old@bsf.example.org"));

        // Removing the secure element takes its bootstrappings and rights with it.
        store.AddSecureElements([new NewSecureElement(Impi, K, Opc)]);
        store.Grant(new ResourceRight(Impi, "vtams.example.com", "position", At));
        Assert.True(store.Remove(Impi));
        Assert.Null(store.Bootstrap("q6urq6urq6urq6urq6urqw==@bsf.example.org"));
        Assert.Empty(store.Rights(Impi));
    }

    [Fact]
    public void Transfers_AreKeptPerElement_AndADoneOutgoingTransferForgetsTheKeys()
    {
        using var key = Key();
        using var store = Open(key);
        store.AddSecureElements([new NewSecureElement(Impi, K, Opc, Iccid: "8991000000000000001")]);
        Assert.Null(store.Transfer(Impi));
        store.SaveTransfer(new ObfTransfer(Impi, "out", "https://b.example.org/", "prepared", "{\"impi\":\"x\"}", At));
        Assert.Equal(new ObfTransfer(Impi, "out", "https://b.example.org/", "prepared", "{\"impi\":\"x\"}", At), store.Transfer(Impi));
        store.SaveTransfer(new ObfTransfer(Impi, "out", "https://b.example.org/", "delivered", "{\"impi\":\"x\"}", At.AddSeconds(1)));
        Assert.Equal("delivered", store.Transfer(Impi)!.State);
        Assert.True(store.SecureElement(Impi)!.HasKeys); // the old server serves the device until the transfer is done
        store.SaveTransfer(new ObfTransfer(Impi, "out", "https://b.example.org/", "done", "{\"impi\":\"x\"}", At.AddSeconds(2)));
        Assert.Equal("done", store.Transfer(Impi)!.State);
        Assert.False(store.SecureElement(Impi)!.HasKeys);
        Assert.Null(store.GetSecrets(Impi));
    }

    [Fact]
    public void TransportKeys_AreSealed_AndTheAuditLogIsNewestFirst()
    {
        using var key = Key();
        using var store = Open(key);
        store.SaveTransportKey("0a1b2c3d", Enumerable.Repeat((byte)5, 32).ToArray());
        using (var transport = store.TransportKey("0a1b2c3d")!)
        {
            Assert.Equal(Enumerable.Repeat((byte)5, 32).ToArray(), transport.Span.ToArray());
        }

        Assert.Null(store.TransportKey("ffffffff"));
        store.Audit("se-added", "cli", Impi);
        store.Audit("key-released", "vtams.example.com", "btid@bsf", "position");
        var log = store.AuditLog(10);
        Assert.Equal(["key-released", "se-added"], log.Select(e => e.Event));
        Assert.Equal("position", log[0].Detail);
    }
}

public sealed class SqliteObfStoreTests : ObfStoreConformanceTests, IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-obf-conf-");

    protected override IObfStore Open(MasterKey key) => SqliteObfStore.Open(_directory.FullName, key);

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _directory.Delete(recursive: true);
    }
}

public sealed class PostgresObfStoreTests(PostgresServer server) : ObfStoreConformanceTests, IClassFixture<PostgresServer>
{
    private readonly string _database = server.Unavailable is null ? server.CreateDatabase() : string.Empty;

    protected override IObfStore Open(MasterKey key)
    {
        server.SkipIfUnavailable();

        return PostgresObfStore.Open(_database, key);
    }
}
