using System.Diagnostics;
using System.Net;
using System.Text.RegularExpressions;
using OpenBest.Bearers;
using OpenBest.Crypto;
using OpenBest.Crypto.Aka;
using OpenBest.Protocol;
using OpenBest.Sessions;
using OpenBest.Testing;

namespace OpenBest.Cli.Tests;

/// <summary><c>best hse</c> as a real process on loopback, with a device talking to it over UDP.</summary>
public sealed partial class HseCommandTests : IDisposable
{
    private const string Imsi = "001010000000123";
    private const string K = "465b5ce8b199b49faa5f0a2ee238a6bc";
    private const string Opc = "cd63cb71954a9f4e48a5994e37a02baf";
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-hse-");

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _directory.Delete(recursive: true);
    }

    [Fact]
    public async Task Hse_Process_ServesADeviceOverUdp()
    {
        var cancel = TestContext.Current.CancellationToken;
        using (var output = new StringWriter())
        {
            Assert.Equal(0, BestApp.Run(["subscriber", "add", "--imsi", Imsi, "--k", K, "--opc", Opc, "--data-dir", _directory.FullName], output, output));
        }

        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "best.dll"), "hse", "--data-dir", _directory.FullName, "--udp-port", "0", "--tcp-port", "0", "--metrics-port", "0" })
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info)!;
        try
        {
            var first = await process.StandardOutput.ReadLineAsync(cancel).AsTask().WaitAsync(TimeSpan.FromSeconds(60), cancel);
            Assert.NotNull(first);
            var match = UdpEndpoint().Match(first);
            Assert.True(match.Success, first);
            Assert.Contains("1 subscriber(s)", first, StringComparison.Ordinal);
            var hse = IPEndPoint.Parse(match.Groups[1].Value);

            await using var bearer = UdpBearer.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            using var milenage = new Milenage(Convert.FromHexString(K), Convert.FromHexString(Opc));
            using var ue = new UeEndpoint(new Usim(milenage, new UsimSequenceState(SqnScheme.Default)), new UeOptions { Imsi = Imsi });
            var path = bearer.PathTo(hse);
            var opened = ue.Open(new UeChannelOptions { EasId = "eas.example.com", ServingNetwork = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org") }, out var channel);
            foreach (var send in opened.Send)
            {
                await path.SendAsync(send.Message, cancel);
            }

            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            timeout.CancelAfter(Eventually.Deadline);
            var acknowledged = false;
            await foreach (var received in bearer.Received.ReadAllAsync(timeout.Token))
            {
                var step = ue.Receive(received.Message.Span);
                if (step.Events.OfType<SessionEstablished>().Any())
                {
                    step.Send.AddRange(ue.Send(channel, "hello from a device"u8, ackRequested: true).Send);
                }

                acknowledged |= step.Events.OfType<DataAcknowledged>().Any();
                foreach (var send in step.Send)
                {
                    await path.SendAsync(send.Message, cancel);
                }

                if (acknowledged)
                {
                    break;
                }
            }

            Assert.True(acknowledged);
            // Structured logs on stderr: the session, never the IMSI.
            string? line;
            var logged = new List<string>();
            do
            {
                line = await process.StandardError.ReadLineAsync(cancel).AsTask().WaitAsync(Eventually.Deadline, cancel);
                logged.Add(line ?? string.Empty);
            }
            while (line is not null && !line.Contains("session 1 established", StringComparison.Ordinal));

            Assert.NotNull(line);
            Assert.Contains("eas.example.com", line, StringComparison.Ordinal);
            Assert.DoesNotContain(logged, l => l.Contains(Imsi, StringComparison.Ordinal));

            // Operations endpoints: Prometheus text and health, with no identity in any label.
            var web = MetricsEndpoint().Match(first);
            Assert.True(web.Success, first);
            using var http = new HttpClient();
            var metrics = await http.GetStringAsync(new Uri(web.Groups[1].Value + "/metrics"), cancel);
            Assert.Contains("openbest_hse_events_total{kind=\"SessionEstablished\"} 1", metrics, StringComparison.Ordinal);
            Assert.Contains("openbest_hse_messages_received_total", metrics, StringComparison.Ordinal);
            Assert.DoesNotContain(Imsi, metrics, StringComparison.Ordinal);
            Assert.Equal("ok\n", await http.GetStringAsync(new Uri(web.Groups[1].Value + "/health"), cancel));
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
        }
    }

    [GeneratedRegex(@"udp (\S+?)( and|,)")]
    private static partial Regex UdpEndpoint();

    [GeneratedRegex(@"metrics on (\S+)/metrics")]
    private static partial Regex MetricsEndpoint();
}

/// <summary><c>best ue send</c> against <c>best hse</c>, both as a person would run them.</summary>
public sealed partial class UeCommandTests : IDisposable
{
    private const string K = "465b5ce8b199b49faa5f0a2ee238a6bc";
    private const string Opc = "cd63cb71954a9f4e48a5994e37a02baf";
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-ue-");

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _directory.Delete(recursive: true);
    }

    [Fact]
    public async Task UeSend_TwiceWithAPersistedUsim_BothAcknowledged()
    {
        var cancel = TestContext.Current.CancellationToken;
        var data = Path.Combine(_directory.FullName, "hse");
        using (var sink = new StringWriter())
        {
            Assert.Equal(0, BestApp.Run(["subscriber", "add", "--imsi", "001010000000777", "--k", K, "--opc", Opc, "--data-dir", data], sink, sink));
        }

        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "best.dll"), "hse", "--data-dir", data, "--udp-port", "0", "--tcp-port", "-1" })
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info)!;
        try
        {
            var first = await process.StandardOutput.ReadLineAsync(cancel).AsTask().WaitAsync(TimeSpan.FromSeconds(60), cancel);
            var hse = Endpoint().Match(first!).Groups[1].Value;
            var state = Path.Combine(_directory.FullName, "usim.json");
            foreach (var text in new[] { "first reading", "second reading" })
            {
                using var output = new StringWriter();
                using var error = new StringWriter();
                var code = BestApp.Run(["ue", "send", "--imsi", "001010000000777", "--k", K, "--opc", Opc, "--hse", hse, "--usim-state", state, text], output, error);
                Assert.True(code == 0, output.ToString() + error);
                Assert.Contains("acknowledged", output.ToString(), StringComparison.Ordinal);
            }

            // The USIM's SQN state was committed to the file, owner-only.
            var saved = File.ReadAllText(state);
            Assert.Contains("\"SqnMs\":\"0000000000", saved, StringComparison.Ordinal);
            if (!OperatingSystem.IsWindows())
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(state));
            }
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
        }
    }

    [Fact]
    public void UeSend_NoHse_FailsWithinItsTimeout_ExitCode1()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var code = BestApp.Run(["ue", "send", "--imsi", "001010000000777", "--k", K, "--opc", Opc, "--hse", "127.0.0.1:9", "--timeout", "2", "hello"], output, error);
        Assert.Equal(1, code);
        Assert.Contains("no session from 127.0.0.1:9", error.ToString(), StringComparison.Ordinal);
    }

    [GeneratedRegex(@"udp (\S+?)( and|,)")]
    private static partial Regex Endpoint();
}
