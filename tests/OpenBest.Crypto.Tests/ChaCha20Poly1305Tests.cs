using System.Security.Cryptography;
using OpenBest.Crypto.Aead;

namespace OpenBest.Crypto.Tests;

/// <summary>
/// Suite 4: ChaCha20-Poly1305 in portable C#, against RFC 8439 (sections 2.3.2 to 2.8.2, appendices A.3 and A.5),
/// a BigInteger Poly1305 and the platform's ChaCha20Poly1305.
/// </summary>
public sealed class ChaCha20Poly1305Tests
{
    private const string Sunscreen = "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";

    [Fact]
    public void ChaCha20_Rfc8439Section232_BlockFunction()
    {
        var output = new byte[64];
        ChaCha20.Block(Hex.Bytes("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"), 1, Hex.Bytes("000000090000004a00000000"), output);
        Assert.Equal(
            "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e" +
            "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e",
            Hex.String(output));
    }

    [Fact]
    public void ChaCha20_Rfc8439Section242_Encryption()
    {
        var plaintext = System.Text.Encoding.ASCII.GetBytes(Sunscreen);
        var ciphertext = new byte[plaintext.Length];
        ChaCha20.Xor(Hex.Bytes("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"), 1, Hex.Bytes("000000000000004a00000000"), plaintext, ciphertext);
        Assert.Equal(
            "6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0b" +
            "f91b65c5524733ab8f593dabcd62b3571639d624e65152ab8f530c359f0861d8" +
            "07ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab7793736" +
            "5af90bbf74a35be6b40b8eedf2785e42874d",
            Hex.String(ciphertext));
    }

    [Fact]
    public void Poly1305_Rfc8439Section252()
    {
        var tag = new byte[16];
        Poly1305.Mac(Hex.Bytes("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b"), "Cryptographic Forum Research Group"u8, tag);
        Assert.Equal("a8061dc1305136c6c22b8baf0c0127a9", Hex.String(tag));
    }

    [Fact]
    public void ChaCha20Poly1305_Rfc8439Section262_KeyGeneration()
    {
        var block = new byte[64];
        ChaCha20.Block(Hex.Bytes("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"), 0, Hex.Bytes("000000000001020304050607"), block);
        Assert.Equal("8ad5a08b905f81cc815040274ab29471a833b637e3fd0da508dbb8e2fdd1a646", Hex.String(block.AsSpan(0, 32)));
    }

    // RFC 8439 Appendix A.3, the vectors that exercise the carries and the final reduction: r ‖ s, message, tag.
    [Theory]
    [InlineData("#5", "02000000000000000000000000000000", "00000000000000000000000000000000", "ffffffffffffffffffffffffffffffff", "03000000000000000000000000000000")]
    [InlineData("#6", "02000000000000000000000000000000", "ffffffffffffffffffffffffffffffff", "02000000000000000000000000000000", "03000000000000000000000000000000")]
    [InlineData("#7", "01000000000000000000000000000000", "00000000000000000000000000000000", "fffffffffffffffffffffffffffffffff0ffffffffffffffffffffffffffffff11000000000000000000000000000000", "05000000000000000000000000000000")]
    [InlineData("#8", "01000000000000000000000000000000", "00000000000000000000000000000000", "fffffffffffffffffffffffffffffffffbfefefefefefefefefefefefefefefe01010101010101010101010101010101", "00000000000000000000000000000000")]
    [InlineData("#9", "02000000000000000000000000000000", "00000000000000000000000000000000", "fdffffffffffffffffffffffffffffff", "faffffffffffffffffffffffffffffff")]
    [InlineData("#10", "01000000000000000400000000000000", "00000000000000000000000000000000", "e33594d7505e43b900000000000000003394d7505e4379cd01000000000000000000000000000000000000000000000001000000000000000000000000000000", "14000000000000005500000000000000")]
    [InlineData("#11", "01000000000000000400000000000000", "00000000000000000000000000000000", "e33594d7505e43b900000000000000003394d7505e4379cd010000000000000000000000000000000000000000000000", "13000000000000000000000000000000")]
    public void Poly1305_Rfc8439AppendixA3_ReductionEdges(string name, string r, string s, string message, string expected)
    {
        var tag = new byte[16];
        Poly1305.Mac(Hex.Bytes(r + s), Hex.Bytes(message), tag);
        Assert.True(expected == Hex.String(tag), $"{name}: {Hex.String(tag)}");
    }

    [Fact]
    public void Poly1305_AgreesWithBigIntegerReference_OnRandomAndCraftedInputs()
    {
        var random = new Random(1305);
        var cases = new List<(byte[] Key, byte[] Message)>();
        for (var i = 0; i < 300; i++)
        {
            var key = new byte[32];
            var message = new byte[random.Next(0, 200)];
            random.NextBytes(key);
            random.NextBytes(message);
            cases.Add((key, message));
        }

        // r = 1 or 2 and all-ones blocks drive the accumulator onto its carry paths: with r = 1, one block of
        // ones and zero blocks after it make the fold above 2^130 carry through both low limbs into h2.
        foreach (var r in new byte[] { 1, 2 })
        {
            foreach (var s in new[] { new byte[16], Enumerable.Repeat((byte)0xFF, 16).ToArray() })
            {
                for (var zeros = 0; zeros <= 8; zeros++)
                {
                    var key = new byte[32];
                    key[0] = r;
                    s.CopyTo(key, 16);
                    var message = new byte[16 * (zeros + 1)];
                    message.AsSpan(0, 16).Fill(0xFF);
                    cases.Add((key, message));
                    cases.Add((key, Enumerable.Repeat((byte)0xFF, 16 * (zeros + 1)).ToArray()));
                    cases.Add((key, Enumerable.Repeat((byte)0xFF, (16 * zeros) + 7).ToArray()));
                }
            }
        }

        var maxR = Enumerable.Repeat((byte)0xFF, 32).ToArray();
        cases.Add((maxR, Enumerable.Repeat((byte)0xFF, 160).ToArray()));

        var tag = new byte[16];
        foreach (var (key, message) in cases)
        {
            Poly1305.Mac(key, message, tag);
            Assert.Equal(ReferencePoly1305(key, message), tag);
        }
    }

    [Theory]
    [InlineData(
        "RFC 8439 2.8.2",
        "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
        "070000004041424344454647",
        "4c616469657320616e642047656e746c656d656e206f662074686520636c617373206f66202739393a204966204920636f756c64206f6666657220796f75206f6e6c79206f6e652074697020666f7220746865206675747572652c2073756e73637265656e20776f756c642062652069742e",
        "50515253c0c1c2c3c4c5c6c7",
        "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116",
        "1ae10b594f09e26a7e902ecbd0600691")]
    [InlineData(
        "RFC 8439 A.5",
        "1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0",
        "000000000102030405060708",
        "496e7465726e65742d4472616674732061726520647261667420646f63756d656e74732076616c696420666f722061206d6178696d756d206f6620736978206d6f6e74687320616e64206d617920626520757064617465642c207265706c616365642c206f72206f62736f6c65746564206279206f7468657220646f63756d656e747320617420616e792074696d652e20497420697320696e617070726f70726961746520746f2075736520496e7465726e65742d447261667473206173207265666572656e6365206d6174657269616c206f7220746f2063697465207468656d206f74686572207468616e206173202fe2809c776f726b20696e2070726f67726573732e2fe2809d",
        "f33388860000000000004e91",
        "64a0861575861af460f062c79be643bd5e805cfd345cf389f108670ac76c8cb24c6cfc18755d43eea09ee94e382d26b0bdb7b73c321b0100d4f03b7f355894cf332f830e710b97ce98c8a84abd0b948114ad176e008d33bd60f982b1ff37c8559797a06ef4f0ef61c186324e2b3506383606907b6a7c02b0f9f6157b53c867e4b9166c767b804d46a59b5216cde7a4e99040c5a40433225ee282a1b0a06c523eaf4534d7f83fa1155b0047718cbc546a0d072b04b3564eea1b422273f548271a0bb2316053fa76991955ebd63159434ecebb4e466dae5a1073a6727627097a1049e617d91d361094fa68f0ff77987130305beaba2eda04df997b714d6c6f2c29a6ad5cb4022b02709b",
        "eead9d67890cbb22392336fea1851f38")]
    public void ChaCha20Poly1305_PublishedVectors_BothDirections(string name, string key, string nonce, string plaintext, string ad, string ciphertext, string tag)
    {
        Assert.True(AeadAlgorithm.ChaCha20Poly1305.IsSupported);
        AeadChecks.CheckVector(name, AeadAlgorithm.ChaCha20Poly1305, key, nonce, plaintext, ad, ciphertext, tag);
    }

    [Fact]
    public void ChaCha20Poly1305_TamperedBit_AnywhereInCiphertextTagOrAd_FailsAndZeroes()
    {
        AeadChecks.CheckEveryBitFlipFails(AeadAlgorithm.ChaCha20Poly1305, plaintextLength: 60, adLength: 20);
        AeadChecks.CheckEveryBitFlipFails(AeadAlgorithm.ChaCha20Poly1305, plaintextLength: 0, adLength: 5);
        AeadChecks.CheckEveryBitFlipFails(AeadAlgorithm.ChaCha20Poly1305, plaintextLength: 131, adLength: 0);
    }

    [Fact]
    public void ChaCha20Poly1305_AgreesWithPlatform_OnRandomInputs_BothDirections()
    {
        Assert.SkipUnless(System.Security.Cryptography.ChaCha20Poly1305.IsSupported, "The platform has no ChaCha20-Poly1305 to compare with.");
        AeadChecks.CrossCheck(
            AeadAlgorithm.ChaCha20Poly1305,
            8439,
            (key, nonce, plaintext, ciphertext, tag, ad) =>
            {
                using var platform = new System.Security.Cryptography.ChaCha20Poly1305(key);
                platform.Encrypt(nonce, plaintext, ciphertext, tag, ad);
            },
            (key, nonce, ciphertext, tag, plaintext, ad) =>
            {
                using var platform = new System.Security.Cryptography.ChaCha20Poly1305(key);
                platform.Decrypt(nonce, ciphertext, tag, plaintext, ad);
            });
    }

    [Fact]
    public void ChaCha20Poly1305_InPlace_SameBytesAsWithTwoBuffers() => AeadChecks.CheckInPlace(AeadAlgorithm.ChaCha20Poly1305);

    [Fact]
    public void ChaCha20Poly1305_DisposedKey_Refuses() => AeadChecks.CheckDisposedKeyRefuses(AeadAlgorithm.ChaCha20Poly1305);

    // RFC 8439 section 2.5.1 written out over BigInteger.
    private static byte[] ReferencePoly1305(byte[] key, byte[] message)
    {
        var p = (System.Numerics.BigInteger.One << 130) - 5;
        var clamp = new System.Numerics.BigInteger(Hex.Bytes("ffffff0ffcffff0ffcffff0ffcffff0f"), isUnsigned: true);
        var r = new System.Numerics.BigInteger(key.AsSpan(0, 16), isUnsigned: true) & clamp;
        var s = new System.Numerics.BigInteger(key.AsSpan(16, 16), isUnsigned: true);
        var a = System.Numerics.BigInteger.Zero;
        for (var i = 0; i < message.Length; i += 16)
        {
            var block = message.AsSpan(i, Math.Min(16, message.Length - i));
            var n = new System.Numerics.BigInteger(block, isUnsigned: true) + (System.Numerics.BigInteger.One << (8 * block.Length));
            a = (a + n) * r % p;
        }

        a = (a + s) & ((System.Numerics.BigInteger.One << 128) - 1);
        var tag = new byte[16];
        a.TryWriteBytes(tag, out _, isUnsigned: true);
        return tag;
    }
}
