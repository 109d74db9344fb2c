using System.Text;
using OpenBest.Crypto.Suci;

namespace OpenBest.Crypto.Tests;

/// <summary>SUCI protection schemes against the four ECIES vectors of TS 33.501 Annex C.4.</summary>
public sealed class SuciTests
{
    // Annex C.4.3 (profile A) and C.4.4 (profile B): home network keys.
    private const string HnPrivateA = "c53c22208b61860b06c62e5406a7b330c2b577aa5558981510d128247d38bd1d";
    private const string HnPublicA = "5a8d38864820197c3394b92613b20b91633cbd897119273bf8e4a6f4eec0a650";
    private const string HnPrivateB = "f1ab1074477ebcc7f554ea1c5fc368b1616730155e0041ac447d6301975fecda";
    private const string HnPublicB = "0272da71976234ce833a6907425867b82e074d44ef907dfb4b3e21c1c2256ebcd1";

    public static TheoryData<string, string, string, string, string, string> Vectors => new()
    {
        // profile, HN private, HN public, ephemeral private, scheme input, scheme output
        { "A/IMSI", HnPrivateA, HnPublicA, "c80949f13ebe61af4ebdbd293ea4f942696b9e815d7e8f0096bbf6ed7de62256", "00012080f6", "b2e92f836055a255837debf850b528997ce0201cb82adfe4be1f587d07d8457dcb02352410cddd9e730ef3fa87" },
        { "A/NAI", HnPrivateA, HnPublicA, "be9eff3e9f22a4b42a3d236e7a6c500b3f2e7e0c7449988ba800d664bf4fcd97", "766572796c6f6e67757365726e616d6531", "977d8b2fdaa7b64aa700d04227d5b440630ea4ec50f9082273a26bb678c92222" + "8e358a1582adb15322c10e515141d2039a" + "12e1d7783a97f1ac" },
        { "B/IMSI", HnPrivateB, HnPublicB, "99798858a1dc6a2c68637149a4b1dbfd1fdff5addd62a2142f06699ed7602529", "00012080f6", "039aab8376597021e855679a9778ea0b67396e68c66df32c0f41e9acca2da9b9d146a33fc2716ac7dae96aa30a4d" },
        { "B/NAI", HnPrivateB, HnPublicB, "90a5898bd29ffa3f261e00e980067c70a2b1b992a21f5b4fef6d4df69fe804ad", "766572796c6f6e67757365726e616d6531", "03759bb22c563d9f4a6b3c1419e543fc2f39d6823f02a9d71162b39399218b244b" + "be22d8b9f856a52ed381cd7eaf4cf2d525" + "3cddc61a0a7882eb" },
    };

    private static SuciProtectionScheme Scheme(string profile) => profile[0] == 'A' ? SuciProtectionScheme.ProfileA : SuciProtectionScheme.ProfileB;

    [Theory]
    [MemberData(nameof(Vectors))]
    public void Conceal_MatchesAnnexC4(string profile, string hnPrivate, string hnPublic, string ephemeralPrivate, string input, string output)
    {
        _ = hnPrivate;
        var result = Scheme(profile).Conceal(Hex.Bytes(hnPublic), Hex.Bytes(input), Hex.Bytes(ephemeralPrivate));
        Assert.Equal(output, Hex.String(result));
    }

    [Theory]
    [MemberData(nameof(Vectors))]
    public void Deconceal_MatchesAnnexC4(string profile, string hnPrivate, string hnPublic, string ephemeralPrivate, string input, string output)
    {
        _ = (hnPublic, ephemeralPrivate);
        Assert.True(Scheme(profile).TryDeconceal(Hex.Bytes(hnPrivate), Hex.Bytes(output), out var plaintext));
        Assert.Equal(input, Hex.String(plaintext));
    }

    [Theory]
    [InlineData("A", HnPrivateA, HnPublicA)]
    [InlineData("B", HnPrivateB, HnPublicB)]
    public void PublicKey_DerivedFromHomeNetworkPrivateKey(string profile, string hnPrivate, string hnPublic)
    {
        Assert.Equal(hnPublic, Hex.String(Scheme(profile).GetPublicKey(Hex.Bytes(hnPrivate))));
    }

    [Theory]
    [MemberData(nameof(Vectors))]
    public void Deconceal_AnyFlippedBit_Fails(string profile, string hnPrivate, string hnPublic, string ephemeralPrivate, string input, string output)
    {
        _ = (hnPublic, ephemeralPrivate, input);
        var bytes = Hex.Bytes(output);
        for (var i = 0; i < bytes.Length; i++)
        {
            bytes[i] ^= 0x01;
            Assert.False(Scheme(profile).TryDeconceal(Hex.Bytes(hnPrivate), bytes, out var plaintext));
            Assert.Empty(plaintext);
            bytes[i] ^= 0x01;
        }
    }

    [Theory]
    [InlineData("A")]
    [InlineData("B")]
    public void Deconceal_TruncatedOrEmpty_FailsWithoutThrowing(string profile)
    {
        var scheme = Scheme(profile);
        var key = new byte[32];
        key[0] = 1;
        for (var length = 0; length < 45; length++)
        {
            Assert.False(scheme.TryDeconceal(key, new byte[length], out _));
        }
    }

    [Theory]
    [InlineData("A")]
    [InlineData("B")]
    public void GeneratedKeys_RoundTrip(string profile)
    {
        var scheme = Scheme(profile);
        var (hnPrivate, hnPublic) = scheme.GenerateKeyPair();
        var msin = Identities.PackBcd("0123456789");
        var output = scheme.Conceal(hnPublic, msin);
        Assert.Equal(scheme.PublicKeySize + msin.Length + 8, output.Length);
        Assert.True(scheme.TryDeconceal(hnPrivate, output, out var plaintext));
        Assert.Equal(msin, plaintext);
    }

    [Fact]
    public void NullScheme_PacksMsinAsAnnexC4()
    {
        // Annex C.4.1: MSIN 001002086 → 00012080F6.
        Assert.Equal("00012080f6", Hex.String(Identities.PackBcd("001002086")));
        Assert.True(Identities.TryUnpackBcd(Hex.Bytes("00012080f6"), out var digits));
        Assert.Equal("001002086", digits);
        Assert.False(Identities.TryUnpackBcd(Hex.Bytes("0a"), out _));
    }

    [Theory]
    [InlineData("208", "93", "02f839")]
    [InlineData("001", "01", "00f110")]
    [InlineData("310", "410", "130014")]
    public void PlmnId_Ts24008Coding(string mcc, string mnc, string expected)
    {
        Assert.Equal(expected, Hex.String(Identities.EncodePlmnId(mcc, mnc)));
    }

    [Fact]
    public void ProfileB_RejectsPointNotOnCurve()
    {
        var output = Hex.Bytes("039aab8376597021e855679a9778ea0b67396e68c66df32c0f41e9acca2da9b9d146a33fc2716ac7dae96aa30a4d");
        output[0] = 0x05;
        Assert.False(SuciProtectionScheme.ProfileB.TryDeconceal(Hex.Bytes(HnPrivateB), output, out _));
        Assert.Throws<ArgumentException>(() => SuciProtectionScheme.ProfileB.Conceal(new byte[33], Encoding.ASCII.GetBytes("x"), Hex.Bytes(HnPrivateB)));
    }
}

public sealed class X25519Tests
{
    [Fact]
    public void Rfc7748Section61_KeyAgreement()
    {
        // RFC 7748 section 6.1: Alice's public key and the shared secret with Bob.
        var alicePrivate = Hex.Bytes("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        Assert.Equal("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a", Hex.String(SuciProtectionScheme.ProfileA.GetPublicKey(alicePrivate)));
        var bobPublic = Hex.Bytes("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
        var shared = new byte[32];
        Org.BouncyCastle.Math.EC.Rfc7748.X25519.ScalarMult(alicePrivate, 0, bobPublic, 0, shared, 0);
        Assert.Equal("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742", Hex.String(shared));
    }
}
