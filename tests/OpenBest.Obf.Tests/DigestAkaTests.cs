using System.Text;

namespace OpenBest.Obf.Tests;

/// <summary>The AKAv1-MD5 digest arithmetic against the reference vectors and a hand-checkable auth-int example.</summary>
public sealed class DigestAkaTests
{
    // MILENAGE test set 1: RES and base64(RAND ‖ AUTN).
    private const string Set1Res = "a54211d5e3ba50bf";
    private const string Set1Nonce = "I1U8vpY3qJ0hiuZNrke/NVXzKLQ1d7m5Sp/6w1Tfr7M=";

    // MILENAGE test set 19 as used in the computed GBA vectors.
    private const string Set19Res = "28d7b0f2a2ec3de5";
    private const string Set19Nonce = "gekrbA7g4S6866jZKpnfpbtS6Rx0esOrKlwj0V7jUdU=";
    private const string Cnonce = "6629fae49393a05397450978507c4ef1";

    [Theory]
    [InlineData("sip:example.com", "c967d9c99f26c4da203ee73f572b5364")]
    [InlineData("sip:sip:example.com", "1efe54bb65c7771548e279052d82bd09")]
    public void AkaV1Md5_NoQop_ReferenceVector(string uri, string expected)
    {
        // RES used as 8 raw octets; RFC 2069 form (no qop): MD5(H(A1) ":" nonce ":" H(A2)).
        var response = DigestAka.RequestDigest("alice", "r", Hex.Bytes(Set1Res), "REGISTER", uri, Set1Nonce, qop: null, nc: null, cnonce: null, []);
        Assert.Equal(expected, response);
    }

    [Fact]
    public void AkaV1Md5_ResAsHexText_WouldGiveAnotherValue()
    {
        // The reference notes the wrong reading (RES as its hex string) gives dbd29e66…; the raw reading must not.
        var wrong = DigestAka.RequestDigest("alice", "r", Encoding.ASCII.GetBytes(Set1Res), "REGISTER", "sip:example.com", Set1Nonce, null, null, null, []);
        Assert.Equal("dbd29e6669d2642908f6b26d7829a5c2", wrong);
        Assert.NotEqual(wrong, DigestAka.RequestDigest("alice", "r", Hex.Bytes(Set1Res), "REGISTER", "sip:example.com", Set1Nonce, null, null, null, []));
    }

    [Fact]
    public void AuthInt_Response_StepByStep()
    {
        // A1 = "user1_private@home1.net:bsf.home1.net:" ‖ RES (8 raw octets)
        var ha1 = DigestAka.HashA1("user1_private@home1.net", "bsf.home1.net", Hex.Bytes(Set19Res));
        Assert.Equal("4d0bd8477d6469111e843a73357e84d7", ha1);
        Assert.Equal(DigestAka.Md5Hex([.. "user1_private@home1.net:bsf.home1.net:"u8, .. Hex.Bytes(Set19Res)]), ha1);

        // A2 = "GET:/:" ‖ MD5("") for a GET with an empty entity-body.
        Assert.Equal("d41d8cd98f00b204e9800998ecf8427e", DigestAka.Md5Hex([]));
        var ha2 = DigestAka.HashA2("GET", "/", "auth-int", []);
        Assert.Equal("15df3e1aa09254633226c3d41891b148", ha2);
        Assert.Equal(DigestAka.Md5Hex("GET:/:d41d8cd98f00b204e9800998ecf8427e"u8), ha2);

        // response = MD5(HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" HA2)
        var kd = $"{ha1}:{Set19Nonce}:00000001:{Cnonce}:auth-int:{ha2}";
        Assert.Equal("8d64d9ccb654e12d4d59d79b4979c673", DigestAka.Md5Hex(Encoding.ASCII.GetBytes(kd)));
        Assert.Equal("8d64d9ccb654e12d4d59d79b4979c673",
            DigestAka.RequestDigest("user1_private@home1.net", "bsf.home1.net", Hex.Bytes(Set19Res), "GET", "/", Set19Nonce, "auth-int", "00000001", Cnonce, []));
    }

    [Fact]
    public void AuthInt_Rspauth_HashesTheResponseBody_WithAnEmptyMethod()
    {
        var body = "<BootstrappingInfo xmlns=\"uri:3gpp-gba\"><btid>gekrbA7g4S6866jZKpnfpQ==@bsf.home1.net</btid><lifetime>2030-01-01T00:00:00Z</lifetime></BootstrappingInfo>"u8.ToArray();
        Assert.Equal("670350a0628b2db09124263091ef85f3", DigestAka.Md5Hex(body));

        // RFC 2617 3.2.3: A2 = ":" digest-uri ":" H(entity-body) for qop=auth-int.
        Assert.Equal("1d3a485e6dd197ee2ce68ef4ce382012", DigestAka.HashA2(string.Empty, "/", "auth-int", body));
        var rspauth = DigestAka.ResponseAuth("user1_private@home1.net", "bsf.home1.net", Hex.Bytes(Set19Res), "/", Set19Nonce, "auth-int", "00000001", Cnonce, body);
        Assert.Equal("2b109ad5cae37335fb2d65fd4deeb1d5", rspauth);

        body[^3] ^= 1;
        Assert.NotEqual(rspauth, DigestAka.ResponseAuth("user1_private@home1.net", "bsf.home1.net", Hex.Bytes(Set19Res), "/", Set19Nonce, "auth-int", "00000001", Cnonce, body));
    }

    [Fact]
    public void SynchronisationFailure_Response_UsesAnEmptyPassword()
    {
        Assert.Equal("ff5c2d17b4e6904e2d839d37fae926bd", DigestAka.HashA1("user1_private@home1.net", "bsf.home1.net", []));
        Assert.Equal("07274f43e524d84f96a3aef6be749671",
            DigestAka.RequestDigest("user1_private@home1.net", "bsf.home1.net", [], "GET", "/", Set19Nonce, "auth-int", "00000001", Cnonce, []));
    }

    [Fact]
    public void DigestEquals_IsHexCaseInsensitive_AndRefusesAnythingElse()
    {
        Assert.True(DigestAka.DigestEquals("2b109ad5cae37335fb2d65fd4deeb1d5", "2B109AD5CAE37335FB2D65FD4DEEB1D5"));
        Assert.False(DigestAka.DigestEquals("2b109ad5cae37335fb2d65fd4deeb1d5", "2b109ad5cae37335fb2d65fd4deeb1d4"));
        Assert.False(DigestAka.DigestEquals("2b109ad5cae37335fb2d65fd4deeb1d5", "2b109ad5cae37335fb2d65fd4deeb1d"));
        Assert.False(DigestAka.DigestEquals("2b109ad5cae37335fb2d65fd4deeb1d5", "zb109ad5cae37335fb2d65fd4deeb1d5"));
        Assert.False(DigestAka.DigestEquals("2b109ad5cae37335fb2d65fd4deeb1d5", null));
    }
}
