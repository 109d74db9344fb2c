using System.Globalization;
using Npgsql;
using OpenBest.Crypto;

namespace OpenBest.Storage.Postgres;

/// <summary>
/// The Open Bootstrap Framework's scale-out store: its tables (prefixed <c>obf_</c>, with their own schema version) in a
/// PostgreSQL database, the same behaviour as <see cref="SqliteObfStore"/>.
/// </summary>
public sealed class PostgresObfStore : IObfStore
{
    // Versioned migrations: index + 1 is the schema version each one brings the database to.
    private static readonly string[] Migrations =
    [
        """
        CREATE TABLE obf_secure_elements (
            impi     text PRIMARY KEY,
            iccid    text UNIQUE,
            eid      text UNIQUE,
            imsi     text,
            provider text,
            k_enc    bytea,
            opc_enc  bytea,
            amf      integer NOT NULL,
            seq_he   bigint NOT NULL DEFAULT 0,
            created  bigint NOT NULL
        );
        CREATE TABLE obf_providers (
            name        text PRIMARY KEY,
            roles       text NOT NULL,
            certificate text,
            created     bigint NOT NULL
        );
        CREATE TABLE obf_devices (
            device_id text PRIMARY KEY,
            impi      text NOT NULL,
            created   bigint NOT NULL
        );
        CREATE TABLE obf_applications (
            naf_fqdn     text PRIMARY KEY,
            owner        text,
            certificate  text,
            release_impi boolean NOT NULL,
            created      bigint NOT NULL
        );
        CREATE TABLE obf_rights (
            impi       text NOT NULL,
            naf_fqdn   text NOT NULL,
            data_class text NOT NULL,
            granted    bigint NOT NULL,
            PRIMARY KEY (impi, naf_fqdn, data_class)
        );
        CREATE INDEX obf_rights_by_naf ON obf_rights (naf_fqdn, impi);
        CREATE TABLE obf_bootstraps (
            btid    text PRIMARY KEY,
            impi    text NOT NULL,
            rand    bytea NOT NULL,
            ks_enc  bytea NOT NULL,
            created bigint NOT NULL,
            expires bigint NOT NULL
        );
        CREATE INDEX obf_bootstraps_by_expiry ON obf_bootstraps (expires);
        CREATE TABLE obf_transport_keys (
            id      text PRIMARY KEY,
            key_enc bytea NOT NULL,
            created bigint NOT NULL
        );
        CREATE TABLE obf_audit_log (
            seq     bigserial PRIMARY KEY,
            at      bigint NOT NULL,
            event   text NOT NULL,
            actor   text NOT NULL,
            subject text NOT NULL,
            detail  text NOT NULL
        );
        """,
        """
        CREATE TABLE obf_transfers (
            impi      text PRIMARY KEY,
            direction text NOT NULL,
            peer      text NOT NULL,
            state     text NOT NULL,
            package   text NOT NULL,
            updated   bigint NOT NULL
        );
        """,
    ];

    private readonly NpgsqlDataSource _dataSource;
    private readonly MasterKey _masterKey;

    private PostgresObfStore(string connectionString, MasterKey masterKey)
    {
        _dataSource = NpgsqlDataSource.Create(connectionString);
        _masterKey = masterKey;
    }

    /// <summary>Opens the database named by <paramref name="connectionString"/>, migrating the OBF tables when needed.</summary>
    public static PostgresObfStore Open(string connectionString, MasterKey masterKey)
    {
        ArgumentNullException.ThrowIfNull(masterKey);
        var store = new PostgresObfStore(connectionString, masterKey);
        try
        {
            store.Migrate();
            return store;
        }
        catch
        {
            store.Dispose();
            throw;
        }
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
        using var connection = _dataSource.OpenConnection();
        using var transaction = connection.BeginTransaction();
        foreach (var e in elements)
        {
            using var command = new NpgsqlCommand("INSERT INTO obf_secure_elements (impi, iccid, eid, imsi, provider, k_enc, opc_enc, amf, created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)", connection, transaction);
            Add(command, e.Impi, e.Iccid, e.Eid, e.Imsi, e.Provider,
                e.K.Length == 0 ? null : SubscriberSealing.Seal(_masterKey, e.Impi, "k", e.K),
                e.Opc.Length == 0 ? null : SubscriberSealing.Seal(_masterKey, e.Impi, "opc", e.Opc),
                (int)e.Amf, Now());
            try
            {
                command.ExecuteNonQuery();
            }
            catch (PostgresException x) when (x.SqlState == PostgresErrorCodes.UniqueViolation)
            {
                if (x.ConstraintName == "obf_secure_elements_pkey")
                {
                    throw new DuplicateSubscriberException(e.Impi);
                }

                throw new DuplicateRecordException(x.ConstraintName == "obf_secure_elements_iccid_key" ? $"ICCID {e.Iccid}" : $"EID {e.Eid}");
            }
        }

        transaction.Commit();
    }

    /// <inheritdoc/>
    public bool Remove(string imsi)
    {
        using var connection = _dataSource.OpenConnection();
        using var transaction = connection.BeginTransaction();
        foreach (var table in new[] { "obf_rights", "obf_devices", "obf_bootstraps" })
        {
            using var delete = new NpgsqlCommand($"DELETE FROM {table} WHERE impi = $1", connection, transaction);
            delete.Parameters.AddWithValue(imsi);
            delete.ExecuteNonQuery();
        }

        using var command = new NpgsqlCommand("DELETE FROM obf_secure_elements WHERE impi = $1", connection, transaction);
        command.Parameters.AddWithValue(imsi);
        var removed = command.ExecuteNonQuery() == 1;
        transaction.Commit();
        return removed;
    }

    /// <inheritdoc/>
    public IReadOnlyList<SubscriberInfo> List() => [.. SecureElements().Select(e => new SubscriberInfo(e.Impi, 0x8000, e.SeqHe))];

    /// <inheritdoc/>
    public SubscriberSecrets? GetSecrets(string imsi)
    {
        using var command = _dataSource.CreateCommand("SELECT k_enc, opc_enc, amf FROM obf_secure_elements WHERE impi = $1");
        command.Parameters.AddWithValue(imsi);
        using var reader = command.ExecuteReader();
        if (!reader.Read() || reader.IsDBNull(0) || reader.IsDBNull(1))
        {
            return null;
        }

        return SubscriberSealing.Open(_masterKey, imsi, (byte[])reader[0], (byte[])reader[1], (ushort)reader.GetInt32(2));
    }

    /// <inheritdoc/>
    public ulong? NextSeq(string imsi) => ReserveSeq(imsi, 1);

    /// <inheritdoc/>
    public ulong? ReserveSeq(string imsi, int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        using var command = _dataSource.CreateCommand("UPDATE obf_secure_elements SET seq_he = seq_he + $2 WHERE impi = $1 RETURNING seq_he");
        command.Parameters.AddWithValue(imsi);
        command.Parameters.AddWithValue((long)count);
        return command.ExecuteScalar() is long seq ? (ulong)seq : null;
    }

    /// <inheritdoc/>
    public ulong? SeqHe(string imsi)
    {
        using var command = _dataSource.CreateCommand("SELECT seq_he FROM obf_secure_elements WHERE impi = $1");
        command.Parameters.AddWithValue(imsi);
        return command.ExecuteScalar() is long seq ? (ulong)seq : null;
    }

    /// <inheritdoc/>
    public bool TrySetSeqHe(string imsi, ulong expected, ulong seqHe)
    {
        using var command = _dataSource.CreateCommand("UPDATE obf_secure_elements SET seq_he = $2 WHERE impi = $1 AND seq_he = $3");
        Add(command, imsi, (long)seqHe, (long)expected);
        return command.ExecuteNonQuery() == 1;
    }

    /// <inheritdoc/>
    public SecureElementInfo? SecureElement(string impi) => ReadElements("WHERE impi = $1", impi).FirstOrDefault();

    /// <inheritdoc/>
    public SecureElementInfo? SecureElementByCardId(string iccidOrEid) => ReadElements("WHERE iccid = $1 OR eid = $1", iccidOrEid).FirstOrDefault();

    /// <inheritdoc/>
    public IReadOnlyList<SecureElementInfo> SecureElements() => ReadElements("ORDER BY impi");

    /// <inheritdoc/>
    public void AddProvider(ObfProvider provider)
    {
        ArgumentNullException.ThrowIfNull(provider);
        Insert($"provider {provider.Name}", "INSERT INTO obf_providers (name, roles, certificate, created) VALUES ($1, $2, $3, $4)",
            provider.Name, provider.Roles, provider.CertificatePem, provider.Created.ToUnixTimeMilliseconds());
    }

    /// <inheritdoc/>
    public IReadOnlyList<ObfProvider> Providers() =>
        Query("SELECT name, roles, certificate, created FROM obf_providers ORDER BY name", r => new ObfProvider(r.GetString(0), r.GetString(1), NullableString(r, 2), At(r, 3)));

    /// <inheritdoc/>
    public void AddDevice(ObfDevice device)
    {
        ArgumentNullException.ThrowIfNull(device);
        Insert($"device {device.DeviceId}", "INSERT INTO obf_devices (device_id, impi, created) VALUES ($1, $2, $3)", device.DeviceId, device.Impi, device.Created.ToUnixTimeMilliseconds());
    }

    /// <inheritdoc/>
    public IReadOnlyList<ObfDevice> Devices() =>
        Query("SELECT device_id, impi, created FROM obf_devices ORDER BY device_id", r => new ObfDevice(r.GetString(0), r.GetString(1), At(r, 2)));

    /// <inheritdoc/>
    public void AddApplication(ObfApplication application)
    {
        ArgumentNullException.ThrowIfNull(application);
        Insert($"application {application.NafFqdn}", "INSERT INTO obf_applications (naf_fqdn, owner, certificate, release_impi, created) VALUES ($1, $2, $3, $4, $5)",
            application.NafFqdn, application.Owner, application.CertificatePem, application.ReleaseImpi, application.Created.ToUnixTimeMilliseconds());
    }

    /// <inheritdoc/>
    public ObfApplication? Application(string nafFqdn) =>
        Query("SELECT naf_fqdn, owner, certificate, release_impi, created FROM obf_applications WHERE naf_fqdn = $1", ReadApplication, nafFqdn).FirstOrDefault();

    /// <inheritdoc/>
    public IReadOnlyList<ObfApplication> Applications() =>
        Query("SELECT naf_fqdn, owner, certificate, release_impi, created FROM obf_applications ORDER BY naf_fqdn", ReadApplication);

    /// <inheritdoc/>
    public bool RemoveRecord(string kind, string id)
    {
        var sql = kind switch
        {
            "provider" => "DELETE FROM obf_providers WHERE name = $1",
            "device" => "DELETE FROM obf_devices WHERE device_id = $1",
            "app" => "DELETE FROM obf_applications WHERE naf_fqdn = $1",
            _ => throw new ArgumentException($"no record kind '{kind}'", nameof(kind)),
        };
        using var connection = _dataSource.OpenConnection();
        using var transaction = connection.BeginTransaction();
        using var command = new NpgsqlCommand(sql, connection, transaction);
        command.Parameters.AddWithValue(id);
        var removed = command.ExecuteNonQuery() == 1;
        if (kind == "app")
        {
            using var rights = new NpgsqlCommand("DELETE FROM obf_rights WHERE naf_fqdn = $1", connection, transaction);
            rights.Parameters.AddWithValue(id);
            rights.ExecuteNonQuery();
        }

        transaction.Commit();
        return removed;
    }

    /// <inheritdoc/>
    public bool Grant(ResourceRight right)
    {
        ArgumentNullException.ThrowIfNull(right);
        using var command = _dataSource.CreateCommand("INSERT INTO obf_rights (impi, naf_fqdn, data_class, granted) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING");
        Add(command, right.Impi, right.NafFqdn, right.DataClass, right.Granted.ToUnixTimeMilliseconds());
        return command.ExecuteNonQuery() == 1;
    }

    /// <inheritdoc/>
    public bool Revoke(string impi, string nafFqdn, string dataClass)
    {
        using var command = _dataSource.CreateCommand("DELETE FROM obf_rights WHERE impi = $1 AND naf_fqdn = $2 AND data_class = $3");
        Add(command, impi, nafFqdn, dataClass);
        return command.ExecuteNonQuery() == 1;
    }

    /// <inheritdoc/>
    public IReadOnlyList<ResourceRight> Rights(string? impi = null, string? nafFqdn = null) =>
        Query("SELECT impi, naf_fqdn, data_class, granted FROM obf_rights WHERE ($1::text IS NULL OR impi = $1) AND ($2::text IS NULL OR naf_fqdn = $2) ORDER BY impi, naf_fqdn, data_class",
            r => new ResourceRight(r.GetString(0), r.GetString(1), r.GetString(2), At(r, 3)), impi, nafFqdn);

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

        using var connection = _dataSource.OpenConnection();
        using var transaction = connection.BeginTransaction();
        using var commands = new NpgsqlBatch(connection, transaction);
        foreach (var entry in batch.Audit)
        {
            var audit = new NpgsqlBatchCommand("INSERT INTO obf_audit_log (at, event, actor, subject, detail) VALUES ($1, $2, $3, $4, $5)");
            foreach (var value in new object[] { Now(), entry.Event, entry.Actor, entry.Subject, entry.Detail })
            {
                audit.Parameters.Add(new NpgsqlParameter { Value = value });
            }

            commands.BatchCommands.Add(audit);
        }

        foreach (var (record, ks) in batch.Bootstraps)
        {
            var command = new NpgsqlBatchCommand("INSERT INTO obf_bootstraps (btid, impi, rand, ks_enc, created, expires) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (btid) DO UPDATE SET impi = excluded.impi, rand = excluded.rand, ks_enc = excluded.ks_enc, created = excluded.created, expires = excluded.expires");
            foreach (var value in new object[] { record.Btid, record.Impi, record.Rand, _masterKey.Seal(ks, ObfSealing.KsContext(record.Btid)), record.Created.ToUnixTimeMilliseconds(), record.Expires.ToUnixTimeMilliseconds() })
            {
                command.Parameters.Add(new NpgsqlParameter { Value = value });
            }

            commands.BatchCommands.Add(command);
        }

        commands.ExecuteNonQuery();
        transaction.Commit();
    }

    /// <inheritdoc/>
    public (BootstrapRecord Record, SecretBuffer Ks)? Bootstrap(string btid)
    {
        using var command = _dataSource.CreateCommand("SELECT impi, rand, ks_enc, created, expires FROM obf_bootstraps WHERE btid = $1");
        command.Parameters.AddWithValue(btid);
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
        using var command = _dataSource.CreateCommand("DELETE FROM obf_bootstraps WHERE expires < $1");
        command.Parameters.AddWithValue(now.ToUnixTimeMilliseconds());
        return command.ExecuteNonQuery();
    }

    /// <inheritdoc/>
    public void SaveTransfer(ObfTransfer transfer)
    {
        ArgumentNullException.ThrowIfNull(transfer);
        using var connection = _dataSource.OpenConnection();
        using var transaction = connection.BeginTransaction();
        using var command = new NpgsqlCommand("INSERT INTO obf_transfers (impi, direction, peer, state, package, updated) VALUES ($1, $2, $3, $4, $5, $6) " +
            "ON CONFLICT (impi) DO UPDATE SET direction = excluded.direction, peer = excluded.peer, state = excluded.state, package = excluded.package, updated = excluded.updated", connection, transaction);
        Add(command, transfer.Impi, transfer.Direction, transfer.Peer, transfer.State, transfer.Package, transfer.Updated.ToUnixTimeMilliseconds());
        command.ExecuteNonQuery();
        if (transfer is { Direction: "out", State: "done" })
        {
            // In the same transaction: a transfer is never done while the keys stay here.
            using var forget = new NpgsqlCommand("UPDATE obf_secure_elements SET k_enc = NULL, opc_enc = NULL WHERE impi = $1", connection, transaction);
            forget.Parameters.AddWithValue(transfer.Impi);
            forget.ExecuteNonQuery();
        }

        transaction.Commit();
    }

    /// <inheritdoc/>
    public ObfTransfer? Transfer(string impi)
    {
        using var command = _dataSource.CreateCommand("SELECT impi, direction, peer, state, package, updated FROM obf_transfers WHERE impi = $1");
        command.Parameters.AddWithValue(impi);
        using var reader = command.ExecuteReader();
        return reader.Read()
            ? new ObfTransfer(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetString(4), DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(5)))
            : null;
    }

    /// <inheritdoc/>
    public void SaveTransportKey(string id, ReadOnlySpan<byte> key)
    {
        using var command = _dataSource.CreateCommand("INSERT INTO obf_transport_keys (id, key_enc, created) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET key_enc = excluded.key_enc, created = excluded.created");
        Add(command, id, _masterKey.Seal(key, ObfSealing.TransportContext(id)), Now());
        command.ExecuteNonQuery();
    }

    /// <inheritdoc/>
    public SecretBuffer? TransportKey(string id)
    {
        using var command = _dataSource.CreateCommand("SELECT key_enc FROM obf_transport_keys WHERE id = $1");
        command.Parameters.AddWithValue(id);
        return command.ExecuteScalar() is byte[] sealedKey
            ? _masterKey.Open(sealedKey, ObfSealing.TransportContext(id)) ?? throw new InvalidOperationException($"Transport key {id} does not decrypt: wrong master key, or the row was altered.")
            : null;
    }

    /// <inheritdoc/>
    public void Audit(string eventName, string actor, string subject, string detail = "")
    {
        using var command = _dataSource.CreateCommand("INSERT INTO obf_audit_log (at, event, actor, subject, detail) VALUES ($1, $2, $3, $4, $5)");
        Add(command, Now(), eventName, actor, subject, detail);
        command.ExecuteNonQuery();
    }

    /// <inheritdoc/>
    public IReadOnlyList<ObfAuditEntry> AuditLog(int limit) =>
        Query("SELECT seq, at, event, actor, subject, detail FROM obf_audit_log ORDER BY seq DESC LIMIT $1",
            r => new ObfAuditEntry(r.GetInt64(0), At(r, 1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetString(5)), (long)limit);

    /// <summary>Closes the pool (the master key belongs to the caller).</summary>
    public void Dispose() => _dataSource.Dispose();

    private static long Now() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    private static DateTimeOffset At(NpgsqlDataReader reader, int column) => DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(column));

    private static string? NullableString(NpgsqlDataReader reader, int column) => reader.IsDBNull(column) ? null : reader.GetString(column);

    private static ObfApplication ReadApplication(NpgsqlDataReader r) => new(r.GetString(0), NullableString(r, 1), NullableString(r, 2), r.GetBoolean(3), At(r, 4));

    private static void Add(NpgsqlCommand command, params object?[] values)
    {
        foreach (var value in values)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = value ?? DBNull.Value });
        }
    }

    private List<SecureElementInfo> ReadElements(string where, params object?[] values) =>
        Query($"SELECT impi, iccid, eid, imsi, provider, k_enc IS NOT NULL, seq_he FROM obf_secure_elements {where}",
            r => new SecureElementInfo(r.GetString(0), NullableString(r, 1), NullableString(r, 2), NullableString(r, 3), NullableString(r, 4), r.GetBoolean(5), (ulong)r.GetInt64(6)), values);

    private void Insert(string what, string sql, params object?[] values)
    {
        using var command = _dataSource.CreateCommand(sql);
        Add(command, values);
        try
        {
            command.ExecuteNonQuery();
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            throw new DuplicateRecordException(what);
        }
    }

    private List<T> Query<T>(string sql, Func<NpgsqlDataReader, T> read, params object?[] values)
    {
        using var command = _dataSource.CreateCommand(sql);
        Add(command, values);
        using var reader = command.ExecuteReader();
        var result = new List<T>();
        while (reader.Read())
        {
            result.Add(read(reader));
        }

        return result;
    }

    private void Migrate()
    {
        using var connection = _dataSource.OpenConnection();
        using var transaction = connection.BeginTransaction();
        // Several servers may start at once on a fresh database: one migrates, the others wait.
        using (var create = new NpgsqlCommand("SELECT pg_advisory_xact_lock(3164); CREATE TABLE IF NOT EXISTS obf_schema_version (version integer NOT NULL);", connection, transaction))
        {
            create.ExecuteNonQuery();
        }

        int version;
        using (var read = new NpgsqlCommand("SELECT COALESCE(MAX(version), 0) FROM obf_schema_version", connection, transaction))
        {
            version = Convert.ToInt32(read.ExecuteScalar(), CultureInfo.InvariantCulture);
        }

        if (version > Migrations.Length)
        {
            throw new InvalidOperationException($"The OBF tables have schema version {version}, newer than this program's {Migrations.Length}.");
        }

        for (var v = version; v < Migrations.Length; v++)
        {
            using var migrate = new NpgsqlCommand(Migrations[v], connection, transaction);
            migrate.ExecuteNonQuery();
            using var record = new NpgsqlCommand($"INSERT INTO obf_schema_version (version) VALUES ({v + 1})", connection, transaction);
            record.ExecuteNonQuery();
        }

        transaction.Commit();
    }
}
