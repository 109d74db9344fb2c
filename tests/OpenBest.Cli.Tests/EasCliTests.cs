using OpenBest.Storage;

namespace OpenBest.Cli.Tests;

/// <summary><c>best subscriber external-id|policy</c>, <c>best pki init</c> and <c>best hse --eas-port</c> as a person runs them.</summary>
public sealed class EasCliTests : IDisposable
{
    private const string Imsi = "001010000000444";
    private const string K = "465b5ce8b199b49faa5f0a2ee238a6bc";
    private const string Opc = "cd63cb71954a9f4e48a5994e37a02baf";
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-eascli-");

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _directory.Delete(recursive: true);
    }

    private (int Code, string Output, string Error) Run(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var code = BestApp.Run([.. args, "--data-dir", _directory.FullName], output, error);
        return (code, output.ToString(), error.ToString());
    }

    [Fact]
    public void ExternalIdAndPolicy_AreStored()
    {
        Assert.Equal(0, Run("subscriber", "add", "--imsi", Imsi, "--k", K, "--opc", Opc).Code);
        var (code, output, _) = Run("subscriber", "external-id", "--imsi", Imsi, "--eas", "eas.example.com", "--id", "meter-7@acme");
        Assert.Equal(0, code);
        Assert.Contains("meter-7@acme", output, StringComparison.Ordinal);
        Assert.Equal(0, Run("subscriber", "policy", "--imsi", Imsi, "--services", "integrity").Code);
        Assert.Equal(0, Run("subscriber", "policy", "--eas", "eas.example.com", "--services", "integrity,confidential").Code);
        Assert.Equal(2, Run("subscriber", "policy", "--imsi", Imsi, "--eas", "x", "--services", "any").Code);
        Assert.Equal(2, Run("subscriber", "policy", "--imsi", Imsi, "--services", "fast").Code);
        Assert.Equal(2, Run("subscriber", "external-id", "--imsi", Imsi, "--eas", "e", "--id", "a#b").Code);
        Assert.Equal(1, Run("subscriber", "external-id", "--imsi", "001010000000999", "--eas", "e", "--id", "x").Code);

        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        using var key = MasterKey.Load(_directory.FullName);
        using var store = SqliteSubscriberStore.Open(_directory.FullName, key);
        Assert.Equal(Imsi, store.ImsiOf("eas.example.com", "meter-7@acme"));
        var (subscriber, eas) = store.Services(Imsi, "eas.example.com");
        Assert.Equal("integrity", ServicePolicy.Describe(subscriber));
        Assert.Equal("integrity,confidential", ServicePolicy.Describe(eas));
    }

    [Fact]
    public void HseWithEasPort_WithoutCertificates_IsOneLineNamingTheFile()
    {
        var (code, _, error) = Run("hse", "--eas-port", "0", "--udp-port", "0", "--tcp-port", "-1");
        Assert.Equal(2, code);
        Assert.Contains("hse.crt does not exist (run 'best pki init'", error, StringComparison.Ordinal);
        Assert.Single(error.Trim().Split('\n'));
    }

    [Theory]
    [InlineData("eas", "--eas-id", "eas.example.com", "--enterprise-key", "meter-1@acme=zz:00")]
    [InlineData("eas", "--eas-id", "eas.example.com", "--enterprise-key", "61636d65:00")]
    [InlineData("ue", "send", "--imsi", "001010000000001", "--k", "465b5ce8b199b49faa5f0a2ee238a6bc", "--opc", "cd63cb71954a9f4e48a5994e37a02baf", "--enterprise-key", "00112233445566778899aabbccddeeff00:01", "x")]
    [InlineData("ue", "send", "--imsi", "001010000000001", "--k", "465b5ce8b199b49faa5f0a2ee238a6bc", "--opc", "cd63cb71954a9f4e48a5994e37a02baf", "--enterprise-key", "61636d65:", "x")]
    public void BadEnterpriseKey_IsOneLineNamingTheOption(params string[] args)
    {
        using var output = new StringWriter();
        using var errors = new StringWriter();
        var code = BestApp.Run(args[0] == "eas" ? [.. args, "--data-dir", _directory.FullName] : args, output, errors);
        var error = errors.ToString();
        Assert.Equal(2, code);
        Assert.Contains("--enterprise-key must be", error, StringComparison.Ordinal);
        Assert.Single(error.Trim().Split('\n'));
    }

    [Fact]
    public void PkiInit_ThenAgain_CreatesNothingTwice()
    {
        var (code, output, _) = Run("pki", "init", "--eas", "eas.example.com");
        Assert.Equal(0, code);
        Assert.Contains("3 certificate(s) created", output, StringComparison.Ordinal);
        Assert.Contains("nothing to create", Run("pki", "init").Output, StringComparison.Ordinal);
        Assert.Equal(2, Run("pki", "init", "--eas", "has space").Code);
    }
}
