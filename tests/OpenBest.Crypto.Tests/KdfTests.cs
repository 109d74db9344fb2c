using OpenBest.Crypto.Aead;
using OpenBest.Crypto.Kdf;

namespace OpenBest.Crypto.Tests;

/// <summary>
/// The TS 33.220 Annex B KDF and every derivation built on it. Official vectors where they exist
/// (open5gs K_ASME, RFC 5448); the computed values of the reference digest (sections 3.6 and 4.4) as
/// regression vectors; the profile's own keys (section 5) as regression vectors cross-computed with an
/// independent HMAC-SHA-256 implementation.
/// </summary>
public sealed class KdfTests
{
    // MILENAGE set 19 (reference digest 4.4).
    private static readonly byte[] Ck19 = Hex.Bytes("5349fbe098649f948f5d2e973a81c00f");
    private static readonly byte[] Ik19 = Hex.Bytes("9744871ad32bf9bbd1dd5ce54e3e2e5a");
    private static readonly byte[] Rand19 = Hex.Bytes("81e92b6c0ee0e12ebceba8d92a99dfa5");
    private static readonly byte[] SqnXorAk19 = Hex.Bytes("bb52e91c747a");
    private static readonly byte[] Res19 = Hex.Bytes("28d7b0f2a2ec3de5");
    private const string Snn = "5G:mnc093.mcc208.3gppnetwork.org";
    private const string Supi = "208930000000001";

    [Fact]
    public void KdfInput_OneOctetFc_WritesLengthsAfterParameters()
    {
        // 33.220 B.2: S = FC ‖ P0 ‖ L0 ‖ P1 ‖ L1.
        Span<byte> buffer = stackalloc byte[64];
        var s = new KdfInput(buffer, 0x10);
        s.Append(Hex.Bytes("024830"));
        s.Append(Hex.Bytes("57e673245c0d"));
        Assert.Equal("10024830000357e673245c0d0006", Hex.String(s.Written));
    }

    [Fact]
    public void KdfInput_ExtendedFc_WritesTwoOctets()
    {
        Span<byte> buffer = stackalloc byte[64];
        var s = new KdfInput(buffer, 0xFFBE);
        s.AppendString("A");
        Assert.Equal("ffbe410001", Hex.String(s.Written));
    }

    [Theory]
    [InlineData(0xFF)]
    [InlineData(0x100)]
    [InlineData(0xFEFF)]
    public void KdfInput_RejectsInvalidFc(int fc)
    {
        var buffer = new byte[8];
        Assert.Throws<ArgumentOutOfRangeException>(() => new KdfInput(buffer, (ushort)fc));
    }

    [Fact]
    public void KdfInput_StringsAreNfkcNormalised()
    {
        // B.2.1.2: "ﬁ" (U+FB01) normalises to "fi" under NFKC.
        Span<byte> buffer = stackalloc byte[64];
        var s = new KdfInput(buffer, 0x01);
        s.AppendString("\uFB01");
        Assert.Equal("0166690002", Hex.String(s.Written));
    }

    [Fact]
    public void KAsme_Open5gsVector()
    {
        // open5gs tests/unit/security-test.c security_test3 (TS 33.401 A.2).
        var ck = Hex.Bytes("b40ba9a3c58b2a05bbf0d987b21bf8cb");
        var ik = Hex.Bytes("f769bcd751044604127672711c6d3441");
        var sqnXorAk = Hex.Bytes("57e673245c0d");
        var kAsme = new byte[32];
        KeyDerivation.KAsme(ck, ik, Hex.Bytes("024830"), sqnXorAk, kAsme);
        Assert.Equal("238e457e0f758badbca8d34bb2612c10428d426757cb5553b2b184fa64bfc549", Hex.String(kAsme));
    }

    [Theory]
    [InlineData("WLAN", "5349fbe098649f948f5d2e973a81c00f", "9744871ad32bf9bbd1dd5ce54e3e2e5a", "bb52e91c747a", "0093962d0dd84aa5684b045c9edffa04", "ccfc230ca74fcc96c0a5d61164f5a76c")]
    [InlineData("HRPD", "5349fbe098649f948f5d2e973a81c00f", "9744871ad32bf9bbd1dd5ce54e3e2e5a", "bb52e91c747a", "3820f0277fa5f77732b1fb1d90c1a0da", "db94a0ab557ef6c9ab48619ca05b9a9f")]
    [InlineData("WLAN", "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0", "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0", "a0a0a0a0a0a0", "cd4c8e5c68f57dd1d7d7dfd0c538e577", "3ece6b705dbbf7dfc459a11280c65524")]
    [InlineData("HRPD", "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0", "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0", "a0a0a0a0a0a0", "8310a71ce6f754889613da8f64d5fb46", "5adf14360ae838192db23f6fcb7f8c76")]
    public void CkIkPrime_Rfc5448Vectors(string network, string ck, string ik, string sqnXorAk, string ckPrime, string ikPrime)
    {
        // RFC 5448 Appendix C (TS 33.402 A.2).
        var outCk = new byte[16];
        var outIk = new byte[16];
        KeyDerivation.CkIkPrime(Hex.Bytes(ck), Hex.Bytes(ik), network, Hex.Bytes(sqnXorAk), outCk, outIk);
        Assert.Equal(ckPrime, Hex.String(outCk));
        Assert.Equal(ikPrime, Hex.String(outIk));
    }

    [Fact]
    public void EapAkaPrime_Rfc5448Case1_Keys()
    {
        using var keys = EapAkaPrimeKeys.Derive(Hex.Bytes("0093962d0dd84aa5684b045c9edffa04"), Hex.Bytes("ccfc230ca74fcc96c0a5d61164f5a76c"), "0555444333222111");
        Assert.Equal("766fa0a6c317174b812d52fbcd11a179", Hex.String(keys.KEncr));
        Assert.Equal("0842ea722ff6835bfa2032499fc3ec23c2f0e388b4f07543ffc677f1696d71ea", Hex.String(keys.KAut));
        Assert.Equal("cf83aa8bc7e0aced892acc98e76a9b2095b558c7795c7094715cb3393aa7d17a", Hex.String(keys.KRe));
        Assert.Equal("67c42d9aa56c1b79e295e3459fc3d187d42be0bf818d3070e362c5e967a4d544e8ecfe19358ab3039aff03b7c930588c055babee58a02650b067ec4e9347c75a", Hex.String(keys.Msk));
        Assert.Equal("f861703cd775590e16c7679ea3874ada866311de290764d760cf76df647ea01c313f69924bdd7650ca9bac141ea075c4ef9e8029c0e290cdbad5638b63bc23fb", Hex.String(keys.Emsk));
    }

    [Theory]
    [InlineData("3820f0277fa5f77732b1fb1d90c1a0da", "db94a0ab557ef6c9ab48619ca05b9a9f", "c891d5f20f148a1007553e2dea555c9cb672e9675f4a66b4bafa027379f93aee539a5979d0a0042b9d2ae28bed3b17a31dc8ab75072b80bd0c1da612466e402c")]
    [InlineData("cd4c8e5c68f57dd1d7d7dfd0c538e577", "3ece6b705dbbf7dfc459a11280c65524", "724de00bdb9e568187be3fe746114557d5018779537ee37f4d3c6c738cb97b9dc651bc19bfadc344ffe2b52ca78bd8316b51dacc5f2b1440cb9515521cc7ba23")]
    public void EapAkaPrime_Rfc5448Cases2And3_Emsk(string ckPrime, string ikPrime, string emsk)
    {
        using var keys = EapAkaPrimeKeys.Derive(Hex.Bytes(ckPrime), Hex.Bytes(ikPrime), "0555444333222111");
        Assert.Equal(emsk, Hex.String(keys.Emsk));
    }

    [Fact]
    public void FiveG_Chain_MatchesReferenceDigest44()
    {
        // Computed vectors of the reference digest 4.4, cross-checked there with CryptoMobile.
        var kAusf = new byte[32];
        KeyDerivation.KAusf(Ck19, Ik19, Snn, SqnXorAk19, kAusf);
        Assert.Equal("2a668abe4a6c0f3429ac55d849b3c82b70f3c7b0a2cb818830b032014cc31685", Hex.String(kAusf));

        var resStar = new byte[16];
        KeyDerivation.ResStar(Ck19, Ik19, Snn, Rand19, Res19, resStar);
        Assert.Equal("47970d04fba8b3c4f3c697a673c592cc", Hex.String(resStar));

        var hxres = new byte[16];
        KeyDerivation.HResStar(Rand19, resStar, hxres);
        Assert.Equal("b6a2ffd34fbe534f1e2f3b27bfc180c5", Hex.String(hxres));

        var kSeaf = new byte[32];
        KeyDerivation.KSeaf(kAusf, Snn, kSeaf);
        Assert.Equal("c8ed53bfcf89fee480d5e345d0c7bdc6fa50d64dac9649b6ec336cef0cea491f", Hex.String(kSeaf));

        var kAmf = new byte[32];
        KeyDerivation.KAmf(kSeaf, Supi, [0x00, 0x00], kAmf);
        Assert.Equal("4a5921d5729cf05666877b89445b78c11c37d3d5a629cee3d82ed938211985a3", Hex.String(kAmf));

        var ckPrime = new byte[16];
        var ikPrime = new byte[16];
        KeyDerivation.CkIkPrime(Ck19, Ik19, Snn, SqnXorAk19, ckPrime, ikPrime);
        Assert.Equal("ebf4668fe6f9648a6bef927bbbd83a03", Hex.String(ckPrime));
        Assert.Equal("488bee1ef88110f50c11d775513b5576", Hex.String(ikPrime));

        using var eap = EapAkaPrimeKeys.Derive(ckPrime, ikPrime, "0208930000000001");
        Assert.Equal("bbaf5c312609ff83141cb5b1ad17c8c023a723797018187120607076b58e2c0f", Hex.String(eap.KAusf));

        var kHse = new byte[32];
        KeyDerivation.KHse5GAka(Ck19, Ik19, Snn, SqnXorAk19, kHse);
        Assert.Equal("7d1258ecf1a532b7cbfb3b0d7ff803ef4c57904964c0e422b8ad5ae43fc02b84", Hex.String(kHse));
    }

    [Fact]
    public void Akma_MatchesReferenceDigest44()
    {
        var kAusf = Hex.Bytes("2a668abe4a6c0f3429ac55d849b3c82b70f3c7b0a2cb818830b032014cc31685");
        var kAkma = new byte[32];
        KeyDerivation.KAkma(kAusf, Supi, kAkma);
        Assert.Equal("86b5c74b0d7aa565dd9c3f65d3dcf5a85e475dd420dfc7516f8c2d0c6bd9aece", Hex.String(kAkma));

        var aTid = new byte[32];
        KeyDerivation.ATid(kAusf, Supi, aTid);
        Assert.Equal("7bcd0ad183a7aba98733e454327673c44750de6d0442bc0ecfe0197fb924afb1", Hex.String(aTid));

        var kAf = new byte[32];
        KeyDerivation.KAf(kAkma, Gba.NafId("af.example.com", Gba.UaHttpDigest), kAf);
        Assert.Equal("3060c2ffe41248d46a65ec46e258788faf9ba839606feaf8c718d39d03e6b8d5", Hex.String(kAf));
    }

    [Fact]
    public void KHseEapAkaPrime_UsesFc64()
    {
        // TS 33.163 5.1.0a: the EAP-AKA' K_HSE differs from the 5G AKA one only by FC and input key.
        var ckPrime = Hex.Bytes("ebf4668fe6f9648a6bef927bbbd83a03");
        var ikPrime = Hex.Bytes("488bee1ef88110f50c11d775513b5576");
        var expected = new byte[32];
        Span<byte> buffer = stackalloc byte[64];
        var s = new KdfInput(buffer, 0x64);
        s.AppendString(Snn);
        s.Append(SqnXorAk19);
        Kdf.Kdf.Derive([.. ckPrime, .. ikPrime], s.Written, expected);

        var kHse = new byte[32];
        KeyDerivation.KHseEapAkaPrime(ckPrime, ikPrime, Snn, SqnXorAk19, kHse);
        Assert.Equal(Hex.String(expected), Hex.String(kHse));
    }

    [Fact]
    public void Gba_MatchesReferenceDigest36()
    {
        const string impi = "208930000000001@ims.mnc093.mcc208.3gppnetwork.org";
        var nafId = Gba.NafId("naf.example.com", Gba.UaHttpDigest);
        var ksNaf = new byte[32];
        Gba.KsNaf(Ck19, Ik19, Rand19, impi, nafId, ksNaf);
        Assert.Equal("4e0b372085e422e8ef2dd338885825222d65dc01479f4ee60efdd4f3078d30a6", Hex.String(ksNaf));

        var ksInt = new byte[32];
        Gba.KsIntNaf(Ck19, Ik19, Rand19, impi, nafId, ksInt);
        Assert.Equal("3935b3b4bd5f26143b94353aa7efc6a86f0835c24a272c2c877afc6dba2564f6", Hex.String(ksInt));

        Assert.Equal(impi, Gba.ImpiFromImsi("208930000000001", 2));
        Assert.Equal("bsf.mnc093.mcc208.pub.3gppnetwork.org", Gba.BsfDomain("208", "93"));
        Assert.Equal("gekrbA7g4S6866jZKpnfpQ==@bsf.mnc093.mcc208.pub.3gppnetwork.org", Gba.BTid(Rand19, Gba.BsfDomain("208", "93")));
        Assert.Equal("gekrbA7g4S6866jZKpnfpbtS6Rx0esOrKlwj0V7jUdU=", Gba.UbNonce(Rand19, Hex.Bytes("bb52e91c747ac3ab2a5c23d15ee351d5")));
        Assert.Equal("mdNdL3AWDglnhK7CGFf4jBw3Y2npSJSS@tmpi.bsf.3gppnetwork.org", Gba.Tmpi(Ck19, Ik19, Rand19, impi, Gba.BsfDomain("208", "93")));
    }

    [Fact]
    public void ServingNetworkName_PadsMncToThreeDigits()
    {
        Assert.Equal(Snn, KeyDerivation.ServingNetworkName("208", "93"));
        Assert.Equal("5G:mnc001.mcc001.3gppnetwork.org", KeyDerivation.ServingNetworkName("001", "001"));
        Assert.Throws<ArgumentException>(() => KeyDerivation.ServingNetworkName("20", "93"));
    }

    // Profile section 5, K_root = K_HSE of the chain above, Session ID 1, Key ID 1, F = RAND (set 19), N = 00..07.
    private static readonly byte[] KRoot = Hex.Bytes("7d1258ecf1a532b7cbfb3b0d7ff803ef4c57904964c0e422b8ad5ae43fc02b84");
    private static readonly byte[] UeNonce = Hex.Bytes("0001020304050607");

    [Theory]
    [InlineData(1, "320ea46288e579ced8a7af8e87b95798", "f0d1cb552a53fa94389cf82bf9a6491d")]
    [InlineData(4, "3a8e139516c7f47aae7b6da29fe095d15076b34230eeb8910693e77b29eb3b19", "156a1a693679034587af3e8241f5644e5fbf789c283aa4e1387ce26eff0c74d9")]
    public void Best_E2MKeys_RegressionVectors(byte suiteId, string e2mInt, string e2mEnc)
    {
        Assert.True(CipherSuite.TryGet(suiteId, out var suite));
        var key = new byte[suite.KeySize];
        BestKeys.KE2MInt(KRoot, suite, 1, 1, Rand19, UeNonce, key);
        Assert.Equal(e2mInt, Hex.String(key));
        BestKeys.KE2MEnc(KRoot, suite, 1, 1, Rand19, UeNonce, key);
        Assert.Equal(e2mEnc, Hex.String(key));
    }

    [Theory]
    [InlineData("", 1, "187ffee731199fcc3e912104831107b8", "b3b44fadc6e91f09682c66fab4273b29")]
    [InlineData("", 4, "030fd313c8b77c2d89a2800ddaaf16ec88fec398128f6ff94c0e872dbd88120a", "28ad7546639dfb4ed35db2336b3bd671d7dab9057a407a1ec0dd6c74874d7d9b")]
    [InlineData("enterprise-secret", 1, "8adbe86fd7cab17d3c4b3553006847f6", "1e8d902d029f791fbbd22a5e3e6ae737")]
    [InlineData("enterprise-secret", 4, "528bf502785fb94f131a12c3728020bfd3bdfa763cb5c5199c3cf31c89d8d413", "179119c7dcdf8e2523e93b546616f8c569b821943f30490ec04480b288198b83")]
    public void Best_EasAndE2EKeys_RegressionVectors(string enterpriseKey, byte suiteId, string e2eInt, string e2eEnc)
    {
        var kIntermediate = new byte[32];
        BestKeys.KIntermediate(KRoot, 1, 1, Rand19, UeNonce, kIntermediate);
        Assert.Equal("4c6f7ba7ebba7e87bfc3f7d21f27613643bdd387977c4d7eee0c67006e3dd864", Hex.String(kIntermediate));

        var kEasPsk = new byte[32];
        BestKeys.KEasPsk(kIntermediate, "eas.example.com", kEasPsk);
        Assert.Equal("84c2708a15c923f9ccc629a3fe7f54821b863019862a931ac203c3c74b8766aa", Hex.String(kEasPsk));

        Assert.True(CipherSuite.TryGet(suiteId, out var suite));
        var key = new byte[suite.KeySize];
        var ek = System.Text.Encoding.UTF8.GetBytes(enterpriseKey);
        BestKeys.KE2EInt(kEasPsk, suite, ek, key);
        Assert.Equal(e2eInt, Hex.String(key));
        BestKeys.KE2EEnc(kEasPsk, suite, ek, key);
        Assert.Equal(e2eEnc, Hex.String(key));
    }

    [Fact]
    public void Best_EasKeyIdentifier_AndPskIdentity()
    {
        var id = BestKeys.EasKeyIdentifier(Rand19);
        Assert.Equal(0x2a99dfa5u, id);
        Assert.Equal("meter-0042#2a99dfa5", BestKeys.PskIdentity("meter-0042", id));
    }

    [Fact]
    public void Best_KeyId_OutsideOneToSeven_Throws()
    {
        var key = new byte[16];
        Assert.Throws<ArgumentOutOfRangeException>(() => BestKeys.KE2MInt(KRoot, CipherSuite.Aes128Ccm8, 1, 0, Rand19, UeNonce, key));
        Assert.Throws<ArgumentOutOfRangeException>(() => BestKeys.KE2MInt(KRoot, CipherSuite.Aes128Ccm8, 1, 8, Rand19, UeNonce, key));
    }
}
