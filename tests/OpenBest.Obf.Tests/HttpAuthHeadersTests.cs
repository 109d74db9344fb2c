namespace OpenBest.Obf.Tests;

/// <summary>The WWW-Authenticate / Authentication-Info grammar: the cases a real BSF, proxy or sloppy server may produce.</summary>
public sealed class HttpAuthHeadersTests
{
    private const string Nonce = "gekrbA7g4S6866jZKpnfpbtS6Rx0esOrKlwj0V7jUdU=";

    [Fact]
    public void Ts24109StyleChallenge()
    {
        var field = $"Digest realm=\"bsf.home1.net\", nonce=\"{Nonce}\", algorithm=AKAv1-MD5, qop=\"auth-int\", opaque=\"5ccc069c403ebaf9f0171e9517f30e41\"";
        Assert.True(HttpAuthHeaders.TryParseChallenges(field, out var challenges, out var error), error);
        var c = Assert.Single(challenges);
        Assert.Equal("Digest", c.Scheme);
        Assert.Null(c.Token68);
        Assert.Equal("bsf.home1.net", c["realm"]);
        Assert.Equal(Nonce, c["nonce"]);
        Assert.Equal("AKAv1-MD5", c["algorithm"]);
        Assert.Equal("auth-int", c["qop"]);
        Assert.Equal("5ccc069c403ebaf9f0171e9517f30e41", c["opaque"]);
    }

    [Fact]
    public void QuotedStrings_KeepCommasAndEqualsSigns_AndUnescapeQuotedPairs()
    {
        var field = """Digest realm="a \"quoted\" realm, with a comma = and \\ backslash", nonce="x=y,z", qop="auth,auth-int", algorithm=AKAv1-MD5""";
        Assert.True(HttpAuthHeaders.TryParseChallenges(field, out var challenges, out var error), error);
        var c = Assert.Single(challenges);
        Assert.Equal("""a "quoted" realm, with a comma = and \ backslash""", c["realm"]);
        Assert.Equal("x=y,z", c["nonce"]);
        Assert.Equal("auth,auth-int", c["qop"]);
    }

    [Fact]
    public void ParameterNames_AreCaseInsensitive_AndSchemesKeepTheirSpelling()
    {
        Assert.True(HttpAuthHeaders.TryParseChallenges("DIGEST REALM=\"r\", Nonce=\"n\", ALGORITHM=akav1-md5, QoP=auth-int", out var challenges, out var error), error);
        var c = Assert.Single(challenges);
        Assert.Equal("DIGEST", c.Scheme);
        Assert.Equal("r", c["realm"]);
        Assert.Equal("n", c["NONCE"]);
        Assert.Equal("akav1-md5", c["algorithm"]);
        Assert.Equal("auth-int", c["qop"]);
    }

    [Fact]
    public void Whitespace_AroundEqualsAndCommas_AndEmptyListElements_AreAccepted()
    {
        Assert.True(HttpAuthHeaders.TryParseChallenges(" ,Digest   realm = \"r\" ,, nonce\t=\t\"n\" , , algorithm=AKAv1-MD5 ,", out var challenges, out var error), error);
        var c = Assert.Single(challenges);
        Assert.Equal("r", c["realm"]);
        Assert.Equal("n", c["nonce"]);
        Assert.Equal("AKAv1-MD5", c["algorithm"]);
    }

    [Fact]
    public void ALeadingEmptyElementAfterTheScheme_IsAccepted()
    {
        Assert.True(HttpAuthHeaders.TryParseChallenges("Digest , realm=\"r\", nonce=\"n\"", out var challenges, out var error), error);
        Assert.Equal("r", Assert.Single(challenges)["realm"]);
    }

    [Fact]
    public void SeveralChallenges_InOneField_AreSplitAtEachNewScheme()
    {
        var field = $"Basic realm=\"x\", Negotiate YWJjZA==, Digest realm=\"r\", nonce=\"{Nonce}\", algorithm=MD5, Digest realm=\"r\", nonce=\"{Nonce}\", algorithm=AKAv1-MD5, qop=\"auth-int\", Bearer";
        Assert.True(HttpAuthHeaders.TryParseChallenges(field, out var challenges, out var error), error);
        Assert.Equal(["Basic", "Negotiate", "Digest", "Digest", "Bearer"], challenges.Select(c => c.Scheme));
        Assert.Equal("x", challenges[0]["realm"]);
        Assert.Equal("YWJjZA==", challenges[1].Token68);
        Assert.Equal("MD5", challenges[2]["algorithm"]);
        Assert.Equal("AKAv1-MD5", challenges[3]["algorithm"]);
        Assert.Equal("auth-int", challenges[3]["qop"]);
        Assert.Empty(challenges[4].Parameters);
    }

    [Fact]
    public void TokenValues_EndAtTheNextCommaOrSpace()
    {
        Assert.True(HttpAuthHeaders.TryParseChallenges("Digest algorithm=AKAv1-MD5,qop=auth-int,stale=FALSE", out var challenges, out var error), error);
        var c = Assert.Single(challenges);
        Assert.Equal("AKAv1-MD5", c["algorithm"]);
        Assert.Equal("auth-int", c["qop"]);
        Assert.Equal("FALSE", c["stale"]);
    }

    [Fact]
    public void AnEmptyQuotedString_IsAValue()
    {
        Assert.True(HttpAuthHeaders.TryParseParameters("username=\"u\", nonce=\"\", response=\"\"", out var p, out var error), error);
        Assert.Equal(string.Empty, p["nonce"]);
        Assert.Equal(string.Empty, p["response"]);
    }

    [Theory]
    [InlineData("Digest realm=\"r\", realm=\"s\"", "twice")]
    [InlineData("Digest realm=\"r\", REALM=\"s\"", "twice")]
    [InlineData("Digest realm=\"unterminated", "unterminated")]
    [InlineData("Digest realm=\"ends in a backslash\\", "unterminated")]
    [InlineData("Digest nonce=\"n\", realm=", "value was expected")]
    [InlineData("Digest realm=\"r\" nonce=\"n\"", "',' was expected")]
    [InlineData("Digest realm \"r\"", "'=' was expected")]
    [InlineData("Digest realm=\"a\u0001b\"", "control character")]
    [InlineData("Digest\"r\"", "whitespace must follow")]
    [InlineData("=x", "auth-scheme")]
    [InlineData("", "no challenge")]
    [InlineData(" , ", "no challenge")]
    public void MalformedChallenges_AreRefused(string field, string reason)
    {
        Assert.False(HttpAuthHeaders.TryParseChallenges(field, out _, out var error));
        Assert.Contains(reason, error, StringComparison.Ordinal);
    }

    [Fact]
    public void AuthenticationInfo_IsAParameterList_WithoutAScheme()
    {
        Assert.True(HttpAuthHeaders.TryParseParameters("qop=auth-int, rspauth=\"2b109ad5cae37335fb2d65fd4deeb1d5\", cnonce=\"c\", nc=00000001, nextnonce=\"z\"", out var p, out var error), error);
        Assert.Equal("2b109ad5cae37335fb2d65fd4deeb1d5", p["rspauth"]);
        Assert.Equal("00000001", p["nc"]);
        Assert.Equal("auth-int", p["QOP"]);

        Assert.False(HttpAuthHeaders.TryParseParameters("rspauth=\"a\", Digest x=\"y\"", out _, out _));
        Assert.False(HttpAuthHeaders.TryParseParameters("rspauth=\"a\" trailing", out _, out _));
    }

    [Fact]
    public void Quote_EscapesQuotesAndBackslashes_AndRoundTrips()
    {
        var quoted = HttpAuthHeaders.Quote("a\"b\\c");
        Assert.Equal("\"a\\\"b\\\\c\"", quoted);
        Assert.True(HttpAuthHeaders.TryParseParameters("x=" + quoted, out var p, out _));
        Assert.Equal("a\"b\\c", p["x"]);
        Assert.Throws<ArgumentException>(() => HttpAuthHeaders.Quote("line\r\nbreak"));
    }

    [Fact]
    public void ChallengeSelection_NeedsAkaV1Md5_AndAuthInt()
    {
        Assert.True(GbaMeClient.TrySelectChallenge([$"Digest realm=\"r\", nonce=\"{Nonce}\", algorithm=akav1-md5, qop=\"auth, auth-int\""], out var c, out var error), error);
        Assert.Equal("akav1-md5", c!["algorithm"]);

        Assert.False(GbaMeClient.TrySelectChallenge([$"Digest realm=\"r\", nonce=\"{Nonce}\", qop=\"auth-int\""], out _, out error));
        Assert.Contains("algorithm=AKAv1-MD5", error, StringComparison.Ordinal);
        Assert.False(GbaMeClient.TrySelectChallenge([$"Digest realm=\"r\", nonce=\"{Nonce}\", algorithm=AKAv2-MD5, qop=\"auth-int\""], out _, out _));
        Assert.False(GbaMeClient.TrySelectChallenge([$"Digest realm=\"r\", nonce=\"{Nonce}\", algorithm=AKAv1-MD5, qop=\"auth\""], out _, out error));
        Assert.Contains("auth-int", error, StringComparison.Ordinal);
        Assert.False(GbaMeClient.TrySelectChallenge([$"Digest realm=\"r\", nonce=\"{Nonce}\", algorithm=AKAv1-MD5, qop=\"auth-intx\""], out _, out _));
        Assert.False(GbaMeClient.TrySelectChallenge([$"Digest realm=\"r\", nonce=\"{Nonce}\", algorithm=AKAv1-MD5"], out _, out _));
        Assert.False(GbaMeClient.TrySelectChallenge([$"Digest nonce=\"{Nonce}\", algorithm=AKAv1-MD5, qop=\"auth-int\""], out _, out error));
        Assert.Contains("realm", error, StringComparison.Ordinal);
        Assert.False(GbaMeClient.TrySelectChallenge(["Digest realm=\"r\", algorithm=AKAv1-MD5, qop=\"auth-int\""], out _, out error));
        Assert.Contains("nonce", error, StringComparison.Ordinal);
        Assert.False(GbaMeClient.TrySelectChallenge([], out _, out _));
        Assert.False(GbaMeClient.TrySelectChallenge(["Basic realm=\"r\""], out _, out _));

        // One field among several may carry the AKA challenge.
        Assert.True(GbaMeClient.TrySelectChallenge(["Basic realm=\"r\"", $"Digest realm=\"r\", nonce=\"{Nonce}\", algorithm=AKAv1-MD5, qop=auth-int"], out _, out error), error);
    }
}
