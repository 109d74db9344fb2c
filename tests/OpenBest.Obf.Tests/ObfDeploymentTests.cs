using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.RegularExpressions;
using OpenBest.Crypto;
using OpenBest.Crypto.Aka;
using OpenBest.Gsup.Tests;
using OpenBest.Storage;
using OpenBest.Storage.Tests;

namespace OpenBest.Obf.Tests;

/// <summary>
/// The OBF server as operators run it: on PostgreSQL, with vectors from the operator's HLR (a real osmo-hlr), and as the
/// <c>best obf serve</c> process with its command line, SIGTERM, /metrics and /health.
/// </summary>
public sealed partial class ObfDeploymentTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    private static async Task BootstrapAndFetchAsync(TestObf obf, string identity)
    {
        using var milenage = new Milenage(TestObf.K, TestObf.Opc);
        using var ub = obf.Ub();
        var device = new GbaMeClient(ub, identity, new Usim(milenage, new UsimSequenceState(SqnScheme.Default)), new GbaMeClientOptions { Realm = TestObf.Domain });
        using var result = await device.RunAsync(Cancel);
        Assert.True(result.Succeeded, result.ToString());
        obf.Store.Grant(new ResourceRight(identity, TestObf.Vtams, "position", DateTimeOffset.UtcNow));
        var (status, body) = await obf.RetrieveAsync(TestObf.Vtams, result.BTid!);
        Assert.Equal(200, status);
        Assert.Equal(Convert.ToHexStringLower(device.DeriveKsNaf(TestObf.Vtams, [1, 0, 0, 0, 2])), body.GetProperty("meKeyMaterial").GetString());
    }

    [Fact]
    public async Task OnPostgreSql_BootstrapAndKeyRetrieval_Work()
    {
        postgres.SkipIfUnavailable();

        await using var obf = await TestObf.StartAsync(postgres: postgres.CreateDatabase());
        await BootstrapAndFetchAsync(obf, TestObf.Impi);
    }

    [Fact]
    public async Task WithVectorsFromOsmoHlr_TheServerHoldsNoKey_AndTheDeviceBootstraps()
    {
        // Y.OBF_trust 6.2 a/e: the provider need not be the card issuer; the operator's HLR computes the vectors.
        await using var hlr = await OsmoHlr.StartAsync();
        const string imsi = "001010000000777";
        await hlr.CreateSubscriberAsync(imsi, Convert.ToHexStringLower(TestObf.K), Convert.ToHexStringLower(TestObf.Opc));
        await using var obf = await TestObf.StartAsync(auc: hlr.Gsup);
        const string impi = "001010000000777@ims.mnc001.mcc001.3gppnetwork.org";
        obf.Store.AddSecureElements([new NewSecureElement(impi, [], [], Imsi: imsi)]);
        Assert.False(obf.Store.SecureElement(impi)!.HasKeys);
        Assert.Null(obf.Store.GetSecrets(impi));
        await BootstrapAndFetchAsync(obf, impi);
    }

    [Fact]
    public async Task TheServeProcess_StartsOnItsSettings_ServesMetrics_AndStopsOnSigterm()
    {
        var directory = Directory.CreateTempSubdirectory("openbest-obf-serve-");
        try
        {
            var best = Path.Combine(AppContext.BaseDirectory, "best.dll");
            using (var sink = new StringWriter())
            {
                // Without the PKI: one line naming the missing file, exit code 2, nothing written.
                Assert.Equal(2, OpenBest.Cli.BestApp.Run(["obf", "serve", "--data-dir", directory.FullName], sink, sink));
                Assert.Contains("pki", sink.ToString(), StringComparison.Ordinal);
                Assert.False(File.Exists(Path.Combine(directory.FullName, SqliteObfStore.FileName)));
                Assert.Equal(0, OpenBest.Cli.BestApp.Run(["pki", "init", "--naf", TestObf.Vtams, "--data-dir", directory.FullName], sink, sink));
            }

            var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var arg in new[] { best, "obf", "serve", "--data-dir", directory.FullName, "--ub-port", "0", "--rpo-port", "0", "--metrics-port", "0", "--domain", TestObf.Domain, "--log-format", "json" })
            {
                info.ArgumentList.Add(arg);
            }

            using var process = Process.Start(info)!;
            try
            {
                var first = await process.StandardOutput.ReadLineAsync(Cancel).AsTask().WaitAsync(OpenBest.Testing.Eventually.Deadline, Cancel);
                Assert.Contains("OBF server: Ub on https://", first, StringComparison.Ordinal);
                var metrics = Metrics().Match(first!).Groups[1].Value;
                using var http = new HttpClient();
                Assert.Equal("ok\n", await http.GetStringAsync($"{metrics}/health", Cancel));
                Assert.Contains("obf_bootstraps_total 0", await http.GetStringAsync($"{metrics}/metrics", Cancel), StringComparison.Ordinal);
                Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!.WaitForExit();
                await process.WaitForExitAsync(Cancel).WaitAsync(OpenBest.Testing.Eventually.Deadline, Cancel);
                Assert.Equal(0, process.ExitCode);
                Assert.Contains("stopped: bootstrappings 0,", await process.StandardOutput.ReadToEndAsync(Cancel), StringComparison.Ordinal);
            }
            finally
            {
                if (!process.HasExited)
                {
                    process.Kill(entireProcessTree: true);
                }
            }
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            directory.Delete(recursive: true);
        }
    }

    [GeneratedRegex(@"metrics on (\S+)/metrics")]
    private static partial Regex Metrics();
}
