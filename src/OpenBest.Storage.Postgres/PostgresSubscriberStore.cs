using System.Globalization;
using Npgsql;

namespace OpenBest.Storage.Postgres;

/// <summary>
/// The scale-out store: PostgreSQL through one pooled <see cref="NpgsqlDataSource"/>, the same schema and
/// behaviour as the SQLite provider, created and migrated on open with versioned migrations.
/// </summary>
public sealed partial class PostgresSubscriberStore : ISubscriberStore, IHseStateStore, IHseShardStore
{
    // Versioned migrations: index + 1 is the schema version each one brings the database to.
    private static readonly string[] Migrations =
    [
        """
        CREATE TABLE subscribers (
            imsi    text PRIMARY KEY,
            k_enc   bytea NOT NULL,
            opc_enc bytea NOT NULL,
            amf     integer NOT NULL,
            seq_he  bigint NOT NULL DEFAULT 0,
            created timestamptz NOT NULL DEFAULT now()
        );
        """,
        """
        ALTER TABLE subscribers ADD COLUMN services integer;
        CREATE TABLE sessions (
            session_id bigint PRIMARY KEY,
            imsi       text NOT NULL,
            eas_id     text NOT NULL,
            suspended  boolean NOT NULL,
            state_enc  bytea NOT NULL,
            updated    bigint NOT NULL
        );
        CREATE TABLE downlink_queue (
            session_id    bigint NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
            position      integer NOT NULL,
            payload       bytea NOT NULL,
            ack_requested boolean NOT NULL,
            expires       bigint NOT NULL,
            PRIMARY KEY (session_id, position)
        );
        CREATE TABLE uplink (
            seq        bigserial PRIMARY KEY,
            session_id bigint NOT NULL,
            imsi       text NOT NULL,
            eas_id     text NOT NULL,
            key_id     integer NOT NULL,
            counter    bigint NOT NULL,
            payload    bytea NOT NULL,
            received   bigint NOT NULL
        );
        CREATE TABLE outbox (
            seq          bigserial PRIMARY KEY,
            eas_id       text NOT NULL,
            session_id   bigint NOT NULL,
            message      bytea NOT NULL,
            attempts     integer NOT NULL DEFAULT 0,
            next_attempt bigint NOT NULL
        );
        CREATE INDEX outbox_by_eas ON outbox (eas_id, seq);
        CREATE TABLE eas_registrations (
            eas_id          text PRIMARY KEY,
            registration_id text NOT NULL,
            endpoint        text NOT NULL,
            registered      bigint NOT NULL
        );
        CREATE TABLE eas_policies (
            eas_id   text PRIMARY KEY,
            services integer
        );
        CREATE TABLE external_ids (
            enterprise  text NOT NULL,
            external_id text NOT NULL,
            imsi        text NOT NULL,
            PRIMARY KEY (enterprise, external_id),
            UNIQUE (enterprise, imsi)
        );
        CREATE TABLE past_psks (
            imsi           text NOT NULL,
            eas_id         text NOT NULL,
            key_identifier bigint NOT NULL,
            session_id     bigint NOT NULL,
            key_id         integer NOT NULL,
            suite          integer NOT NULL,
            service        text NOT NULL,
            counter_length integer NOT NULL,
            ue_to_eas      boolean NOT NULL,
            psk_enc        bytea NOT NULL,
            created        bigint NOT NULL,
            added          bigserial,
            PRIMARY KEY (imsi, eas_id, key_identifier)
        );
        CREATE TABLE audit_log (
            seq            bigserial PRIMARY KEY,
            at             bigint NOT NULL,
            event          text NOT NULL,
            eas_id         text NOT NULL,
            subject        text NOT NULL,
            key_identifier bigint NOT NULL
        );
        CREATE TABLE hse_meta (
            name  text PRIMARY KEY,
            value bigint NOT NULL
        );
        """,
        """
        CREATE INDEX uplink_by_imsi ON uplink (imsi);
        CREATE INDEX uplink_by_eas ON uplink (eas_id, seq);
        CREATE INDEX sessions_by_imsi ON sessions (imsi);
        CREATE INDEX external_ids_by_imsi ON external_ids (imsi);
        """,
        """
        ALTER TABLE past_psks ADD COLUMN enterprise_key_id bytea;
        ALTER TABLE outbox ADD COLUMN imsi text;
        CREATE INDEX outbox_by_imsi ON outbox (imsi);
        UPDATE outbox SET imsi = (SELECT s.imsi FROM sessions s WHERE s.session_id = outbox.session_id);
        CREATE TABLE enterprise_key_ids (
            imsi       text NOT NULL,
            eas_id     text NOT NULL,
            identifier bytea NOT NULL,
            PRIMARY KEY (imsi, eas_id)
        );
        """,
        """
        CREATE TABLE hse_shards (
            shard           integer PRIMARY KEY,
            epoch           bigint NOT NULL,
            next_session_id bigint NOT NULL,
            node            text NOT NULL,
            taken           timestamptz NOT NULL
        );
        CREATE TABLE hse_commits (
            token uuid PRIMARY KEY,
            at    timestamptz NOT NULL
        );
        CREATE TABLE hse_cluster_version (
            cluster_id text PRIMARY KEY,
            version    integer NOT NULL
        );
        CREATE TABLE hse_cluster_members (
            cluster_id     text NOT NULL,
            silo           text NOT NULL,
            status         integer NOT NULL,
            host_name      text NOT NULL,
            silo_name      text NOT NULL,
            proxy_port     integer NOT NULL,
            suspect_times  text NOT NULL,
            start_time     timestamptz NOT NULL,
            i_am_alive     timestamptz NOT NULL,
            etag           integer NOT NULL,
            PRIMARY KEY (cluster_id, silo)
        );
        """,
    ];

    private readonly NpgsqlDataSource _dataSource;
    private readonly NpgsqlDataSource _relaxed;
    private readonly MasterKey _masterKey;

    private readonly string _leaseConnectionString;

    private PostgresSubscriberStore(string connectionString, MasterKey masterKey)
    {
        _leaseConnectionString = new NpgsqlConnectionStringBuilder(connectionString) { Pooling = false }.ConnectionString;
        _dataSource = NpgsqlDataSource.Create(connectionString);
        // SEQ reservations commit without waiting for the WAL flush: the next group commit flushes the WAL past
        // them before any vector leaves (the WAL is one sequence), and a block lost to a crash of the server is only
        // issued again, which the USIM's freshness check answers with a resynchronisation.
        var relaxed = new NpgsqlConnectionStringBuilder(connectionString);
        relaxed.Options = ((relaxed.Options ?? string.Empty) + " -c synchronous_commit=off").Trim();
        _relaxed = NpgsqlDataSource.Create(relaxed.ConnectionString);
        _masterKey = masterKey;
    }

    /// <summary>Opens the database named by <paramref name="connectionString"/>, migrating it when needed.</summary>
    public static PostgresSubscriberStore Open(string connectionString, MasterKey masterKey)
    {
        ArgumentNullException.ThrowIfNull(masterKey);
        var store = new PostgresSubscriberStore(connectionString, masterKey);
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
        using var connection = _dataSource.OpenConnection();
        using var transaction = connection.BeginTransaction();
        foreach (var subscriber in subscribers)
        {
            using var command = new NpgsqlCommand("INSERT INTO subscribers (imsi, k_enc, opc_enc, amf) VALUES ($1, $2, $3, $4)", connection, transaction);
            command.Parameters.AddWithValue(subscriber.Imsi);
            command.Parameters.AddWithValue(SubscriberSealing.Seal(_masterKey, subscriber.Imsi, "k", subscriber.K));
            command.Parameters.AddWithValue(SubscriberSealing.Seal(_masterKey, subscriber.Imsi, "opc", subscriber.Opc));
            command.Parameters.AddWithValue((int)subscriber.Amf);
            try
            {
                command.ExecuteNonQuery();
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
            {
                throw new DuplicateSubscriberException(subscriber.Imsi);
            }
        }

        transaction.Commit();
    }

    /// <inheritdoc/>
    public bool Remove(string imsi)
    {
        // Everything of the subscriber goes with it: sessions (and their queues), stored uplink, its outbox, kept PSKs, external ids, Enterprise Key Identifiers.
        using var connection = _dataSource.OpenConnection();
        using var transaction = connection.BeginTransaction();
        foreach (var table in new[] { "sessions", "uplink", "past_psks", "external_ids", "outbox", "enterprise_key_ids" })
        {
            using var delete = new NpgsqlCommand($"DELETE FROM {table} WHERE imsi = $1", connection, transaction);
            delete.Parameters.AddWithValue(imsi);
            delete.ExecuteNonQuery();
        }

        using var command = new NpgsqlCommand("DELETE FROM subscribers WHERE imsi = $1", connection, transaction);
        command.Parameters.AddWithValue(imsi);
        var removed = command.ExecuteNonQuery() == 1;
        transaction.Commit();
        return removed;
    }

    /// <inheritdoc/>
    public IReadOnlyList<SubscriberInfo> List()
    {
        using var command = _dataSource.CreateCommand("SELECT imsi, amf, seq_he FROM subscribers ORDER BY imsi");
        using var reader = command.ExecuteReader();
        var result = new List<SubscriberInfo>();
        while (reader.Read())
        {
            result.Add(new SubscriberInfo(reader.GetString(0), (ushort)reader.GetInt32(1), (ulong)reader.GetInt64(2)));
        }

        return result;
    }

    /// <inheritdoc/>
    public SubscriberSecrets? GetSecrets(string imsi)
    {
        using var command = _dataSource.CreateCommand("SELECT k_enc, opc_enc, amf FROM subscribers WHERE imsi = $1");
        command.Parameters.AddWithValue(imsi);
        using var reader = command.ExecuteReader();
        if (!reader.Read())
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
        // One statement: the row lock makes concurrent HSE nodes take distinct blocks.
        using var command = _relaxed.CreateCommand("UPDATE subscribers SET seq_he = seq_he + $2 WHERE imsi = $1 RETURNING seq_he");
        command.Parameters.AddWithValue(imsi);
        command.Parameters.AddWithValue((long)count);
        return command.ExecuteScalar() is long seq ? (ulong)seq : null;
    }

    /// <inheritdoc/>
    public ulong? SeqHe(string imsi)
    {
        using var command = _dataSource.CreateCommand("SELECT seq_he FROM subscribers WHERE imsi = $1");
        command.Parameters.AddWithValue(imsi);
        return command.ExecuteScalar() is long seq ? (ulong)seq : null;
    }

    /// <inheritdoc/>
    public bool TrySetSeqHe(string imsi, ulong expected, ulong seqHe)
    {
        using var command = _dataSource.CreateCommand("UPDATE subscribers SET seq_he = $2 WHERE imsi = $1 AND seq_he = $3");
        command.Parameters.AddWithValue(imsi);
        command.Parameters.AddWithValue((long)seqHe);
        command.Parameters.AddWithValue((long)expected);
        return command.ExecuteNonQuery() == 1;
    }

    /// <summary>Closes the pool (the master key belongs to the caller).</summary>
    public void Dispose()
    {
        _dataSource.Dispose();
        _relaxed.Dispose();
    }

    private void Migrate()
    {
        using var connection = _dataSource.OpenConnection();
        using var transaction = connection.BeginTransaction();
        // Several HSE nodes may start at once on a fresh database: one migrates, the others wait.
        using (var create = new NpgsqlCommand("SELECT pg_advisory_xact_lock(3163); CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL);", connection, transaction))
        {
            create.ExecuteNonQuery();
        }

        int version;
        using (var read = new NpgsqlCommand("SELECT COALESCE(MAX(version), 0) FROM schema_version", connection, transaction))
        {
            version = Convert.ToInt32(read.ExecuteScalar(), CultureInfo.InvariantCulture);
        }

        if (version > Migrations.Length)
        {
            throw new InvalidOperationException($"The database has schema version {version}, newer than this program's {Migrations.Length}.");
        }

        for (var v = version; v < Migrations.Length; v++)
        {
            using var migrate = new NpgsqlCommand(Migrations[v], connection, transaction);
            migrate.ExecuteNonQuery();
            using var record = new NpgsqlCommand($"INSERT INTO schema_version (version) VALUES ({v + 1})", connection, transaction);
            record.ExecuteNonQuery();
        }

        transaction.Commit();
    }
}
