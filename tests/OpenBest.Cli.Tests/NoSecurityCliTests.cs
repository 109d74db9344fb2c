using System.Diagnostics;
using System.Text.RegularExpressions;

namespace OpenBest.Cli.Tests;

/// <summary>
/// <c>best ue send --service none</c> against a real <c>best hse</c> process: the no-security channel (seed 000 section 3)
/// only where the HSE allows it (profile 6.2: off by default), and what it sent is stored.
/// </summary>
public sealed partial class NoSecurityCliTests : IDisposable
{
    private const string Imsi = "001010000000778";
    private const string K = "465b5ce8b199b49faa5f0a2ee238a6bc";
    private const string Opc = "cd63cb71954a9f4e48a5994e37a02baf";
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-none-cli-");

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _directory.Delete(recursive: true);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task UeSendServiceNone_IsServedOnlyWhereTheHseAllowsIt(bool allowed)
    {
        var cancel = TestContext.Current.CancellationToken;
        var data = Path.Combine(_directory.FullName, "hse");
        using (var sink = new StringWriter())
        {
            Assert.Equal(0, BestApp.Run(["subscriber", "add", "--imsi", Imsi, "--k", K, "--opc", Opc, "--data-dir", data], sink, sink));
        }

        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "best.dll"), "hse", "--data-dir", data, "--udp-port", "0", "--tcp-port", "-1" })
        {
            info.ArgumentList.Add(arg);
        }

        info.Environment["BEST_ALLOW_NO_SECURITY"] = allowed ? "true" : "false";
        using var process = Process.Start(info)!;
        try
        {
            var first = await process.StandardOutput.ReadLineAsync(cancel).AsTask().WaitAsync(TimeSpan.FromSeconds(60), cancel);
            var hse = Endpoint().Match(first!).Groups[1].Value;
            using var output = new StringWriter();
            using var error = new StringWriter();
            var code = BestApp.Run(["ue", "send", "--imsi", Imsi, "--k", K, "--opc", Opc, "--hse", hse, "--service", "none", "--timeout", "30",
                "--usim-state", Path.Combine(_directory.FullName, "usim.json"), "management hello"], output, error);
            if (allowed)
            {
                Assert.True(code == 0, output.ToString() + error);
                Assert.Contains("no security", output.ToString(), StringComparison.Ordinal);
                Assert.Contains("sent", output.ToString(), StringComparison.Ordinal);
            }
            else
            {
                // Cause 0x07 (service not supported), said in one line, exit code 1.
                Assert.Equal(1, code);
                Assert.Contains("rejected by the HSE: ServiceNotSupported", error.ToString(), StringComparison.Ordinal);
            }
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
        }

        if (allowed)
        {
            // The message is in the HSE's store, under Key ID 0 (nothing protected it).
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            using var key = OpenBest.Storage.MasterKey.Load(data);
            using var store = OpenBest.Storage.SqliteSubscriberStore.Open(data, key);
            var row = Assert.Single(store.Uplinks(0, 10));
            Assert.Equal("management hello", System.Text.Encoding.UTF8.GetString(row.Payload));
            Assert.Equal(0, row.KeyId);
        }
    }

    [Fact]
    public void UeSend_UnknownService_IsRefusedWithOneLine_ExitCode2()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var code = BestApp.Run(["ue", "send", "--imsi", Imsi, "--k", K, "--opc", Opc, "--service", "plaintext", "x"], output, error);
        Assert.Equal(2, code);
        Assert.Contains("--service", error.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(K, error.ToString(), StringComparison.Ordinal);
    }

    [GeneratedRegex(@"udp (\S+?)( and|,)")]
    private static partial Regex Endpoint();
}
