using System.Diagnostics;
using System.Text.RegularExpressions;
using OpenBest.Gsup.Tests;

namespace OpenBest.Cli.Tests;

/// <summary>
/// <c>best hse --auc gsup://HOST:PORT</c> as a process against a real osmo-hlr that the test starts (Debian osmo-hlr): the
/// HSE holds no K and no OPc; a device with test set 1's keys, known only to the HLR, opens a session and is acknowledged.
/// </summary>
public sealed partial class HlrProcessTests : IDisposable
{
    private const string Imsi = "001010000000555";
    private const string K = "465b5ce8b199b49faa5f0a2ee238a6bc";
    private const string Opc = "cd63cb71954a9f4e48a5994e37a02baf";
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-hlr-hse-");

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _directory.Delete(recursive: true);
    }

    [Fact]
    public async Task Hse_WithVectorsFromOsmoHlr_ServesADevice_AndHoldsNoKey()
    {
        var cancel = TestContext.Current.CancellationToken;
        await using var hlr = await OsmoHlr.StartAsync();
        await hlr.CreateSubscriberAsync(Imsi, K, Opc);
        var data = Path.Combine(_directory.FullName, "hse");
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "best.dll"), "hse", "--data-dir", data, "--udp-port", "0", "--tcp-port", "-1", "--auc", $"gsup://{hlr.Address}:{OsmoHlr.GsupPort}" })
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info)!;
        try
        {
            var first = await process.StandardOutput.ReadLineAsync(cancel).AsTask().WaitAsync(OpenBest.Testing.Eventually.Deadline, cancel);
            Assert.Contains($"vectors from the HLR at {hlr.Address}:4222", first, StringComparison.Ordinal);
            var hse = Endpoint().Match(first!).Groups[1].Value;
            using var output = new StringWriter();
            using var error = new StringWriter();
            var code = BestApp.Run(["ue", "send", "--imsi", Imsi, "--k", K, "--opc", Opc, "--hse", hse, "--timeout", "30", "--usim-state", Path.Combine(_directory.FullName, "usim.json"), "over the HLR's vector"], output, error);
            Assert.True(code == 0, output.ToString() + error + hlr.Log);
            Assert.Contains("acknowledged", output.ToString(), StringComparison.Ordinal);
        }
        finally
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
        }

        // The HSE's own store never held the subscriber.
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        using var list = new StringWriter();
        Assert.Equal(0, BestApp.Run(["subscriber", "list", "--data-dir", data], list, list));
        Assert.DoesNotContain(Imsi, list.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Hse_BadAuc_IsOneLine_ExitCode2()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        Assert.Equal(2, BestApp.Run(["hse", "--data-dir", Path.Combine(_directory.FullName, "x"), "--auc", "http://hlr:4222"], output, error));
        Assert.Contains("Auc", error.ToString(), StringComparison.Ordinal);
        Assert.Single(error.ToString().Trim().Split('\n'));
        Assert.False(Directory.Exists(Path.Combine(_directory.FullName, "x")));
    }

    [GeneratedRegex(@"udp (\S+?)( and|,)")]
    private static partial Regex Endpoint();
}
