using System.Net;
using System.Security.Cryptography;
using Npgsql;
using Orleans;
using Orleans.Runtime;
using OpenBest.Hse.Cluster;
using OpenBest.Storage;
using OpenBest.Storage.Postgres;
using OpenBest.Storage.Tests;

namespace OpenBest.Hse.Cluster.Tests;

/// <summary>
/// The membership table Orleans runs on (its IMembershipTable contract: rows and the table version change only when the
/// caller's etags are current, all in one transaction), on the tables the HSE's migrations create in a real PostgreSQL.
/// </summary>
public sealed class MembershipTableTests(PostgresServer server) : IClassFixture<PostgresServer>
{
    [Fact]
    public async Task Rows_ChangeOnlyUnderCurrentEtags_AndSuspicionsRoundTrip()
    {
        server.SkipIfUnavailable();

        var database = server.CreateDatabase();
        using (var key = MasterKey.FromBytes(RandomNumberGenerator.GetBytes(32)))
        using (PostgresSubscriberStore.Open(database, key))
        {
            // The migrations made the tables.
        }

        await using var dataSource = NpgsqlDataSource.Create(database);
        var table = new PostgresMembershipTable(dataSource, "test-cluster");
        await table.InitializeMembershipTable(true);
        await table.InitializeMembershipTable(true); // a second node starting: nothing changes
        var empty = await table.ReadAll();
        Assert.Empty(empty.Members);
        Assert.Equal(0, empty.Version.Version);

        var a = Entry(11111, SiloStatus.Joining);
        Assert.True(await table.InsertRow(a, empty.Version.Next()));
        // Another insert against the version it read before: refused (the version moved), and no row twice.
        Assert.False(await table.InsertRow(Entry(22222, SiloStatus.Joining), empty.Version.Next()));
        Assert.False(await table.InsertRow(a, (await table.ReadAll()).Version.Next()));

        var read = await table.ReadAll();
        var (row, etag) = Assert.Single(read.Members);
        Assert.Equal(1, read.Version.Version);
        Assert.Equal(a.SiloAddress, row.SiloAddress);
        Assert.Equal("node-11111", row.SiloName);

        var b = Entry(22222, SiloStatus.Active);
        Assert.True(await table.InsertRow(b, read.Version.Next()));
        read = await table.ReadAll();
        a.Status = SiloStatus.Active;
        a.AddOrUpdateSuspector(b.SiloAddress, new DateTime(2026, 12, 4, 12, 0, 0, DateTimeKind.Utc), 3);
        Assert.False(await table.UpdateRow(a, "999", read.Version.Next()));
        Assert.False(await table.UpdateRow(a, etag, empty.Version.Next()));
        Assert.True(await table.UpdateRow(a, etag, read.Version.Next()));
        read = await table.ReadAll();
        Assert.False(await table.UpdateRow(a, etag, read.Version.Next())); // the row's etag moved on

        var only = await table.ReadRow(a.SiloAddress);
        var (stored, _) = Assert.Single(only.Members);
        Assert.Equal(SiloStatus.Active, stored.Status);
        var suspicion = Assert.Single(stored.SuspectTimes!);
        Assert.Equal(b.SiloAddress, suspicion.Item1);
        Assert.Equal(new DateTime(2026, 12, 4, 12, 0, 0, DateTimeKind.Utc), suspicion.Item2);

        a.IAmAliveTime = DateTime.UtcNow.AddHours(-2);
        await table.UpdateIAmAlive(a);
        (stored, etag) = Assert.Single((await table.ReadRow(a.SiloAddress)).Members);
        Assert.True(Math.Abs((stored.IAmAliveTime - a.IAmAliveTime).TotalSeconds) < 1);

        // Dead and silent for long: cleaned up; the live one stays.
        stored.Status = SiloStatus.Dead;
        read = await table.ReadAll();
        Assert.True(await table.UpdateRow(stored, etag, read.Version.Next()));
        await table.CleanupDefunctSiloEntries(DateTimeOffset.UtcNow.AddHours(-1));
        Assert.Equal([b.SiloAddress], (await table.ReadAll()).Members.Select(m => m.Item1.SiloAddress));
        var nodes = await PostgresMembershipTable.NodesAsync(dataSource, "test-cluster");
        Assert.Equal([("node-22222", "Active")], nodes.Select(n => (n.Node, n.Status)));

        await table.DeleteMembershipTableEntries("test-cluster");
        Assert.Empty((await table.ReadAll()).Members);
    }

    private static MembershipEntry Entry(int port, SiloStatus status) => new()
    {
        SiloAddress = SiloAddress.New(new IPEndPoint(IPAddress.Loopback, port), 7),
        Status = status,
        HostName = "host",
        SiloName = $"node-{port}",
        ProxyPort = port + 1,
        StartTime = DateTime.UtcNow,
        IAmAliveTime = DateTime.UtcNow,
        SuspectTimes = [],
    };
}
