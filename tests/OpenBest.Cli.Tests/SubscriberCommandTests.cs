using OpenBest.Testing;

namespace OpenBest.Cli.Tests;

/// <summary><c>best subscriber</c> on a real SQLite file in a temporary data folder.</summary>
public sealed class SubscriberCommandTests : IDisposable
{
    private const string K = "465b5ce8b199b49faa5f0a2ee238a6bc";
    private const string Opc = "cd63cb71954a9f4e48a5994e37a02baf";
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-cli-");

    private string DataDir => Path.Combine(_directory.FullName, "data");

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _directory.Delete(recursive: true);
    }

    private (int Code, string Out, string Err) Run(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var code = BestApp.Run([.. args, "--data-dir", DataDir], output, error);
        return (code, output.ToString(), error.ToString());
    }

    [Fact]
    public void AddListRemove_NeverPrintsKeys()
    {
        Assert.Equal(0, Run("subscriber", "add", "--imsi", "208930000000001", "--k", K, "--opc", Opc).Code);
        Assert.Equal(0, Run("subscriber", "add", "--imsi", "208930000000002", "--k", K, "--op", "cdc202d5123e20f62b6d676ac72cb318", "--amf", "9000").Code);
        var (code, list, _) = Run("subscriber", "list");
        Assert.Equal(0, code);
        Assert.Contains("208930000000001  8000", list, StringComparison.Ordinal);
        Assert.Contains("208930000000002  9000", list, StringComparison.Ordinal);
        Assert.DoesNotContain(K, list, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(0, Run("subscriber", "remove", "--imsi", "208930000000001").Code);
        Assert.Equal(1, Run("subscriber", "remove", "--imsi", "208930000000001").Code);
        Assert.DoesNotContain("208930000000001", Run("subscriber", "list").Out, StringComparison.Ordinal);
    }

    [Fact]
    public void Add_Duplicate_ExitCode2()
    {
        Run("subscriber", "add", "--imsi", "208930000000001", "--k", K, "--opc", Opc);
        var (code, _, err) = Run("subscriber", "add", "--imsi", "208930000000001", "--k", K, "--opc", Opc);
        Assert.Equal(2, code);
        Assert.Contains("exists already", err, StringComparison.Ordinal);
    }

    [Fact]
    public void Add_BadImsi_ExitCode2()
    {
        var (code, _, err) = Run("subscriber", "add", "--imsi", "12ab", "--k", K, "--opc", Opc);
        Assert.Equal(2, code);
        Assert.Contains("--imsi must be 6..15 decimal digits", err, StringComparison.Ordinal);
    }

    [Fact]
    public void ImportCsv_AllGood_ImportsAll()
    {
        var file = Path.Combine(_directory.FullName, "subs.csv");
        File.WriteAllLines(file, ["imsi,k,opc,amf", $"001010000000001,{K},{Opc},8000", $"001010000000002,{K},{Opc},"]);
        var (code, output, _) = Run("subscriber", "import", file);
        Assert.Equal(0, code);
        Assert.Contains("imported 2", output, StringComparison.Ordinal);
    }

    [Fact]
    public void ImportCsv_BadRows_ReportsEachLine_ImportsNothing()
    {
        var file = Path.Combine(_directory.FullName, "bad.csv");
        File.WriteAllLines(file, ["imsi,k,opc", $"001010000000001,{K},{Opc}", $"00101x,{K},{Opc}", $"001010000000003,{K[..30]},{Opc}", $"001010000000001,{K},{Opc}", "001010000000004,short"]);
        var (code, _, err) = Run("subscriber", "import", file);
        Assert.Equal(2, code);
        Assert.Contains("bad.csv:3: imsi must be 6..15 decimal digits", err, StringComparison.Ordinal);
        Assert.Contains("bad.csv:4: k must be 32 hex digits", err, StringComparison.Ordinal);
        Assert.Contains("bad.csv:5: IMSI 001010000000001 appears twice", err, StringComparison.Ordinal);
        Assert.Contains("bad.csv:6: expected 3 columns, found 2", err, StringComparison.Ordinal);
        Assert.Contains("nothing was imported", err, StringComparison.Ordinal);
        Assert.DoesNotContain(K[..30], err, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("001010000000001", Run("subscriber", "list").Out, StringComparison.Ordinal);
    }

    [Fact]
    public void ImportJson_BadRow_NamesItsLine()
    {
        var file = Path.Combine(_directory.FullName, "subs.json");
        File.WriteAllText(file, $"[\n  {{ \"imsi\": \"001010000000001\", \"k\": \"{K}\", \"opc\": \"{Opc}\" }},\n  {{ \"imsi\": \"001010000000002\", \"k\": \"{K}\" }}\n]\n");
        var (code, _, err) = Run("subscriber", "import", file);
        Assert.Equal(2, code);
        Assert.Contains("subs.json:3: give exactly one of opc and op", err, StringComparison.Ordinal);
    }

    [Fact]
    public void Import_MissingFile_ExitCode2()
    {
        var (code, _, err) = Run("subscriber", "import", Path.Combine(_directory.FullName, "nope.csv"));
        Assert.Equal(2, code);
        Assert.Contains("no such file", err, StringComparison.Ordinal);
    }
}

public sealed class SubscriberImportScaleTests : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-import-");

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _directory.Delete(recursive: true);
    }

    [Fact]
    public async Task ImportJson_TwentyThousandRows_OneBadRowNamedByItsLine()
    {
        // One pass over the text: large files report the right line fast, and braces inside strings do not count.
        var rows = Enumerable.Range(0, 20_000).Select(i => $"  {{ \"imsi\": \"00101{i:D10}\", \"k\": \"465b5ce8b199b49faa5f0a2ee238a6bc\", \"opc\": \"cd63cb71954a9f4e48a5994e37a02baf\", \"note\": \"{{x}}\" }}").ToList();
        rows[15_000] = "  { \"imsi\": \"bad\", \"k\": \"00\" }";
        var file = Path.Combine(_directory.FullName, "many.json");
        File.WriteAllText(file, "[\n" + string.Join(",\n", rows) + "\n]\n");
        using var output = new StringWriter();
        using var error = new StringWriter();

        // Fast means one pass: a second or so here, where a pass per row would take many minutes. The deadline only tells
        // those apart, however busy the machine, and keeps the test within its time when the import is quadratic.
        var code = await Task.Run(() => BestApp.Run(["subscriber", "import", file, "--data-dir", Path.Combine(_directory.FullName, "data")], output, error), TestContext.Current.CancellationToken)
            .WaitAsync(Eventually.Deadline, TestContext.Current.CancellationToken);
        Assert.Equal(2, code);
        Assert.Contains("many.json:15002: imsi must be 6..15 decimal digits", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Hse_BadBindAddress_OneLine_ExitCode2_NothingWritten()
    {
        var data = Path.Combine(_directory.FullName, "never");
        using var output = new StringWriter();
        using var error = new StringWriter();
        var code = BestApp.Run(["hse", "--bind", "10.255.255.1", "--udp-port", "0", "--tcp-port", "-1", "--data-dir", data], output, error);
        Assert.Equal(2, code);
        Assert.Single(error.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.False(Directory.Exists(data));
    }

    [Fact]
    public void Subscriber_DataDirIsAFile_OneLine_ExitCode2()
    {
        var file = Path.Combine(_directory.FullName, "a-file");
        File.WriteAllText(file, "x");
        using var output = new StringWriter();
        using var error = new StringWriter();
        Assert.Equal(2, BestApp.Run(["subscriber", "list", "--data-dir", file], output, error));
        Assert.Single(error.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }
}
