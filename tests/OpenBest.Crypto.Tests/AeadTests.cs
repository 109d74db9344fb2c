using System.Security.Cryptography;
using OpenBest.Crypto.Aead;

namespace OpenBest.Crypto.Tests;

/// <summary>The block cipher, the AEAD algorithms and the four cipher suites of profile section 4.</summary>
public sealed class AeadTests
{
    [Fact]
    public void Aes128_Fips197AppendixC1()
    {
        using var aes = new Aes128(Hex.Bytes("000102030405060708090a0b0c0d0e0f"));
        var output = new byte[16];
        aes.EncryptBlock(Hex.Bytes("00112233445566778899aabbccddeeff"), output);
        Assert.Equal("69c4e0d86a7b0430d8cdb78070b4c55a", Hex.String(output));
    }

    [Fact]
    public void Aes128_AgreesWithPlatformAes_OnRandomKeys()
    {
        var random = new Random(20261122);
        for (var i = 0; i < 200; i++)
        {
            var key = new byte[16];
            var block = new byte[16];
            random.NextBytes(key);
            random.NextBytes(block);
            using var ours = new Aes128(key);
            using var platform = System.Security.Cryptography.Aes.Create();
            platform.Key = key;
            var a = new byte[16];
            ours.EncryptBlock(block, a);
            Assert.Equal(platform.EncryptEcb(block, PaddingMode.None), a);
        }
    }

    [Fact]
    public void Aes128Ccm_Rfc3610PacketVector1()
    {
        // RFC 3610 section 8, packet vector #1: M = 8, 13-octet nonce, 8 octets of AD.
        var alg = AeadAlgorithm.Aes128Ccm;
        using var key = alg.CreateKey(Hex.Bytes("c0c1c2c3c4c5c6c7c8c9cacbcccdcecf"));
        var plaintext = Hex.Bytes("08090a0b0c0d0e0f101112131415161718191a1b1c1d1e");
        var ciphertext = new byte[plaintext.Length];
        var tag = new byte[8];
        alg.Encrypt(key, Hex.Bytes("00000003020100a0a1a2a3a4a5"), plaintext, ciphertext, tag, Hex.Bytes("0001020304050607"));
        Assert.Equal("588c979a61c663d2f066d0c2c0f989806d5f6b61dac384", Hex.String(ciphertext));
        Assert.Equal("17e8d12cfdf926e0", Hex.String(tag));
    }

    [Theory]
    [InlineData(4)]
    [InlineData(8)]
    [InlineData(16)]
    public void Aes128Ccm_AgreesWithPlatformAesCcm(int tagSize)
    {
        Assert.SkipUnless(AesCcm.IsSupported, "The platform has no AES-CCM to compare with.");
        var random = new Random(tagSize);
        var alg = AeadAlgorithm.Aes128Ccm;
        foreach (var length in new[] { 0, 1, 15, 16, 17, 31, 64, 255, 1000 })
        {
            foreach (var adLength in new[] { 0, 1, 6, 14, 15, 40 })
            {
                var keyBytes = new byte[16];
                var nonce = new byte[13];
                var plaintext = new byte[length];
                var ad = new byte[adLength];
                random.NextBytes(keyBytes);
                random.NextBytes(nonce);
                random.NextBytes(plaintext);
                random.NextBytes(ad);
                using var key = alg.CreateKey(keyBytes);
                var ciphertext = new byte[length];
                var tag = new byte[tagSize];
                alg.Encrypt(key, nonce, plaintext, ciphertext, tag, ad);

                using var platform = new AesCcm(keyBytes);
                var expectedCiphertext = new byte[length];
                var expectedTag = new byte[tagSize];
                platform.Encrypt(nonce, plaintext, expectedCiphertext, expectedTag, ad);
                Assert.Equal(expectedCiphertext, ciphertext);
                Assert.Equal(expectedTag, tag);

                var opened = new byte[length];
                Assert.True(alg.Decrypt(key, nonce, ciphertext, tag, opened, ad));
                Assert.Equal(plaintext, opened);
            }
        }
    }

    public static TheoryData<byte> SuiteIds => [1, 2, 3, 4];

    [Theory]
    [MemberData(nameof(SuiteIds))]
    public void Suite_SealOpen_RoundTrips_OnBothPlanes(byte id)
    {
        Assert.True(CipherSuite.TryGet(id, out var suite));
        Assert.SkipUnless(suite.Algorithm.IsSupported, $"{suite.Name} is not available on this platform.");
        using var key = suite.CreateKey(RandomNumberGenerator.GetBytes(suite.KeySize));
        var nonce = new byte[12];
        CipherSuite.WriteNonce(Direction.Uplink, Plane.User, 42, nonce);
        var header = Hex.Bytes("6201002a");
        var payload = RandomNumberGenerator.GetBytes(64);
        foreach (var plane in new[] { Plane.User, Plane.Control })
        {
            var output = new byte[payload.Length + suite.TagSize(plane)];
            Assert.Equal(output.Length, suite.Seal(key, nonce, plane, header, payload, output));
            var opened = new byte[payload.Length];
            Assert.True(suite.Open(key, nonce, plane, header, output, opened));
            Assert.Equal(payload, opened);
        }
    }

    [Theory]
    [MemberData(nameof(SuiteIds))]
    public void Suite_TagSizes_AsProfileSection4(byte id)
    {
        Assert.True(CipherSuite.TryGet(id, out var suite));
        var (up, cp, keySize) = id switch
        {
            1 => (8, 8, 16),
            2 => (4, 8, 16),
            3 => (16, 16, 16),
            _ => (16, 16, 32),
        };
        Assert.Equal(up, suite.UserPlaneTagSize);
        Assert.Equal(cp, suite.ControlPlaneTagSize);
        Assert.Equal(keySize, suite.KeySize);
        Assert.Equal(1 << (id - 1), suite.BitmapBit);
    }

    [Theory]
    [MemberData(nameof(SuiteIds))]
    public void Suite_AnyTamperedOctet_FailsAndZeroesPlaintext(byte id)
    {
        // Profile section 4: a failed check leaves no plaintext behind.
        Assert.True(CipherSuite.TryGet(id, out var suite));
        Assert.SkipUnless(suite.Algorithm.IsSupported, $"{suite.Name} is not available on this platform.");
        using var key = suite.CreateKey(RandomNumberGenerator.GetBytes(suite.KeySize));
        var nonce = new byte[12];
        CipherSuite.WriteNonce(Direction.Downlink, Plane.User, 7, nonce);
        var header = Hex.Bytes("6201");
        var payload = RandomNumberGenerator.GetBytes(20);
        var output = new byte[payload.Length + suite.UserPlaneTagSize];
        suite.Seal(key, nonce, Plane.User, header, payload, output);
        for (var i = 0; i < output.Length; i++)
        {
            output[i] ^= 0x40;
            var opened = new byte[payload.Length];
            opened.AsSpan().Fill(0xAA);
            Assert.False(suite.Open(key, nonce, Plane.User, header, output, opened));
            Assert.All(opened, b => Assert.Equal(0, b));
            output[i] ^= 0x40;
        }

        var wrongNonce = (byte[])nonce.Clone();
        wrongNonce[0] ^= 1; // same counter, other plane: must not verify
        Assert.False(suite.Open(key, wrongNonce, Plane.User, header, output, new byte[payload.Length]));
        Assert.False(suite.Open(key, nonce, Plane.User, Hex.Bytes("6301"), output, new byte[payload.Length]));
    }

    [Fact]
    public void Suite_OpenShorterThanTag_ReturnsFalse()
    {
        using var key = CipherSuite.Aes128Ccm8.CreateKey(new byte[16]);
        Assert.False(CipherSuite.Aes128Ccm8.Open(key, new byte[12], Plane.User, default, new byte[7], new byte[8]));
    }

    [Fact]
    public void Nonce_LayoutAsProfileSection3()
    {
        var nonce = new byte[12];
        CipherSuite.WriteNonce(Direction.Downlink, Plane.User, 0x0102030405, nonce);
        Assert.Equal("030000000000000102030405", Hex.String(nonce));
        CipherSuite.WriteNonce(Direction.Uplink, Plane.Control, 0, nonce);
        Assert.Equal("000000000000000000000000", Hex.String(nonce));
    }

    [Fact]
    public void Misuse_Throws()
    {
        using var ccmKey = AeadAlgorithm.Aes128Ccm.CreateKey(new byte[16]);
        Assert.Throws<ArgumentException>(() => AeadAlgorithm.Aes128Ccm.CreateKey(new byte[15]));
        Assert.Throws<ArgumentException>(() => AeadAlgorithm.Aes128Gcm.Encrypt(ccmKey, new byte[12], default, default, new byte[16]));
        Assert.Throws<ArgumentException>(() => AeadAlgorithm.Aes128Ccm.Encrypt(ccmKey, new byte[12], default, default, new byte[8]));
        Assert.Throws<ArgumentException>(() => AeadAlgorithm.Aes128Ccm.Encrypt(ccmKey, new byte[13], default, default, new byte[5]));
        Assert.Throws<ArgumentException>(() => AeadAlgorithm.Aes128Ccm.Encrypt(ccmKey, new byte[13], new byte[3], new byte[2], new byte[8]));
    }

    [Fact]
    public void DisposedKey_Throws()
    {
        var key = AeadAlgorithm.Aes128Ccm.CreateKey(new byte[16]);
        key.Dispose();
        Assert.Throws<ObjectDisposedException>(() => AeadAlgorithm.Aes128Ccm.Encrypt(key, new byte[13], default, default, new byte[8]));
    }

    [Theory]
    [MemberData(nameof(SuiteIds))]
    public void Suite_SealAndOpen_AllocateNothing(byte id)
    {
        // Issue target: zero allocations per protect/open through the span API (measured, not timed), for short,
        // partial-block and multi-block payloads.
        Assert.True(CipherSuite.TryGet(id, out var suite));
        Assert.SkipUnless(suite.Algorithm.IsSupported, $"{suite.Name} is not available on this platform.");
        using var key = suite.CreateKey(new byte[suite.KeySize]);
        var nonce = new byte[12];
        var header = new byte[4];
        foreach (var length in new[] { 0, 15, 64, 200 })
        {
            var payload = new byte[length];
            var output = new byte[length + 16];
            var opened = new byte[length];
            for (var i = 0; i < 10; i++)
            {
                RunOnce();
            }

            var before = GC.GetAllocatedBytesForCurrentThread();
            for (var i = 0; i < 100; i++)
            {
                RunOnce();
            }

            Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);

            void RunOnce()
            {
                var n = suite.Seal(key, nonce, Plane.User, header, payload, output);
                Assert.True(suite.Open(key, nonce, Plane.User, header, output.AsSpan(0, n), opened));
            }
        }
    }
}

public sealed class RandomPoolTests
{
    [Fact]
    public void Fill_NeverRepeats_AcrossBlockRefills()
    {
        var seen = new HashSet<string>();
        var rand = new byte[16];
        for (var i = 0; i < 1000; i++)
        {
            RandomPool.Fill(rand);
            Assert.True(seen.Add(Hex.String(rand)));
        }
    }

    [Fact]
    public void Fill_LargeRequest_GoesStraightToTheCsprng()
    {
        var a = new byte[4096];
        var b = new byte[4096];
        RandomPool.Fill(a);
        RandomPool.Fill(b);
        Assert.NotEqual(a, b);
        Assert.Contains(a, x => x != 0);
    }
}

/// <summary>Keys give their bytes back only to be sealed at rest, and a key made from them seals the same bytes.</summary>
public sealed class AeadKeyExportTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void Export_RoundTrips_AndDisposedKeysRefuse(byte suiteId)
    {
        Assert.True(CipherSuite.TryGet(suiteId, out var suite));
        var raw = RandomNumberGenerator.GetBytes(suite.KeySize);
        var key = suite.CreateKey(raw);
        var exported = new byte[suite.KeySize];
        key.Export(exported);
        Assert.Equal(raw, exported);
        using var again = suite.CreateKey(exported);
        var nonce = new byte[suite.Algorithm.NonceSize];
        var a = new byte[4];
        var b = new byte[4];
        var tagA = new byte[suite.UserPlaneTagSize];
        var tagB = new byte[suite.UserPlaneTagSize];
        suite.Algorithm.Encrypt(key, nonce, "data"u8, a, tagA);
        suite.Algorithm.Encrypt(again, nonce, "data"u8, b, tagB);
        Assert.Equal(a, b);
        Assert.Equal(tagA, tagB);
        key.Dispose();
        Assert.Throws<ObjectDisposedException>(() => key.Export(exported));
        Assert.DoesNotContain(Convert.ToHexString(raw), key.ToString(), StringComparison.Ordinal);
    }
}

/// <summary>Key memory is recycled (pinned arrays kept for the next key), never handed on with a secret in it.</summary>
public sealed class KeyMemoryTests
{
    [Fact]
    public void ADisposedSecret_IsZeroedBeforeItsMemoryServesAnother()
    {
        for (var i = 0; i < 100; i++)
        {
            var old = new SecretBuffer(Enumerable.Repeat((byte)0xA5, 77).ToArray());
            old.Dispose();
            Assert.Throws<ObjectDisposedException>(() => old.Span.Length);
            using var fresh = new SecretBuffer(77);
            Assert.All(fresh.Span.ToArray(), b => Assert.Equal(0, b));
        }
    }

    [Fact]
    public void KeysOfEverySuite_AfterDispose_NeitherWorkNorReachAnotherKey()
    {
        foreach (var suite in OpenBest.Crypto.Aead.CipherSuite.Suites)
        {
            var first = suite.CreateKey(Enumerable.Repeat((byte)1, suite.KeySize).ToArray());
            first.Dispose();
            using var second = suite.CreateKey(Enumerable.Repeat((byte)2, suite.KeySize).ToArray());
            var exported = new byte[suite.KeySize];
            second.Export(exported);
            Assert.All(exported, b => Assert.Equal(2, b));
            Assert.ThrowsAny<ObjectDisposedException>(() => first.Export(new byte[suite.KeySize]));
        }
    }
}
