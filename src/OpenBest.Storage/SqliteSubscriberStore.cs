using System.Globalization;
using Microsoft.Data.Sqlite;

namespace OpenBest.Storage;

/// <summary>
/// The embedded default store: one SQLite file in WAL mode, created and migrated on open with
/// versioned migrations.
/// </summary>
public sealed partial class SqliteSubscriberStore : ISubscriberStore, IHseStateStore
{
    /// <summary>The database file's name in the data folder.</summary>
    public const string FileName = "openbest.db";

    // Versioned migrations: index + 1 is the schema version each one brings the database to.
    private static readonly string[] Migrations =
    [
        """
        CREATE TABLE subscribers (
            imsi    TEXT PRIMARY KEY NOT NULL,
            k_enc   BLOB NOT NULL,
            opc_enc BLOB NOT NULL,
            amf     INTEGER NOT NULL,
            seq_he  INTEGER NOT NULL DEFAULT 0,
            created TEXT NOT NULL
        ) STRICT;
        """,
        """
        ALTER TABLE subscribers ADD COLUMN services INTEGER;
        CREATE TABLE sessions (
            session_id INTEGER PRIMARY KEY NOT NULL,
            imsi       TEXT NOT NULL,
            eas_id     TEXT NOT NULL,
            suspended  INTEGER NOT NULL,
            state_enc  BLOB NOT NULL,
            updated    INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE downlink_queue (
            session_id    INTEGER NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
            position      INTEGER NOT NULL,
            payload       BLOB NOT NULL,
            ack_requested INTEGER NOT NULL,
            expires       INTEGER NOT NULL,
            PRIMARY KEY (session_id, position)
        ) STRICT;
        CREATE TABLE uplink (
            seq        INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id INTEGER NOT NULL,
            imsi       TEXT NOT NULL,
            eas_id     TEXT NOT NULL,
            key_id     INTEGER NOT NULL,
            counter    INTEGER NOT NULL,
            payload    BLOB NOT NULL,
            received   INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE outbox (
            seq          INTEGER PRIMARY KEY AUTOINCREMENT,
            eas_id       TEXT NOT NULL,
            session_id   INTEGER NOT NULL,
            message      BLOB NOT NULL,
            attempts     INTEGER NOT NULL DEFAULT 0,
            next_attempt INTEGER NOT NULL
        ) STRICT;
        CREATE INDEX outbox_by_eas ON outbox (eas_id, seq);
        CREATE TABLE eas_registrations (
            eas_id          TEXT PRIMARY KEY NOT NULL,
            registration_id TEXT NOT NULL,
            endpoint        TEXT NOT NULL,
            registered      INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE eas_policies (
            eas_id   TEXT PRIMARY KEY NOT NULL,
            services INTEGER
        ) STRICT;
        CREATE TABLE external_ids (
            enterprise  TEXT NOT NULL,
            external_id TEXT NOT NULL,
            imsi        TEXT NOT NULL,
            PRIMARY KEY (enterprise, external_id),
            UNIQUE (enterprise, imsi)
        ) STRICT;
        CREATE TABLE past_psks (
            imsi           TEXT NOT NULL,
            eas_id         TEXT NOT NULL,
            key_identifier INTEGER NOT NULL,
            session_id     INTEGER NOT NULL,
            key_id         INTEGER NOT NULL,
            suite          INTEGER NOT NULL,
            service        TEXT NOT NULL,
            counter_length INTEGER NOT NULL,
            ue_to_eas      INTEGER NOT NULL,
            psk_enc        BLOB NOT NULL,
            created        INTEGER NOT NULL,
            PRIMARY KEY (imsi, eas_id, key_identifier)
        ) STRICT;
        CREATE TABLE audit_log (
            seq            INTEGER PRIMARY KEY AUTOINCREMENT,
            at             INTEGER NOT NULL,
            event          TEXT NOT NULL,
            eas_id         TEXT NOT NULL,
            subject        TEXT NOT NULL,
            key_identifier INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE hse_meta (
            name  TEXT PRIMARY KEY NOT NULL,
            value INTEGER NOT NULL
        ) STRICT;
        """,
        """
        CREATE INDEX uplink_by_imsi ON uplink (imsi);
        CREATE INDEX uplink_by_eas ON uplink (eas_id, seq);
        CREATE INDEX sessions_by_imsi ON sessions (imsi);
        CREATE INDEX external_ids_by_imsi ON external_ids (imsi);
        """,
        """
        ALTER TABLE past_psks ADD COLUMN enterprise_key_id BLOB;
        ALTER TABLE outbox ADD COLUMN imsi TEXT;
        CREATE INDEX outbox_by_imsi ON outbox (imsi);
        UPDATE outbox SET imsi = (SELECT s.imsi FROM sessions s WHERE s.session_id = outbox.session_id);
        CREATE TABLE enterprise_key_ids (
            imsi       TEXT NOT NULL,
            eas_id     TEXT NOT NULL,
            identifier BLOB NOT NULL,
            PRIMARY KEY (imsi, eas_id)
        ) STRICT;
        """,
        // Version 5: no index of uplink by IMSI. Each stored message put an entry in that subscriber's part of the index, so
        // a group commit rewrote one index page per device in it (2 KB and more of WAL per message, the write rate that
        // limited stored uplink). Removing a subscriber now deletes its uplink by ranges of the table instead (Remove).
        """
        DROP INDEX uplink_by_imsi;
        """,
    ];

    private readonly string _connectionString;
    private readonly MasterKey _masterKey;

    private readonly string _path;

    private SqliteSubscriberStore(string path, MasterKey masterKey)
    {
        _path = path;
        _connectionString = new SqliteConnectionStringBuilder { DataSource = path, Pooling = true, DefaultTimeout = 30 }.ToString();
        _masterKey = masterKey;
    }

    /// <summary>The schema version this code writes.</summary>
    public static int SchemaVersion => Migrations.Length;

    /// <summary>Opens (creating and migrating when needed) <c>openbest.db</c> in <paramref name="dataDirectory"/>.</summary>
    public static SqliteSubscriberStore Open(string dataDirectory, MasterKey masterKey)
    {
        ArgumentNullException.ThrowIfNull(masterKey);
        Directory.CreateDirectory(dataDirectory);
        var store = new SqliteSubscriberStore(Path.Combine(dataDirectory, FileName), masterKey);
        store.Migrate();
        return store;
    }

    /// <inheritdoc/>
    public void Add(IReadOnlyList<NewSubscriber> subscribers)
    {
        ArgumentNullException.ThrowIfNull(subscribers);
        using var connection = Connect();
        using var transaction = connection.BeginTransaction();
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = "INSERT INTO subscribers (imsi, k_enc, opc_enc, amf, seq_he, created) VALUES ($imsi, $k, $opc, $amf, 0, $created)";
        var imsi = command.Parameters.Add("$imsi", SqliteType.Text);
        var k = command.Parameters.Add("$k", SqliteType.Blob);
        var opc = command.Parameters.Add("$opc", SqliteType.Blob);
        var amf = command.Parameters.Add("$amf", SqliteType.Integer);
        command.Parameters.AddWithValue("$created", DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture));
        foreach (var subscriber in subscribers)
        {
            imsi.Value = subscriber.Imsi;
            k.Value = SubscriberSealing.Seal(_masterKey, subscriber.Imsi, "k", subscriber.K);
            opc.Value = SubscriberSealing.Seal(_masterKey, subscriber.Imsi, "opc", subscriber.Opc);
            amf.Value = (int)subscriber.Amf;
            try
            {
                command.ExecuteNonQuery();
            }
            catch (SqliteException e) when (e.SqliteErrorCode == 19)
            {
                throw new DuplicateSubscriberException(subscriber.Imsi);
            }
        }

        transaction.Commit();
    }

    /// <inheritdoc/>
    public bool Remove(string imsi)
    {
        // Stored uplink has no index by subscriber (schema version 5): it goes range by range of the table, each range a short
        // transaction of its own, so a running HSE's commits never wait long behind the removal.
        long last;
        using (var ranges = Connect())
        {
            using var max = ranges.CreateCommand();
            max.CommandText = "SELECT COALESCE(MAX(seq), 0) FROM uplink";
            last = Convert.ToInt64(max.ExecuteScalar(), CultureInfo.InvariantCulture);
            using var range = ranges.CreateCommand();
            range.CommandText = "DELETE FROM uplink WHERE seq > $from AND seq <= $to AND imsi = $imsi";
            range.Parameters.AddWithValue("$imsi", imsi);
            var from = range.Parameters.Add("$from", SqliteType.Integer);
            var to = range.Parameters.Add("$to", SqliteType.Integer);
            for (var start = 0L; start < last; start += 100_000)
            {
                from.Value = start;
                to.Value = Math.Min(last, start + 100_000);
                range.ExecuteNonQuery();
            }
        }

        // Everything else of the subscriber goes with it in one transaction: sessions (and their queues), uplink stored since,
        // its outbox, kept PSKs, external ids, Enterprise Key Identifiers.
        using var connection = Connect();
        using var transaction = connection.BeginTransaction();
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.Parameters.AddWithValue("$imsi", imsi);
        foreach (var table in new[] { "sessions", "past_psks", "external_ids", "outbox", "enterprise_key_ids" })
        {
            command.CommandText = $"DELETE FROM {table} WHERE imsi = $imsi";
            command.ExecuteNonQuery();
        }

        command.CommandText = "DELETE FROM uplink WHERE seq > $last AND imsi = $imsi";
        command.Parameters.AddWithValue("$last", last);
        command.ExecuteNonQuery();

        command.CommandText = "DELETE FROM subscribers WHERE imsi = $imsi";
        var removed = command.ExecuteNonQuery() == 1;
        transaction.Commit();
        return removed;
    }

    /// <inheritdoc/>
    public IReadOnlyList<SubscriberInfo> List()
    {
        using var connection = Connect();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT imsi, amf, seq_he FROM subscribers ORDER BY imsi";
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
        using var connection = Connect();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT k_enc, opc_enc, amf FROM subscribers WHERE imsi = $imsi";
        command.Parameters.AddWithValue("$imsi", imsi);
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
        // Not synced on its own: the WAL is synced by the next group commit, which comes before the vector's Session
        // Start leaves. A block lost to a power cut is issued again, which the USIM's freshness check rejects (a
        // resynchronisation), never a repeated keystream: RAND differs.
        using var connection = Connect(durable: false);
        using var command = connection.CreateCommand();
        command.CommandText = "UPDATE subscribers SET seq_he = seq_he + $n WHERE imsi = $imsi RETURNING seq_he";
        command.Parameters.AddWithValue("$imsi", imsi);
        command.Parameters.AddWithValue("$n", count);
        return command.ExecuteScalar() is long seq ? (ulong)seq : null;
    }

    /// <inheritdoc/>
    public ulong? SeqHe(string imsi)
    {
        using var connection = Connect();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT seq_he FROM subscribers WHERE imsi = $imsi";
        command.Parameters.AddWithValue("$imsi", imsi);
        return command.ExecuteScalar() is long seq ? (ulong)seq : null;
    }

    /// <inheritdoc/>
    public bool TrySetSeqHe(string imsi, ulong expected, ulong seqHe)
    {
        using var connection = Connect();
        using var command = connection.CreateCommand();
        command.CommandText = "UPDATE subscribers SET seq_he = $seq WHERE imsi = $imsi AND seq_he = $expected";
        command.Parameters.AddWithValue("$imsi", imsi);
        command.Parameters.AddWithValue("$seq", (long)seqHe);
        command.Parameters.AddWithValue("$expected", (long)expected);
        return command.ExecuteNonQuery() == 1;
    }

    /// <summary>Closes the pooled connections (the master key belongs to the caller).</summary>
    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
    }

    private SqliteConnection Connect(bool durable = true)
    {
        var connection = new SqliteConnection(_connectionString);
        connection.Open();
        using var pragma = connection.CreateCommand();
        pragma.CommandText = durable
            ? "PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;"
            : "PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";
        pragma.ExecuteNonQuery();
        return connection;
    }

    private void Migrate()
    {
        using var connection = Connect();
        using (var wal = connection.CreateCommand())
        {
            wal.CommandText = "PRAGMA journal_mode = WAL;";
            wal.ExecuteNonQuery();
        }

        using var transaction = connection.BeginTransaction();
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL) STRICT; SELECT COALESCE(MAX(version), 0) FROM schema_version;";
        var version = Convert.ToInt32(command.ExecuteScalar(), CultureInfo.InvariantCulture);
        if (version > Migrations.Length)
        {
            throw new InvalidOperationException($"The database has schema version {version}, newer than this program's {Migrations.Length}.");
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
