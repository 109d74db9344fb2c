using System.Globalization;
using System.Security.Cryptography;
using OpenBest.Storage;
using OpenBest.Storage.Postgres;
using OpenBest.Storage.Tests;
using OpenBest.Hse.Cluster.Demo;
using OpenBest.Testing;

namespace OpenBest.Hse.Cluster.Tests;

/// <summary>
/// <c>best hse --cluster</c> and <c>best cluster demo</c> as processes: nodes on a real PostgreSQL on loopback, devices
/// (<c>best ue send</c>) reaching either node over UDP or TCP, nginx in front for the demo.
/// </summary>
public sealed class ClusterProcessTests(PostgresServer server) : IClassFixture<PostgresServer>, IDisposable
{
    private const string K = "000102030405060708090a0b0c0d0e0f";
    private const string Opc = "0f0e0d0c0b0a09080706050403020100";
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-cluster-");

    public void Dispose() => _directory.Delete(recursive: true);

    [Fact]
    public async Task AnyNode_ServesAnyDevice_OverUdpAndTcp_AndAStoppedNodesShardsMove()
    {
        server.SkipIfUnavailable();
        var database = server.CreateDatabase();
        var data = _directory.FullName;
        var imsis = Enumerable.Range(1, 4).Select(i => string.Create(CultureInfo.InvariantCulture, $"00101000000010{i}")).ToList();
        using (var key = MasterKey.Load(data))
        using (var store = PostgresSubscriberStore.Open(database, key))
        {
            store.Add([.. imsis.Select(i => new NewSubscriber(i, Convert.FromHexString(K), Convert.FromHexString(Opc)))]);
        }

        var ports = new[] { LoopbackPorts.Free(udpToo: true), LoopbackPorts.Free(udpToo: true) };
        await using var one = Node("node-1", ports[0], database);
        await using var two = Node("node-2", ports[1], database);
        await one.WaitForAsync("HSE node node-1 listening");
        await two.WaitForAsync("HSE node node-2 listening");

        // Each device through either node, over UDP or TCP: its session's shard runs wherever the cluster put it.
        for (var i = 0; i < imsis.Count; i++)
        {
            var port = ports[i % 2];
            var tcp = i >= 2;
            var (code, output, error) = await BestProcess.RunAsync(["ue", "send", $"message {i}", "--imsi", imsis[i], "--k", K, "--opc", Opc,
                "--hse", $"127.0.0.1:{port}", .. (tcp ? new[] { "--tcp" } : []), "--timeout", "60"]);
            Assert.True(code == 0, $"device {i}: {output} {error} | node-1: {one.Output} {one.Error} | node-2: {two.Output} {two.Error}");
            Assert.Contains("acknowledged", output, StringComparison.Ordinal);
        }

        using (var key = MasterKey.Load(data))
        using (var store = PostgresSubscriberStore.Open(database, key))
        {
            Assert.Equal(imsis.Count, store.Uplinks(0, 100).Count);
            // Both nodes run shards (placed by rendezvous hashing once both are active).
            await Eventually.True(() => store.ShardOwners().Select(o => o.Node).Distinct().Count() == 2, "shards on both nodes", TimeSpan.FromSeconds(90))
                .ContinueWith(t => Assert.True(t.IsCompletedSuccessfully, $"{string.Join(", ", store.ShardOwners().Select(o => $"{o.Shard}:{o.Node}/{o.Epoch}"))} | node-1: {one.Output} {one.Error} | node-2: {two.Output} {two.Error}"), TaskScheduler.Default);

            // A node stopped gracefully: its shards commit, deactivate, and the other node takes them all.
            two.Terminate();
            var (stopped, said) = await two.ExitAsync();
            Assert.Equal(0, stopped);
            Assert.Contains("stopped", said, StringComparison.Ordinal);
            await Eventually.True(() => store.ShardOwners().All(o => o.Node == "node-1"), "every shard on node-1", TimeSpan.FromSeconds(90));
        }

        var (after, text, problem) = await BestProcess.RunAsync(["ue", "send", "after", "--imsi", imsis[1], "--k", K, "--opc", Opc, "--hse", $"127.0.0.1:{ports[0]}", "--timeout", "60"]);
        Assert.True(after == 0, $"{text} {problem} | node-1: {one.Output} {one.Error}");
    }

    [Fact]
    public async Task ClusterDemo_KillsTheNodeDeliveringTheEasOutbox_EveryAcknowledgedMessageIsDeliveredOnce()
    {
        server.SkipIfUnavailable();
        if (!File.Exists("/usr/sbin/nginx") || !File.Exists(NginxFront.DebianStreamModule))
        {
            Assert.True(Environment.GetEnvironmentVariable("CI") is null, "CI installs nginx and libnginx-mod-stream");
            Assert.Skip("nginx with its stream module is not installed");
        }

        await using var demo = BestProcess.Start("cluster", "demo", "--nodes", "3", "--postgres", server.CreateDatabase(), "--devices", "20", "--kill-after", "8");
        var (code, output) = await demo.ExitAsync(TimeSpan.FromMinutes(5));
        Assert.True(code == 0, $"{output} {demo.Error}");
        Assert.Contains("killed (SIGKILL)", output, StringComparison.Ordinal);
        Assert.Contains("every message was delivered once, with a node killed midway", output, StringComparison.Ordinal);
        // The EAS's outbox was delivered by the killed node, then by a survivor.
        Assert.Matches(@"EAS outbox delivered by\s*│\s*node-\d, then node-\d", output);
    }

    [Theory]
    [InlineData("--cluster needs --postgres", "hse", "--cluster")]
    [InlineData("go with --cluster", "hse", "--node-name", "a")]
    [InlineData("letters, digits", "hse", "--cluster", "--postgres", "Host=127.0.0.1", "--node-name", "a b")]
    [InlineData("--nodes must be 2..9", "cluster", "demo", "--nodes", "1", "--postgres", "Host=127.0.0.1")]
    public async Task BadInput_IsOneLine_Exit2(string says, params string[] arguments)
    {
        var (code, output, error) = await BestProcess.RunAsync(new Dictionary<string, string> { ["BEST_DATA_DIR"] = Path.Combine(_directory.FullName, "unused") }, arguments);
        Assert.Equal(2, code);
        Assert.Contains(says, error, StringComparison.Ordinal);
        Assert.Single(error.TrimEnd().Split('\n'));
        Assert.Empty(output);
        Assert.False(Directory.Exists(Path.Combine(_directory.FullName, "unused")));
    }

    private BestProcess Node(string name, int port, string database) => NodeProcess.Start(name, database, _directory.FullName,
        "--udp-port", port.ToString(CultureInfo.InvariantCulture), "--tcp-port", port.ToString(CultureInfo.InvariantCulture));
}
