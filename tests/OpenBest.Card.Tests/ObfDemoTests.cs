using OpenBest.Cli;
using OpenBest.Storage.Tests;
using OpenBest.Testing;

namespace OpenBest.Card.Tests;

/// <summary>
/// <c>best obf demo</c> (AIS140, Y.OBF_trust appendix) as users run it: every check of its table must hold and the exit code is 0;
/// in process (--no-pcsc), and with every card behind pcscd daemons of the demo's own.
/// </summary>
[Collection("pcscd")]
public sealed class ObfDemoTests(Pcscd pcscd, PostgresServer postgres) : IClassFixture<PostgresServer>
{
    [Fact]
    public void Demo_FirstProviderOnPostgreSql_EveryCheckHolds()
    {
        postgres.SkipIfUnavailable();

        using var output = new StringWriter();
        using var error = new StringWriter();
        var code = BestApp.Run(["obf", "demo", "--devices", "4", "--no-pcsc", "--postgres", postgres.CreateDatabase()], output, error);
        Assert.True(code == 0, output.ToString() + error);
        Assert.Contains("every check held", output.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Demo_InProcessCards_EveryCheckHolds()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var code = BestApp.Run(["obf", "demo", "--devices", "6", "--no-pcsc"], output, error);
        Assert.True(code == 0, output.ToString() + error);
        Assert.Contains("every check held", output.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("NO", output.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Demo_CardsOverPcsc_SeveralDaemonsBesideTheMachinesOne_EveryCheckHolds()
    {
        Pcscd.Require();
        if (!OpenBest.Obf.Demo.PcscdHost.PrivateSupported)
        {
            Assert.True(Environment.GetEnvironmentVariable("CI") is null, "CI runs as root, where the demo's pcscd run in mount namespaces");
            Assert.Skip("private pcscd need root and unshare");
        }

        // 18 cards need two daemons (16 slots each); both run beside the collection's pcscd, which stays up.
        var (code, output, error) = await BestProcess.RunAsync("obf", "demo", "--devices", "18");
        Assert.True(code == 0, output + error);
        Assert.Contains("over PC/SC (2 pcscd, 18 vpcd slots)", output, StringComparison.Ordinal);
        Assert.Contains("every check held", output, StringComparison.Ordinal);
        Assert.NotNull(pcscd);
        Assert.True(OpenBest.Obf.Demo.PcscdHost.Running, "the machine's pcscd is untouched");
    }

    [Fact]
    public void Demo_BadDeviceCount_IsOneLine_ExitCode2()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        Assert.Equal(2, BestApp.Run(["obf", "demo", "--devices", "0"], output, error));
        Assert.Contains("--devices", error.ToString(), StringComparison.Ordinal);
    }
}
