using System.Globalization;
using Npgsql;
using Orleans;
using Orleans.Runtime;

namespace OpenBest.Hse.Cluster;

/// <summary>
/// Orleans' membership table on the HSE's own PostgreSQL schema (tables <c>hse_cluster_version</c> and
/// <c>hse_cluster_members</c>, created by the store's migrations beside the subscribers and sessions). Every write is
/// conditional on the table version's etag and, for a row, on the row's etag, in one transaction: Orleans' membership
/// protocol needs exactly that (docs/protocol.md, "HSE cluster: membership").
/// </summary>
public sealed class PostgresMembershipTable(NpgsqlDataSource dataSource, string clusterId) : IMembershipTable
{
    /// <inheritdoc/>
    public async Task InitializeMembershipTable(bool tryInitTableVersion)
    {
        if (!tryInitTableVersion)
        {
            return;
        }

        await using var command = dataSource.CreateCommand("INSERT INTO hse_cluster_version (cluster_id, version) VALUES ($1, 0) ON CONFLICT (cluster_id) DO NOTHING");
        command.Parameters.Add(new NpgsqlParameter { Value = clusterId });
        await command.ExecuteNonQueryAsync().ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public async Task DeleteMembershipTableEntries(string clusterId)
    {
        await using var connection = await dataSource.OpenConnectionAsync().ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync().ConfigureAwait(false);
        foreach (var sql in new[] { "DELETE FROM hse_cluster_members WHERE cluster_id = $1", "DELETE FROM hse_cluster_version WHERE cluster_id = $1" })
        {
            await using var command = new NpgsqlCommand(sql, connection, transaction);
            command.Parameters.Add(new NpgsqlParameter { Value = clusterId });
            await command.ExecuteNonQueryAsync().ConfigureAwait(false);
        }

        await transaction.CommitAsync().ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public async Task CleanupDefunctSiloEntries(DateTimeOffset beforeDate)
    {
        await using var command = dataSource.CreateCommand("DELETE FROM hse_cluster_members WHERE cluster_id = $1 AND status = $2 AND i_am_alive < $3");
        command.Parameters.Add(new NpgsqlParameter { Value = clusterId });
        command.Parameters.Add(new NpgsqlParameter { Value = (int)SiloStatus.Dead });
        command.Parameters.Add(new NpgsqlParameter { Value = beforeDate.UtcDateTime });
        await command.ExecuteNonQueryAsync().ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public Task<MembershipTableData> ReadRow(SiloAddress key) => ReadAsync(key);

    /// <inheritdoc/>
    public Task<MembershipTableData> ReadAll() => ReadAsync(null);

    /// <inheritdoc/>
    public async Task<bool> InsertRow(MembershipEntry entry, TableVersion tableVersion)
    {
        ArgumentNullException.ThrowIfNull(entry);
        ArgumentNullException.ThrowIfNull(tableVersion);
        return await WriteAsync(tableVersion, async (connection, transaction) =>
        {
            await using var command = new NpgsqlCommand(
                "INSERT INTO hse_cluster_members (cluster_id, silo, status, host_name, silo_name, proxy_port, suspect_times, start_time, i_am_alive, etag) " +
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0) ON CONFLICT DO NOTHING", connection, transaction);
            AddEntry(command, entry);
            return await command.ExecuteNonQueryAsync().ConfigureAwait(false) == 1;
        }).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public async Task<bool> UpdateRow(MembershipEntry entry, string etag, TableVersion tableVersion)
    {
        ArgumentNullException.ThrowIfNull(entry);
        ArgumentNullException.ThrowIfNull(tableVersion);
        if (!int.TryParse(etag, NumberStyles.None, CultureInfo.InvariantCulture, out var rowEtag))
        {
            return false;
        }

        return await WriteAsync(tableVersion, async (connection, transaction) =>
        {
            await using var command = new NpgsqlCommand(
                "UPDATE hse_cluster_members SET status = $3, host_name = $4, silo_name = $5, proxy_port = $6, suspect_times = $7, start_time = $8, i_am_alive = $9, etag = etag + 1 " +
                "WHERE cluster_id = $1 AND silo = $2 AND etag = $10", connection, transaction);
            AddEntry(command, entry);
            command.Parameters.Add(new NpgsqlParameter { Value = rowEtag });
            return await command.ExecuteNonQueryAsync().ConfigureAwait(false) == 1;
        }).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public async Task UpdateIAmAlive(MembershipEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        await using var command = dataSource.CreateCommand("UPDATE hse_cluster_members SET i_am_alive = $3 WHERE cluster_id = $1 AND silo = $2");
        command.Parameters.Add(new NpgsqlParameter { Value = clusterId });
        command.Parameters.Add(new NpgsqlParameter { Value = entry.SiloAddress.ToParsableString() });
        command.Parameters.Add(new NpgsqlParameter { Value = entry.IAmAliveTime.ToUniversalTime() });
        await command.ExecuteNonQueryAsync().ConfigureAwait(false);
    }

    /// <summary>Runs <paramref name="write"/> in a transaction that also moves the table version from the one the caller read to the next; false when either changed meanwhile.</summary>
    private async Task<bool> WriteAsync(TableVersion tableVersion, Func<NpgsqlConnection, NpgsqlTransaction, Task<bool>> write)
    {
        if (!int.TryParse(tableVersion.VersionEtag, NumberStyles.None, CultureInfo.InvariantCulture, out var expected))
        {
            return false;
        }

        await using var connection = await dataSource.OpenConnectionAsync().ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync().ConfigureAwait(false);
        await using (var version = new NpgsqlCommand("UPDATE hse_cluster_version SET version = $3 WHERE cluster_id = $1 AND version = $2", connection, transaction))
        {
            version.Parameters.Add(new NpgsqlParameter { Value = clusterId });
            version.Parameters.Add(new NpgsqlParameter { Value = expected });
            version.Parameters.Add(new NpgsqlParameter { Value = tableVersion.Version });
            if (await version.ExecuteNonQueryAsync().ConfigureAwait(false) != 1)
            {
                return false;
            }
        }

        if (!await write(connection, transaction).ConfigureAwait(false))
        {
            await transaction.RollbackAsync().ConfigureAwait(false);
            return false;
        }

        await transaction.CommitAsync().ConfigureAwait(false);
        return true;
    }

    private void AddEntry(NpgsqlCommand command, MembershipEntry entry)
    {
        command.Parameters.Add(new NpgsqlParameter { Value = clusterId });
        command.Parameters.Add(new NpgsqlParameter { Value = entry.SiloAddress.ToParsableString() });
        command.Parameters.Add(new NpgsqlParameter { Value = (int)entry.Status });
        command.Parameters.Add(new NpgsqlParameter { Value = entry.HostName ?? string.Empty });
        command.Parameters.Add(new NpgsqlParameter { Value = entry.SiloName ?? string.Empty });
        command.Parameters.Add(new NpgsqlParameter { Value = entry.ProxyPort });
        command.Parameters.Add(new NpgsqlParameter { Value = SuspectText(entry.SuspectTimes) });
        command.Parameters.Add(new NpgsqlParameter { Value = entry.StartTime.ToUniversalTime() });
        command.Parameters.Add(new NpgsqlParameter { Value = entry.IAmAliveTime.ToUniversalTime() });
    }

    private async Task<MembershipTableData> ReadAsync(SiloAddress? key)
    {
        await using var connection = await dataSource.OpenConnectionAsync().ConfigureAwait(false);
        // One snapshot for the version and the rows.
        await using var transaction = await connection.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead).ConfigureAwait(false);
        var tableVersion = new TableVersion(0, "0");
        await using (var version = new NpgsqlCommand("SELECT version FROM hse_cluster_version WHERE cluster_id = $1", connection, transaction))
        {
            version.Parameters.Add(new NpgsqlParameter { Value = clusterId });
            if (await version.ExecuteScalarAsync().ConfigureAwait(false) is int v)
            {
                tableVersion = new TableVersion(v, v.ToString(CultureInfo.InvariantCulture));
            }
        }

        var members = new List<Tuple<MembershipEntry, string>>();
        await using (var rows = new NpgsqlCommand(
            "SELECT silo, status, host_name, silo_name, proxy_port, suspect_times, start_time, i_am_alive, etag FROM hse_cluster_members WHERE cluster_id = $1" + (key is null ? string.Empty : " AND silo = $2"),
            connection, transaction))
        {
            rows.Parameters.Add(new NpgsqlParameter { Value = clusterId });
            if (key is not null)
            {
                rows.Parameters.Add(new NpgsqlParameter { Value = key.ToParsableString() });
            }

            await using var reader = await rows.ExecuteReaderAsync().ConfigureAwait(false);
            while (await reader.ReadAsync().ConfigureAwait(false))
            {
                var entry = new MembershipEntry
                {
                    SiloAddress = SiloAddress.FromParsableString(reader.GetString(0)),
                    Status = (SiloStatus)reader.GetInt32(1),
                    HostName = reader.GetString(2),
                    SiloName = reader.GetString(3),
                    ProxyPort = reader.GetInt32(4),
                    SuspectTimes = ParseSuspects(reader.GetString(5)),
                    StartTime = DateTime.SpecifyKind(reader.GetDateTime(6), DateTimeKind.Utc),
                    IAmAliveTime = DateTime.SpecifyKind(reader.GetDateTime(7), DateTimeKind.Utc),
                };
                members.Add(Tuple.Create(entry, reader.GetInt32(8).ToString(CultureInfo.InvariantCulture)));
            }
        }

        await transaction.CommitAsync().ConfigureAwait(false);
        return new MembershipTableData(members, tableVersion);
    }

    /// <summary>The nodes of <paramref name="clusterId"/> as the membership table has them: name, Orleans status, last heartbeat (newest generation first).</summary>
    public static async Task<IReadOnlyList<(string Node, string Status, DateTimeOffset IAmAlive)>> NodesAsync(NpgsqlDataSource dataSource, string clusterId)
    {
        ArgumentNullException.ThrowIfNull(dataSource);
        var table = new PostgresMembershipTable(dataSource, clusterId);
        var data = await table.ReadAll().ConfigureAwait(false);
        return [.. data.Members.Select(m => m.Item1).OrderByDescending(m => m.SiloAddress.Generation)
            .Select(m => (m.SiloName, m.Status.ToString(), new DateTimeOffset(m.IAmAliveTime, TimeSpan.Zero)))];
    }

    /// <summary>"silo#ticks" pairs separated by '|' (a silo's parsable form, "address:port@generation", has neither).</summary>
    internal static string SuspectText(List<Tuple<SiloAddress, DateTime>>? suspects) =>
        suspects is null ? string.Empty : string.Join('|', suspects.Select(s => string.Create(CultureInfo.InvariantCulture, $"{s.Item1.ToParsableString()}#{s.Item2.ToUniversalTime().Ticks}")));

    internal static List<Tuple<SiloAddress, DateTime>> ParseSuspects(string text)
    {
        var list = new List<Tuple<SiloAddress, DateTime>>();
        foreach (var part in text.Split('|', StringSplitOptions.RemoveEmptyEntries))
        {
            var at = part.LastIndexOf('#');
            if (at > 0 && long.TryParse(part.AsSpan(at + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var ticks))
            {
                list.Add(Tuple.Create(SiloAddress.FromParsableString(part[..at]), new DateTime(ticks, DateTimeKind.Utc)));
            }
        }

        return list;
    }
}
