using System.Text.RegularExpressions;
using OpenBest.Crypto.Aka;
using OpenBest.Crypto.Kdf;
using OpenBest.Crypto;
using OpenBest.EasInterface;
using OpenBest.Obf;
using OpenBest.Testing;

namespace OpenBest.Card.Tests;

/// <summary>
/// <c>best card</c> as a real card behind a real pcscd (vsmartcard vpcd): an independent APDU client (opensc-tool) runs AUTHENTICATE
/// on it; <c>best ue send --card pcsc</c> opens a BEST session with a real <c>best hse</c>; the card bootstraps GBA_U with the OBF
/// server and its secure element seals and opens application data, while the device process only carries bytes (its trace of
/// everything it received holds no key).
/// </summary>
[Collection("pcscd")]
public sealed partial class PcscTests(Pcscd pcscd) : IDisposable
{
    private const string K = "465b5ce8b199b49faa5f0a2ee238a6bc";
    private const string Opc = "cd63cb71954a9f4e48a5994e37a02baf";
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-pcsc-");

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _directory.Delete(recursive: true);
    }

    [Fact]
    public async Task OpenscTool_SendsAuthenticate_AndTheCardAnswersAsMilenageSays()
    {
        Pcscd.Require();
        await using var card = await InsertAsync("001010000000011");
        using var milenage = new Milenage(Convert.FromHexString(K), Convert.FromHexString(Opc));
        using var vector = AuthenticationCentre.Generate(milenage, sqn: 0x40, amf: 0x8000);
        var (code, output, error) = await RunAsync("opensc-tool", "--reader", pcscd.Reader, "--send-apdu", "00A4040C07A0000000871002",
            "--send-apdu", $"0088008122:10:{Hex(vector.Rand)}:10:{Hex(vector.Autn)}:00");
        Assert.True(code == 0, output + error);
        // opensc-tool prints each response in hex rows: 'DB 08 RES 10 CK 10 IK', SW 90 00 (after its own GET RESPONSE).
        var printed = string.Concat(HexRows().Matches(output).Select(m => m.Groups[1].Value.Replace(" ", string.Empty, StringComparison.Ordinal)));
        Assert.Contains($"DB08{Hex(vector.Xres)}10{Hex(vector.Ck)}10{Hex(vector.Ik)}", printed, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UeSend_WithTheCardBehindPcscd_OpensABestSessionWithARealHse()
    {
        Pcscd.Require();
        const string Imsi = "001010000000012";
        await using var card = await InsertAsync(Imsi);
        var data = Path.Combine(_directory.FullName, "hse");
        var added = await BestProcess.RunAsync("subscriber", "add", "--imsi", Imsi, "--k", K, "--opc", Opc, "--data-dir", data);
        Assert.True(added.Code == 0, added.Output + added.Error);
        await using var hse = BestProcess.Start("hse", "--data-dir", data, "--udp-port", "0", "--tcp-port", "-1");
        await hse.WaitForAsync("udp ");
        var endpoint = Endpoint().Match(hse.Output).Groups[1].Value;
        // No --imsi: the device reads it from the card's EF_IMSI; no --k: the card runs AKA.
        var (code, output, error) = await BestProcess.RunAsync("ue", "send", "--card", "pcsc:" + pcscd.ReaderName, "--hse", endpoint, "--timeout", "60", "hello from a card");
        Assert.True(code == 0, output + error + hse.Error);
        Assert.Contains("acknowledged", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ObfBootstrap_OfTheCard_GbaU_TheSecureElementSealsAndOpens_AndNoKeyEntersTheDevice()
    {
        Pcscd.Require();
        const string Impi = "001010000000001@ims.mnc001.mcc001.3gppnetwork.org";
        const string Iccid = "8991000000000000001";
        const string Vtams = "vtams.example.com";
        var data = Path.Combine(_directory.FullName, "obf");
        foreach (var setUp in new[]
        {
            new[] { "pki", "init", "--naf", Vtams },
            ["obf", "provider", "add", "--name", "transport-dept", "--role", "asp"],
            ["obf", "se", "add", "--impi", Impi, "--k", K, "--opc", Opc, "--iccid", Iccid, "--provider", "transport-dept"],
            ["obf", "app", "add", "--naf", Vtams, "--owner", "transport-dept"],
            ["obf", "rights", "grant", "--impi", Impi, "--naf", Vtams, "--class", "position"],
        })
        {
            var done = await BestProcess.RunAsync([.. setUp, "--data-dir", data]);
            Assert.True(done.Code == 0, string.Join(' ', setUp) + ": " + done.Output + done.Error);
        }

        await using var obf = BestProcess.Start("obf", "serve", "--data-dir", data, "--ub-port", "0", "--rpo-port", "0", "--domain", "bsf.example.org");
        await obf.WaitForAsync("OBF server: Ub on");
        var addresses = ObfAddresses().Match(obf.Output);
        var (ub, rpo) = (addresses.Groups[1].Value, addresses.Groups[2].Value);
        await using var card = await InsertAsync("001010000000001", Iccid);
        var trace = Path.Combine(_directory.FullName, "device.trace");
        var ca = DevelopmentPki.Ca(data).Certificate;
        var reader = "pcsc:" + pcscd.ReaderName;

        // The device process: GBA_U through the card, then the card puts Ks_int_NAF for VTAMS into key index 1.
        var (code, output, error) = await BestProcess.RunAsync("obf", "bootstrap", "--card", reader, "--impi", Impi, "--server", ub, "--ca", ca,
            "--naf", Vtams, "--se-key-index", "1", "--trace", trace);
        Assert.True(code == 0, output + error + obf.Error);
        Assert.Contains("GBA_U", output, StringComparison.Ordinal);
        var btid = Regex.Match(output, @"B-TID: (\S+)").Groups[1].Value;
        (code, output, error) = await BestProcess.RunAsync("obf", "seal", "--card", reader, "--key-index", "1", "--trace", trace, "PVT 28.61N 77.21E 42km/h");
        Assert.True(code == 0, output + error);
        var packet = Convert.FromHexString(output.Trim());

        // The application server (VTAMS) gets the card's key from the key service as a GBA_U aware NAF, and opens the packet.
        using var own = DevelopmentPki.LoadPair(DevelopmentPki.Naf(data, Vtams));
        using var trustAnchor = DevelopmentPki.LoadCertificate(ca);
        using var naf = new NafKeyClient(new Uri(rpo), Vtams, own, trustAnchor);
        var retrieval = await naf.RetrieveAsync(btid, Gba.UaHttpDigest.ToArray(), gbaUAware: true, TestContext.Current.CancellationToken);
        var ksIntNaf = Convert.FromHexString(retrieval.Answer!.UiccKeyMaterial!);
        var iccid = OpenBest.Card.Iccid.Encode(Iccid);
        var plain = new byte[packet.Length - SealedData.Overhead];
        Assert.True(SealedData.TryOpen(ksIntNaf, SealDirection.DeviceToServer, iccid, packet, plain));
        Assert.Equal("PVT 28.61N 77.21E 42km/h", System.Text.Encoding.UTF8.GetString(plain));

        // VTAMS sends a command with TRUST data; the card checks it before the device acts, and refuses a replay.
        var command = SealedData.Seal(ksIntNaf, SealDirection.ServerToDevice, 1, 1, iccid, "SET SERVER vtams2.example.com:5001"u8);
        (code, output, error) = await BestProcess.RunAsync("obf", "open", "--card", reader, "--key-index", "1", "--trace", trace, Hex(command));
        Assert.True(code == 0, output + error);
        Assert.Equal("SET SERVER vtams2.example.com:5001", output.Trim());
        (code, _, error) = await BestProcess.RunAsync("obf", "open", "--card", reader, "--key-index", "1", Hex(command));
        Assert.Equal(1, code);
        Assert.Contains("replay", error, StringComparison.Ordinal);

        // What entered the device process: every APDU answer and every server answer. None holds K, OPc, CK, IK, Ks_ext_NAF or Ks_int_NAF.
        var received = await File.ReadAllTextAsync(trace, TestContext.Current.CancellationToken);
        Assert.Contains("R: db08", received, StringComparison.Ordinal); // RES only, from the GBA context
        Assert.Contains("H: 401", received, StringComparison.Ordinal);
        var rand = Convert.FromBase64String(btid[..btid.IndexOf('@', StringComparison.Ordinal)]);
        using var milenage = new Milenage(Convert.FromHexString(K), Convert.FromHexString(Opc));
        var (ck, ik) = (new byte[16], new byte[16]);
        milenage.F2345(rand, default, ck, ik, default);
        var nafId = Gba.NafId(Vtams, Gba.UaHttpDigest);
        var (ext, intern) = (new byte[32], new byte[32]);
        Gba.KsNaf(ck, ik, rand, Impi, nafId, ext);
        Gba.KsIntNaf(ck, ik, rand, Impi, nafId, intern);
        Assert.Equal(intern, ksIntNaf);
        foreach (var (name, secret) in new[] { ("K", Convert.FromHexString(K)), ("OPc", Convert.FromHexString(Opc)), ("CK", ck), ("IK", ik), ("Ks_ext_NAF", ext), ("Ks_int_NAF", intern) })
        {
            // Any 8 consecutive octets of a key would be a leak, wherever they sit in a line.
            for (var at = 0; at + 8 <= secret.Length; at += 4)
            {
                Assert.False(received.Contains(Convert.ToHexStringLower(secret, at, 8), StringComparison.Ordinal), $"{name} entered the device process");
            }
        }
    }

    /// <summary>Starts <c>best card</c> into the test reader and waits until PC/SC sees it.</summary>
    private async Task<BestProcess> InsertAsync(string imsi, string? iccid = null)
    {
        var state = Path.Combine(_directory.FullName, imsi + ".card");
        var arguments = new List<string> { "card", "--imsi", imsi, "--k", K, "--opc", Opc, "--state", state, "--vpcd", $"127.0.0.1:{pcscd.Port}" };
        if (iccid is not null)
        {
            arguments.AddRange(["--iccid", iccid]);
        }

        await pcscd.WaitForNoCardAsync();
        var card = BestProcess.Start([.. arguments]);
        await card.WaitForAsync("inserted");
        await pcscd.WaitForCardAsync();
        return card;
    }

    private static async Task<(int Code, string Output, string Error)> RunAsync(string program, params string[] arguments)
    {
        var info = new System.Diagnostics.ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        using var process = System.Diagnostics.Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var error = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        await process.WaitForExitAsync(TestContext.Current.CancellationToken);
        return (process.ExitCode, await output, await error);
    }

    private static string Hex(ReadOnlySpan<byte> bytes) => Convert.ToHexString(bytes);

    [GeneratedRegex(@"^((?:[0-9A-F]{2} )+)", RegexOptions.Multiline)]
    private static partial Regex HexRows();

    [GeneratedRegex(@"Ub on (\S+), keys \(Nbsp_GBA\) and registry on (\S+?)[,;]")]
    private static partial Regex ObfAddresses();

    [GeneratedRegex(@"udp (\S+?)( and|,)")]
    private static partial Regex Endpoint();
}
