using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using OpenBest.Client;
using OpenBest.Eas;
using OpenBest.EasInterface;
using OpenBest.Hse.Cluster.Demo;
using OpenBest.Protocol;
using OpenBest.Sessions;
using OpenBest.Storage;
using OpenBest.Storage.Postgres;
using OpenBest.Storage.Tests;
using OpenBest.Testing;

namespace OpenBest.Hse.Cluster.Tests;

/// <summary>
/// The HSE–EAS interface on a cluster (docs/protocol.md, "HSE cluster"): two node processes on a real PostgreSQL, each
/// serving the interface; the reference EAS registered with one of them; a device in UE-to-EAS mode through the other.
/// </summary>
public sealed class ClusterEasTests(PostgresServer server) : IClassFixture<PostgresServer>, IDisposable
{
    private const string Imsi = "001010000000301";
    private const string UeToHseImsi = "001010000000302";
    private const string EasId = "eas.example.com";
    private const string ExternalId = "meter-1@acme";
    private const string K = "000102030405060708090a0b0c0d0e0f";
    private const string Opc = "0f0e0d0c0b0a09080706050403020100";
    private const string Delivering = "this node delivers the outbox of EAS eas.example.com";
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-cluster-eas-");

    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    public void Dispose() => _directory.Delete(recursive: true);

    [Fact]
    public async Task EasInterface_AndNorthboundApi_OnEveryNode_AndTheEasOutboxKeepsDeliveringInOrder_WhenItsNodeIsKilled()
    {
        server.SkipIfUnavailable();

        var database = server.CreateDatabase();
        var data = _directory.FullName;
        DevelopmentPki.Init(data, [EasId]);
        using (var key = MasterKey.Load(data))
        using (var store = PostgresSubscriberStore.Open(database, key))
        {
            store.Add([new NewSubscriber(Imsi, Convert.FromHexString(K), Convert.FromHexString(Opc)), new NewSubscriber(UeToHseImsi, Convert.FromHexString(K), Convert.FromHexString(Opc))]);
            store.SetExternalId(EasId, ExternalId, Imsi);
            store.SetExternalId(EasId, "meter-2@acme", UeToHseImsi);
        }

        var udp = new[] { LoopbackPorts.Free(udpToo: true), LoopbackPorts.Free(udpToo: true) };
        var eas = new[] { LoopbackPorts.Free(), LoopbackPorts.Free() };
        var nodes = new[] { Node("node-1", udp[0], eas[0], database), Node("node-2", udp[1], eas[1], database) };
        try
        {
            await nodes[0].WaitForAsync("HSE node node-1 listening");
            await nodes[1].WaitForAsync("HSE node node-2 listening");
            Assert.Contains("EAS interface on https://", nodes[0].Output, StringComparison.Ordinal);

            // The EAS registers with node-1; from then on one node delivers its outbox (the node running its outbox grain).
            var received = new ConcurrentQueue<EasReceived>();
            using var easCertificate = DevelopmentPki.LoadPair(DevelopmentPki.Eas(data, EasId));
            using var ca = DevelopmentPki.LoadCertificate(DevelopmentPki.Ca(data).Certificate);
            await using var application = await ReferenceEas.StartAsync(new EasOptions
            {
                EasId = EasId,
                Hse = new Uri(string.Create(CultureInfo.InvariantCulture, $"https://127.0.0.1:{eas[0]}/")),
                Certificate = easCertificate,
                Ca = ca,
                StateDirectory = Path.Combine(data, "eas-state"),
            }, r =>
            {
                received.Enqueue(r);
                return Task.CompletedTask;
            }, Cancel);
            await Eventually.True(() => nodes.Any(n => n.Error.Contains(Delivering, StringComparison.Ordinal)), "a node delivers the EAS's outbox", TimeSpan.FromSeconds(60));
            var victim = nodes[0].Error.Contains(Delivering, StringComparison.Ordinal) ? 0 : 1;
            var survivor = 1 - victim;

            // The device reaches the survivor; its session's shard runs wherever the cluster put it.
            await using var device = await DeviceAsync(Imsi, udp[survivor]);
            var opened = await device.OpenAsync(new UeChannelOptions { EasId = EasId, Service = BestService.Confidential, UeToEasMode = true, ServingNetwork = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org") }, Cancel);
            var channel = opened.Channel ?? throw new InvalidOperationException($"no channel: {opened}");
            string[] before = ["m1", "m2", "m3"];
            foreach (var text in before)
            {
                var status = await channel.SendAsync(Encoding.UTF8.GetBytes(text), acknowledged: true, Cancel);
                Assert.True(status == SendStatus.Acknowledged, $"{text}: {status} | EAS has {received.Count}, last {application.LastSequence}, PSK requests {application.PskRequests}, dropped {application.Dropped} | outbox {Outbox(database, data)} | {Said(nodes)}");
            }

            await Eventually.True(() => received.Count >= before.Length, "m1..m3 reach the EAS", TimeSpan.FromSeconds(60));

            // Downlink from the EAS through node-1's interface reaches the device through the node it talks to.
            Assert.True(await application.SendDownlinkAsync(channel.SessionId, "valve open"u8.ToArray(), Cancel));
            var down = await channel.Received.ReadAsync(Cancel).AsTask().WaitAsync(TimeSpan.FromSeconds(60), Cancel);
            Assert.Equal("valve open"u8.ToArray(), down.Payload.ToArray());

            // The northbound API on the other node: a UE-to-HSE session is listed (every shard is asked), and a downlink posted
            // there is sealed by its shard and reaches the device through the node it talks to.
            await using var second = await DeviceAsync(UeToHseImsi, udp[survivor]);
            var toHse = (await second.OpenAsync(new UeChannelOptions { EasId = EasId, Service = BestService.Confidential, ServingNetwork = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org") }, Cancel)).Channel!;
            using (var api = Api(eas[victim], easCertificate, ca))
            {
                var listed = await api.GetStringAsync(new Uri("/api/v1/sessions", UriKind.Relative), Cancel);
                Assert.Contains($"\"sessionId\":{toHse.SessionId}", listed, StringComparison.Ordinal);
                Assert.DoesNotContain($"\"sessionId\":{channel.SessionId}", listed, StringComparison.Ordinal); // UE-to-EAS: not the HSE's user plane
                using var body = new StringContent("{\"payload\":\"" + Convert.ToBase64String("setpoint"u8.ToArray()) + "\"}", Encoding.UTF8, "application/json");
                using var posted = await api.PostAsync(new Uri($"/api/v1/sessions/{toHse.SessionId}/downlink", UriKind.Relative), body, Cancel);
                Assert.Equal(HttpStatusCode.Accepted, posted.StatusCode);
                var setpoint = await toHse.Received.ReadAsync(Cancel).AsTask().WaitAsync(TimeSpan.FromSeconds(60), Cancel);
                Assert.Equal("setpoint"u8.ToArray(), setpoint.Payload.ToArray());
            }

            // The delivering node is killed; messages stored meanwhile wait in the outbox, and the survivor takes it over.
            Process.GetProcessById(nodes[victim].Id).Kill();
            string[] after = ["m4", "m5", "m6", "m7", "m8"];
            foreach (var text in after)
            {
                var status = await channel.SendAsync(Encoding.UTF8.GetBytes(text), acknowledged: true, Cancel);
                Assert.True(status == SendStatus.Acknowledged, $"{text}: {status} | EAS has {received.Count}, last {application.LastSequence}, PSK requests {application.PskRequests}, dropped {application.Dropped} | outbox {Outbox(database, data)} | {Said(nodes)}");
            }

            await Eventually.True(() => nodes[survivor].Error.Contains(Delivering, StringComparison.Ordinal), "the survivor delivers the EAS's outbox", TimeSpan.FromSeconds(90));
            await Eventually.True(() => received.Count >= before.Length + after.Length, "m4..m8 reach the EAS", TimeSpan.FromSeconds(90));
            Assert.Equal([.. before, .. after], received.Select(r => Encoding.UTF8.GetString(r.Payload)));
            // Exactly once and in order at the application (a retransmission forwarded twice is dropped by the EAS as a repeat).
            Assert.All(received, r => Assert.Equal(ExternalId, r.ExternalId));
            using var again = MasterKey.Load(data);
            using var check = PostgresSubscriberStore.Open(database, again);
            await Eventually.True(() => check.DueOutbox(EasId, DateTimeOffset.UtcNow.AddHours(1), 10).Count == 0, "the outbox is empty", TimeSpan.FromSeconds(60));
        }
        finally
        {
            foreach (var node in nodes)
            {
                await node.DisposeAsync();
            }
        }
    }

    private static string Outbox(string database, string data)
    {
        using var key = MasterKey.Load(data);
        using var store = PostgresSubscriberStore.Open(database, key);
        return string.Join(", ", store.DueOutbox(EasId, DateTimeOffset.UtcNow.AddHours(1), 10).Select(e => $"{e.Seq}/{e.Attempts}")) + $" registrations {store.EasRegistrations().Count}";
    }

    /// <summary>A device reaching the node on <paramref name="port"/>.</summary>
    private static Task<BestClient> DeviceAsync(string imsi, int port) => NodeProcess.DeviceAsync(imsi, K, Opc, port);

    private static HttpClient Api(int port, System.Security.Cryptography.X509Certificates.X509Certificate2 certificate, System.Security.Cryptography.X509Certificates.X509Certificate2 ca)
    {
        var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, presented, _, _) => DevelopmentPki.IsIssuedBy(presented as System.Security.Cryptography.X509Certificates.X509Certificate2, ca);
        handler.SslOptions.ClientCertificates = [certificate];
        handler.SslOptions.LocalCertificateSelectionCallback = (_, _, _, _, _) => certificate;
        return new HttpClient(handler) { BaseAddress = new Uri(string.Create(CultureInfo.InvariantCulture, $"https://127.0.0.1:{port}")) };
    }

    private static string Said(BestProcess[] nodes) => string.Join(" | ", nodes.Select(n => n.Output + n.Error));

    private BestProcess Node(string name, int udp, int eas, string database) =>
        NodeProcess.Start(name, database, _directory.FullName, [.. NodeProcess.Udp(udp), "--eas-port", eas.ToString(CultureInfo.InvariantCulture)]);
}
