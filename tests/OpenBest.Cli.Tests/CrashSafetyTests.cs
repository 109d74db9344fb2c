using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using OpenBest.Client;
using OpenBest.Crypto.Aead;
using OpenBest.Protocol;
using OpenBest.Sessions;
using OpenBest.Storage;
using OpenBest.Testing;

namespace OpenBest.Cli.Tests;

/// <summary>
/// Kill -9 of a real <c>best hse</c> under load, then a restart on the same SQLite database (profile section 3,
/// persistence): devices recover, no counter seals two byte strings (checked on the captured traffic), no
/// replayed message is accepted, and every acknowledged message is in the store.
/// </summary>
public sealed class CrashSafetyTests : IDisposable
{
    private const string K = "465b5ce8b199b49faa5f0a2ee238a6bc";
    private const string Opc = "cd63cb71954a9f4e48a5994e37a02baf";
    private const int Devices = 6;
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-crash-");

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _directory.Delete(recursive: true);
    }

    private static string ImsiOf(int device) => $"0010100000{device:00000}";

    private static Process StartHse(string data, int port)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "best.dll"), "hse", "--data-dir", data, "--udp-port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--tcp-port", "-1", "--log-level", "Warning" })
        {
            info.ArgumentList.Add(arg);
        }

        var process = Process.Start(info)!;
        process.ErrorDataReceived += (_, _) => { };
        process.BeginErrorReadLine();
        return process;
    }

    private static int FreeUdpPort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }

    [Fact]
    public async Task KillMinus9_UnderLoad_RestartRecovers_WithoutReuseReplayOrLoss()
    {
        var cancel = TestContext.Current.CancellationToken;
        var data = Path.Combine(_directory.FullName, "hse");
        using (var sink = new StringWriter())
        {
            for (var d = 0; d < Devices; d++)
            {
                Assert.Equal(0, BestApp.Run(["subscriber", "add", "--imsi", ImsiOf(d), "--k", K, "--opc", Opc, "--data-dir", data], sink, sink));
            }
        }

        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        var port = FreeUdpPort();
        var hseEndpoint = new IPEndPoint(IPAddress.Loopback, port);

        // A relay between the devices and the HSE records every datagram both ways: the captured traffic.
        var captured = new ConcurrentQueue<(bool Uplink, byte[] Message)>();
        using var relaySocket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        relaySocket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var relayEndpoint = (IPEndPoint)relaySocket.LocalEndPoint!;
        using var stopRelay = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        var devicesByPort = new ConcurrentDictionary<(uint, int), IPEndPoint>();
        var lastDevice = new ConcurrentDictionary<uint, IPEndPoint>();
        // The relay uses one upstream socket per device so the HSE sees distinct paths.
        var upstreams = new ConcurrentDictionary<IPEndPoint, Socket>();
        var relayTasks = new ConcurrentBag<Task>();
        var relay = Task.Run(async () =>
        {
            var buffer = new byte[2048];
            try
            {
                while (!stopRelay.IsCancellationRequested)
                {
                    var r = await relaySocket.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0), stopRelay.Token);
                    var device = (IPEndPoint)r.RemoteEndPoint;
                    var message = buffer.AsSpan(0, r.ReceivedBytes).ToArray();
                    captured.Enqueue((true, message));
                    var upstream = upstreams.GetOrAdd(device, d =>
                    {
                        var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
                        s.Bind(new IPEndPoint(IPAddress.Loopback, 0));
                        relayTasks.Add(Task.Run(async () =>
                        {
                            var back = new byte[2048];
                            try
                            {
                                while (!stopRelay.IsCancellationRequested)
                                {
                                    var n = await s.ReceiveAsync(back, stopRelay.Token);
                                    var reply = back.AsSpan(0, n).ToArray();
                                    captured.Enqueue((false, reply));
                                    await relaySocket.SendToAsync(reply, d, stopRelay.Token);
                                }
                            }
                            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
                            {
                            }
                        }));
                        return s;
                    });
                    try
                    {
                        await upstream.SendToAsync(message, hseEndpoint, stopRelay.Token);
                    }
                    catch (SocketException)
                    {
                        // The HSE is down: the datagram is lost, as on a real network.
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
        }, cancel);

        var hse = StartHse(data, port);
        var acknowledged = new ConcurrentBag<string>();
        var killed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            Assert.NotNull(await hse.StandardOutput.ReadLineAsync(cancel).AsTask().WaitAsync(TimeSpan.FromSeconds(60), cancel));
            var clients = new List<BestClient>();
            for (var d = 0; d < Devices; d++)
            {
                clients.Add(await BestClient.CreateAsync(new BestClientOptions
                {
                    Imsi = ImsiOf(d),
                    K = Convert.FromHexString(K),
                    Opc = Convert.FromHexString(Opc),
                    Transport = new BestTransport.Udp(relayEndpoint),
                    UsimStateFile = Path.Combine(_directory.FullName, $"usim-{d}.json"),
                    RetransmissionInterval = TimeSpan.FromMilliseconds(300),
                    MaxRetransmissions = 5,
                    TickInterval = TimeSpan.FromMilliseconds(50),
                    OperationTimeout = TimeSpan.FromSeconds(45),
                }, cancel));
            }

            var sentAfterRestart = new ConcurrentBag<string>();
            var channels = new ConcurrentDictionary<int, BestChannel>();
            var load = clients.Select((client, d) => Task.Run(async () =>
            {
                var opened = await client.OpenAsync(new UeChannelOptions
                {
                    EasId = "eas.example.com",
                    ServingNetwork = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org"),
                    CounterSchemes = CounterSchemes.TwoOctets,
                }, cancel);
                Assert.True(opened.Established);
                var channel = channels[d] = opened.Channel!;
                // Send until well after the restart; every message asks for an Ack.
                for (var i = 0; !killed.Task.IsCompleted || i < 40; i++)
                {
                    var payload = $"d{d}-m{i}";
                    var status = await channel.SendAsync(Encoding.UTF8.GetBytes(payload), acknowledged: true, cancel);
                    Assert.Equal(SendStatus.Acknowledged, status);
                    acknowledged.Add(payload);
                    if (killed.Task.IsCompleted)
                    {
                        sentAfterRestart.Add(payload);
                    }

                    if (i > 5000)
                    {
                        break;
                    }
                }
            }, cancel)).ToList();

            // Under load: kill -9, then restart on the same database and port. First every device is well into its
            // messages: its session is established and kept (an Ack leaves only after its commit), so all are restored.
            await Eventually.True(() => Enumerable.Range(0, Devices).All(d => acknowledged.Count(p => p.StartsWith($"d{d}-", StringComparison.Ordinal)) >= 5), "every device has five messages acknowledged before the kill");
            hse.Kill(entireProcessTree: true); // SIGKILL
            await hse.WaitForExitAsync(cancel);
            hse.Dispose();
            var beforeRestart = acknowledged.Count;
            await Task.Delay(500, cancel);
            hse = StartHse(data, port);
            var banner = await hse.StandardOutput.ReadLineAsync(cancel).AsTask().WaitAsync(TimeSpan.FromSeconds(60), cancel);
            Assert.Contains($"{Devices} restored session(s)", banner, StringComparison.Ordinal);
            killed.SetResult();
            await Task.WhenAll(load).WaitAsync(TimeSpan.FromSeconds(45), cancel);
            Assert.True(acknowledged.Count > beforeRestart, "no device recovered");
            Assert.True(clients.All(c => c.Dropped.GetValueOrDefault(DropReason.TagFailed) == 0), string.Join("; ", clients.Select(c => string.Join(",", c.Dropped.Select(d => $"{d.Key}={d.Value}")))));

            // Replay every captured uplink datagram at the restarted HSE: none may be accepted again. Then one more
            // acknowledged message: the HSE handles its datagrams in the order they came and acknowledges only what it
            // has committed, so by its Ack any replay it had accepted would be in the store too.
            using (var replayer = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp))
            {
                foreach (var (uplink, message) in captured.ToArray())
                {
                    if (uplink)
                    {
                        await replayer.SendToAsync(message, hseEndpoint, cancel);
                    }
                }
            }

            Assert.Equal(SendStatus.Acknowledged, await channels[0].SendAsync("after the replays"u8.ToArray(), acknowledged: true, cancel));
            acknowledged.Add("after the replays");
            foreach (var client in clients)
            {
                await client.DisposeAsync();
            }
        }
        finally
        {
            hse.Kill(entireProcessTree: true);
            await hse.WaitForExitAsync(CancellationToken.None);
            hse.Dispose();
            await stopRelay.CancelAsync();
            await relay;
            foreach (var socket in upstreams.Values)
            {
                socket.Dispose();
            }

            await Task.WhenAll(relayTasks);
        }

        // Every acknowledged message is in the store, exactly once (a replay accepted would add a row).
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        using var key = MasterKey.Load(data);
        using var store = SqliteSubscriberStore.Open(data, key);
        var stored = store.Uplinks(0, 1_000_000);
        var storedPayloads = stored.Select(u => Encoding.UTF8.GetString(u.Payload)).ToList();
        foreach (var payload in acknowledged)
        {
            Assert.Contains(payload, storedPayloads);
        }

        Assert.Equal(stored.Count, stored.Select(u => (u.SessionId, u.KeyId, u.Counter)).Distinct().Count());
        Assert.Equal(storedPayloads.Count, storedPayloads.Distinct().Count());

        // No counter seals two byte strings, per direction, session, key set and plane (n = 2 on every session).
        var seen = new Dictionary<(bool, uint, byte, Plane, uint), string>();
        var starts = new Dictionary<uint, string>();
        foreach (var (uplink, message) in captured)
        {
            if (HeaderPrefix.TryRead(message, out var prefix) != ParseStatus.Ok || prefix.KeyId == 0 || prefix.SessionId == 0)
            {
                continue;
            }

            // The Session Start (framed with n = 1) and the HSE's identical copies of it for retransmitted requests.
            if (!uplink && prefix.Plane == Plane.Control && (starts.TryAdd(prefix.SessionId, Convert.ToHexString(message)) || starts[prefix.SessionId] == Convert.ToHexString(message)))
            {
                continue;
            }

            if (EmsdpFrame.TryParse(message, prefix, 2, 0, out var frame) != ParseStatus.Ok)
            {
                continue;
            }

            var hex = Convert.ToHexString(message);
            var slot = (uplink, prefix.SessionId, prefix.KeyId, prefix.Plane, frame.CounterField);
            Assert.True(seen.TryAdd(slot, hex) || seen[slot] == hex, $"counter {frame.CounterField} reused: {slot}");
        }
    }

    [Fact]
    public async Task Sigterm_StopsGracefully_AndSaysWhatItDid()
    {
        var cancel = TestContext.Current.CancellationToken;
        var data = Path.Combine(_directory.FullName, "hse");
        var hse = StartHse(data, 0);
        try
        {
            var banner = await hse.StandardOutput.ReadLineAsync(cancel).AsTask().WaitAsync(TimeSpan.FromSeconds(60), cancel);
            Assert.StartsWith("HSE listening", banner, StringComparison.Ordinal);
            using (var kill = Process.Start("kill", ["-TERM", hse.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            {
                await kill.WaitForExitAsync(cancel);
            }

            var rest = await hse.StandardOutput.ReadToEndAsync(cancel).WaitAsync(TimeSpan.FromSeconds(30), cancel);
            await hse.WaitForExitAsync(cancel);
            Assert.Equal(0, hse.ExitCode);
            Assert.StartsWith("stopped:", rest.Trim(), StringComparison.Ordinal);
        }
        finally
        {
            hse.Kill(entireProcessTree: true);
            hse.Dispose();
        }
    }

    [Fact]
    public async Task ASecondHse_OnTheSameDatabase_IsRefusedWithOneLine()
    {
        var cancel = TestContext.Current.CancellationToken;
        var data = Path.Combine(_directory.FullName, "hse");
        var first = StartHse(data, 0);
        try
        {
            Assert.StartsWith("HSE listening", await first.StandardOutput.ReadLineAsync(cancel).AsTask().WaitAsync(TimeSpan.FromSeconds(60), cancel), StringComparison.Ordinal);
            using var output = new StringWriter();
            using var error = new StringWriter();
            Assert.Equal(2, BestApp.Run(["hse", "--data-dir", data, "--udp-port", "0", "--tcp-port", "-1"], output, error));
            Assert.Equal($"best hse: another HSE is running on {Path.Combine(data, "openbest.db")} (one HSE process per database)", error.ToString().Trim());
        }
        finally
        {
            first.Kill(entireProcessTree: true);
            await first.WaitForExitAsync(CancellationToken.None);
            first.Dispose();
        }
    }
}
