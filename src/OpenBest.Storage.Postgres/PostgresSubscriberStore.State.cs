using Npgsql;
using OpenBest.Sessions;

namespace OpenBest.Storage.Postgres;

public sealed partial class PostgresSubscriberStore
{
    /// <inheritdoc/>
    public IDisposable AcquireHseLease()
    {
        // A session-level advisory lock on a connection of its own (not pooled), kept open: released when the HSE
        // closes it or dies.
        var connection = new NpgsqlConnection(_leaseConnectionString);
        connection.Open();
        using var command = new NpgsqlCommand("SELECT pg_try_advisory_lock(3163001)", connection);
        if (command.ExecuteScalar() is true)
        {
            return new Lease(connection);
        }

        connection.Dispose();
        throw new InvalidOperationException("another HSE is running on this PostgreSQL database (one HSE process per database)");
    }

    /// <inheritdoc/>
    /// <remarks>One round trip: every table's rows go as arrays (UNNEST) in one batch, inside one transaction.</remarks>
    public void Commit(HseBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        // A fenced batch is checked even when empty: its activation sends only what a current epoch answered.
        if (batch.IsEmpty && batch.Fence is null)
        {
            return;
        }

        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        using var connection = _dataSource.OpenConnection();
        using var transaction = connection.BeginTransaction();
        using var commands = new NpgsqlBatch(connection, transaction);
        void Add(string sql, params object[] values)
        {
            var command = new NpgsqlBatchCommand(sql);
            foreach (var value in values)
            {
                command.Parameters.Add(new NpgsqlParameter { Value = value });
            }

            commands.BatchCommands.Add(command);
        }

        // First: the shard's row, locked until the commit, and only while this activation's epoch is the newest (a newer
        // activation's TakeShard waits for this transaction, and after it this update matches no row).
        if (batch.Fence is { } fence)
        {
            Add("UPDATE hse_shards SET next_session_id = GREATEST(next_session_id, $3) WHERE shard = $1 AND epoch = $2", fence.Shard, fence.Epoch, (long)batch.NextSessionId);
        }

        // A retried batch that an earlier attempt wrote after all: its token is there, the insert fails, nothing is written twice.
        var tokenIndex = -1;
        if (batch.CommitToken != Guid.Empty)
        {
            tokenIndex = commands.BatchCommands.Count;
            Add("INSERT INTO hse_commits (token, at) VALUES ($1, now())", batch.CommitToken);
            if (Random.Shared.Next(1000) == 0)
            {
                Add("DELETE FROM hse_commits WHERE at < now() - interval '1 hour'");
            }
        }

        if (batch.Saved.Count > 0)
        {
            var ids = batch.Saved.Select(s => (long)s.SessionId).ToArray();
            Add("INSERT INTO sessions (session_id, imsi, eas_id, suspended, state_enc, updated) SELECT u.*, $6 FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::boolean[], $5::bytea[]) AS u " +
                "ON CONFLICT (session_id) DO UPDATE SET imsi = excluded.imsi, eas_id = excluded.eas_id, suspended = excluded.suspended, state_enc = excluded.state_enc, updated = excluded.updated",
                ids, batch.Saved.Select(s => s.Imsi).ToArray(), batch.Saved.Select(s => s.EasId).ToArray(), batch.Saved.Select(s => s.Suspended).ToArray(),
                batch.Saved.Select(s => _masterKey.Seal(s.State, StateSealing.SessionContext(s.SessionId))).ToArray(), now);
            Add("DELETE FROM downlink_queue WHERE session_id = ANY($1)", ids);
            var queued = batch.Saved.SelectMany(s => s.Queue.Select((q, i) => (s.SessionId, Position: i, q))).ToList();
            if (queued.Count > 0)
            {
                Add("INSERT INTO downlink_queue (session_id, position, payload, ack_requested, expires) SELECT * FROM UNNEST($1::bigint[], $2::integer[], $3::bytea[], $4::boolean[], $5::bigint[])",
                    queued.Select(q => (long)q.SessionId).ToArray(), queued.Select(q => q.Position).ToArray(), queued.Select(q => q.q.Payload.ToArray()).ToArray(),
                    queued.Select(q => q.q.AckRequested).ToArray(), queued.Select(q => q.q.Expires.ToUnixTimeMilliseconds()).ToArray());
            }
        }

        if (batch.Ended.Count > 0)
        {
            Add("DELETE FROM sessions WHERE session_id = ANY($1)", batch.Ended.Select(id => (long)id).ToArray());
        }

        if (batch.Uplinks.Count > 0)
        {
            var u = batch.Uplinks;
            // As for the outbox below: an enterprise's stored uplink commits in sequence order even when a cluster's shards
            // write at once, so an application pulling (or a subscription posting) after a sequence number never misses one.
            Add("SELECT pg_advisory_xact_lock(3163004, h) FROM (SELECT DISTINCT hashtext(e) AS h FROM UNNEST($1::text[]) AS e) AS t ORDER BY h", (object)u.Select(x => x.EasId).Distinct(StringComparer.Ordinal).ToArray());
            Add("INSERT INTO uplink (session_id, imsi, eas_id, key_id, counter, payload, received) SELECT a, b, c, d, e, f, g FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::integer[], $5::bigint[], $6::bytea[], $7::bigint[]) WITH ORDINALITY AS t(a, b, c, d, e, f, g, n) ORDER BY n",
                u.Select(x => (long)x.SessionId).ToArray(), u.Select(x => x.Imsi).ToArray(), u.Select(x => x.EasId).ToArray(), u.Select(x => (int)x.KeyId).ToArray(),
                u.Select(x => (long)x.Counter).ToArray(), u.Select(x => x.Payload.ToArray()).ToArray(), u.Select(x => x.ReceivedAt.ToUnixTimeMilliseconds()).ToArray());
        }

        if (batch.Outbox.Count > 0)
        {
            var o = batch.Outbox;
            // One writer at a time per EAS, until the commit: an EAS's outbox rows commit in the order of their sequence
            // numbers even when several hosts (a cluster's shards) write, so a deliverer that read up to one never finds a
            // smaller one later. Locks are taken in one order; a deadlock all the same fails the commit, which is retried.
            Add("SELECT pg_advisory_xact_lock(3163002, h) FROM (SELECT DISTINCT hashtext(e) AS h FROM UNNEST($1::text[]) AS e) AS t ORDER BY h", (object)o.Select(x => x.EasId).Distinct(StringComparer.Ordinal).ToArray());
            Add("INSERT INTO outbox (eas_id, session_id, message, next_attempt, imsi) SELECT a, b, c, $4, d FROM UNNEST($1::text[], $2::bigint[], $3::bytea[], $5::text[]) WITH ORDINALITY AS t(a, b, c, d, n) ORDER BY n",
                o.Select(x => x.EasId).ToArray(), o.Select(x => (long)x.SessionId).ToArray(), o.Select(x => x.Message.ToArray()).ToArray(), now, o.Select(x => x.Imsi).ToArray());
        }

        if (batch.NextSessionId != 0 && batch.Fence is null)
        {
            Add("INSERT INTO hse_meta (name, value) VALUES ('next_session_id', $1) ON CONFLICT (name) DO UPDATE SET value = GREATEST(hse_meta.value, excluded.value)", (long)batch.NextSessionId);
        }

        try
        {
            commands.ExecuteNonQuery();
        }
        catch (PostgresException e) when (tokenIndex >= 0 && e.SqlState == PostgresErrorCodes.UniqueViolation && e.ConstraintName == "hse_commits_pkey")
        {
            return;
        }

        if (batch.Fence is { } taken && commands.BatchCommands[0].RecordsAffected != 1)
        {
            transaction.Rollback();
            throw new StoreFencedException(taken.Shard, taken.Epoch);
        }

        transaction.Commit();
    }

    /// <inheritdoc/>
    public (long Epoch, uint NextSessionId) TakeShard(int shard, string node)
    {
        ArgumentNullException.ThrowIfNull(node);
        using var connection = _dataSource.OpenConnection();
        using var command = Command(connection, null,
            "INSERT INTO hse_shards (shard, epoch, next_session_id, node, taken) VALUES (@shard, 1, 0, @node, now()) " +
            "ON CONFLICT (shard) DO UPDATE SET epoch = hse_shards.epoch + 1, node = excluded.node, taken = excluded.taken RETURNING epoch, next_session_id");
        Bind(command, ("@shard", shard), ("@node", node));
        using var reader = command.ExecuteReader();
        reader.Read();
        return (reader.GetInt64(0), (uint)reader.GetInt64(1));
    }

    /// <inheritdoc/>
    public int ClusterShards(int proposed)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(proposed);
        using var connection = _dataSource.OpenConnection();
        using var command = Command(connection, null,
            "INSERT INTO hse_meta (name, value) VALUES ('cluster_shards', @shards) ON CONFLICT (name) DO NOTHING; SELECT value FROM hse_meta WHERE name = 'cluster_shards'");
        Bind(command, ("@shards", (long)proposed));
        return (int)(long)command.ExecuteScalar()!;
    }

    /// <inheritdoc/>
    public IReadOnlyList<ShardOwner> ShardOwners()
    {
        using var connection = _dataSource.OpenConnection();
        using var command = Command(connection, null, "SELECT shard, epoch, node, taken FROM hse_shards ORDER BY shard");
        using var reader = command.ExecuteReader();
        var owners = new List<ShardOwner>();
        while (reader.Read())
        {
            owners.Add(new ShardOwner(reader.GetInt32(0), reader.GetInt64(1), reader.GetString(2), new DateTimeOffset(DateTime.SpecifyKind(reader.GetDateTime(3), DateTimeKind.Utc))));
        }

        return owners;
    }

    /// <inheritdoc/>
    public IReadOnlyList<HseSessionSnapshot> LoadSessions(int shard, int shards)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(shards);
        return LoadSessions($"session_id % {shards} = {shard}");
    }

    /// <inheritdoc/>
    public IReadOnlyList<HseSessionSnapshot> LoadSessions() => LoadSessions("true");

    private List<HseSessionSnapshot> LoadSessions(string where)
    {
        using var connection = _dataSource.OpenConnection();
        var queues = new Dictionary<uint, List<QueuedDownlink>>();
        using (var q = Command(connection, null, $"SELECT session_id, payload, ack_requested, expires FROM downlink_queue WHERE {where} ORDER BY session_id, position"))
        using (var reader = q.ExecuteReader())
        {
            while (reader.Read())
            {
                var id = (uint)reader.GetInt64(0);
                if (!queues.TryGetValue(id, out var list))
                {
                    queues[id] = list = [];
                }

                list.Add(new QueuedDownlink((byte[])reader[1], reader.GetBoolean(2), DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(3))));
            }
        }

        var result = new List<HseSessionSnapshot>();
        using var command = Command(connection, null, $"SELECT session_id, imsi, eas_id, suspended, state_enc FROM sessions WHERE {where} ORDER BY session_id");
        using var rows = command.ExecuteReader();
        while (rows.Read())
        {
            var id = (uint)rows.GetInt64(0);
            var state = StateSealing.Open(_masterKey, (byte[])rows[4], StateSealing.SessionContext(id), $"The state of session {id}");
            result.Add(new HseSessionSnapshot(id, rows.GetString(1), rows.GetString(2), rows.GetBoolean(3), state, queues.GetValueOrDefault(id) ?? []));
        }

        return result;
    }

    /// <inheritdoc/>
    public uint LoadNextSessionId()
    {
        using var connection = _dataSource.OpenConnection();
        using var command = Command(connection, null, "SELECT value FROM hse_meta WHERE name = 'next_session_id'");
        return command.ExecuteScalar() is long v ? (uint)v : 1;
    }

    /// <inheritdoc/>
    public IReadOnlyList<StoredUplink> Uplinks(long afterSeq, int limit, string? easId = null)
    {
        using var connection = _dataSource.OpenConnection();
        using var command = Command(connection, null, "SELECT seq, session_id, imsi, eas_id, key_id, counter, payload, received FROM uplink WHERE seq > @after AND (@eas = '' OR eas_id = @eas) ORDER BY seq LIMIT @limit");
        Bind(command, ("@after", afterSeq), ("@limit", limit), ("@eas", easId ?? string.Empty));
        using var reader = command.ExecuteReader();
        var result = new List<StoredUplink>();
        while (reader.Read())
        {
            result.Add(new StoredUplink(reader.GetInt64(0), (uint)reader.GetInt64(1), reader.GetString(2), reader.GetString(3), (byte)reader.GetInt32(4), (ulong)reader.GetInt64(5), (byte[])reader[6], DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(7))));
        }

        return result;
    }

    /// <inheritdoc/>
    public IReadOnlyList<OutboxEntry> DueOutbox(string easId, DateTimeOffset now, int limit)
    {
        using var connection = _dataSource.OpenConnection();
        using var command = Command(connection, null, "SELECT seq, eas_id, session_id, message, attempts, next_attempt, imsi FROM outbox WHERE eas_id = @eas ORDER BY seq LIMIT @limit");
        Bind(command, ("@eas", easId), ("@now", now.ToUnixTimeMilliseconds()), ("@limit", limit));
        using var reader = command.ExecuteReader();
        var result = new List<OutboxEntry>();
        while (reader.Read())
        {
            // In order: the head waits for its next attempt, and nothing behind it overtakes it.
            if (reader.GetInt64(5) > now.ToUnixTimeMilliseconds())
            {
                break;
            }

            result.Add(new OutboxEntry(reader.GetInt64(0), reader.GetString(1), (uint)reader.GetInt64(2), (byte[])reader[3], reader.GetInt32(4), DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(5)), reader.IsDBNull(6) ? null : reader.GetString(6)));
        }

        return result;
    }

    /// <inheritdoc/>
    public void OutboxDelivered(long seq) => Execute("DELETE FROM outbox WHERE seq = @seq", ("@seq", seq));

    /// <inheritdoc/>
    public void OutboxRetry(long seq, DateTimeOffset nextAttempt) =>
        Execute("UPDATE outbox SET attempts = attempts + 1, next_attempt = @next WHERE seq = @seq", ("@seq", seq), ("@next", nextAttempt.ToUnixTimeMilliseconds()));

    /// <inheritdoc/>
    public void RegisterEas(EasRegistration registration)
    {
        ArgumentNullException.ThrowIfNull(registration);
        Execute("INSERT INTO eas_registrations (eas_id, registration_id, endpoint, registered) VALUES (@eas, @reg, @endpoint, @at) ON CONFLICT (eas_id) DO UPDATE SET registration_id = excluded.registration_id, endpoint = excluded.endpoint, registered = excluded.registered",
            ("@eas", registration.EasId), ("@reg", registration.RegistrationId), ("@endpoint", registration.Endpoint), ("@at", registration.RegisteredAt.ToUnixTimeMilliseconds()));
        Execute("UPDATE outbox SET next_attempt = 0 WHERE eas_id = @eas", ("@eas", registration.EasId));
    }

    /// <inheritdoc/>
    public bool DeregisterEas(string easId) => Execute("DELETE FROM eas_registrations WHERE eas_id = @eas", ("@eas", easId)) == 1;

    /// <inheritdoc/>
    public IReadOnlyList<EasRegistration> EasRegistrations()
    {
        using var connection = _dataSource.OpenConnection();
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
        using var connection = _dataSource.OpenConnection();
        using var transaction = connection.BeginTransaction();
        using (var delete = Command(connection, transaction, "DELETE FROM external_ids WHERE enterprise = @e AND (external_id = @x OR imsi = @imsi)"))
        {
            Bind(delete, ("@e", enterprise), ("@x", externalId), ("@imsi", imsi));
            delete.ExecuteNonQuery();
        }

        using (var insert = Command(connection, transaction, "INSERT INTO external_ids (enterprise, external_id, imsi) VALUES (@e, @x, @imsi)"))
        {
            Bind(insert, ("@e", enterprise), ("@x", externalId), ("@imsi", imsi));
            insert.ExecuteNonQuery();
        }

        transaction.Commit();
    }

    /// <inheritdoc/>
    public string? ImsiOf(string enterprise, string externalId) =>
        Scalar("SELECT imsi FROM external_ids WHERE enterprise = @e AND external_id = @x", ("@e", enterprise), ("@x", externalId)) as string;

    /// <inheritdoc/>
    public string? ExternalIdOf(string enterprise, string imsi) =>
        Scalar("SELECT external_id FROM external_ids WHERE enterprise = @e AND imsi = @imsi", ("@e", enterprise), ("@imsi", imsi)) as string;

    /// <inheritdoc/>
    public void SetEnterpriseKeyIdentifier(string imsi, string easId, byte[]? identifier)
    {
        if (identifier is null)
        {
            Execute("DELETE FROM enterprise_key_ids WHERE imsi = @imsi AND eas_id = @eas", ("@imsi", imsi), ("@eas", easId));
            return;
        }

        Execute("INSERT INTO enterprise_key_ids (imsi, eas_id, identifier) VALUES (@imsi, @eas, @id) ON CONFLICT (imsi, eas_id) DO UPDATE SET identifier = excluded.identifier", ("@imsi", imsi), ("@eas", easId), ("@id", identifier));
    }

    /// <inheritdoc/>
    public byte[]? EnterpriseKeyIdentifierOf(string imsi, string easId) =>
        Scalar("SELECT identifier FROM enterprise_key_ids WHERE imsi = @imsi AND eas_id = @eas", ("@imsi", imsi), ("@eas", easId)) as byte[];

    /// <inheritdoc/>
    public void SavePsk(PastPsk psk)
    {
        ArgumentNullException.ThrowIfNull(psk);
        using var connection = _dataSource.OpenConnection();
        using var transaction = connection.BeginTransaction();
        using (var insert = Command(connection, transaction, "INSERT INTO past_psks (imsi, eas_id, key_identifier, session_id, key_id, suite, service, counter_length, ue_to_eas, psk_enc, created, enterprise_key_id) VALUES (@imsi, @eas, @kid, @sid, @key, @suite, @service, @n, @e2e, @psk, @at, @eki) ON CONFLICT (imsi, eas_id, key_identifier) DO UPDATE SET session_id = excluded.session_id, key_id = excluded.key_id, suite = excluded.suite, service = excluded.service, counter_length = excluded.counter_length, ue_to_eas = excluded.ue_to_eas, psk_enc = excluded.psk_enc, created = excluded.created, enterprise_key_id = excluded.enterprise_key_id"))
        {
            Bind(insert, ("@imsi", psk.Imsi), ("@eas", psk.EasId), ("@kid", (long)psk.KeyIdentifier), ("@sid", (long)psk.SessionId), ("@key", (int)psk.KeyId), ("@suite", (int)psk.Suite), ("@service", psk.Service), ("@n", psk.CounterLength), ("@e2e", psk.UeToEasMode),
                ("@psk", _masterKey.Seal(psk.Psk, StateSealing.PskContext(psk.Imsi, psk.EasId, psk.KeyIdentifier))), ("@at", psk.CreatedAt.ToUnixTimeMilliseconds()), ("@eki", (object?)psk.EnterpriseKeyIdentifier ?? DBNull.Value));
            insert.ExecuteNonQuery();
        }

        using (var trim = Command(connection, transaction, "DELETE FROM past_psks WHERE imsi = @imsi AND eas_id = @eas AND key_identifier NOT IN (SELECT key_identifier FROM past_psks WHERE imsi = @imsi AND eas_id = @eas ORDER BY created DESC, added DESC LIMIT @kept)"))
        {
            Bind(trim, ("@imsi", psk.Imsi), ("@eas", psk.EasId), ("@kept", IHseStateStore.PsksPerUeAndEas));
            trim.ExecuteNonQuery();
        }

        transaction.Commit();
    }

    /// <inheritdoc/>
    public IReadOnlyList<PastPsk> Psks(string imsi, string easId)
    {
        using var connection = _dataSource.OpenConnection();
        using var command = Command(connection, null, "SELECT key_identifier, session_id, key_id, psk_enc, created, suite, service, counter_length, ue_to_eas, enterprise_key_id FROM past_psks WHERE imsi = @imsi AND eas_id = @eas ORDER BY created DESC, added DESC");
        Bind(command, ("@imsi", imsi), ("@eas", easId));
        using var reader = command.ExecuteReader();
        var result = new List<PastPsk>();
        while (reader.Read())
        {
            var keyIdentifier = (uint)reader.GetInt64(0);
            var psk = StateSealing.Open(_masterKey, (byte[])reader[3], StateSealing.PskContext(imsi, easId, keyIdentifier), $"A PSK of {easId}");
            result.Add(new PastPsk(imsi, easId, keyIdentifier, (uint)reader.GetInt64(1), (byte)reader.GetInt32(2), (byte)reader.GetInt32(5), reader.GetString(6), reader.GetInt32(7), reader.GetBoolean(8), psk, DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(4)), reader.IsDBNull(9) ? null : (byte[])reader[9]));
        }

        return result;
    }

    /// <inheritdoc/>
    public void Audit(string eventName, string easId, string subject, uint keyIdentifier) =>
        Execute("INSERT INTO audit_log (at, event, eas_id, subject, key_identifier) VALUES (@at, @event, @eas, @subject, @kid)",
            ("@at", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()), ("@event", eventName), ("@eas", easId), ("@subject", subject), ("@kid", (long)keyIdentifier));

    /// <inheritdoc/>
    public IReadOnlyList<AuditEntry> AuditLog(int limit)
    {
        using var connection = _dataSource.OpenConnection();
        using var command = Command(connection, null, "SELECT seq, at, event, eas_id, subject, key_identifier FROM audit_log ORDER BY seq DESC LIMIT @limit");
        Bind(command, ("@limit", limit));
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
        Execute("UPDATE subscribers SET services = @s WHERE imsi = @imsi", ("@imsi", imsi), ("@s", services.HasValue ? services.Value : DBNull.Value)) == 1;

    /// <inheritdoc/>
    public void SetEasServices(string easId, int? services)
    {
        if (services is null)
        {
            Execute("DELETE FROM eas_policies WHERE eas_id = @eas", ("@eas", easId));
        }
        else
        {
            Execute("INSERT INTO eas_policies (eas_id, services) VALUES (@eas, @s) ON CONFLICT (eas_id) DO UPDATE SET services = excluded.services", ("@eas", easId), ("@s", services.Value));
        }
    }

    /// <inheritdoc/>
    public (int? Subscriber, int? Eas) Services(string imsi, string easId)
    {
        var subscriber = Scalar("SELECT services FROM subscribers WHERE imsi = @imsi", ("@imsi", imsi));
        var eas = Scalar("SELECT services FROM eas_policies WHERE eas_id = @eas", ("@eas", easId));
        return (subscriber is int s ? s : null, eas is int e ? e : null);
    }

    private static NpgsqlCommand Command(NpgsqlConnection connection, NpgsqlTransaction? transaction, string sql)
    {
        return new NpgsqlCommand(sql, connection, transaction);
    }

    private static void Bind(NpgsqlCommand command, params (string Name, object Value)[] values)
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
        using var connection = _dataSource.OpenConnection();
        using var command = Command(connection, null, sql);
        Bind(command, values);
        return command.ExecuteNonQuery();
    }

    private object? Scalar(string sql, params (string Name, object Value)[] values)
    {
        using var connection = _dataSource.OpenConnection();
        using var command = Command(connection, null, sql);
        Bind(command, values);
        var value = command.ExecuteScalar();
        return value is DBNull ? null : value;
    }

    /// <summary>The lease's connection: released explicitly on dispose, so the next HSE gets it at once (closing alone frees it only when the server's backend ends).</summary>
    private sealed class Lease(NpgsqlConnection connection) : IDisposable
    {
        public void Dispose()
        {
            try
            {
                using var unlock = new NpgsqlCommand("SELECT pg_advisory_unlock(3163001)", connection);
                unlock.ExecuteScalar();
            }
            catch (Exception e) when (e is NpgsqlException or InvalidOperationException)
            {
                // The connection is gone already: the server released the lock with it.
            }

            connection.Dispose();
        }
    }
}
