using System.Diagnostics;

namespace OpenBest.Cli.Tests;

/// <summary><c>best aka</c>: parsing as data, invocation with captured output, and one real process run.</summary>
public sealed class AkaCommandTests
{
    private const string K1 = "465b5ce8b199b49faa5f0a2ee238a6bc";
    private const string Opc1 = "cd63cb71954a9f4e48a5994e37a02baf";
    private const string Op1 = "cdc202d5123e20f62b6d676ac72cb318";
    private const string Rand1 = "23553cbe9637a89d218ae64dae47bf35";
    private const string Autn1 = "55f328b43577b9b94a9ffac354dfafb3";

    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var code = BestApp.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    private static Dictionary<string, string> Lines(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => line.Split(": ", 2))
            .ToDictionary(parts => parts[0], parts => parts[1]);

    [Fact]
    public void Generate_TestSet1_PrintsTheVector()
    {
        var (code, stdout, stderr) = Run("aka", "generate", "--k", K1, "--opc", Opc1, "--amf", "b9b9", "--sqn", "ff9bb4d0b607", "--rand", Rand1);
        Assert.Equal(0, code);
        Assert.Empty(stderr);
        var lines = Lines(stdout);
        Assert.Equal(["RAND", "AUTN", "XRES", "CK", "IK", "AK"], lines.Keys);
        Assert.Equal(Rand1, lines["RAND"]);
        Assert.Equal(Autn1, lines["AUTN"]);
        Assert.Equal("a54211d5e3ba50bf", lines["XRES"]);
        Assert.Equal("b40ba9a3c58b2a05bbf0d987b21bf8cb", lines["CK"]);
        Assert.Equal("f769bcd751044604127672711c6d3441", lines["IK"]);
        Assert.Equal("aa689c648370", lines["AK"]);
    }

    [Fact]
    public void Generate_WithOp_EqualsWithOpc()
    {
        var withOp = Run("aka", "generate", "--k", K1, "--op", Op1, "--amf", "b9b9", "--sqn", "ff9bb4d0b607", "--rand", Rand1);
        var withOpc = Run("aka", "generate", "--k", K1, "--opc", Opc1, "--amf", "b9b9", "--sqn", "ff9bb4d0b607", "--rand", Rand1);
        Assert.Equal(0, withOp.Code);
        Assert.Equal(withOpc.Out, withOp.Out);
    }

    [Fact]
    public void Generate_WithSnn_AddsFiveGKeys()
    {
        // MILENAGE set 19 and the 5G chain of the reference digest 4.4.
        var (code, stdout, _) = Run("aka", "generate", "--k", "5122250214c33e723a5dd523fc145fc0", "--opc", "981d464c7c52eb6e5036234984ad0bcf",
            "--amf", "c3ab", "--sqn", "16f3b3f70fc2", "--rand", "81e92b6c0ee0e12ebceba8d92a99dfa5", "--snn", "5G:mnc093.mcc208.3gppnetwork.org");
        Assert.Equal(0, code);
        var lines = Lines(stdout);
        Assert.Equal("bb52e91c747ac3ab2a5c23d15ee351d5", lines["AUTN"]);
        Assert.Equal("2a668abe4a6c0f3429ac55d849b3c82b70f3c7b0a2cb818830b032014cc31685", lines["K_AUSF"]);
        Assert.Equal("7d1258ecf1a532b7cbfb3b0d7ff803ef4c57904964c0e422b8ad5ae43fc02b84", lines["K_HSE"]);
        Assert.Equal("47970d04fba8b3c4f3c697a673c592cc", lines["XRES*"]);
    }

    [Fact]
    public void Generate_WithoutRand_DrawsOne()
    {
        var (code, stdout, _) = Run("aka", "generate", "--k", K1, "--opc", Opc1, "--amf", "8000", "--sqn", "000000000020");
        Assert.Equal(0, code);
        Assert.Equal(32, Lines(stdout)["RAND"].Length);
    }

    [Fact]
    public void Resync_ReferenceAuts_GivesSqnMs()
    {
        var (code, stdout, _) = Run("aka", "resync", "--k", K1, "--opc", Opc1, "--rand", Rand1, "--auts", "451e8beca03b87423afbed548cbd");
        Assert.Equal(0, code);
        Assert.Equal("SQN_MS: 000000000400", stdout.Trim());
    }

    [Fact]
    public void Resync_WrongMacS_FailsWithExitCode1()
    {
        var (code, stdout, stderr) = Run("aka", "resync", "--k", K1, "--opc", Opc1, "--rand", Rand1, "--auts", "451e8beca03b87423afbed548cbe");
        Assert.Equal(1, code);
        Assert.Empty(stdout);
        Assert.Contains("MAC-S does not verify", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Check_FreshVector_PrintsResCkIk()
    {
        var (code, stdout, _) = Run("aka", "check", "--k", K1, "--opc", Opc1, "--rand", Rand1, "--autn", Autn1, "--sqn-ms", "ff9bb4d0b5e0");
        Assert.Equal(0, code);
        var lines = Lines(stdout);
        Assert.Equal("success", lines["RESULT"]);
        Assert.Equal("a54211d5e3ba50bf", lines["RES"]);
        Assert.Equal("b40ba9a3c58b2a05bbf0d987b21bf8cb", lines["CK"]);
        Assert.Equal("f769bcd751044604127672711c6d3441", lines["IK"]);
        Assert.Equal("ff9bb4d0b607", lines["SQN"]);
    }

    [Fact]
    public void Check_WithoutSqnMs_SaysFreshnessWasNotChecked()
    {
        var (code, stdout, _) = Run("aka", "check", "--k", K1, "--opc", Opc1, "--rand", Rand1, "--autn", Autn1);
        Assert.Equal(0, code);
        Assert.Contains("freshness not checked", Lines(stdout)["RESULT"], StringComparison.Ordinal);
    }

    [Fact]
    public void Check_TamperedAutn_IsMacFailure()
    {
        var (code, stdout, _) = Run("aka", "check", "--k", K1, "--opc", Opc1, "--rand", Rand1, "--autn", "55f328b43577b9b94a9ffac354dfafb4");
        Assert.Equal(1, code);
        Assert.Equal("RESULT: MAC failure", stdout.Trim());
    }

    [Fact]
    public void Check_StaleSqn_IsSyncFailureWithAuts()
    {
        var (code, stdout, _) = Run("aka", "check", "--k", K1, "--opc", Opc1, "--rand", Rand1, "--autn", Autn1, "--sqn-ms", "000000000400");
        Assert.Equal(1, code);
        var lines = Lines(stdout);
        Assert.Equal("synchronisation failure", lines["RESULT"]);
        Assert.Equal("451e8beca03b87423afbed548cbd", lines["AUTS"]);
    }

    public static TheoryData<string[], string> BadInputs => new()
    {
        { ["aka", "generate", "--opc", Opc1, "--amf", "b9b9", "--sqn", "ff9bb4d0b607"], "--k is required" },
        { ["aka", "generate", "--k", K1[..30], "--opc", Opc1, "--amf", "b9b9", "--sqn", "ff9bb4d0b607"], "--k must be 32 hex digits (16 octets); got 30" },
        { ["aka", "generate", "--k", "zz" + K1[2..], "--opc", Opc1, "--amf", "b9b9", "--sqn", "ff9bb4d0b607"], "--k must be 32 hex digits (16 octets); character 1 is not a hex digit" },
        { ["aka", "generate", "--k", K1, "--amf", "b9b9", "--sqn", "ff9bb4d0b607"], "give exactly one of --opc and --op" },
        { ["aka", "generate", "--k", K1, "--opc", Opc1, "--op", Op1, "--amf", "b9b9", "--sqn", "ff9bb4d0b607"], "give exactly one of --opc and --op" },
        { ["aka", "generate", "--k", K1, "--opc", Opc1, "--amf", "b9b", "--sqn", "ff9bb4d0b607"], "--amf must be 4 hex digits (2 octets)" },
        { ["aka", "generate", "--k", K1, "--opc", Opc1, "--amf", "b9b9"], "--sqn is required" },
        { ["aka", "generate", "--k", K1, "--opc", Opc1, "--amf", "b9b9", "--sqn", "ff9bb4d0b6071"], "--sqn must be 12 hex digits (6 octets)" },
        { ["aka", "generate", "--k", K1, "--opc", Opc1, "--amf", "b9b9", "--sqn", "ff9bb4d0b607", "--rand", "00"], "--rand must be 32 hex digits (16 octets)" },
        { ["aka", "generate", "--k", K1, "--opc", Opc1, "--amf", "0000", "--sqn", "ff9bb4d0b607", "--snn", "5G:mnc001.mcc001.3gppnetwork.org"], "--amf must have the separation bit 0x8000 set" },
        { ["aka", "generate", "--k", K1, "--opc", Opc1, "--amf", "8000", "--sqn", "ff9bb4d0b607", "--snn", "mnc001"], "--snn must be a 5G serving network name" },
        { ["aka", "resync", "--k", K1, "--opc", Opc1, "--rand", Rand1, "--auts", "451e8beca03b87423afbed548c"], "--auts must be 28 hex digits (14 octets)" },
        { ["aka", "resync", "--k", K1, "--opc", Opc1, "--rand", Rand1], "--auts is required" },
        { ["aka", "check", "--k", K1, "--opc", Opc1, "--rand", Rand1, "--autn", Autn1[..31]], "--autn must be 32 hex digits (16 octets)" },
        { ["aka", "check", "--k", K1, "--opc", Opc1, "--rand", Rand1, "--autn", Autn1, "--sqn-ms", "12"], "--sqn-ms must be 12 hex digits (6 octets)" },
        { ["aka", "generate", "--frobnicate"], "--frobnicate" },
        { ["nonsense"], "nonsense" },
    };

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void BadInput_OneLineOnStderr_ExitCode2_NothingOnStdout(string[] args, string expected)
    {
        var (code, stdout, stderr) = Run(args);
        Assert.Equal(2, code);
        Assert.Empty(stdout);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Single(lines);
        Assert.Contains(expected, lines[0], StringComparison.Ordinal);
        Assert.StartsWith("best", lines[0], StringComparison.Ordinal);
    }

    [Fact]
    public void BadKey_IsNeverEchoed()
    {
        var secret = "ab" + K1[2..30] + "x";
        var (_, _, stderr) = Run("aka", "generate", "--k", secret, "--opc", Opc1, "--amf", "b9b9", "--sqn", "ff9bb4d0b607");
        Assert.DoesNotContain(secret, stderr, StringComparison.Ordinal);
        Assert.DoesNotContain(K1[2..30], stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_WithoutInvoking_ReportsErrors()
    {
        var result = BestApp.CreateRootCommand().Parse(["aka", "check", "--k", K1, "--opc", Opc1]);
        Assert.NotEmpty(result.Errors);
        Assert.Contains(result.Errors, e => e.Message.Contains("--rand is required", StringComparison.Ordinal));
    }

    [Fact]
    public void GroupWithoutSubcommand_ShowsHelp_ExitCode2()
    {
        var (code, stdout, _) = Run("aka");
        Assert.Equal(2, code);
        Assert.Contains("generate", stdout, StringComparison.Ordinal);
        Assert.Contains("resync", stdout, StringComparison.Ordinal);
        Assert.Contains("check", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Help_ListsEveryOption()
    {
        var (code, stdout, _) = Run("aka", "generate", "--help");
        Assert.Equal(0, code);
        foreach (var option in new[] { "--k", "--opc", "--op", "--amf", "--sqn", "--rand", "--snn" })
        {
            Assert.Contains(option, stdout, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void RealProcess_BadInput_ExitCode2()
    {
        // The executable itself, as a user runs it: exit codes are the process's own.
        var dll = Path.Combine(AppContext.BaseDirectory, "best.dll");
        var info = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var arg in new[] { dll, "aka", "resync", "--k", K1, "--opc", Opc1, "--rand", Rand1, "--auts", "00" })
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info)!;
        var stderr = process.StandardError.ReadToEnd();
        process.StandardOutput.ReadToEnd();
        Assert.True(process.WaitForExit(60_000));
        Assert.Equal(2, process.ExitCode);
        Assert.Contains("--auts must be 28 hex digits", stderr, StringComparison.Ordinal);
    }
}
