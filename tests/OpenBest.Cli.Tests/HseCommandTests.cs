using System.Diagnostics;
using System.Net;
using System.Text.RegularExpressions;
using OpenBest.Bearers;
using OpenBest.Crypto;
using OpenBest.Crypto.Aka;
using OpenBest.Protocol;
using OpenBest.Sessions;

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
        foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "best.dll"), "hse", "--data-dir", _directory.FullName, "--udp-port", "0", "--tcp-port", "0" })
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
            timeout.CancelAfter(TimeSpan.FromSeconds(20));
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
            var established = await process.StandardOutput.ReadLineAsync(cancel).AsTask().WaitAsync(TimeSpan.FromSeconds(20), cancel);
            Assert.StartsWith("SessionEstablished", established, StringComparison.Ordinal);
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
        }
    }

    [GeneratedRegex(@"udp (\S+?)( and|,)")]
    private static partial Regex UdpEndpoint();
}
