using System.Net;
using OpenBest.Bearers;
using OpenBest.Hse;
using OpenBest.Sessions;
using OpenBest.Storage;
using OpenBest.Testing;

namespace OpenBest.Cli.Tests;

/// <summary><c>best ue listen</c>: a device that prints the downlink an HSE sends it.</summary>
public sealed class UeListenTests : IDisposable
{
    private const string Imsi = "001010000000555";
    private const string K = "465b5ce8b199b49faa5f0a2ee238a6bc";
    private const string Opc = "cd63cb71954a9f4e48a5994e37a02baf";
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-listen-");

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _directory.Delete(recursive: true);
    }

    [Fact]
    public async Task Listen_PrintsEachDownlink_ThenStopsAtCount()
    {
        var cancel = TestContext.Current.CancellationToken;
        using var key = MasterKey.FromBytes(new byte[32]);
        using var store = SqliteSubscriberStore.Open(_directory.FullName, key);
        store.Add([new NewSubscriber(Imsi, Convert.FromHexString(K), Convert.FromHexString(Opc))]);
        using var subscribers = new StoreSubscribers(store);
        await using var udp = UdpBearer.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        await using var host = new HseHost(new HseEngine(subscribers), [udp], TimeSpan.FromMilliseconds(100), state: store);
        host.Start();

        using var output = new StringWriter();
        using var error = new StringWriter();
        var listening = Task.Run(() => BestApp.Run(["ue", "listen", "--imsi", Imsi, "--k", K, "--opc", Opc, "--hse", udp.LocalEndPoint.ToString(), "--count", "2", "--timeout", "30"], output, error), cancel);
        var established = await WaitAsync<SessionEstablished>(host, cancel);
        await host.InvokeAsync(e => e.SendDownlink(established.SessionId, "open valve 3"u8));
        await host.InvokeAsync(e => e.SendDownlink(established.SessionId, new byte[] { 0xff, 0x00 }));
        var code = await listening.WaitAsync(Eventually.Deadline + TimeSpan.FromSeconds(15), cancel); // longer than its own --timeout: it says why it stopped
        Assert.True(code == 0, output.ToString() + error);
        var lines = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.StartsWith($"session {established.SessionId}: Confidential", lines[0], StringComparison.Ordinal);
        Assert.Equal($"session {established.SessionId}: open valve 3", lines[1]);
        Assert.Equal($"session {established.SessionId}: 0xff00", lines[2]);
        Assert.Equal("2 message(s) received", lines[^1]);
    }

    private static async Task<T> WaitAsync<T>(HseHost host, CancellationToken cancel)
        where T : SessionEvent
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        timeout.CancelAfter(Eventually.Deadline);
        await foreach (var e in host.Events.ReadAllAsync(timeout.Token))
        {
            if (e is T wanted)
            {
                return wanted;
            }
        }

        throw new InvalidOperationException("The host stopped.");
    }
}

/// <summary><c>best bench</c> runs end to end on a small load (figures are measured by hand: they are not assertions).</summary>
public sealed class BenchCommandTests
{
    [Fact]
    public void Bench_SmallLoad_ReportsEveryFigure()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var code = BestApp.Run(["bench", "--devices", "20", "--session-duration", "1", "--duration", "1", "--idle-sessions", "500"], output, error);
        var text = output.ToString();
        Assert.True(code == 0, text + error);
        foreach (var row in new[] { "devices / first sessions established", "first sessions per second", "new sessions per second (sustained)", "uplink messages stored per second", "Ack latency p50 / p99", "HSE memory per idle session", "SQLite" })
        {
            Assert.Contains(row, text, StringComparison.Ordinal);
        }

        Assert.Contains("20 / 20", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Bench_BadOption_IsOneLine()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        Assert.Equal(2, BestApp.Run(["bench", "--devices", "0"], output, error));
        Assert.Equal("best bench: --devices must be 1..10000 (see 'best bench --help')", error.ToString().Trim());
    }
}
