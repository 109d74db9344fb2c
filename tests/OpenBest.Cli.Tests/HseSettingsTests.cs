using OpenBest.Hse;

namespace OpenBest.Cli.Tests;

/// <summary><c>best hse</c> settings: defaults &lt; appsettings.json &lt; BEST_ environment &lt; command line, all checked at start.</summary>
public sealed class HseSettingsTests : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-settings-");

    public void Dispose() => _directory.Delete(recursive: true);

    private string Json(string text)
    {
        var path = Path.Combine(_directory.FullName, "appsettings.json");
        File.WriteAllText(path, text);
        return path;
    }

    private static Dictionary<string, string?> None() => [];

    [Fact]
    public void Defaults_AreDocumented()
    {
        var settings = HseSettings.Load(null, None(), new Dictionary<string, string?>());
        Assert.Equal("openbest-data", settings.DataDir);
        Assert.Equal(3163, settings.UdpPort);
        Assert.Equal(3163, settings.TcpPort);
        Assert.Equal("127.0.0.1", settings.Bind.ToString());
        Assert.False(settings.Engine.AllowNoSecurity);
        Assert.True(settings.Engine.HideUnknownSubscribers);
        Assert.Equal(HseSettings.Catalogue.Count, HseSettings.Catalogue.Select(c => c.Name).Distinct().Count());
        Assert.Equal("BEST_DATA_DIR", HseSettings.EnvironmentName("DataDir"));
        Assert.Equal("BEST_NON_IP", HseSettings.EnvironmentName("NonIp"));
    }

    [Fact]
    public void Layers_JsonThenEnvironmentThenCommandLine()
    {
        var json = Json("""{ "Hse": { "UdpPort": 4000, "TcpPort": 4001, "DataDir": "from-json", "AllowNoSecurity": true, "ConfidentialityForbiddenIn": "00101, 5G:mnc001.mcc001.3gppnetwork.org" } }""");
        var env = new Dictionary<string, string?> { ["BEST_TCP_PORT"] = "5001", ["BEST_DATA_DIR"] = "from-env" };
        var settings = HseSettings.Load(json, new Dictionary<string, string?> { ["DataDir"] = "from-command-line" }, env);
        Assert.Equal(4000, settings.UdpPort);
        Assert.Equal(5001, settings.TcpPort);
        Assert.Equal("from-command-line", settings.DataDir);
        Assert.True(settings.Engine.AllowNoSecurity);
        Assert.Equal(2, settings.Engine.ConfidentialityForbiddenIn.Count);
        Assert.Contains("environment", settings.Sources, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("BEST_UDP_PORT", "70000", "UdpPort (BEST_UDP_PORT): '70000' is not an integer in 0..65535")]
    [InlineData("BEST_BIND", "localhost", "Bind (BEST_BIND): 'localhost' is not an IP address")]
    [InlineData("BEST_ALLOW_NO_SECURITY", "yes", "AllowNoSecurity (BEST_ALLOW_NO_SECURITY): 'yes' is not true or false")]
    [InlineData("BEST_LOG_FORMAT", "xml", "LogFormat (BEST_LOG_FORMAT): 'xml' is not text or json")]
    [InlineData("BEST_NON_IP", "/dev/no-such-serial", "NonIp (BEST_NON_IP): '/dev/no-such-serial' is neither")]
    public void BadValue_NamesTheSetting(string variable, string value, string message)
    {
        var e = Assert.Throws<SettingsException>(() => HseSettings.Load(null, None(), new Dictionary<string, string?> { [variable] = value }));
        Assert.StartsWith(message, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UnknownJsonSetting_IsRefused()
    {
        var json = Json("""{ "Hse": { "UdpPrt": 4000 } }""");
        var e = Assert.Throws<SettingsException>(() => HseSettings.Load(json, None(), new Dictionary<string, string?>()));
        Assert.StartsWith("Hse:UdpPrt: unknown setting", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void BadJson_IsOneLine()
    {
        var json = Json("{ \"Hse\": ");
        var e = Assert.Throws<SettingsException>(() => HseSettings.Load(json, None(), new Dictionary<string, string?>()));
        Assert.Contains("not valid JSON", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Cli_BadSetting_ExitsTwo_WithOneLine_AndWritesNothing()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        var data = Path.Combine(_directory.FullName, "data");
        var code = BestApp.Run(["hse", "--udp-port", "x", "--data-dir", data], output, error);
        Assert.Equal(2, code);
        Assert.Equal("best hse: UdpPort (BEST_UDP_PORT): 'x' is not an integer in 0..65535", error.ToString().Trim());
        Assert.False(Directory.Exists(data));
    }
}
