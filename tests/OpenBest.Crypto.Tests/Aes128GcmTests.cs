using System.Security.Cryptography;
using OpenBest.Crypto.Aead;

namespace OpenBest.Crypto.Tests;

/// <summary>Suite 3: AES-128-GCM on AES-NI and PCLMULQDQ, against the published vectors and the platform's AesGcm.</summary>
public sealed class Aes128GcmTests
{
    [Fact]
    public void Aes128Gcm_RunsManaged_WhereTheCpuHasAesNiAndPclmulqdq()
    {
        Assert.Equal(
            System.Runtime.Intrinsics.X86.Aes.IsSupported && System.Runtime.Intrinsics.X86.Pclmulqdq.IsSupported && System.Runtime.Intrinsics.X86.Ssse3.IsSupported,
            Aes128GcmAlgorithm.IsHardwareAccelerated);
        Assert.True(AeadAlgorithm.Aes128Gcm.IsSupported || !AesGcm.IsSupported);
    }

    // McGrew and Viega, "The Galois/Counter Mode of Operation (GCM)", test cases 1-4 (AES-128, 96-bit IV),
    // and NIST CAVP gcmEncryptExtIV128.rsp (Keylen 128, IVlen 96, Taglen 128, Count 0 of three sections).
    [Theory]
    [InlineData("McGrew-Viega 1", "00000000000000000000000000000000", "000000000000000000000000", "", "", "", "58e2fccefa7e3061367f1d57a4e7455a")]
    [InlineData("McGrew-Viega 2", "00000000000000000000000000000000", "000000000000000000000000", "00000000000000000000000000000000", "", "0388dace60b6a392f328c2b971b2fe78", "ab6e47d42cec13bdf53a67b21257bddf")]
    [InlineData(
        "McGrew-Viega 3",
        "feffe9928665731c6d6a8f9467308308",
        "cafebabefacedbaddecaf888",
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
        "",
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
        "4d5c2af327cd64a62cf35abd2ba6fab4")]
    [InlineData(
        "McGrew-Viega 4",
        "feffe9928665731c6d6a8f9467308308",
        "cafebabefacedbaddecaf888",
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        "feedfacedeadbeeffeedfacedeadbeefabaddad2",
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
        "5bc94fbc3221a5db94fae95ae7121a47")]
    [InlineData("CAVP PTlen=0 AADlen=0", "11754cd72aec309bf52f7687212e8957", "3c819d9a9bed087615030b65", "", "", "", "250327c674aaf477aef2675748cf6971")]
    [InlineData("CAVP PTlen=128 AADlen=0", "7fddb57453c241d03efbed3ac44e371c", "ee283a3fc75575e33efd4887", "d5de42b461646c255c87bd2962d3b9a2", "", "2ccda4a5415cb91e135c2a0f78c9b2fd", "b36d1df9b9d5e596f83e8b7f52971cb3")]
    [InlineData("CAVP PTlen=128 AADlen=128", "c939cc13397c1d37de6ae0e1cb7c423c", "b3d8cc017cbb89b39e0f67e2", "c3b3c41f113a31b73d9a5cd432103069", "24825602bd12a984e0092d3e448eda5f", "93fe7d9e9bfd10348a5606e5cafa7354", "0032a1dc85f1c9786925a2e71d8272dd")]
    public void Aes128Gcm_PublishedVectors_BothDirections(string name, string key, string iv, string plaintext, string ad, string ciphertext, string tag)
    {
        Assert.SkipUnless(AeadAlgorithm.Aes128Gcm.IsSupported, "AES-GCM is not available on this platform.");
        AeadChecks.CheckVector(name, AeadAlgorithm.Aes128Gcm, key, iv, plaintext, ad, ciphertext, tag);
    }

    [Fact]
    public void Aes128Gcm_TamperedBit_AnywhereInCiphertextTagOrAd_FailsAndZeroes()
    {
        Assert.SkipUnless(AeadAlgorithm.Aes128Gcm.IsSupported, "AES-GCM is not available on this platform.");
        AeadChecks.CheckEveryBitFlipFails(AeadAlgorithm.Aes128Gcm, plaintextLength: 60, adLength: 20);
        AeadChecks.CheckEveryBitFlipFails(AeadAlgorithm.Aes128Gcm, plaintextLength: 0, adLength: 5);
        AeadChecks.CheckEveryBitFlipFails(AeadAlgorithm.Aes128Gcm, plaintextLength: 67, adLength: 0);
    }

    [Fact]
    public void Aes128Gcm_AgreesWithPlatformAesGcm_OnRandomInputs_BothDirections()
    {
        Assert.SkipUnless(AesGcm.IsSupported, "The platform has no AES-GCM to compare with.");
        AeadChecks.CrossCheck(
            AeadAlgorithm.Aes128Gcm,
            20261204,
            (key, nonce, plaintext, ciphertext, tag, ad) =>
            {
                using var platform = new AesGcm(key, 16);
                platform.Encrypt(nonce, plaintext, ciphertext, tag, ad);
            },
            (key, nonce, ciphertext, tag, plaintext, ad) =>
            {
                using var platform = new AesGcm(key, 16);
                platform.Decrypt(nonce, ciphertext, tag, plaintext, ad);
            });
    }

    [Fact]
    public void Aes128Gcm_InPlace_SameBytesAsWithTwoBuffers()
    {
        Assert.SkipUnless(AeadAlgorithm.Aes128Gcm.IsSupported, "AES-GCM is not available on this platform.");
        AeadChecks.CheckInPlace(AeadAlgorithm.Aes128Gcm);
    }

    [Fact]
    public void Aes128Gcm_DisposedKey_Refuses()
    {
        Assert.SkipUnless(AeadAlgorithm.Aes128Gcm.IsSupported, "AES-GCM is not available on this platform.");
        AeadChecks.CheckDisposedKeyRefuses(AeadAlgorithm.Aes128Gcm);
    }
}
