using Microsoft.Data.Sqlite;
using OpenBest.Sessions;

namespace OpenBest.Storage;

public sealed partial class SqliteSubscriberStore
{
    /// <inheritdoc/>
    public IDisposable AcquireHseLease()
    {
        var path = _path + ".hse-lock";
        try
        {
            // An exclusive lock on a file beside the database (flock on Linux): released when the process ends, even by kill -9.
            return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
        }
        catch (IOException)
        {
            throw new InvalidOperationException($"another HSE is running on {_path} (one HSE process per database)");
        }
    }

    /// <inheritdoc/>
    public void Commit(HseBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        if (batch.Fence is not null)
        {
            throw new NotSupportedException("An HSE cluster runs on PostgreSQL: the SQLite store has no shards.");
        }

        if (batch.IsEmpty)
        {
            return;
        }

        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        using var connection = Connect();
        using var transaction = connection.BeginTransaction();
        if (batch.Saved.Count > 0 || batch.Ended.Count > 0)
        {
            using var upsert = Command(connection, transaction, "INSERT INTO sessions (session_id, imsi, eas_id, suspended, state_enc, updated) VALUES ($id, $imsi, $eas, $suspended, $state, $now) ON CONFLICT (session_id) DO UPDATE SET imsi = excluded.imsi, eas_id = excluded.eas_id, suspended = excluded.suspended, state_enc = excluded.state_enc, updated = excluded.updated");
            using var clearQueue = Command(connection, transaction, "DELETE FROM downlink_queue WHERE session_id = $id");
            using var enqueue = Command(connection, transaction, "INSERT INTO downlink_queue (session_id, position, payload, ack_requested, expires) VALUES ($id, $position, $payload, $ack, $expires)");
            foreach (var saved in batch.Saved)
            {
                Bind(upsert, ("$id", (long)saved.SessionId), ("$imsi", saved.Imsi), ("$eas", saved.EasId), ("$suspended", saved.Suspended ? 1 : 0),
                    ("$state", _masterKey.Seal(saved.State, StateSealing.SessionContext(saved.SessionId))), ("$now", now));
                upsert.ExecuteNonQuery();
                Bind(clearQueue, ("$id", (long)saved.SessionId));
                clearQueue.ExecuteNonQuery();
                for (var i = 0; i < saved.Queue.Count; i++)
                {
                    var queued = saved.Queue[i];
                    Bind(enqueue, ("$id", (long)saved.SessionId), ("$position", i), ("$payload", queued.Payload.ToArray()), ("$ack", queued.AckRequested ? 1 : 0), ("$expires", queued.Expires.ToUnixTimeMilliseconds()));
                    enqueue.ExecuteNonQuery();
                }
            }

            using var delete = Command(connection, transaction, "DELETE FROM sessions WHERE session_id = $id");
            foreach (var id in batch.Ended)
            {
                Bind(delete, ("$id", (long)id));
                delete.ExecuteNonQuery();
            }
        }

        if (batch.Uplinks.Count > 0)
        {
            using var insert = Command(connection, transaction, "INSERT INTO uplink (session_id, imsi, eas_id, key_id, counter, payload, received) VALUES ($id, $imsi, $eas, $key, $counter, $payload, $at)");
            foreach (var uplink in batch.Uplinks)
            {
                Bind(insert, ("$id", (long)uplink.SessionId), ("$imsi", uplink.Imsi), ("$eas", uplink.EasId), ("$key", (int)uplink.KeyId), ("$counter", (long)uplink.Counter),
                    ("$payload", uplink.Payload.ToArray()), ("$at", uplink.ReceivedAt.ToUnixTimeMilliseconds()));
                insert.ExecuteNonQuery();
            }
        }

        if (batch.Outbox.Count > 0)
        {
            using var insert = Command(connection, transaction, "INSERT INTO outbox (eas_id, session_id, message, next_attempt, imsi) VALUES ($eas, $id, $message, $now, $imsi)");
            foreach (var item in batch.Outbox)
            {
                Bind(insert, ("$eas", item.EasId), ("$id", (long)item.SessionId), ("$message", item.Message.ToArray()), ("$now", now), ("$imsi", (object?)item.Imsi ?? DBNull.Value));
                insert.ExecuteNonQuery();
            }
        }

        if (batch.NextSessionId != 0)
        {
            using var meta = Command(connection, transaction, "INSERT INTO hse_meta (name, value) VALUES ('next_session_id', $v) ON CONFLICT (name) DO UPDATE SET value = MAX(value, excluded.value)");
            Bind(meta, ("$v", (long)batch.NextSessionId));
            meta.ExecuteNonQuery();
        }

        transaction.Commit();
    }

    /// <inheritdoc/>
    public IReadOnlyList<HseSessionSnapshot> LoadSessions()
    {
        using var connection = Connect();
        var queues = new Dictionary<uint, List<QueuedDownlink>>();
        using (var q = Command(connection, null, "SELECT session_id, payload, ack_requested, expires FROM downlink_queue ORDER BY session_id, position"))
        using (var reader = q.ExecuteReader())
        {
            while (reader.Read())
            {
                var id = (uint)reader.GetInt64(0);
                if (!queues.TryGetValue(id, out var list))
                {
                    queues[id] = list = [];
                }

                list.Add(new QueuedDownlink((byte[])reader[1], reader.GetInt64(2) != 0, DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(3))));
            }
        }

        var result = new List<HseSessionSnapshot>();
        using var command = Command(connection, null, "SELECT session_id, imsi, eas_id, suspended, state_enc FROM sessions ORDER BY session_id");
        using var rows = command.ExecuteReader();
        while (rows.Read())
        {
            var id = (uint)rows.GetInt64(0);
            var state = StateSealing.Open(_masterKey, (byte[])rows[4], StateSealing.SessionContext(id), $"The state of session {id}");
            result.Add(new HseSessionSnapshot(id, rows.GetString(1), rows.GetString(2), rows.GetInt64(3) != 0, state, queues.GetValueOrDefault(id) ?? []));
        }

        return result;
    }

    /// <inheritdoc/>
    public uint LoadNextSessionId()
    {
        using var connection = Connect();
        using var command = Command(connection, null, "SELECT value FROM hse_meta WHERE name = 'next_session_id'");
        return command.ExecuteScalar() is long v ? (uint)v : 1;
    }

    /// <inheritdoc/>
    public IReadOnlyList<StoredUplink> Uplinks(long afterSeq, int limit, string? easId = null)
    {
        using var connection = Connect();
        using var command = Command(connection, null, "SELECT seq, session_id, imsi, eas_id, key_id, counter, payload, received FROM uplink WHERE seq > $after AND ($eas = '' OR eas_id = $eas) ORDER BY seq LIMIT $limit");
        Bind(command, ("$after", afterSeq), ("$limit", limit), ("$eas", easId ?? string.Empty));
        using var reader = command.ExecuteReader();
        var result = new List<StoredUplink>();
        while (reader.Read())
        {
            result.Add(new StoredUplink(reader.GetInt64(0), (uint)reader.GetInt64(1), reader.GetString(2), reader.GetString(3), (byte)reader.GetInt64(4), (ulong)reader.GetInt64(5), (byte[])reader[6], DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(7))));
        }

        return result;
    }

    /// <inheritdoc/>
    public IReadOnlyList<OutboxEntry> DueOutbox(string easId, DateTimeOffset now, int limit)
    {
        using var connection = Connect();
        using var command = Command(connection, null, "SELECT seq, eas_id, session_id, message, attempts, next_attempt, imsi FROM outbox WHERE eas_id = $eas ORDER BY seq LIMIT $limit");
        Bind(command, ("$eas", easId), ("$now", now.ToUnixTimeMilliseconds()), ("$limit", limit));
        using var reader = command.ExecuteReader();
        var result = new List<OutboxEntry>();
        while (reader.Read())
        {
            // In order: the head waits for its next attempt, and nothing behind it overtakes it.
            if (reader.GetInt64(5) > now.ToUnixTimeMilliseconds())
            {
                break;
            }

            result.Add(new OutboxEntry(reader.GetInt64(0), reader.GetString(1), (uint)reader.GetInt64(2), (byte[])reader[3], (int)reader.GetInt64(4), DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(5)), reader.IsDBNull(6) ? null : reader.GetString(6)));
        }

        return result;
    }

    /// <inheritdoc/>
    public void OutboxDelivered(long seq) => Execute("DELETE FROM outbox WHERE seq = $seq", ("$seq", seq));

    /// <inheritdoc/>
    public void OutboxRetry(long seq, DateTimeOffset nextAttempt) =>
        Execute("UPDATE outbox SET attempts = attempts + 1, next_attempt = $next WHERE seq = $seq", ("$seq", seq), ("$next", nextAttempt.ToUnixTimeMilliseconds()));

    /// <inheritdoc/>
    public void RegisterEas(EasRegistration registration)
    {
        ArgumentNullException.ThrowIfNull(registration);
        Execute("INSERT INTO eas_registrations (eas_id, registration_id, endpoint, registered) VALUES ($eas, $reg, $endpoint, $at) ON CONFLICT (eas_id) DO UPDATE SET registration_id = excluded.registration_id, endpoint = excluded.endpoint, registered = excluded.registered",
            ("$eas", registration.EasId), ("$reg", registration.RegistrationId), ("$endpoint", registration.Endpoint), ("$at", registration.RegisteredAt.ToUnixTimeMilliseconds()));
        Execute("UPDATE outbox SET next_attempt = 0 WHERE eas_id = $eas", ("$eas", registration.EasId));
    }

    /// <inheritdoc/>
    public bool DeregisterEas(string easId) => Execute("DELETE FROM eas_registrations WHERE eas_id = $eas", ("$eas", easId)) == 1;

    /// <inheritdoc/>
    public IReadOnlyList<EasRegistration> EasRegistrations()
    {
        using var connection = Connect();
        using var command = Command(connection, null, "SELECT eas_id, registration_id, endpoint, registered FROM eas_registrations ORDER BY eas_id");
        using var reader = command.ExecuteReader();
        var result = new List<EasRegistration>();
        while (reader.Read())
        {
            result.Add(new EasRegistration(reader.GetString(0), reader.GetString(1), reader.GetString(2), DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(3))));
        }

        return result;
    }

    /// <inheritdoc/>
    public void SetExternalId(string enterprise, string externalId, string imsi)
    {
        using var connection = Connect();
        using var transaction = connection.BeginTransaction();
        using (var delete = Command(connection, transaction, "DELETE FROM external_ids WHERE enterprise = $e AND (external_id = $x OR imsi = $imsi)"))
        {
            Bind(delete, ("$e", enterprise), ("$x", externalId), ("$imsi", imsi));
            delete.ExecuteNonQuery();
        }

        using (var insert = Command(connection, transaction, "INSERT INTO external_ids (enterprise, external_id, imsi) VALUES ($e, $x, $imsi)"))
        {
            Bind(insert, ("$e", enterprise), ("$x", externalId), ("$imsi", imsi));
            insert.ExecuteNonQuery();
        }

        transaction.Commit();
    }

    /// <inheritdoc/>
    public string? ImsiOf(string enterprise, string externalId) =>
        Scalar("SELECT imsi FROM external_ids WHERE enterprise = $e AND external_id = $x", ("$e", enterprise), ("$x", externalId)) as string;

    /// <inheritdoc/>
    public string? ExternalIdOf(string enterprise, string imsi) =>
        Scalar("SELECT external_id FROM external_ids WHERE enterprise = $e AND imsi = $imsi", ("$e", enterprise), ("$imsi", imsi)) as string;

    /// <inheritdoc/>
    public void SetEnterpriseKeyIdentifier(string imsi, string easId, byte[]? identifier)
    {
        if (identifier is null)
        {
            Execute("DELETE FROM enterprise_key_ids WHERE imsi = $imsi AND eas_id = $eas", ("$imsi", imsi), ("$eas", easId));
            return;
        }

        Execute("INSERT INTO enterprise_key_ids (imsi, eas_id, identifier) VALUES ($imsi, $eas, $id) ON CONFLICT (imsi, eas_id) DO UPDATE SET identifier = excluded.identifier", ("$imsi", imsi), ("$eas", easId), ("$id", identifier));
    }

    /// <inheritdoc/>
    public byte[]? EnterpriseKeyIdentifierOf(string imsi, string easId) =>
        Scalar("SELECT identifier FROM enterprise_key_ids WHERE imsi = $imsi AND eas_id = $eas", ("$imsi", imsi), ("$eas", easId)) as byte[];

    /// <inheritdoc/>
    public void SavePsk(PastPsk psk)
    {
        ArgumentNullException.ThrowIfNull(psk);
        using var connection = Connect();
        using var transaction = connection.BeginTransaction();
        using (var insert = Command(connection, transaction, "INSERT INTO past_psks (imsi, eas_id, key_identifier, session_id, key_id, suite, service, counter_length, ue_to_eas, psk_enc, created, enterprise_key_id) VALUES ($imsi, $eas, $kid, $sid, $key, $suite, $service, $n, $e2e, $psk, $at, $eki) ON CONFLICT (imsi, eas_id, key_identifier) DO UPDATE SET session_id = excluded.session_id, key_id = excluded.key_id, suite = excluded.suite, service = excluded.service, counter_length = excluded.counter_length, ue_to_eas = excluded.ue_to_eas, psk_enc = excluded.psk_enc, created = excluded.created, enterprise_key_id = excluded.enterprise_key_id"))
        {
            Bind(insert, ("$imsi", psk.Imsi), ("$eas", psk.EasId), ("$kid", (long)psk.KeyIdentifier), ("$sid", (long)psk.SessionId), ("$key", (int)psk.KeyId), ("$suite", (int)psk.Suite), ("$service", psk.Service), ("$n", psk.CounterLength), ("$e2e", psk.UeToEasMode ? 1 : 0),
                ("$psk", _masterKey.Seal(psk.Psk, StateSealing.PskContext(psk.Imsi, psk.EasId, psk.KeyIdentifier))), ("$at", psk.CreatedAt.ToUnixTimeMilliseconds()), ("$eki", (object?)psk.EnterpriseKeyIdentifier ?? DBNull.Value));
            insert.ExecuteNonQuery();
        }

        using (var trim = Command(connection, transaction, "DELETE FROM past_psks WHERE imsi = $imsi AND eas_id = $eas AND key_identifier NOT IN (SELECT key_identifier FROM past_psks WHERE imsi = $imsi AND eas_id = $eas ORDER BY created DESC, rowid DESC LIMIT $kept)"))
        {
            Bind(trim, ("$imsi", psk.Imsi), ("$eas", psk.EasId), ("$kept", IHseStateStore.PsksPerUeAndEas));
            trim.ExecuteNonQuery();
        }

        transaction.Commit();
    }

    /// <inheritdoc/>
    public IReadOnlyList<PastPsk> Psks(string imsi, string easId)
    {
        using var connection = Connect();
        using var command = Command(connection, null, "SELECT key_identifier, session_id, key_id, psk_enc, created, suite, service, counter_length, ue_to_eas, enterprise_key_id FROM past_psks WHERE imsi = $imsi AND eas_id = $eas ORDER BY created DESC, rowid DESC");
        Bind(command, ("$imsi", imsi), ("$eas", easId));
        using var reader = command.ExecuteReader();
        var result = new List<PastPsk>();
        while (reader.Read())
        {
            var keyIdentifier = (uint)reader.GetInt64(0);
            var psk = StateSealing.Open(_masterKey, (byte[])reader[3], StateSealing.PskContext(imsi, easId, keyIdentifier), $"A PSK of {easId}");
            result.Add(new PastPsk(imsi, easId, keyIdentifier, (uint)reader.GetInt64(1), (byte)reader.GetInt64(2), (byte)reader.GetInt64(5), reader.GetString(6), (int)reader.GetInt64(7), reader.GetInt64(8) != 0, psk, DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(4)), reader.IsDBNull(9) ? null : (byte[])reader[9]));
        }

        return result;
    }

    /// <inheritdoc/>
    public void Audit(string eventName, string easId, string subject, uint keyIdentifier) =>
        Execute("INSERT INTO audit_log (at, event, eas_id, subject, key_identifier) VALUES ($at, $event, $eas, $subject, $kid)",
            ("$at", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()), ("$event", eventName), ("$eas", easId), ("$subject", subject), ("$kid", (long)keyIdentifier));

    /// <inheritdoc/>
    public IReadOnlyList<AuditEntry> AuditLog(int limit)
    {
        using var connection = Connect();
        using var command = Command(connection, null, "SELECT seq, at, event, eas_id, subject, key_identifier FROM audit_log ORDER BY seq DESC LIMIT $limit");
        Bind(command, ("$limit", limit));
        using var reader = command.ExecuteReader();
        var result = new List<AuditEntry>();
        while (reader.Read())
        {
            result.Add(new AuditEntry(reader.GetInt64(0), DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(1)), reader.GetString(2), reader.GetString(3), reader.GetString(4), (uint)reader.GetInt64(5)));
        }

        return result;
    }

    /// <inheritdoc/>
    public bool SetSubscriberServices(string imsi, int? services) =>
        Execute("UPDATE subscribers SET services = $s WHERE imsi = $imsi", ("$imsi", imsi), ("$s", services.HasValue ? services.Value : DBNull.Value)) == 1;

    /// <inheritdoc/>
    public void SetEasServices(string easId, int? services)
    {
        if (services is null)
        {
            Execute("DELETE FROM eas_policies WHERE eas_id = $eas", ("$eas", easId));
        }
        else
        {
            Execute("INSERT INTO eas_policies (eas_id, services) VALUES ($eas, $s) ON CONFLICT (eas_id) DO UPDATE SET services = excluded.services", ("$eas", easId), ("$s", services.Value));
        }
    }

    /// <inheritdoc/>
    public (int? Subscriber, int? Eas) Services(string imsi, string easId)
    {
        var subscriber = Scalar("SELECT services FROM subscribers WHERE imsi = $imsi", ("$imsi", imsi));
        var eas = Scalar("SELECT services FROM eas_policies WHERE eas_id = $eas", ("$eas", easId));
        return (subscriber is long s ? (int)s : null, eas is long e ? (int)e : null);
    }

    private static SqliteCommand Command(SqliteConnection connection, SqliteTransaction? transaction, string sql)
    {
        var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        return command;
    }

    private static void Bind(SqliteCommand command, params (string Name, object Value)[] values)
    {
        foreach (var (name, value) in values)
        {
            if (command.Parameters.Contains(name))
            {
                command.Parameters[name].Value = value;
            }
            else
            {
                command.Parameters.AddWithValue(name, value);
            }
        }
    }

    private int Execute(string sql, params (string Name, object Value)[] values)
    {
        using var connection = Connect();
        using var command = Command(connection, null, sql);
        Bind(command, values);
        return command.ExecuteNonQuery();
    }

    private object? Scalar(string sql, params (string Name, object Value)[] values)
    {
        using var connection = Connect();
        using var command = Command(connection, null, sql);
        Bind(command, values);
        var value = command.ExecuteScalar();
        return value is DBNull ? null : value;
    }
}
