using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using OpenBest.Testing;

namespace OpenBest.Card.Tests;

/// <summary>
/// OTA over BEST (seed 000 section 5) with real processes: <c>best ota send</c> (the OTA server) builds a TS 102 225 packet
/// and sends it through <c>best hse</c>'s northbound API to the device's <c>urn:best:ota</c> channel; <c>best ue ota</c> hands
/// it to its card (<c>best card</c> behind pcscd) as an SMS-PP data download and sends the PoR back. Both termination points:
/// a fully secured packet (AES-CBC, AES-CMAC, counter) and a packet without 102 225 security that the card takes only
/// because it came over the protected BEST channel; a replayed counter is refused with "CNTR low".
/// </summary>
[Collection("pcscd")]
public sealed class OtaOverBestTests(Pcscd pcscd) : IDisposable
{
    private const string Imsi = "001010000000077";
    private const string K = "465b5ce8b199b49faa5f0a2ee238a6bc";
    private const string Opc = "cd63cb71954a9f4e48a5994e37a02baf";
    private const string Kic = "200102030405060708090a0b0c0d0e0f";
    private const string Kid = "201102030405060708090a0b0c0d0e0f";
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-ota-");

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _directory.Delete(recursive: true);
    }

    [Fact]
    public async Task AnOtaServer_ReachesTheCard_ThroughTheHseAndTheDevice_SecuredAndOverBestOnly()
    {
        Pcscd.Require();
        var data = _directory.FullName;
        await Ok("pki", "init", "--eas", "urn:best:ota", "--data-dir", data);
        await Ok("subscriber", "add", "--imsi", Imsi, "--k", K, "--opc", Opc, "--data-dir", data);
        await Ok("subscriber", "external-id", "--imsi", Imsi, "--eas", "urn:best:ota", "--id", "meter-ota", "--data-dir", data);
        var easPort = FreePort();
        await using var hse = BestProcess.Start("hse", "--data-dir", data, "--udp-port", "0", "--tcp-port", "-1", "--eas-port", easPort.ToString(CultureInfo.InvariantCulture));
        await hse.WaitForAsync("EAS interface on");
        var udp = Regex.Match(hse.Output, @"udp (\S+?)( and|,)").Groups[1].Value;

        await pcscd.WaitForNoCardAsync();
        await using var card = BestProcess.Start("card", "--imsi", Imsi, "--k", K, "--opc", Opc, "--state", Path.Combine(data, "card.state"), "--vpcd", $"127.0.0.1:{pcscd.Port}",
            "--ota-key", $"1:{Kic}:{Kid}");
        await card.WaitForAsync("inserted");
        await pcscd.WaitForCardAsync();
        await using var device = BestProcess.Start("ue", "ota", "--card", "pcsc:" + pcscd.ReaderName, "--hse", udp);
        await device.WaitForAsync("OTA channel open");

        string[] server = ["ota", "send", "--hse", $"https://127.0.0.1:{easPort}/", "--data-dir", data, "--to", "meter-ota", "--tar", "B00001"];
        // (a) Fully secured: ciphered, CC, counter must be higher, PoR required, ciphered, with CC. Reads EF_SPN.
        var (code, output, error) = await BestProcess.RunAsync([.. server, "--spi", "1639", "--kic", Kic, "--kid", Kid, "--key-version", "1", "--counter", "1", "00A40004026F46", "00B0000011"]);
        Assert.True(code == 0, output + error + device.Output + device.Error);
        Assert.Contains("PoR: Ok; 2 command(s) run, last SW 9000, data 014f70656e42657374", output, StringComparison.Ordinal); // 01 "OpenBest"

        // The same counter again: refused by the card.
        (code, output, error) = await BestProcess.RunAsync([.. server, "--spi", "1639", "--kic", Kic, "--kid", Kid, "--key-version", "1", "--counter", "1", "00A40004026F46"]);
        Assert.Equal(1, code);
        Assert.Contains("PoR: CounterLow", output, StringComparison.Ordinal);

        // (b) No 102 225 security: the card takes it because the device says it came over the protected BEST OTA channel.
        (code, output, error) = await BestProcess.RunAsync([.. server, "--spi", "0001", "00A40004026F46"]);
        Assert.True(code == 0, output + error);
        Assert.Contains("PoR: Ok; 1 command(s) run, last SW 9000", output, StringComparison.Ordinal);
    }

    private static async Task Ok(params string[] arguments)
    {
        var (code, output, error) = await BestProcess.RunAsync(arguments);
        Assert.True(code == 0, string.Join(' ', arguments) + ": " + output + error);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
