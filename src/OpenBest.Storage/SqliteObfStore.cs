using System.Globalization;
using Microsoft.Data.Sqlite;
using OpenBest.Crypto;

namespace OpenBest.Storage;

/// <summary>
/// The Open Bootstrap Framework's embedded store: <c>obf.db</c> in the data folder (SQLite, WAL), created and migrated
/// on open, beside the HSE's <c>openbest.db</c> and under the same master key.
/// </summary>
public sealed class SqliteObfStore : IObfStore
{
    /// <summary>The database file's name in the data folder.</summary>
    public const string FileName = "obf.db";

    // Versioned migrations: index + 1 is the schema version each one brings the database to.
    private static readonly string[] Migrations =
    [
        """
        CREATE TABLE secure_elements (
            impi     TEXT PRIMARY KEY NOT NULL,
            iccid    TEXT UNIQUE,
            eid      TEXT UNIQUE,
            imsi     TEXT,
            provider TEXT,
            k_enc    BLOB,
            opc_enc  BLOB,
            amf      INTEGER NOT NULL,
            seq_he   INTEGER NOT NULL DEFAULT 0,
            created  INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE providers (
            name        TEXT PRIMARY KEY NOT NULL,
            roles       TEXT NOT NULL,
            certificate TEXT,
            created     INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE devices (
            device_id TEXT PRIMARY KEY NOT NULL,
            impi      TEXT NOT NULL,
            created   INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE applications (
            naf_fqdn     TEXT PRIMARY KEY NOT NULL,
            owner        TEXT,
            certificate  TEXT,
            release_impi INTEGER NOT NULL,
            created      INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE rights (
            impi       TEXT NOT NULL,
            naf_fqdn   TEXT NOT NULL,
            data_class TEXT NOT NULL,
            granted    INTEGER NOT NULL,
            PRIMARY KEY (impi, naf_fqdn, data_class)
        ) STRICT;
        CREATE INDEX rights_by_naf ON rights (naf_fqdn, impi);
        CREATE TABLE bootstraps (
            btid    TEXT PRIMARY KEY NOT NULL,
            impi    TEXT NOT NULL,
            rand    BLOB NOT NULL,
            ks_enc  BLOB NOT NULL,
            created INTEGER NOT NULL,
            expires INTEGER NOT NULL
        ) STRICT;
        CREATE INDEX bootstraps_by_expiry ON bootstraps (expires);
        CREATE TABLE transport_keys (
            id      TEXT PRIMARY KEY NOT NULL,
            key_enc BLOB NOT NULL,
            created INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE audit_log (
            seq     INTEGER PRIMARY KEY AUTOINCREMENT,
            at      INTEGER NOT NULL,
            event   TEXT NOT NULL,
            actor   TEXT NOT NULL,
            subject TEXT NOT NULL,
            detail  TEXT NOT NULL
        ) STRICT;
        """,
        """
        CREATE TABLE transfers (
            impi      TEXT PRIMARY KEY NOT NULL,
            direction TEXT NOT NULL,
            peer      TEXT NOT NULL,
            state     TEXT NOT NULL,
            package   TEXT NOT NULL,
            updated   INTEGER NOT NULL
        ) STRICT;
        """,
    ];

    private readonly string _connectionString;
    private readonly MasterKey _masterKey;

    private SqliteObfStore(string path, MasterKey masterKey)
    {
        _connectionString = new SqliteConnectionStringBuilder { DataSource = path, Pooling = true, DefaultTimeout = 30 }.ToString();
        _masterKey = masterKey;
    }

    /// <summary>The schema version this code writes.</summary>
    public static int SchemaVersion => Migrations.Length;

    /// <summary>Opens (creating and migrating when needed) <c>obf.db</c> in <paramref name="dataDirectory"/>.</summary>
    public static SqliteObfStore Open(string dataDirectory, MasterKey masterKey)
    {
        ArgumentNullException.ThrowIfNull(masterKey);
        Directory.CreateDirectory(dataDirectory);
        var store = new SqliteObfStore(Path.Combine(dataDirectory, FileName), masterKey);
        store.Migrate();
        return store;
    }

    /// <inheritdoc/>
    public void Add(IReadOnlyList<NewSubscriber> subscribers)
    {
        ArgumentNullException.ThrowIfNull(subscribers);
        AddSecureElements([.. subscribers.Select(s => new NewSecureElement(s.Imsi, s.K, s.Opc, Amf: s.Amf))]);
    }

    /// <inheritdoc/>
    public void AddSecureElements(IReadOnlyList<NewSecureElement> elements)
    {
        ArgumentNullException.ThrowIfNull(elements);
        using var connection = Connect();
        using var transaction = connection.BeginTransaction();
        using var command = Command(connection, transaction, "INSERT INTO secure_elements (impi, iccid, eid, imsi, provider, k_enc, opc_enc, amf, seq_he, created) VALUES ($impi, $iccid, $eid, $imsi, $provider, $k, $opc, $amf, 0, $now)");
        foreach (var e in elements)
        {
            command.Parameters.Clear();
            Bind(command, ("$impi", e.Impi), ("$iccid", e.Iccid), ("$eid", e.Eid), ("$imsi", e.Imsi), ("$provider", e.Provider),
                ("$k", e.K.Length == 0 ? null : SubscriberSealing.Seal(_masterKey, e.Impi, "k", e.K)),
                ("$opc", e.Opc.Length == 0 ? null : SubscriberSealing.Seal(_masterKey, e.Impi, "opc", e.Opc)),
                ("$amf", (long)e.Amf), ("$now", Now()));
            try
            {
                command.ExecuteNonQuery();
            }
            catch (SqliteException x) when (x.SqliteErrorCode == 19)
            {
                // Which unique column: the IMPI (the primary key) or a card id.
                if (SecureElement(connection, transaction, e.Impi) is not null)
                {
                    throw new DuplicateSubscriberException(e.Impi);
                }

                throw new DuplicateRecordException(e.Iccid is not null && SecureElementByCardId(connection, transaction, e.Iccid) is not null ? $"ICCID {e.Iccid}" : $"EID {e.Eid}");
            }
        }

        transaction.Commit();
    }

    /// <inheritdoc/>
    public bool Remove(string imsi)
    {
        // The IMPI's rights, devices and bootstrappings go with it.
        using var connection = Connect();
        using var transaction = connection.BeginTransaction();
        using var command = Command(connection, transaction, string.Empty);
        command.Parameters.AddWithValue("$impi", imsi);
        foreach (var table in new[] { "rights", "devices", "bootstraps" })
        {
            command.CommandText = $"DELETE FROM {table} WHERE impi = $impi";
            command.ExecuteNonQuery();
        }

        command.CommandText = "DELETE FROM secure_elements WHERE impi = $impi";
        var removed = command.ExecuteNonQuery() == 1;
        transaction.Commit();
        return removed;
    }

    /// <inheritdoc/>
    public IReadOnlyList<SubscriberInfo> List() => [.. SecureElements().Select(e => new SubscriberInfo(e.Impi, 0x8000, e.SeqHe))];

    /// <inheritdoc/>
    public SubscriberSecrets? GetSecrets(string imsi)
    {
        using var connection = Connect();
        using var command = Command(connection, null, "SELECT k_enc, opc_enc, amf FROM secure_elements WHERE impi = $impi");
        command.Parameters.AddWithValue("$impi", imsi);
        using var reader = command.ExecuteReader();
        if (!reader.Read() || reader.IsDBNull(0) || reader.IsDBNull(1))
        {
            return null; // unknown, or its vectors come from the operator's HLR
        }

        return SubscriberSealing.Open(_masterKey, imsi, (byte[])reader[0], (byte[])reader[1], (ushort)reader.GetInt64(2));
    }

    /// <inheritdoc/>
    public ulong? NextSeq(string imsi) => ReserveSeq(imsi, 1);

    /// <inheritdoc/>
    public ulong? ReserveSeq(string imsi, int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        using var connection = Connect();
        using var command = Command(connection, null, "UPDATE secure_elements SET seq_he = seq_he + $n WHERE impi = $impi RETURNING seq_he");
        command.Parameters.AddWithValue("$impi", imsi);
        command.Parameters.AddWithValue("$n", count);
        return command.ExecuteScalar() is long seq ? (ulong)seq : null;
    }

    /// <inheritdoc/>
    public ulong? SeqHe(string imsi)
    {
        using var connection = Connect();
        using var command = Command(connection, null, "SELECT seq_he FROM secure_elements WHERE impi = $impi");
        command.Parameters.AddWithValue("$impi", imsi);
        return command.ExecuteScalar() is long seq ? (ulong)seq : null;
    }

    /// <inheritdoc/>
    public bool TrySetSeqHe(string imsi, ulong expected, ulong seqHe)
    {
        using var connection = Connect();
        using var command = Command(connection, null, "UPDATE secure_elements SET seq_he = $seq WHERE impi = $impi AND seq_he = $expected");
        Bind(command, ("$impi", imsi), ("$seq", (long)seqHe), ("$expected", (long)expected));
        return command.ExecuteNonQuery() == 1;
    }

    /// <inheritdoc/>
    public SecureElementInfo? SecureElement(string impi)
    {
        using var connection = Connect();
        return SecureElement(connection, null, impi);
    }

    /// <inheritdoc/>
    public SecureElementInfo? SecureElementByCardId(string iccidOrEid)
    {
        using var connection = Connect();
        return SecureElementByCardId(connection, null, iccidOrEid);
    }

    /// <inheritdoc/>
    public IReadOnlyList<SecureElementInfo> SecureElements()
    {
        using var connection = Connect();
        return ReadElements(connection, null, "ORDER BY impi", []);
    }

    /// <inheritdoc/>
    public void AddProvider(ObfProvider provider)
    {
        ArgumentNullException.ThrowIfNull(provider);
        Insert($"provider {provider.Name}", "INSERT INTO providers (name, roles, certificate, created) VALUES ($name, $roles, $cert, $at)",
            ("$name", provider.Name), ("$roles", provider.Roles), ("$cert", provider.CertificatePem), ("$at", provider.Created.ToUnixTimeMilliseconds()));
    }

    /// <inheritdoc/>
    public IReadOnlyList<ObfProvider> Providers() =>
        Query("SELECT name, roles, certificate, created FROM providers ORDER BY name", r => new ObfProvider(r.GetString(0), r.GetString(1), NullableString(r, 2), At(r, 3)));

    /// <inheritdoc/>
    public void AddDevice(ObfDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        Insert($"device {device.DeviceId}", "INSERT INTO devices (device_id, impi, created) VALUES ($id, $impi, $at)",
            ("$id", device.DeviceId), ("$impi", device.Impi), ("$at", device.Created.ToUnixTimeMilliseconds()));
    }

    /// <inheritdoc/>
    public IReadOnlyList<ObfDevice> Devices() =>
        Query("SELECT device_id, impi, created FROM devices ORDER BY device_id", r => new ObfDevice(r.GetString(0), r.GetString(1), At(r, 2)));

    /// <inheritdoc/>
    public void AddApplication(ObfApplication application)
    {
        ArgumentNullException.ThrowIfNull(application);
        Insert($"application {application.NafFqdn}", "INSERT INTO applications (naf_fqdn, owner, certificate, release_impi, created) VALUES ($naf, $owner, $cert, $impi, $at)",
            ("$naf", application.NafFqdn), ("$owner", application.Owner), ("$cert", application.CertificatePem), ("$impi", application.ReleaseImpi ? 1L : 0L), ("$at", application.Created.ToUnixTimeMilliseconds()));
    }

    /// <inheritdoc/>
    public ObfApplication? Application(string nafFqdn)
    {
        // On the key service's path: a prepared statement of a pooled reader.
        var reader = RentReader();
        try
        {
            reader.Application.Parameters[0].Value = nafFqdn;
            using var row = reader.Application.ExecuteReader();
            return row.Read() ? ReadApplication(row) : null;
        }
        finally
        {
            ReturnReader(reader);
        }
    }

    /// <inheritdoc/>
    public IReadOnlyList<ObfApplication> Applications() =>
        Query("SELECT naf_fqdn, owner, certificate, release_impi, created FROM applications ORDER BY naf_fqdn", ReadApplication);

    /// <inheritdoc/>
    public bool RemoveRecord(string kind, string id)
    {
        using var connection = Connect();
        using var transaction = connection.BeginTransaction();
        using var command = Command(connection, transaction, kind switch
        {
            "provider" => "DELETE FROM providers WHERE name = $id",
            "device" => "DELETE FROM devices WHERE device_id = $id",
            "app" => "DELETE FROM applications WHERE naf_fqdn = $id",
            _ => throw new ArgumentException($"no record kind '{kind}'", nameof(kind)),
        });
        command.Parameters.AddWithValue("$id", id);
        var removed = command.ExecuteNonQuery() == 1;
        if (kind == "app")
        {
            command.CommandText = "DELETE FROM rights WHERE naf_fqdn = $id";
            command.ExecuteNonQuery();
        }

        transaction.Commit();
        return removed;
    }

    /// <inheritdoc/>
    public bool Grant(ResourceRight right)
    {
        ArgumentNullException.ThrowIfNull(right);
        using var connection = Connect();
        using var command = Command(connection, null, "INSERT INTO rights (impi, naf_fqdn, data_class, granted) VALUES ($impi, $naf, $class, $at) ON CONFLICT DO NOTHING");
        Bind(command, ("$impi", right.Impi), ("$naf", right.NafFqdn), ("$class", right.DataClass), ("$at", right.Granted.ToUnixTimeMilliseconds()));
        return command.ExecuteNonQuery() == 1;
    }

    /// <inheritdoc/>
    public bool Revoke(string impi, string nafFqdn, string dataClass)
    {
        using var connection = Connect();
        using var command = Command(connection, null, "DELETE FROM rights WHERE impi = $impi AND naf_fqdn = $naf AND data_class = $class");
        Bind(command, ("$impi", impi), ("$naf", nafFqdn), ("$class", dataClass));
        return command.ExecuteNonQuery() == 1;
    }

    /// <inheritdoc/>
    public IReadOnlyList<ResourceRight> Rights(string? impi = null, string? nafFqdn = null) => impi is not null && nafFqdn is not null ? RightsOf(impi, nafFqdn) :
        Query("SELECT impi, naf_fqdn, data_class, granted FROM rights WHERE ($impi IS NULL OR impi = $impi) AND ($naf IS NULL OR naf_fqdn = $naf) ORDER BY impi, naf_fqdn, data_class",
            r => new ResourceRight(r.GetString(0), r.GetString(1), r.GetString(2), At(r, 3)), ("$impi", impi), ("$naf", nafFqdn));

    /// <inheritdoc/>
    public void SaveBootstraps(IReadOnlyList<(BootstrapRecord Record, byte[] Ks)> bootstraps)
    {
        ArgumentNullException.ThrowIfNull(bootstraps);
        var batch = new ObfBatch();
        batch.Bootstraps.AddRange(bootstraps);
        Commit(batch);
    }

    /// <inheritdoc/>
    public void Commit(ObfBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (batch.IsEmpty)
        {
            return;
        }

        using var connection = Connect();
        using var transaction = connection.BeginTransaction();
        if (batch.Audit.Count > 0)
        {
            using var audit = Command(connection, transaction, "INSERT INTO audit_log (at, event, actor, subject, detail) VALUES ($at, $event, $actor, $subject, $detail)");
            foreach (var entry in batch.Audit)
            {
                audit.Parameters.Clear();
                Bind(audit, ("$at", Now()), ("$event", entry.Event), ("$actor", entry.Actor), ("$subject", entry.Subject), ("$detail", entry.Detail));
                audit.ExecuteNonQuery();
            }
        }

        using var command = Command(connection, transaction, "INSERT INTO bootstraps (btid, impi, rand, ks_enc, created, expires) VALUES ($btid, $impi, $rand, $ks, $created, $expires) ON CONFLICT (btid) DO UPDATE SET impi = excluded.impi, rand = excluded.rand, ks_enc = excluded.ks_enc, created = excluded.created, expires = excluded.expires");
        foreach (var (record, ks) in batch.Bootstraps)
        {
            command.Parameters.Clear();
            Bind(command, ("$btid", record.Btid), ("$impi", record.Impi), ("$rand", record.Rand), ("$ks", _masterKey.Seal(ks, ObfSealing.KsContext(record.Btid))),
                ("$created", record.Created.ToUnixTimeMilliseconds()), ("$expires", record.Expires.ToUnixTimeMilliseconds()));
            command.ExecuteNonQuery();
        }

        transaction.Commit();
    }

    /// <inheritdoc/>
    public (BootstrapRecord Record, SecretBuffer Ks)? Bootstrap(string btid)
    {
        using var connection = Connect();
        using var command = Command(connection, null, "SELECT impi, rand, ks_enc, created, expires FROM bootstraps WHERE btid = $btid");
        command.Parameters.AddWithValue("$btid", btid);
        using var reader = command.ExecuteReader();
        if (!reader.Read())
        {
            return null;
        }

        var ks = _masterKey.Open((byte[])reader[2], ObfSealing.KsContext(btid)) ?? throw new InvalidOperationException($"The Ks of {btid} does not decrypt: wrong master key, or the row was altered.");
        return (new BootstrapRecord(btid, reader.GetString(0), (byte[])reader[1], At(reader, 3), At(reader, 4)), ks);
    }

    /// <inheritdoc/>
    public int PurgeBootstraps(DateTimeOffset now)
    {
        using var connection = Connect();
        using var command = Command(connection, null, "DELETE FROM bootstraps WHERE expires < $now");
        command.Parameters.AddWithValue("$now", now.ToUnixTimeMilliseconds());
        return command.ExecuteNonQuery();
    }

    /// <inheritdoc/>
    public void SaveTransfer(ObfTransfer transfer)
    {
        ArgumentNullException.ThrowIfNull(transfer);
        using var connection = Connect();
        using var transaction = connection.BeginTransaction();
        using var command = Command(connection, transaction, "INSERT INTO transfers (impi, direction, peer, state, package, updated) VALUES ($impi, $direction, $peer, $state, $package, $updated) " +
            "ON CONFLICT (impi) DO UPDATE SET direction = excluded.direction, peer = excluded.peer, state = excluded.state, package = excluded.package, updated = excluded.updated");
        Bind(command, ("$impi", transfer.Impi), ("$direction", transfer.Direction), ("$peer", transfer.Peer), ("$state", transfer.State), ("$package", transfer.Package), ("$updated", transfer.Updated.ToUnixTimeMilliseconds()));
        command.ExecuteNonQuery();
        if (transfer is { Direction: "out", State: "done" })
        {
            // In the same transaction: a transfer is never done while the keys stay here.
            using var forget = Command(connection, transaction, "UPDATE secure_elements SET k_enc = NULL, opc_enc = NULL WHERE impi = $impi");
            forget.Parameters.AddWithValue("$impi", transfer.Impi);
            forget.ExecuteNonQuery();
        }

        transaction.Commit();
    }

    /// <inheritdoc/>
    public ObfTransfer? Transfer(string impi)
    {
        using var connection = Connect();
        using var command = Command(connection, null, "SELECT impi, direction, peer, state, package, updated FROM transfers WHERE impi = $impi");
        command.Parameters.AddWithValue("$impi", impi);
        using var reader = command.ExecuteReader();
        return reader.Read()
            ? new ObfTransfer(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetString(4), DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(5)))
            : null;
    }

    /// <inheritdoc/>
    public void SaveTransportKey(string id, ReadOnlySpan<byte> key)
    {
        using var connection = Connect();
        using var command = Command(connection, null, "INSERT INTO transport_keys (id, key_enc, created) VALUES ($id, $key, $at) ON CONFLICT (id) DO UPDATE SET key_enc = excluded.key_enc, created = excluded.created");
        Bind(command, ("$id", id), ("$key", _masterKey.Seal(key, ObfSealing.TransportContext(id))), ("$at", Now()));
        command.ExecuteNonQuery();
    }

    /// <inheritdoc/>
    public SecretBuffer? TransportKey(string id)
    {
        using var connection = Connect();
        using var command = Command(connection, null, "SELECT key_enc FROM transport_keys WHERE id = $id");
        command.Parameters.AddWithValue("$id", id);
        return command.ExecuteScalar() is byte[] sealedKey
            ? _masterKey.Open(sealedKey, ObfSealing.TransportContext(id)) ?? throw new InvalidOperationException($"Transport key {id} does not decrypt: wrong master key, or the row was altered.")
            : null;
    }

    /// <inheritdoc/>
    public void Audit(string eventName, string actor, string subject, string detail = "")
    {
        using var connection = Connect();
        using var command = Command(connection, null, "INSERT INTO audit_log (at, event, actor, subject, detail) VALUES ($at, $event, $actor, $subject, $detail)");
        Bind(command, ("$at", Now()), ("$event", eventName), ("$actor", actor), ("$subject", subject), ("$detail", detail));
        command.ExecuteNonQuery();
    }

    /// <inheritdoc/>
    public IReadOnlyList<ObfAuditEntry> AuditLog(int limit) =>
        Query("SELECT seq, at, event, actor, subject, detail FROM audit_log ORDER BY seq DESC LIMIT $limit",
            r => new ObfAuditEntry(r.GetInt64(0), At(r, 1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetString(5)), ("$limit", (long)limit));

    /// <summary>Closes the pooled readers.</summary>
    public void Dispose()
    {
        while (_readers.TryTake(out var reader))
        {
            reader.Dispose();
        }
    }

    private readonly System.Collections.Concurrent.ConcurrentBag<Reader> _readers = [];

    private List<ResourceRight> RightsOf(string impi, string nafFqdn)
    {
        var reader = RentReader();
        try
        {
            reader.Rights.Parameters[0].Value = impi;
            reader.Rights.Parameters[1].Value = nafFqdn;
            using var row = reader.Rights.ExecuteReader();
            var result = new List<ResourceRight>();
            while (row.Read())
            {
                result.Add(new ResourceRight(impi, nafFqdn, row.GetString(0), At(row, 1)));
            }

            return result;
        }
        finally
        {
            ReturnReader(reader);
        }
    }

    private Reader RentReader() => _readers.TryTake(out var reader) ? reader : new Reader(Connect());

    private void ReturnReader(Reader reader)
    {
        if (_readers.Count < 64)
        {
            _readers.Add(reader);
        }
        else
        {
            reader.Dispose();
        }
    }

    /// <summary>A connection of its own with the hot queries prepared once (the key service asks them for every key).</summary>
    private sealed class Reader : IDisposable
    {
        private readonly SqliteConnection _connection;

        public Reader(SqliteConnection connection)
        {
            _connection = connection;
            Application = Prepare("SELECT naf_fqdn, owner, certificate, release_impi, created FROM applications WHERE naf_fqdn = $naf", "$naf");
            Rights = Prepare("SELECT data_class, granted FROM rights WHERE impi = $impi AND naf_fqdn = $naf ORDER BY data_class", "$impi", "$naf");
        }

        public SqliteCommand Application { get; }

        public SqliteCommand Rights { get; }

        public void Dispose()
        {
            Application.Dispose();
            Rights.Dispose();
            _connection.Dispose();
        }

        private SqliteCommand Prepare(string sql, params string[] names)
        {
            var command = _connection.CreateCommand();
            command.CommandText = sql;
            foreach (var name in names)
            {
                command.Parameters.Add(name, SqliteType.Text);
            }

            command.Prepare();
            return command;
        }
    }

    private static long Now() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    private static DateTimeOffset At(SqliteDataReader reader, int column) => DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(column));

    private static string? NullableString(SqliteDataReader reader, int column) => reader.IsDBNull(column) ? null : reader.GetString(column);

    private static ObfApplication ReadApplication(SqliteDataReader r) => new(r.GetString(0), NullableString(r, 1), NullableString(r, 2), r.GetInt64(3) != 0, At(r, 4));

    private static SecureElementInfo? SecureElement(SqliteConnection connection, SqliteTransaction? transaction, string impi) =>
        ReadElements(connection, transaction, "WHERE impi = $id", [("$id", impi)]).FirstOrDefault();

    private static SecureElementInfo? SecureElementByCardId(SqliteConnection connection, SqliteTransaction? transaction, string id) =>
        ReadElements(connection, transaction, "WHERE iccid = $id OR eid = $id", [("$id", id)]).FirstOrDefault();

    private static List<SecureElementInfo> ReadElements(SqliteConnection connection, SqliteTransaction? transaction, string where, (string, object?)[] values)
    {
        using var command = Command(connection, transaction, $"SELECT impi, iccid, eid, imsi, provider, k_enc IS NOT NULL, seq_he FROM secure_elements {where}");
        Bind(command, values);
        using var reader = command.ExecuteReader();
        var result = new List<SecureElementInfo>();
        while (reader.Read())
        {
            result.Add(new SecureElementInfo(reader.GetString(0), NullableString(reader, 1), NullableString(reader, 2), NullableString(reader, 3), NullableString(reader, 4), reader.GetInt64(5) != 0, (ulong)reader.GetInt64(6)));
        }

        return result;
    }

    private void Insert(string what, string sql, params (string, object?)[] values)
    {
        using var connection = Connect();
        using var command = Command(connection, null, sql);
        Bind(command, values);
        try
        {
            command.ExecuteNonQuery();
        }
        catch (SqliteException e) when (e.SqliteErrorCode == 19)
        {
            throw new DuplicateRecordException(what);
        }
    }

    private List<T> Query<T>(string sql, Func<SqliteDataReader, T> read, params (string, object?)[] values)
    {
        using var connection = Connect();
        using var command = Command(connection, null, sql);
        Bind(command, values);
        using var reader = command.ExecuteReader();
        var result = new List<T>();
        while (reader.Read())
        {
            result.Add(read(reader));
        }

        return result;
    }

    private static SqliteCommand Command(SqliteConnection connection, SqliteTransaction? transaction, string sql)
    {
        var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        return command;
    }

    private static void Bind(SqliteCommand command, params (string Name, object? Value)[] values)
    {
        foreach (var (name, value) in values)
        {
            command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }
    }

    private SqliteConnection Connect()
    {
        var connection = new SqliteConnection(_connectionString);
        connection.Open();
        // A pooled connection keeps its settings: they are set once per native handle, not before every query. (Were a handle's
        // address reused after the pool closed it, SQLite's defaults apply: FULL sync in WAL mode, and the provider's retry on busy.)
        if (connection.Handle is { } handle && ConfiguredHandles.TryAdd(handle.DangerousGetHandle(), 0))
        {
            using var pragma = connection.CreateCommand();
            pragma.CommandText = "PRAGMA busy_timeout = 30000; PRAGMA synchronous = FULL;";
            pragma.ExecuteNonQuery();
        }

        return connection;
    }

    // The native handles this store has configured (a handle lives as long as its pooled connection).
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<nint, byte> ConfiguredHandles = new();

    private void Migrate()
    {
        using var connection = Connect();
        using (var wal = connection.CreateCommand())
        {
            wal.CommandText = "PRAGMA journal_mode = WAL;";
            wal.ExecuteNonQuery();
        }

        using var transaction = connection.BeginTransaction();
        using var command = Command(connection, transaction, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL) STRICT; SELECT COALESCE(MAX(version), 0) FROM schema_version;");
        var version = Convert.ToInt32(command.ExecuteScalar(), CultureInfo.InvariantCulture);
        if (version > Migrations.Length)
        {
            throw new InvalidOperationException($"The OBF database has schema version {version}, newer than this program's {Migrations.Length}.");
        }

        for (var v = version; v < Migrations.Length; v++)
        {
            command.CommandText = Migrations[v];
            command.ExecuteNonQuery();
            command.CommandText = $"INSERT INTO schema_version (version) VALUES ({v + 1})";
            command.ExecuteNonQuery();
        }

        transaction.Commit();
    }
}
