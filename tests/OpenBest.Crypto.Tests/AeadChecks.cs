using System.Security.Cryptography;
using OpenBest.Crypto.Aead;

namespace OpenBest.Crypto.Tests;

/// <summary>Checks shared by the tests of the 16-octet-tag AEADs (suites 3 and 4).</summary>
internal static class AeadChecks
{
    // Lengths around the AES block (16), the ChaCha20 block (64) and the ChaCha20 block pair (128).
    internal static readonly int[] EdgeLengths = [0, 1, 15, 16, 17, 31, 32, 33, 47, 48, 49, 63, 64, 65, 79, 80, 127, 128, 129, 191, 192, 193, 255, 256, 257, 300];

    internal delegate void PlatformSeal(byte[] key, byte[] nonce, byte[] plaintext, byte[] ciphertext, byte[] tag, byte[] ad);

    internal delegate void PlatformOpen(byte[] key, byte[] nonce, byte[] ciphertext, byte[] tag, byte[] plaintext, byte[] ad);

    /// <summary>A published vector: sealing gives the ciphertext and tag, opening gives the plaintext back.</summary>
    internal static void CheckVector(string name, AeadAlgorithm alg, string key, string nonce, string plaintext, string ad, string ciphertext, string tag)
    {
        using var handle = alg.CreateKey(Hex.Bytes(key));
        var p = Hex.Bytes(plaintext);
        var a = Hex.Bytes(ad);
        var c = new byte[p.Length];
        var t = new byte[16];
        alg.Encrypt(handle, Hex.Bytes(nonce), p, c, t, a);
        Assert.True(ciphertext == Hex.String(c), $"{name}: ciphertext {Hex.String(c)}");
        Assert.True(tag == Hex.String(t), $"{name}: tag {Hex.String(t)}");

        var opened = new byte[p.Length];
        Assert.True(alg.Decrypt(handle, Hex.Bytes(nonce), Hex.Bytes(ciphertext), Hex.Bytes(tag), opened, a), name);
        Assert.Equal(p, opened);
    }

    /// <summary>Every single-bit change of the ciphertext, tag, AD or nonce fails and leaves the plaintext span zeroed.</summary>
    internal static void CheckEveryBitFlipFails(AeadAlgorithm alg, int plaintextLength, int adLength)
    {
        var random = new Random(plaintextLength * 1000 + adLength);
        var keyBytes = new byte[alg.KeySize];
        var nonce = new byte[alg.NonceSize];
        var plaintext = new byte[plaintextLength];
        var ad = new byte[adLength];
        random.NextBytes(keyBytes);
        random.NextBytes(nonce);
        random.NextBytes(plaintext);
        random.NextBytes(ad);
        using var key = alg.CreateKey(keyBytes);
        var ciphertext = new byte[plaintextLength];
        var tag = new byte[16];
        alg.Encrypt(key, nonce, plaintext, ciphertext, tag, ad);
        var opened = new byte[plaintextLength];
        Assert.True(alg.Decrypt(key, nonce, ciphertext, tag, opened, ad));
        Assert.Equal(plaintext, opened);

        foreach (var target in new[] { ciphertext, tag, ad, nonce })
        {
            for (var bit = 0; bit < target.Length * 8; bit++)
            {
                target[bit / 8] ^= (byte)(1 << (bit % 8));
                opened.AsSpan().Fill(0xAA);
                Assert.False(alg.Decrypt(key, nonce, ciphertext, tag, opened, ad));
                Assert.All(opened, b => Assert.Equal(0, b));
                target[bit / 8] ^= (byte)(1 << (bit % 8));
            }
        }

        Assert.True(alg.Decrypt(key, nonce, ciphertext, tag, opened, ad));
        Assert.Equal(plaintext, opened);
    }

    /// <summary>Random keys, nonces, AD and lengths 0..300: ours and the platform give the same bytes, each opens what the other sealed.</summary>
    internal static void CrossCheck(AeadAlgorithm alg, int seed, PlatformSeal platformSeal, PlatformOpen platformOpen)
    {
        var random = new Random(seed);
        var lengths = EdgeLengths.Concat(Enumerable.Range(0, 120).Select(_ => random.Next(0, 301))).ToArray();
        foreach (var length in lengths)
        {
            var keyBytes = new byte[alg.KeySize];
            var nonce = new byte[alg.NonceSize];
            var plaintext = new byte[length];
            var ad = new byte[random.Next(0, 4) switch { 0 => 0, 1 => random.Next(1, 17), 2 => random.Next(17, 70), _ => random.Next(70, 300) }];
            random.NextBytes(keyBytes);
            random.NextBytes(nonce);
            random.NextBytes(plaintext);
            random.NextBytes(ad);
            using var key = alg.CreateKey(keyBytes);

            // Ours seals, the platform opens, and both produce the same bytes.
            var ciphertext = new byte[length];
            var tag = new byte[16];
            alg.Encrypt(key, nonce, plaintext, ciphertext, tag, ad);
            var expectedCiphertext = new byte[length];
            var expectedTag = new byte[16];
            platformSeal(keyBytes, nonce, plaintext, expectedCiphertext, expectedTag, ad);
            Assert.Equal(expectedCiphertext, ciphertext);
            Assert.Equal(expectedTag, tag);
            var openedByPlatform = new byte[length];
            platformOpen(keyBytes, nonce, ciphertext, tag, openedByPlatform, ad);
            Assert.Equal(plaintext, openedByPlatform);

            // The platform seals another message, ours opens it.
            random.NextBytes(plaintext);
            platformSeal(keyBytes, nonce, plaintext, expectedCiphertext, expectedTag, ad);
            var opened = new byte[length];
            Assert.True(alg.Decrypt(key, nonce, expectedCiphertext, expectedTag, opened, ad));
            Assert.Equal(plaintext, opened);
            expectedTag[random.Next(16)] ^= (byte)(1 << random.Next(8));
            Assert.False(alg.Decrypt(key, nonce, expectedCiphertext, expectedTag, opened, ad));
            Assert.All(opened, b => Assert.Equal(0, b));
        }
    }

    /// <summary>Sealing and opening in place (one buffer for input and output) gives the same bytes as with two buffers.</summary>
    internal static void CheckInPlace(AeadAlgorithm alg)
    {
        using var key = alg.CreateKey(RandomNumberGenerator.GetBytes(alg.KeySize));
        var nonce = RandomNumberGenerator.GetBytes(alg.NonceSize);
        var ad = RandomNumberGenerator.GetBytes(13);
        foreach (var length in EdgeLengths)
        {
            var plaintext = RandomNumberGenerator.GetBytes(length);
            var separate = new byte[length];
            var tag = new byte[16];
            alg.Encrypt(key, nonce, plaintext, separate, tag, ad);

            var buffer = (byte[])plaintext.Clone();
            var tagInPlace = new byte[16];
            alg.Encrypt(key, nonce, buffer, buffer, tagInPlace, ad);
            Assert.Equal(separate, buffer);
            Assert.Equal(tag, tagInPlace);
            Assert.True(alg.Decrypt(key, nonce, buffer, tag, buffer, ad));
            Assert.Equal(plaintext, buffer);
        }
    }

    /// <summary>A disposed key refuses to seal, open and export.</summary>
    internal static void CheckDisposedKeyRefuses(AeadAlgorithm alg)
    {
        var key = alg.CreateKey(new byte[alg.KeySize]);
        key.Dispose();
        Assert.Throws<ObjectDisposedException>(() => alg.Encrypt(key, new byte[alg.NonceSize], default, default, new byte[16]));
        Assert.Throws<ObjectDisposedException>(() => alg.Decrypt(key, new byte[alg.NonceSize], default, new byte[16], default));
        Assert.Throws<ObjectDisposedException>(() => key.Export(new byte[alg.KeySize]));
    }
}
