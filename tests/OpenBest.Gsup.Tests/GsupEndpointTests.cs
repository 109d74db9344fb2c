namespace OpenBest.Gsup.Tests;

/// <summary>The <c>gsup://HOST[:PORT]</c> address of <c>--auc</c>.</summary>
public sealed class GsupEndpointTests
{
    [Theory]
    [InlineData("gsup://hlr.example.net:4222", "hlr.example.net", 4222)]
    [InlineData("gsup://127.0.0.1:14222", "127.0.0.1", 14222)]
    [InlineData("gsup://hlr", "hlr", 4222)]
    [InlineData("GSUP://hlr/", "hlr", 4222)]
    [InlineData("gsup://[::1]:4223", "::1", 4223)]
    [InlineData("gsup://[fd00::5]", "fd00::5", 4222)]
    public void Parse_Accepts(string text, string host, int port)
    {
        var endpoint = GsupEndpoint.Parse(text);
        Assert.Equal(host, endpoint.Host);
        Assert.Equal(port, endpoint.Port);
        Assert.Equal(endpoint, GsupEndpoint.Parse(endpoint.ToString()));
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("hlr:4222", "does not start with gsup://")]
    [InlineData("http://hlr:4222", "does not start with gsup://")]
    [InlineData("gsup://", "host is missing")]
    [InlineData("gsup://:4222", "not a host name")]
    [InlineData("gsup://hlr:0", "port '0'")]
    [InlineData("gsup://hlr:65536", "port '65536'")]
    [InlineData("gsup://hlr:42x", "port '42x'")]
    [InlineData("gsup://hlr:", "port ''")]
    [InlineData("gsup://hlr:+42", "port '+42'")]
    [InlineData("gsup://user@hlr:4222", "only a host and a port")]
    [InlineData("gsup://hlr:4222/path", "only a host and a port")]
    [InlineData("gsup://::1:4222", "IPv6 address in brackets")]
    [InlineData("gsup://[::1", "no closing")]
    [InlineData("gsup://[hlr]:4222", "not an IPv6 address")]
    [InlineData("gsup://[::1]x", "expected ':PORT'")]
    [InlineData("gsup://hl r", "only a host and a port")]
    public void Parse_Refuses_WithOneLineNamingTheInput(string text, string reason)
    {
        Assert.False(GsupEndpoint.TryParse(text, out _, out var error));
        Assert.Contains(reason, error, StringComparison.Ordinal);
        Assert.Contains($"'{text}'", error, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', error!);
        var thrown = Assert.Throws<FormatException>(() => GsupEndpoint.Parse(text));
        Assert.Equal(error, thrown.Message);
    }

    [Fact]
    public void Parse_Null_IsRefused()
    {
        Assert.False(GsupEndpoint.TryParse(null, out _, out var error));
        Assert.Contains("empty", error, StringComparison.Ordinal);
    }
}
