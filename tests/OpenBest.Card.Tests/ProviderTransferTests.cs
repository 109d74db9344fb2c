using System.Net.Http.Json;
using System.Net.Sockets;
using System.Net;
using System.Text.RegularExpressions;
using OpenBest.Crypto.Kdf;
using OpenBest.EasInterface;
using OpenBest.Obf;
using OpenBest.Storage;
using OpenBest.Testing;

namespace OpenBest.Card.Tests;

/// <summary>
/// Transfer of a device to another authentication provider (Y.OBF_trust 6.2 c, d, f; 7.5 b; 8.2) with real processes: two
/// <c>best obf serve</c>, <c>best obf transfer</c> stopped after each step and killed servers, and the device (<c>best obf bootstrap
/// --card</c>, its card behind pcscd) that follows the record its card verified. The device always has a working provider.
/// </summary>
[Collection("pcscd")]
public sealed partial class ProviderTransferTests(Pcscd pcscd) : IDisposable
{
    private const string K = "465b5ce8b199b49faa5f0a2ee238a6bc";
    private const string Opc = "cd63cb71954a9f4e48a5994e37a02baf";
    private const string Impi = "001010000000021@ims.mnc001.mcc001.3gppnetwork.org";
    private const string Iccid = "8991000000000000021";
    private const string Vtams = "vtams.example.com";
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-transfer-");

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _directory.Delete(recursive: true);
    }

    [Fact]
    public async Task Transfer_InterruptedAtEachStep_Resumes_AndTheCardFollowsTheRecordItVerified()
    {
        Pcscd.Require();
        var (a, b, serverKeyOfA) = await ProvisionAsync();
        var (ubA, rpoA) = (FreePort(), FreePort());
        var (ubB, rpoB) = (FreePort(), FreePort());
        var serverA = await ServeAsync(a, ubA, rpoA);
        var serverB = await ServeAsync(b, ubB, rpoB);
        try
        {
            // A card personalised with A's key, in the pcscd reader; it bootstraps with A.
            await using var card = await InsertCardAsync(serverKeyOfA, ubA);
            Assert.Contains("@bsf.a.example.org", await BootstrapAsync(a, ubA), StringComparison.Ordinal);

            // Stopped right after the package was made (as kill -9 would): A still serves the device.
            Assert.Equal(137, (await TransferAsync(a, rpoB, stopAfter: "prepared")).Code);
            Assert.Contains("@bsf.a.example.org", await BootstrapAsync(a, ubA), StringComparison.Ordinal);

            // B killed: the delivery fails, the transfer is kept, A still serves the device.
            await serverB.DisposeAsync();
            var refused = await TransferAsync(a, rpoB);
            Assert.True(refused.Code == 1, refused.Output + refused.Error);
            Assert.Contains("resume", refused.Error, StringComparison.Ordinal);
            Assert.Contains("@bsf.a.example.org", await BootstrapAsync(a, ubA), StringComparison.Ordinal);

            // B back; stopped right after the delivery: B holds the keys, A still serves the device (no gap).
            serverB = await ServeAsync(b, ubB, rpoB);
            Assert.Equal(137, (await TransferAsync(a, rpoB, stopAfter: "delivered")).Code);
            Assert.Contains("@bsf.a.example.org", await BootstrapAsync(a, ubA), StringComparison.Ordinal);

            // A killed and restarted, then the transfer resumed to its end.
            await serverA.DisposeAsync();
            serverA = await ServeAsync(a, ubA, rpoA);
            var done = await TransferAsync(a, rpoB);
            Assert.True(done.Code == 0, done.Output + done.Error);
            Assert.Contains("done", done.Output, StringComparison.Ordinal);

            // The device asks A, gets the record, its card verifies it and the device bootstraps with B.
            var moved = await BootstrapAsync(a, ubA);
            Assert.Matches($@"Transferred: the card verified the record and now trusts https://[^ ]*:{ubB}", moved);
            var btid = Regex.Match(moved, @"B-TID: (\S+)").Groups[1].Value;
            Assert.EndsWith("@bsf.b.example.org", btid, StringComparison.Ordinal);

            // The application keeps working: its key for the device now comes from B (the right moved with the device).
            using var own = DevelopmentPki.LoadPair(DevelopmentPki.Naf(b, Vtams));
            using var anchor = DevelopmentPki.LoadCertificate(DevelopmentPki.Ca(b).Certificate);
            using var naf = new NafKeyClient(new Uri($"https://127.0.0.1:{rpoB}/"), Vtams, own, anchor);
            var retrieval = await naf.RetrieveAsync(btid, Gba.UaHttpDigest.ToArray(), gbaUAware: true, TestContext.Current.CancellationToken);
            Assert.True(retrieval.Status == 200, retrieval.Detail);
            (var code, var sealedHex, var error) = await BestProcess.RunAsync("obf", "seal", "--card", "pcsc:" + pcscd.ReaderName, "--key-index", "1", "PVT after the transfer");
            Assert.True(code == 0, error);
            var packet = Convert.FromHexString(sealedHex.Trim());
            var plain = new byte[packet.Length - SealedData.Overhead];
            Assert.True(SealedData.TryOpen(Convert.FromHexString(retrieval.Answer!.UiccKeyMaterial!), SealDirection.DeviceToServer, OpenBest.Card.Iccid.Encode(Iccid), packet, plain));

            // Every step audited on both servers.
            await serverA.DisposeAsync();
            await serverB.DisposeAsync();
            Assert.Superset(new HashSet<string> { "transfer-prepared", "transfer-delivered", "transfer-done" }, AuditEvents(a, Impi));
            Assert.Contains("transfer-received", AuditEvents(b, Impi));
        }
        finally
        {
            await serverA.DisposeAsync();
            await serverB.DisposeAsync();
        }
    }

    [Fact]
    public async Task Transfer_StoppedAtTheOldServer_IsFinishedFromTheNewServer_WithASignedReceipt()
    {
        Pcscd.Require();
        var (a, b, serverKeyOfA) = await ProvisionAsync();
        var (ubA, rpoA) = (FreePort(), FreePort());
        var (ubB, rpoB) = (FreePort(), FreePort());
        var serverA = await ServeAsync(a, ubA, rpoA);
        var serverB = await ServeAsync(b, ubB, rpoB);
        try
        {
            await using var card = await InsertCardAsync(serverKeyOfA, ubA);

            // A made the package and stopped (as kill -9 would); nobody runs the command at A again.
            Assert.Equal(137, (await TransferAsync(a, rpoB, stopAfter: "prepared")).Code);

            // A receipt not signed by B's key does not finish it.
            using (var http = OperatorClient(a, rpoA))
            {
                using var forged = await http.PostAsJsonAsync($"/obf/v1/transfers/{Uri.EscapeDataString(Impi)}/receipt", new { signature = new string('1', 128) }, TestContext.Current.CancellationToken);
                Assert.Equal(HttpStatusCode.Forbidden, forged.StatusCode);
            }

            // B resumes from its side: takes the package, then stops before its receipt reaches A: A still serves the device.
            Assert.Equal(137, (await ResumeAtBAsync(b, rpoA, stopAfter: "received")).Code);
            Assert.Contains("@bsf.a.example.org", await BootstrapAsync(a, ubA), StringComparison.Ordinal);

            // B killed and restarted; the resumed transfer ends with A done on B's signed receipt.
            await serverB.DisposeAsync();
            serverB = await ServeAsync(b, ubB, rpoB);
            var done = await ResumeAtBAsync(b, rpoA);
            Assert.True(done.Code == 0, done.Output + done.Error);
            Assert.Contains("done", done.Output, StringComparison.Ordinal);

            var moved = await BootstrapAsync(a, ubA);
            Assert.Matches($@"Transferred: the card verified the record and now trusts https://[^ ]*:{ubB}", moved);
            Assert.EndsWith("@bsf.b.example.org", Regex.Match(moved, @"B-TID: (\S+)").Groups[1].Value, StringComparison.Ordinal);

            await serverA.DisposeAsync();
            await serverB.DisposeAsync();
            Assert.Superset(new HashSet<string> { "transfer-prepared", "transfer-receipt", "transfer-delivered", "transfer-done" }, AuditEvents(a, Impi));
            Assert.Contains("transfer-received", AuditEvents(b, Impi));
        }
        finally
        {
            await serverA.DisposeAsync();
            await serverB.DisposeAsync();
        }
    }

    [Fact]
    public async Task TransferCommand_NeedsToOrFrom_OneLineError()
    {
        var (code, _, error) = await BestProcess.RunAsync("obf", "transfer", "--impi", Impi, "--data-dir", _directory.FullName);
        Assert.Equal(2, code);
        Assert.Contains("--to URL", error, StringComparison.Ordinal);
    }

    private static HttpClient OperatorClient(string data, int rpo)
    {
        var handler = new SocketsHttpHandler();
        var own = DevelopmentPki.LoadPair(DevelopmentPki.Eas(data, "obf-admin"));
        var anchor = DevelopmentPki.LoadCertificate(DevelopmentPki.Ca(data).Certificate);
        DevelopmentPki.UseFor(handler.SslOptions, anchor, own);
        return new HttpClient(handler) { BaseAddress = new Uri($"https://127.0.0.1:{rpo}/") };
    }

    private static Task<(int Code, string Output, string Error)> ResumeAtBAsync(string data, int rpoA, string? stopAfter = null)
    {
        string[] arguments = ["obf", "transfer", "--impi", Impi, "--from", $"https://127.0.0.1:{rpoA}/", "--data-dir", data];
        return stopAfter is null ? BestProcess.RunAsync(arguments) : BestProcess.RunAsync(new Dictionary<string, string> { ["BEST_OBF_TRANSFER_STOP_AFTER"] = stopAfter }, arguments);
    }

    /// <summary>Two servers' data folders under one CA; the element and its right at A; A's server key.</summary>
    private async Task<(string A, string B, string KeyOfA)> ProvisionAsync()
    {
        var a = Path.Combine(_directory.FullName, "a");
        var b = Path.Combine(_directory.FullName, "b");
        await Ok("pki", "init", "--naf", Vtams, "--eas", "obf-admin", "--data-dir", a);
        CopyFolder(Path.Combine(a, "pki"), Path.Combine(b, "pki")); // one CA for both servers, as one federation's
        foreach (var data in new[] { a, b })
        {
            await Ok("obf", "provider", "add", "--name", "transport-dept", "--role", "asp", "--data-dir", data);
            await Ok("obf", "app", "add", "--naf", Vtams, "--owner", "transport-dept", "--data-dir", data);
        }

        await Ok("obf", "se", "add", "--impi", Impi, "--k", K, "--opc", Opc, "--iccid", Iccid, "--provider", "transport-dept", "--data-dir", a);
        await Ok("obf", "rights", "grant", "--impi", Impi, "--naf", Vtams, "--class", "position", "--data-dir", a);
        return (a, b, (await Ok("obf", "server-key", "--data-dir", a)).Trim());
    }

    private async Task<BestProcess> InsertCardAsync(string keyOfA, int ubA)
    {
        await pcscd.WaitForNoCardAsync();
        var card = BestProcess.Start("card", "--imsi", "001010000000021", "--k", K, "--opc", Opc, "--iccid", Iccid, "--state", Path.Combine(_directory.FullName, "card.state"),
            "--vpcd", $"127.0.0.1:{pcscd.Port}", "--obf-key", keyOfA, "--obf-endpoint", $"https://127.0.0.1:{ubA}/");
        await card.WaitForAsync("inserted");
        await pcscd.WaitForCardAsync();
        return card;
    }

    private async Task<string> BootstrapAsync(string data, int ub)
    {
        var (code, output, error) = await BestProcess.RunAsync("obf", "bootstrap", "--card", "pcsc:" + pcscd.ReaderName, "--impi", Impi, "--server", $"https://127.0.0.1:{ub}/",
            "--ca", DevelopmentPki.Ca(data).Certificate, "--naf", Vtams, "--se-key-index", "1");
        Assert.True(code == 0, output + error);
        return output;
    }

    private static Task<(int Code, string Output, string Error)> TransferAsync(string data, int rpoB, string? stopAfter = null)
    {
        string[] arguments = ["obf", "transfer", "--impi", Impi, "--to", $"https://127.0.0.1:{rpoB}/", "--data-dir", data];
        return stopAfter is null ? BestProcess.RunAsync(arguments) : BestProcess.RunAsync(new Dictionary<string, string> { ["BEST_OBF_TRANSFER_STOP_AFTER"] = stopAfter }, arguments);
    }

    /// <summary>Serves <paramref name="data"/>; its B-TIDs end in @bsf.FOLDER.example.org, which tells the two servers apart.</summary>
    private static async Task<BestProcess> ServeAsync(string data, int ub, int rpo)
    {
        var server = BestProcess.Start("obf", "serve", "--data-dir", data, "--ub-port", ub.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--rpo-port", rpo.ToString(System.Globalization.CultureInfo.InvariantCulture), "--domain", $"bsf.{Path.GetFileName(data)}.example.org");
        await server.WaitForAsync("OBF server: Ub on");
        return server;
    }

    private static async Task<string> Ok(params string[] arguments)
    {
        var (code, output, error) = await BestProcess.RunAsync(arguments);
        Assert.True(code == 0, string.Join(' ', arguments) + ": " + output + error);
        return output;
    }

    private static HashSet<string> AuditEvents(string data, string subject)
    {
        using var key = MasterKey.Load(data);
        using var store = SqliteObfStore.Open(data, key);
        return [.. store.AuditLog(1000).Where(e => e.Subject == subject).Select(e => e.Event)];
    }

    private static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from))
        {
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
