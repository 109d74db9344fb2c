using OpenBest.Crypto;
using OpenBest.Crypto.Aka;
using OpenBest.Protocol;
using OpenBest.Sessions;

namespace OpenBest.Cli.Tests;

/// <summary><c>best emsdp decode</c> and <c>best emsdp sizes</c> on messages of a real UE ↔ HSE session.</summary>
public sealed class EmsdpCommandTests
{
    private const string K = "465b5ce8b199b49faa5f0a2ee238a6bc";
    private const string Opc = "cd63cb71954a9f4e48a5994e37a02baf";

    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var code = BestApp.Run(args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    /// <summary>Session Request, Session Start and one confidential uplink message.</summary>
    private static (string Request, string Start, string Uplink) Session()
    {
        using var subscribers = new InMemorySubscribers();
        subscribers.Add("208930000000001", Convert.FromHexString(K), Convert.FromHexString(Opc));
        using var hse = new HseEngine(subscribers);
        using var milenage = new Milenage(Convert.FromHexString(K), Convert.FromHexString(Opc));
        using var ue = new UeEndpoint(new Usim(milenage, new UsimSequenceState(SqnScheme.Default)), new UeOptions { Imsi = "208930000000001" });
        var request = ue.Open(new UeChannelOptions { EasId = "eas.example.com", ServingNetwork = ServingNetwork.FromName("5G:mnc093.mcc208.3gppnetwork.org") }, out var channel).Send[0].Message.ToArray();
        var start = hse.Receive(request, "ue").Send[0].Message.ToArray();
        ue.Receive(start);
        var uplink = ue.Send(channel, "hello hse"u8).Send[0].Message.ToArray();
        return (Convert.ToHexString(request), Convert.ToHexString(start), Convert.ToHexString(uplink));
    }

    [Fact]
    public void Decode_SessionRequest_PrintsEveryField()
    {
        var (request, _, _) = Session();
        var (code, stdout, _) = Run("emsdp", "decode", request);
        Assert.Equal(0, code);
        Assert.Contains("COMMAND: Session Request (0x10)", stdout, StringComparison.Ordinal);
        Assert.Contains("IDENTITY: IMSI 208930000000001", stdout, StringComparison.Ordinal);
        Assert.Contains("EAS ID: eas.example.com", stdout, StringComparison.Ordinal);
        Assert.Contains("SERVING NETWORK: 5G:mnc093.mcc208.3gppnetwork.org", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_SessionStart_WithKeys_VerifiesTheTag()
    {
        var (request, start, _) = Session();
        var (code, stdout, _) = Run("emsdp", "decode", start, "--k", K, "--opc", Opc, "--request", request);
        Assert.Equal(0, code);
        Assert.Contains("COMMAND: Session Start (0x11)", stdout, StringComparison.Ordinal);
        Assert.Contains("AKA: AUTN verified", stdout, StringComparison.Ordinal);
        Assert.Contains("TAG CHECK: verified", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_SessionStart_OtherRequest_FailsTheTag()
    {
        // The Session Start binds SHA-256 of the request it answers (profile section 4).
        var (_, start, _) = Session();
        var (other, _, _) = Session();
        var (code, stdout, _) = Run("emsdp", "decode", start, "--k", K, "--opc", Opc, "--request", other);
        Assert.Equal(1, code);
        Assert.Contains("TAG CHECK: FAILED", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_SessionStart_WrongK_IsAkaMacFailure()
    {
        var (request, start, _) = Session();
        var (code, stdout, _) = Run("emsdp", "decode", start, "--k", "00" + K[2..], "--opc", Opc, "--request", request);
        Assert.Equal(1, code);
        Assert.Contains("MAC failure", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_Uplink_WithStart_ShowsThePlaintext()
    {
        var (request, start, uplink) = Session();
        var (code, stdout, _) = Run("emsdp", "decode", uplink, "--k", K, "--opc", Opc, "--request", request, "--start", start);
        Assert.Equal(0, code);
        Assert.Contains("DIRECTION: uplink", stdout, StringComparison.Ordinal);
        Assert.Contains("\"hello hse\"", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_Uplink_WithoutStart_SaysWhatItNeeds()
    {
        var (_, _, uplink) = Session();
        var (code, stdout, _) = Run("emsdp", "decode", uplink);
        Assert.Equal(1, code);
        Assert.Contains("give --start", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_TamperedUplink_FailsTheTag()
    {
        var (request, start, uplink) = Session();
        var tampered = uplink[..^2] + (uplink[^2..] == "00" ? "01" : "00");
        var (code, stdout, _) = Run("emsdp", "decode", tampered, "--k", K, "--opc", Opc, "--request", request, "--start", start);
        Assert.Equal(1, code);
        Assert.Contains("TAG CHECK: FAILED", stdout, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new[] { "emsdp", "decode", "4z00" }, "HEX must be an even number of hex digits, 2..65535 octets; character 2 is not a hex digit")]
    [InlineData(new[] { "emsdp", "decode", "400" }, "HEX must be an even number of hex digits")]
    [InlineData(new[] { "emsdp", "decode", "400010", "--k", K }, "give exactly one of --opc and --op")]
    [InlineData(new[] { "emsdp", "decode", "400010", "--opc", Opc }, "need --k")]
    [InlineData(new[] { "emsdp", "decode", "400010", "--k", K, "--opc", Opc, "--start", "4001" }, "--start needs --request")]
    public void Decode_BadInput_ExitCode2(string[] args, string expected)
    {
        var (code, stdout, stderr) = Run(args);
        Assert.Equal(2, code);
        Assert.Empty(stdout);
        Assert.Contains(expected, stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_NotEmsdp_ExitCode1()
    {
        var (code, stdout, _) = Run("emsdp", "decode", "c000");
        Assert.Equal(1, code);
        Assert.Contains("not an EMSDP type 01 message", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Sizes_PrintsSetupAndOverheadTables()
    {
        var (code, stdout, _) = Run("emsdp", "sizes");
        Assert.Equal(0, code);
        Assert.Contains("UMTS AKA, integrity", stdout, StringComparison.Ordinal);
        Assert.Contains("AES-128-CCM-4/8", stdout, StringComparison.Ordinal);
    }
}

/// <summary><c>best demo</c> end to end: SQLite, UDP on loopback, the HSE host and simulated devices.</summary>
public sealed class DemoCommandTests
{
    [Fact]
    public void Demo_SmallRun_DeliversEverything_ExitCode0()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var code = BestApp.Run(["demo", "--devices", "12", "--messages", "3"], output, error);
        var text = output.ToString();
        Assert.True(code == 0, text + error);
        Assert.Contains("every message was delivered and verified", text, StringComparison.Ordinal);
        Assert.Contains("14 / 14", text, StringComparison.Ordinal); // 12 devices, one UE-to-EAS, one key agreement only
        Assert.Contains("48 of 48", text, StringComparison.Ordinal);
        Assert.Contains("1 of 1 devices (named to them by", text, StringComparison.Ordinal);
        Assert.DoesNotContain("\u001b[", text, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--devices", "0", "--devices must be 1..2000")]
    [InlineData("--messages", "5000", "--messages must be 1..1000")]
    public void Demo_BadCounts_ExitCode2(string option, string value, string expected)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        Assert.Equal(2, BestApp.Run(["demo", option, value], output, error));
        Assert.Contains(expected, error.ToString(), StringComparison.Ordinal);
    }
}
