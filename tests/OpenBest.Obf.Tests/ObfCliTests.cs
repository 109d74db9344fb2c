using System.Text;
using OpenBest.Cli;
using OpenBest.Storage;

namespace OpenBest.Obf.Tests;

/// <summary>
/// The <c>best obf</c> registry commands: what they write, the audit log, and bad input (one line naming the field, exit
/// code 2, nothing written); key import from a wrapped batch, all or nothing, naming the record that fails.
/// </summary>
public sealed class ObfCliTests : IDisposable
{
    private const string K = "465b5ce8b199b49faa5f0a2ee238a6bc";
    private const string Opc = "cd63cb71954a9f4e48a5994e37a02baf";
    private const string Impi = "001010000000001@ims.mnc001.mcc001.3gppnetwork.org";
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-obf-cli-");

    private string Data => _directory.FullName;

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _directory.Delete(recursive: true);
    }

    private static (int Code, string Output, string Error) Best(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var code = BestApp.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    private T WithStore<T>(Func<IObfStore, T> read)
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        using var key = MasterKey.Load(Data);
        using var store = SqliteObfStore.Open(Data, key);
        return read(store);
    }

    [Fact]
    public void Registry_ProviderSeAppRights_AreWritten_Listed_AndAudited()
    {
        Assert.Equal(0, Best("obf", "provider", "add", "--name", "acme-m2m", "--role", "m2msp,asp", "--data-dir", Data).Code);
        Assert.Equal(0, Best("obf", "se", "add", "--impi", Impi, "--k", K, "--op", "cdc202d5123e20f62b6d676ac72cb318", "--iccid", "8991000000000000001", "--eid", "89049032000000000000000000000001", "--provider", "acme-m2m", "--data-dir", Data).Code);
        Assert.Equal(0, Best("obf", "device", "add", "--imei", "356938035643809", "--impi", Impi, "--data-dir", Data).Code);
        Assert.Equal(0, Best("obf", "app", "add", "--naf", "VTAMS.example.com", "--owner", "acme-m2m", "--data-dir", Data).Code);
        Assert.Equal(0, Best("obf", "rights", "grant", "--impi", Impi, "--naf", "vtams.example.com", "--class", "alarm", "--data-dir", Data).Code);

        var list = Best("obf", "se", "list", "--data-dir", Data);
        Assert.Contains("iccid 8991000000000000001", list.Output, StringComparison.Ordinal);
        Assert.DoesNotContain(K, list.Output, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("vtams.example.com\talarm", Best("obf", "rights", "list", "--naf", "vtams.example.com", "--data-dir", Data).Output, StringComparison.Ordinal);
        Assert.Equal(0, Best("obf", "rights", "revoke", "--impi", Impi, "--naf", "vtams.example.com", "--class", "alarm", "--data-dir", Data).Code);
        Assert.Equal(1, Best("obf", "rights", "revoke", "--impi", Impi, "--naf", "vtams.example.com", "--class", "alarm", "--data-dir", Data).Code);

        WithStore(store =>
        {
            // --op: OPc computed from OP (MILENAGE test set 1's OP gives its OPc).
            using var secrets = store.GetSecrets(Impi)!;
            Assert.Equal(Opc, Convert.ToHexStringLower(secrets.Opc));
            Assert.Equal(["right-revoked", "right-granted", "app-added", "device-added", "se-added", "provider-added"], store.AuditLog(10).Select(a => a.Event));
            return 0;
        });
    }

    [Theory]
    [InlineData("--impi", "no-at-sign", "--impi must be an NAI")]
    [InlineData("--iccid", "12ab", "--iccid must be 18..22 decimal digits")]
    [InlineData("--eid", "123", "--eid must be 32 decimal digits")]
    [InlineData("--k", "00", "--k")]
    public void SeAdd_BadInput_IsOneLineNamingTheField_ExitTwo_NothingWritten(string option, string value, string expected)
    {
        var args = new List<string> { "obf", "se", "add", "--impi", Impi, "--k", K, "--opc", Opc, "--data-dir", Data };
        var at = args.IndexOf(option);
        if (at >= 0)
        {
            args[at + 1] = value;
        }
        else
        {
            args.InsertRange(3, [option, value]);
        }

        var (code, _, error) = Best([.. args]);
        Assert.Equal(2, code);
        Assert.Contains(expected, error, StringComparison.Ordinal);
        Assert.Single(error.Trim().Split('\n'));
        Assert.DoesNotContain(K, error, StringComparison.OrdinalIgnoreCase);
        Assert.False(File.Exists(Path.Combine(Data, SqliteObfStore.FileName)));
    }

    [Fact]
    public void RightsGrant_ForAnUnknownApplication_IsRefused_AndDuplicatesSayWhat()
    {
        Assert.Equal(0, Best("obf", "se", "add", "--impi", Impi, "--k", K, "--opc", Opc, "--data-dir", Data).Code);
        var (code, _, error) = Best("obf", "rights", "grant", "--impi", Impi, "--naf", "nobody.example.com", "--class", "alarm", "--data-dir", Data);
        Assert.Equal(2, code);
        Assert.Contains("--naf: no application nobody.example.com", error, StringComparison.Ordinal);
        var duplicate = Best("obf", "se", "add", "--impi", Impi, "--k", K, "--opc", Opc, "--data-dir", Data);
        Assert.Equal(2, duplicate.Code);
        Assert.Contains("exists already. Nothing was added.", duplicate.Error, StringComparison.Ordinal);
    }

    [Fact]
    public void SeImport_FromAWrappedBatch_IsAllOrNothing_AndNamesTheRecordThatFails()
    {
        var transport = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();
        var keyFile = Path.Combine(Data, "transport.hex");
        Directory.CreateDirectory(Data);
        File.WriteAllText(keyFile, Convert.ToHexString(transport));
        var imported = Best("obf", "transport-key", "import", "--key-file", keyFile, "--data-dir", Data);
        Assert.Equal(0, imported.Code);
        Assert.Contains(KeyImportBatch.KekId(transport), imported.Output, StringComparison.Ordinal);

        var records = Enumerable.Range(0, 3).Select(i => new SecureElementKeyRecord($"899100000000000010{i}", null, $"00101000000010{i}", null, SubscriberKeyType.MilenageKOpc, Convert.FromHexString(K), Convert.FromHexString(Opc))).ToList();
        var batch = KeyImportBatch.Write(records, transport);
        records.ForEach(r => r.Dispose());

        // A tampered record in the middle: named, and nothing is imported.
        var lines = Encoding.UTF8.GetString(batch).Split('\n');
        var second = Array.FindIndex(lines, l => l.Contains("imsi=001010000000101", StringComparison.Ordinal));
        var wrapped = lines[second].IndexOf("wrapped=", StringComparison.Ordinal) + 8;
        lines[second] = lines[second][..wrapped] + (lines[second][wrapped] == '0' ? '1' : '0') + lines[second][(wrapped + 1)..];
        var tampered = Path.Combine(Data, "tampered.batch");
        File.WriteAllText(tampered, string.Join('\n', lines));
        var refused = Best("obf", "se", "import", tampered, "--data-dir", Data);
        Assert.Equal(2, refused.Code);
        Assert.Contains("record 2", refused.Error, StringComparison.Ordinal);
        Assert.Contains("nothing was imported", refused.Error, StringComparison.Ordinal);
        Assert.Empty(WithStore(store => store.SecureElements()));

        // Under another transport key (never imported): refused, naming the key.
        var other = Path.Combine(Data, "other.batch");
        using (var record = new SecureElementKeyRecord("8991000000000000200", null, "001010000000200", null, SubscriberKeyType.MilenageKOpc, Convert.FromHexString(K), Convert.FromHexString(Opc)))
        {
            File.WriteAllBytes(other, KeyImportBatch.Write([record], new byte[32]));
        }

        Assert.Contains("was never imported", Best("obf", "se", "import", other, "--data-dir", Data).Error, StringComparison.Ordinal);

        // The intact batch: every record, with IMPIs derived from the IMSIs (TS 23.003, MNC of 2 digits by default).
        var good = Path.Combine(Data, "good.batch");
        File.WriteAllBytes(good, batch);
        var ok = Best("obf", "se", "import", good, "--data-dir", Data);
        Assert.True(ok.Code == 0, ok.Error);
        Assert.Contains("imported 3 secure element(s)", ok.Output, StringComparison.Ordinal);
        var elements = WithStore(store => store.SecureElements());
        Assert.Equal(3, elements.Count);
        Assert.Contains(elements, e => e.Impi == "001010000000100@ims.mnc001.mcc001.3gppnetwork.org" && e.Iccid == "8991000000000000100");
    }

    [Fact]
    public void SeImport_PlainCsv_OnlyBehindItsDevelopmentFlag()
    {
        Directory.CreateDirectory(Data);
        var csv = Path.Combine(Data, "keys.csv");
        File.WriteAllText(csv, $"impi,k,opc,iccid\n{Impi},{K},{Opc},8991000000000000001\n");
        // Without the flag the file is read as a wrapped batch, which it is not.
        Assert.Equal(2, Best("obf", "se", "import", csv, "--data-dir", Data).Code);
        var ok = Best("obf", "se", "import", csv, "--plain-csv-for-development", "--data-dir", Data);
        Assert.Equal(0, ok.Code);
        Assert.Contains("for development only", ok.Error, StringComparison.Ordinal);
        Assert.Single(WithStore(store => store.SecureElements()));
    }

    [Fact]
    public void Bench_SmallLoad_ReportsBootstrapsAndKeyRetrievals()
    {
        // The figures are measured by hand (README); here the command runs end to end and every request ends as expected.
        var (code, output, error) = Best("obf", "bench", "--secure-elements", "20", "--concurrency", "4", "--duration", "1");
        Assert.True(code == 0, output + error);
        Assert.Contains("bootstraps per second", output, StringComparison.Ordinal);
        Assert.Contains("key retrievals per second", output, StringComparison.Ordinal);
        Assert.Contains("SQLite", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task BootstrapAndKey_TheDeviceAndTheApplication_PrintTheSameKsNaf_AndRefusalsSayWhy()
    {
        await using var obf = await TestObf.StartAsync();
        obf.Store.Grant(new ResourceRight(TestObf.Impi, TestObf.Vtams, "alarm", DateTimeOffset.UtcNow));
        var dir = obf.Directory.FullName;
        var state = Path.Combine(dir, "usim.json");
        var (code, output, error) = await Task.Run(() => Best("obf", "bootstrap", "--impi", TestObf.Impi, "--k", K, "--opc", Opc, "--server", obf.Server.UbAddress,
            "--data-dir", dir, "--usim-state", state, "--naf", TestObf.Vtams), TestContext.Current.CancellationToken);
        Assert.True(code == 0, output + error);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries).ToDictionary(l => l[..l.IndexOf(':', StringComparison.Ordinal)], l => l[(l.IndexOf(':', StringComparison.Ordinal) + 2)..]);
        var btid = lines["B-TID"];
        Assert.EndsWith("@" + TestObf.Domain, btid, StringComparison.Ordinal);
        Assert.True(File.Exists(state));
        var ksNaf = lines[$"Ks_NAF ({TestObf.Vtams}, 0100000002)"];
        Assert.Matches("^[0-9a-f]{64}$", ksNaf);

        // The same card given by OP (MILENAGE test set 1) bootstraps too, on the SQN state the first run left.
        (code, output, error) = await Task.Run(() => Best("obf", "bootstrap", "--impi", TestObf.Impi, "--k", K, "--op", "cdc202d5123e20f62b6d676ac72cb318", "--server", obf.Server.UbAddress,
            "--data-dir", dir, "--usim-state", state), TestContext.Current.CancellationToken);
        Assert.True(code == 0, output + error);
        Assert.DoesNotContain("Ks_NAF", output, StringComparison.Ordinal);

        (code, output, error) = await Task.Run(() => Best("obf", "key", "--btid", btid, "--naf", TestObf.Vtams, "--server", obf.Server.RpoAddress, "--data-dir", dir), TestContext.Current.CancellationToken);
        Assert.True(code == 0, output + error);
        Assert.Contains($"Ks_NAF ({TestObf.Vtams}, 0100000002): {ksNaf}", output, StringComparison.Ordinal);
        Assert.Contains("Data classes: alarm", output, StringComparison.Ordinal);

        // The other application has no rights; an unknown B-TID must bootstrap again; a card with other keys refuses the server.
        (code, _, error) = await Task.Run(() => Best("obf", "key", "--btid", btid, "--naf", TestObf.Ers, "--server", obf.Server.RpoAddress, "--data-dir", dir), TestContext.Current.CancellationToken);
        Assert.Equal((1, "best obf key: refused (403 NO_RESOURCE_RIGHTS)"), (code, error[..error.IndexOf(':', 14)]));
        (code, _, error) = await Task.Run(() => Best("obf", "key", "--btid", "AAAAAAAAAAAAAAAAAAAAAA==@" + TestObf.Domain, "--naf", TestObf.Vtams, "--server", obf.Server.RpoAddress, "--data-dir", dir), TestContext.Current.CancellationToken);
        Assert.Equal(1, code);
        Assert.Contains("404 BTID_NOT_FOUND", error, StringComparison.Ordinal);
        (code, output, error) = await Task.Run(() => Best("obf", "bootstrap", "--impi", TestObf.Impi, "--k", "0396eb317b6d1c36f19c1c84cd6ffd16", "--opc", Opc, "--server", obf.Server.UbAddress, "--data-dir", dir), TestContext.Current.CancellationToken);
        Assert.Equal((1, string.Empty), (code, output));
        Assert.Contains("MAC failure", error, StringComparison.Ordinal);
        Assert.DoesNotContain("0396eb317b6d1c36f19c1c84cd6ffd16", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--k", "465b", "--k must be 32 hex digits")]
    [InlineData("--impi", "no-realm", "--impi must be an NAI")]
    [InlineData("--server", "ftp://x/", "--server must be an https:// URL")]
    [InlineData("--ua", "01", "--ua must be 10 hex digits")]
    public void Bootstrap_BadInput_IsOneLineNamingTheOption_ExitTwo(string option, string value, string expected)
    {
        var args = new Dictionary<string, string> { ["--impi"] = Impi, ["--k"] = K, ["--opc"] = Opc, ["--server"] = "https://127.0.0.1:1/" };
        args[option] = value;
        var (code, output, error) = Best(["obf", "bootstrap", .. args.SelectMany(a => new[] { a.Key, a.Value }), "--data-dir", Data]);
        Assert.Equal((2, string.Empty), (code, output));
        Assert.Contains(expected, error, StringComparison.Ordinal);
        Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.DoesNotContain(K, error, StringComparison.Ordinal);
    }
}
