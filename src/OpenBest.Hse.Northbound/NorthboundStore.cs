using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace OpenBest.Hse.Northbound;

/// <summary>A subscription to the northbound notifications: uplink messages, or session and delivery events.</summary>
/// <param name="Id">The resource id.</param>
/// <param name="Enterprise">The enterprise (EAS Id) it belongs to.</param>
/// <param name="Kind">"UPLINK" or "EVENTS".</param>
/// <param name="Destination">The notificationDestination callback URI.</param>
/// <param name="Cursor">The last sequence number the destination acknowledged (2xx).</param>
/// <param name="Created">When it was created.</param>
public sealed record NorthboundSubscription(string Id, string Enterprise, string Kind, string Destination, long Cursor, DateTimeOffset Created);

/// <summary>A downlink message, push message or session request an application asked for, and its delivery status.</summary>
/// <param name="Id">The resource id.</param>
/// <param name="Enterprise">The enterprise it belongs to.</param>
/// <param name="Kind">"DOWNLINK", "PUSH", "MGMT" or "SESSION_REQUEST".</param>
/// <param name="ExternalId">The device's external identifier for this enterprise.</param>
/// <param name="Port">The application port (push and management messages), else 0.</param>
/// <param name="Status">BUFFERED, DELIVERED, EXPIRED or FAILED (session requests: REQUESTED, STARTED, EXPIRED, FAILED).</param>
/// <param name="Cause">Why it FAILED or EXPIRED, else null.</param>
/// <param name="SessionId">The session it went on (0 when none yet).</param>
/// <param name="Created">When it was asked for.</param>
/// <param name="Deadline">When it expires if not delivered (the maximum latency or time to live).</param>
/// <param name="Updated">When its status last changed.</param>
public sealed record NorthboundDelivery(string Id, string Enterprise, string Kind, string ExternalId, int Port, string Status, string? Cause, long SessionId, DateTimeOffset Created, DateTimeOffset Deadline, DateTimeOffset Updated);

/// <summary>
/// The northbound API's durable state: OAuth clients, subscriptions with their cursors, the event outbox, deliveries.
/// SQLite (a file of its own, northbound.db, beside the HSE's database, so API traffic never waits on the HSE's group
/// commit) or the HSE's PostgreSQL database (tables nb_*). The SQL is the common subset of both; only the types of
/// the generated keys differ.
/// </summary>
public sealed class NorthboundStore : IDisposable
{
    private readonly Func<DbConnection> _open;
    private readonly NpgsqlDataSource? _postgres;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (NorthboundClient? Client, long At)> _clients = new(StringComparer.Ordinal);

    private NorthboundStore(Func<DbConnection> open, NpgsqlDataSource? postgres, bool sqlite)
    {
        _open = open;
        _postgres = postgres;
        var serial = sqlite ? "INTEGER PRIMARY KEY AUTOINCREMENT" : "BIGSERIAL PRIMARY KEY";
        var blob = sqlite ? "BLOB" : "BYTEA";
        using var connection = _open();
        if (sqlite)
        {
            Execute(connection, "PRAGMA journal_mode=WAL");
        }


        foreach (var ddl in new[]
        {
            $"CREATE TABLE IF NOT EXISTS nb_settings (name TEXT PRIMARY KEY, value {blob} NOT NULL)",
            $"CREATE TABLE IF NOT EXISTS nb_clients (client_id TEXT PRIMARY KEY, name TEXT NOT NULL, is_operator INTEGER NOT NULL, secret_hash {blob} NOT NULL, created BIGINT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS nb_subscriptions (id TEXT PRIMARY KEY, enterprise TEXT NOT NULL, kind TEXT NOT NULL, destination TEXT NOT NULL, cursor BIGINT NOT NULL, created BIGINT NOT NULL)",
            $"CREATE TABLE IF NOT EXISTS nb_events (seq {serial}, enterprise TEXT NOT NULL, body TEXT NOT NULL, at BIGINT NOT NULL)",
            "CREATE INDEX IF NOT EXISTS nb_events_enterprise ON nb_events (enterprise, seq)",
            "CREATE TABLE IF NOT EXISTS nb_deliveries (id TEXT PRIMARY KEY, enterprise TEXT NOT NULL, kind TEXT NOT NULL, external_id TEXT NOT NULL, port INTEGER NOT NULL, status TEXT NOT NULL, cause TEXT, session_id BIGINT NOT NULL, created BIGINT NOT NULL, deadline BIGINT NOT NULL, updated BIGINT NOT NULL)",
            "CREATE INDEX IF NOT EXISTS nb_deliveries_status ON nb_deliveries (status, deadline)",
            "CREATE TABLE IF NOT EXISTS nb_tokens (token BIGINT PRIMARY KEY, delivery_id TEXT NOT NULL, enterprise TEXT NOT NULL, kind TEXT NOT NULL)",
            "CREATE INDEX IF NOT EXISTS nb_tokens_delivery ON nb_tokens (delivery_id)",
        })
        {
            Execute(connection, ddl);
        }
    }

    /// <summary>Opens (creating what is missing) the store in <paramref name="dataDirectory"/>, or in PostgreSQL when <paramref name="postgres"/> is set.</summary>
    public static NorthboundStore Open(string dataDirectory, string? postgres)
    {
        if (!string.IsNullOrWhiteSpace(postgres))
        {
            var source = NpgsqlDataSource.Create(postgres);
            try
            {
                return new NorthboundStore(source.OpenConnection, source, sqlite: false);
            }
            catch
            {
                source.Dispose();
                throw;
            }
        }

        Directory.CreateDirectory(dataDirectory);
        var text = new SqliteConnectionStringBuilder { DataSource = Path.Combine(dataDirectory, "northbound.db"), Pooling = true, DefaultTimeout = 30 }.ToString();
        return new NorthboundStore(() =>
        {
            var connection = new SqliteConnection(text);
            connection.Open();
            // WAL with synchronous NORMAL: a commit survives the process being killed; only a power loss can take the last ones.
            using var pragma = connection.CreateCommand();
            pragma.CommandText = "PRAGMA synchronous = NORMAL;";
            pragma.ExecuteNonQuery();
            return connection;
        }, null, sqlite: true);
    }

    /// <summary>A stored setting, or null.</summary>
    public byte[]? Setting(string name) => Scalar(c => Command(c, "SELECT value FROM nb_settings WHERE name = @n", ("@n", name))) as byte[];

    /// <summary>Stores a setting unless one of that name exists (two nodes starting at once keep the first).</summary>
    public void SetSettingIfAbsent(string name, byte[] value) =>
        NonQuery(c => Command(c, "INSERT INTO nb_settings (name, value) VALUES (@n, @v) ON CONFLICT (name) DO NOTHING", ("@n", name), ("@v", value)));

    /// <summary>Registers a client; false when the id is taken.</summary>
    public bool AddClient(NorthboundClient client, byte[] secretHash)
    {
        ArgumentNullException.ThrowIfNull(client);
        return NonQuery(c => Command(c, "INSERT INTO nb_clients (client_id, name, is_operator, secret_hash, created) VALUES (@i, @n, @o, @h, @c) ON CONFLICT (client_id) DO NOTHING",
            ("@i", client.ClientId), ("@n", client.Name), ("@o", client.IsOperator ? 1 : 0), ("@h", secretHash), ("@c", client.Created.ToUnixTimeMilliseconds()))) == 1;
    }

    /// <summary>Removes a client; false when there is none.</summary>
    public bool RemoveClient(string clientId) => NonQuery(c => Command(c, "DELETE FROM nb_clients WHERE client_id = @i", ("@i", clientId))) == 1;

    /// <summary>A client and its secret's hash, or null.</summary>
    public (NorthboundClient Client, byte[] SecretHash)? Client(string clientId)
    {
        using var connection = _open();
        using var command = Command(connection, "SELECT client_id, name, is_operator, created, secret_hash FROM nb_clients WHERE client_id = @i", ("@i", clientId));
        using var reader = command.ExecuteReader();
        return reader.Read() ? (ReadClient(reader), (byte[])reader[4]) : null;
    }

    /// <summary>A client as read at most a second ago (null when it is not registered): what every token-bearing call checks.</summary>
    public NorthboundClient? CachedClient(string clientId)
    {
        var now = Environment.TickCount64;
        if (_clients.TryGetValue(clientId, out var cached) && now - cached.At < 1000)
        {
            return cached.Client;
        }

        if (_clients.Count > 10_000)
        {
            _clients.Clear();
        }

        var client = Client(clientId)?.Client;
        _clients[clientId] = (client, now);
        return client;
    }

    /// <summary>Every registered client (no secrets).</summary>
    public IReadOnlyList<NorthboundClient> Clients() => Query(c => Command(c, "SELECT client_id, name, is_operator, created FROM nb_clients ORDER BY client_id"), ReadClient);

    /// <summary>Adds a subscription.</summary>
    public void AddSubscription(NorthboundSubscription s)
    {
        ArgumentNullException.ThrowIfNull(s);
        NonQuery(c => Command(c, "INSERT INTO nb_subscriptions (id, enterprise, kind, destination, cursor, created) VALUES (@i, @e, @k, @d, @c, @t)",
            ("@i", s.Id), ("@e", s.Enterprise), ("@k", s.Kind), ("@d", s.Destination), ("@c", s.Cursor), ("@t", s.Created.ToUnixTimeMilliseconds())));
    }

    /// <summary>Removes an enterprise's subscription; false when it has none of that id.</summary>
    public bool RemoveSubscription(string enterprise, string id) =>
        NonQuery(c => Command(c, "DELETE FROM nb_subscriptions WHERE id = @i AND enterprise = @e", ("@i", id), ("@e", enterprise))) == 1;

    /// <summary>The subscriptions of one enterprise, or every one (null).</summary>
    public IReadOnlyList<NorthboundSubscription> Subscriptions(string? enterprise = null) => enterprise is null
        ? Query(c => Command(c, "SELECT id, enterprise, kind, destination, cursor, created FROM nb_subscriptions ORDER BY created, id"), ReadSubscription)
        : Query(c => Command(c, "SELECT id, enterprise, kind, destination, cursor, created FROM nb_subscriptions WHERE enterprise = @e ORDER BY created, id", ("@e", enterprise)), ReadSubscription);

    /// <summary>Moves a subscription's cursor forward (never back).</summary>
    public void Advance(string id, long cursor) =>
        NonQuery(c => Command(c, "UPDATE nb_subscriptions SET cursor = @c WHERE id = @i AND cursor < @c", ("@i", id), ("@c", cursor)));

    /// <summary>Appends an event notification for an enterprise; returns its sequence number.</summary>
    /// <remarks>
    /// An enterprise's events commit in the order of their sequence numbers, so a sender that posted up to one never finds
    /// a smaller one later: SQLite has one writer at a time; on PostgreSQL (several writers: a cluster's nodes, or the API
    /// beside the event loop) a transaction advisory lock per enterprise is held from before the sequence value is drawn
    /// to the commit.
    /// </remarks>
    public long AppendEvent(string enterprise, string body, DateTimeOffset at)
    {
        const string Insert = "INSERT INTO nb_events (enterprise, body, at) VALUES (@e, @b, @a) RETURNING seq";
        if (_postgres is null)
        {
            return Convert.ToInt64(Scalar(c => Command(c, Insert, ("@e", enterprise), ("@b", body), ("@a", at.ToUnixTimeMilliseconds()))), System.Globalization.CultureInfo.InvariantCulture);
        }

        using var connection = _open();
        using var transaction = connection.BeginTransaction();
        using (var lockOne = Command(connection, "SELECT pg_advisory_xact_lock(3163003, hashtext(@e))", ("@e", enterprise)))
        {
            lockOne.Transaction = transaction;
            lockOne.ExecuteNonQuery();
        }

        using var insert = Command(connection, Insert, ("@e", enterprise), ("@b", body), ("@a", at.ToUnixTimeMilliseconds()));
        insert.Transaction = transaction;
        var seq = Convert.ToInt64(insert.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        transaction.Commit();
        return seq;
    }

    /// <summary>An enterprise's events after a sequence number, oldest first.</summary>
    public IReadOnlyList<(long Seq, string Body)> Events(string enterprise, long after, int limit) =>
        Query(c => Command(c, "SELECT seq, body FROM nb_events WHERE enterprise = @e AND seq > @a ORDER BY seq LIMIT @l", ("@e", enterprise), ("@a", after), ("@l", limit)), r => (r.GetInt64(0), r.GetString(1)));

    /// <summary>The highest event sequence number (0 when none).</summary>
    public long LastEvent() => Scalar(c => Command(c, "SELECT MAX(seq) FROM nb_events")) is { } v and not DBNull ? Convert.ToInt64(v, System.Globalization.CultureInfo.InvariantCulture) : 0;

    /// <summary>Adds a delivery.</summary>
    public void AddDelivery(NorthboundDelivery d)
    {
        ArgumentNullException.ThrowIfNull(d);
        NonQuery(c => Command(c, "INSERT INTO nb_deliveries (id, enterprise, kind, external_id, port, status, cause, session_id, created, deadline, updated) VALUES (@i, @e, @k, @x, @p, @s, @c, @n, @t, @d, @u)",
            ("@i", d.Id), ("@e", d.Enterprise), ("@k", d.Kind), ("@x", d.ExternalId), ("@p", d.Port), ("@s", d.Status), ("@c", (object?)d.Cause ?? DBNull.Value), ("@n", d.SessionId),
            ("@t", d.Created.ToUnixTimeMilliseconds()), ("@d", d.Deadline.ToUnixTimeMilliseconds()), ("@u", d.Updated.ToUnixTimeMilliseconds())));
    }

    /// <summary>Moves a delivery from one of <paramref name="from"/> to <paramref name="status"/>; false when it was in none of them (a final status is never changed).</summary>
    public bool UpdateDelivery(string id, IReadOnlyList<string> from, string status, string? cause, long sessionId, DateTimeOffset at)
    {
        ArgumentNullException.ThrowIfNull(from);
        var names = string.Join(", ", from.Select((_, i) => $"@f{i}"));
        var parameters = new List<(string, object?)> { ("@i", id), ("@s", status), ("@c", (object?)cause ?? DBNull.Value), ("@n", sessionId), ("@u", at.ToUnixTimeMilliseconds()) };
        parameters.AddRange(from.Select((f, i) => ($"@f{i}", (object?)f)));
        return NonQuery(c => Command(c, $"UPDATE nb_deliveries SET status = @s, cause = @c, session_id = CASE WHEN @n = 0 THEN session_id ELSE @n END, updated = @u WHERE id = @i AND status IN ({names})", [.. parameters])) == 1;
    }

    /// <summary>An enterprise's delivery, or null.</summary>
    public NorthboundDelivery? Delivery(string enterprise, string id) =>
        Query(c => Command(c, "SELECT id, enterprise, kind, external_id, port, status, cause, session_id, created, deadline, updated FROM nb_deliveries WHERE id = @i AND enterprise = @e", ("@i", id), ("@e", enterprise)), ReadDelivery).FirstOrDefault();

    /// <summary>Deliveries still waiting in one of <paramref name="statuses"/>, oldest first.</summary>
    public IReadOnlyList<NorthboundDelivery> Waiting(IReadOnlyList<string> statuses, int limit)
    {
        ArgumentNullException.ThrowIfNull(statuses);
        var names = string.Join(", ", statuses.Select((_, i) => $"@s{i}"));
        var parameters = statuses.Select((s, i) => ($"@s{i}", (object?)s)).Append(("@l", limit)).ToArray();
        return Query(c => Command(c, $"SELECT id, enterprise, kind, external_id, port, status, cause, session_id, created, deadline, updated FROM nb_deliveries WHERE status IN ({names}) ORDER BY created LIMIT @l", parameters), ReadDelivery);
    }

    /// <summary>
    /// Records the token a delivery's message carries, so that whichever HSE (a cluster's node) sees the device's Data Ack
    /// or the message's loss finds the delivery.
    /// </summary>
    public void AddToken(long token, string deliveryId, string enterprise, string kind) =>
        NonQuery(c => Command(c, "INSERT INTO nb_tokens (token, delivery_id, enterprise, kind) VALUES (@t, @i, @e, @k)", ("@t", token), ("@i", deliveryId), ("@e", enterprise), ("@k", kind)));

    /// <summary>The delivery a token belongs to, or null.</summary>
    public (string DeliveryId, string Enterprise, string Kind)? Token(long token) =>
        Query(c => Command(c, "SELECT delivery_id, enterprise, kind FROM nb_tokens WHERE token = @t", ("@t", token)), r => (r.GetString(0), r.GetString(1), r.GetString(2))) is [var row] ? row : null;

    /// <summary>Forgets the tokens of a delivery that reached a final status.</summary>
    public void RemoveTokens(string deliveryId) => NonQuery(c => Command(c, "DELETE FROM nb_tokens WHERE delivery_id = @i", ("@i", deliveryId)));

    /// <summary>Closes the PostgreSQL data source (SQLite connections are pooled per process).</summary>
    public void Dispose() => _postgres?.Dispose();

    private static NorthboundClient ReadClient(DbDataReader r) => new(r.GetString(0), r.GetString(1), Convert.ToInt64(r[2], System.Globalization.CultureInfo.InvariantCulture) != 0, DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(3)));

    private static NorthboundSubscription ReadSubscription(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetInt64(4), DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(5)));

    private static NorthboundDelivery ReadDelivery(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), Convert.ToInt32(r[4], System.Globalization.CultureInfo.InvariantCulture), r.GetString(5), r.IsDBNull(6) ? null : r.GetString(6), r.GetInt64(7),
            DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(8)), DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(9)), DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(10)));

    private static DbCommand Command(DbConnection connection, string sql, params (string Name, object? Value)[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            var parameter = command.CreateParameter();
            parameter.ParameterName = name;
            parameter.Value = value ?? DBNull.Value;
            command.Parameters.Add(parameter);
        }

        return command;
    }

    private static void Execute(DbConnection connection, string sql)
    {
        using var command = Command(connection, sql);
        command.ExecuteNonQuery();
    }

    private int NonQuery(Func<DbConnection, DbCommand> build)
    {
        using var connection = _open();
        using var command = build(connection);
        return command.ExecuteNonQuery();
    }

    private object? Scalar(Func<DbConnection, DbCommand> build)
    {
        using var connection = _open();
        using var command = build(connection);
        return command.ExecuteScalar();
    }

    private List<T> Query<T>(Func<DbConnection, DbCommand> build, Func<DbDataReader, T> read)
    {
        using var connection = _open();
        using var command = build(connection);
        using var reader = command.ExecuteReader();
        var rows = new List<T>();
        while (reader.Read())
        {
            rows.Add(read(reader));
        }

        return rows;
    }
}
