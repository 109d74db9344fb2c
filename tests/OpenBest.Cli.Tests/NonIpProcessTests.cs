using System.Diagnostics;
using OpenBest.Client;
using OpenBest.Protocol;
using OpenBest.Sessions;

namespace OpenBest.Cli.Tests;

/// <summary><c>best hse --non-ip -</c>: the HSE serves a device over its own stdin/stdout (a non-IP stream bearer).</summary>
public sealed class NonIpProcessTests : IDisposable
{
    private const string Imsi = "001010000000888";
    private const string K = "465b5ce8b199b49faa5f0a2ee238a6bc";
    private const string Opc = "cd63cb71954a9f4e48a5994e37a02baf";
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-nonip-");

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _directory.Delete(recursive: true);
    }

    [Fact]
    public async Task Hse_OverStdinStdout_AcknowledgesADevice()
    {
        var cancel = TestContext.Current.CancellationToken;
        var data = Path.Combine(_directory.FullName, "hse");
        using (var sink = new StringWriter())
        {
            Assert.Equal(0, BestApp.Run(["subscriber", "add", "--imsi", Imsi, "--k", K, "--opc", Opc, "--data-dir", data], sink, sink));
        }

        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        var info = new ProcessStartInfo("dotnet") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "best.dll"), "hse", "--data-dir", data, "--udp-port", "0", "--tcp-port", "-1", "--non-ip", "-" })
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info)!;
        try
        {
            // Human output goes to stderr: stdout carries only frames.
            string? line;
            do
            {
                line = await process.StandardError.ReadLineAsync(cancel).AsTask().WaitAsync(TimeSpan.FromSeconds(60), cancel);
            }
            while (line is not null && !line.StartsWith("HSE listening", StringComparison.Ordinal));

            Assert.Contains("non-IP -", line, StringComparison.Ordinal);
            _ = Task.Run(async () => { while (await process.StandardError.ReadLineAsync(cancel) is not null) { } }, cancel);
            await using var client = await BestClient.CreateAsync(new BestClientOptions
            {
                Imsi = Imsi,
                K = Convert.FromHexString(K),
                Opc = Convert.FromHexString(Opc),
                Transport = new BestTransport.NonIp(process.StandardOutput.BaseStream, process.StandardInput.BaseStream),
                OperationTimeout = TimeSpan.FromSeconds(30),
            }, cancel);
            var opened = await client.OpenAsync(new UeChannelOptions { EasId = "eas.example.com", ServingNetwork = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org") }, cancel);
            Assert.True(opened.Established);
            Assert.Equal(SendStatus.Acknowledged, await opened.Channel!.SendAsync("over a serial line"u8.ToArray(), true, cancel));
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
        }
    }
}
