using System.Security.Cryptography;

namespace OpenBest.Crypto.Tests;

/// <summary>AES key wrap (RFC 3394) and key wrap with padding (RFC 5649): the RFC vectors, tampering, and the platform's KWP as a second opinion.</summary>
public sealed class AesKeyWrapTests
{
    private const string Kek128 = "000102030405060708090a0b0c0d0e0f";
    private const string Kek192 = "000102030405060708090a0b0c0d0e0f1011121314151617";
    private const string Kek256 = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    private const string Data128 = "00112233445566778899aabbccddeeff";
    private const string Data192 = "00112233445566778899aabbccddeeff0001020304050607";
    private const string Data256 = "00112233445566778899aabbccddeeff000102030405060708090a0b0c0d0e0f";

    // RFC 5649 section 6: the 192-bit KEK of both examples.
    private const string Rfc5649Kek = "5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8";

    public static TheoryData<string, string, string> Rfc3394Section4 => new()
    {
        { Kek128, Data128, "1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5" },                  // 4.1
        { Kek192, Data128, "96778b25ae6ca435f92b5b97c050aed2468ab8a17ad84e5d" },                  // 4.2
        { Kek256, Data128, "64e8c3f9ce0f5ba263e9777905818a2a93c8191e7d6e8ae7" },                  // 4.3
        { Kek192, Data192, "031d33264e15d33268f24ec260743edce1c6c7ddee725a936ba814915c6762d2" },  // 4.4
        { Kek256, Data192, "a8f9bc1612c68b3ff6e6f4fbe30e71e4769c8b80a32cb8958cd5d17d6b254da1" },  // 4.5
        { Kek256, Data256, "28c9f404c4b810f4cbccb35cfb87f8263f5786e2d80ed326cbc7f0e71a99f43bfb988b9b7a02dd21" }, // 4.6
    };

    [Theory]
    [MemberData(nameof(Rfc3394Section4))]
    public void Rfc3394_Section4_WrapsAndUnwraps(string kek, string keyData, string wrapped)
    {
        using var kw = new AesKeyWrap(Hex.Bytes(kek));
        var output = new byte[AesKeyWrap.WrappedLength(keyData.Length / 2)];
        Assert.Equal(output.Length, kw.Wrap(Hex.Bytes(keyData), output));
        Assert.Equal(wrapped, Hex.String(output));

        var unwrapped = new byte[output.Length - 8];
        Assert.True(kw.TryUnwrap(Hex.Bytes(wrapped), unwrapped, out var written));
        Assert.Equal(unwrapped.Length, written);
        Assert.Equal(keyData, Hex.String(unwrapped));
    }

    [Fact]
    public void Rfc5649_Section6_TwentyOctetKey()
    {
        using var kw = new AesKeyWrap(Hex.Bytes(Rfc5649Kek));
        var key = Hex.Bytes("c37b7e6492584340bed12207808941155068f738");
        var output = new byte[AesKeyWrap.PaddedWrappedLength(key.Length)];
        Assert.Equal(32, kw.WrapWithPadding(key, output));
        Assert.Equal("138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a", Hex.String(output));

        var unwrapped = new byte[24];
        Assert.True(kw.TryUnwrapWithPadding(output, unwrapped, out var written));
        Assert.Equal(20, written);
        Assert.Equal(key, unwrapped[..written]);
        Assert.All(unwrapped[written..], b => Assert.Equal(0, b));
    }

    [Fact]
    public void Rfc5649_Section6_SevenOctetKey()
    {
        using var kw = new AesKeyWrap(Hex.Bytes(Rfc5649Kek));
        var key = Hex.Bytes("466f7250617369");
        var output = new byte[AesKeyWrap.PaddedWrappedLength(key.Length)];
        Assert.Equal(16, kw.WrapWithPadding(key, output));
        Assert.Equal("afbeb0f07dfbf5419200f2ccb50bb24f", Hex.String(output));

        var unwrapped = new byte[8];
        Assert.True(kw.TryUnwrapWithPadding(output, unwrapped, out var written));
        Assert.Equal(7, written);
        Assert.Equal(key, unwrapped[..written]);
    }

    [Theory]
    [InlineData(16)]
    [InlineData(24)]
    [InlineData(32)]
    public void Rfc5649_AgreesWithPlatformKwp_ForEveryLengthUpTo70(int kekLength)
    {
        var random = new Random(5649 + kekLength);
        var kek = new byte[kekLength];
        random.NextBytes(kek);
        using var kw = new AesKeyWrap(kek);
        using var platform = Aes.Create();
        platform.Key = kek;
        for (var length = 1; length <= 70; length++)
        {
            var key = new byte[length];
            random.NextBytes(key);
            var ours = new byte[AesKeyWrap.PaddedWrappedLength(length)];
            kw.WrapWithPadding(key, ours);
            Assert.Equal(platform.EncryptKeyWrapPadded(key), ours);

            var back = new byte[ours.Length - 8];
            Assert.True(kw.TryUnwrapWithPadding(ours, back, out var written));
            Assert.Equal(key, back[..written]);
        }
    }

    [Fact]
    public void Rfc3394_AnyChangedBit_IsRefused_AndTheDestinationIsZeroed()
    {
        using var kw = new AesKeyWrap(Hex.Bytes(Kek256));
        var wrapped = Hex.Bytes("28c9f404c4b810f4cbccb35cfb87f8263f5786e2d80ed326cbc7f0e71a99f43bfb988b9b7a02dd21");
        for (var bit = 0; bit < wrapped.Length * 8; bit++)
        {
            var tampered = (byte[])wrapped.Clone();
            tampered[bit / 8] ^= (byte)(0x80 >> (bit % 8));
            var destination = Enumerable.Repeat((byte)0x5a, 32).ToArray();
            Assert.False(kw.TryUnwrap(tampered, destination, out var written));
            Assert.Equal(0, written);
            Assert.All(destination, b => Assert.Equal(0, b));
        }
    }

    [Fact]
    public void Rfc5649_AnyChangedBit_IsRefused_AndTheDestinationIsZeroed()
    {
        using var kw = new AesKeyWrap(Hex.Bytes(Rfc5649Kek));
        foreach (var hex in new[] { "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a", "afbeb0f07dfbf5419200f2ccb50bb24f" })
        {
            var wrapped = Hex.Bytes(hex);
            for (var bit = 0; bit < wrapped.Length * 8; bit++)
            {
                var tampered = (byte[])wrapped.Clone();
                tampered[bit / 8] ^= (byte)(0x80 >> (bit % 8));
                var destination = Enumerable.Repeat((byte)0x5a, wrapped.Length - 8).ToArray();
                Assert.False(kw.TryUnwrapWithPadding(tampered, destination, out var written));
                Assert.Equal(0, written);
                Assert.All(destination, b => Assert.Equal(0, b));
            }
        }
    }

    [Fact]
    public void WrongKek_IsRefused()
    {
        using var right = new AesKeyWrap(Hex.Bytes(Rfc5649Kek));
        var wrong = Hex.Bytes(Rfc5649Kek);
        wrong[^1] ^= 1;
        using var other = new AesKeyWrap(wrong);
        var wrapped = new byte[AesKeyWrap.PaddedWrappedLength(40)];
        right.WrapWithPadding(new byte[40], wrapped);
        Assert.False(other.TryUnwrapWithPadding(wrapped, new byte[40], out _));

        var kw = new byte[AesKeyWrap.WrappedLength(32)];
        right.Wrap(new byte[32], kw);
        Assert.False(other.TryUnwrap(kw, new byte[32], out _));
    }

    [Fact]
    public void Rfc5649_WrappingUnderTheRfc3394Iv_IsRefused_AndTheOtherWayRound()
    {
        // The two modes have different initial values, so one's output never passes the other's check.
        using var kw = new AesKeyWrap(Hex.Bytes(Kek128));
        var kwOutput = new byte[24];
        kw.Wrap(Hex.Bytes(Data128), kwOutput);
        Assert.False(kw.TryUnwrapWithPadding(kwOutput, new byte[16], out _));

        var kwpOutput = new byte[24];
        kw.WrapWithPadding(Hex.Bytes(Data128), kwpOutput);
        Assert.False(kw.TryUnwrap(kwpOutput, new byte[16], out _));
    }

    [Fact]
    public void Rfc5649_ALengthIndicatorOutsideTheLastSemiblock_IsRefused()
    {
        // Build, with the raw cipher, a single-block wrapping whose AIV claims 9 octets in 8 (and one claiming 0).
        var kek = Hex.Bytes(Rfc5649Kek);
        using var aes = Aes.Create();
        aes.Key = kek;
        using var kw = new AesKeyWrap(kek);
        foreach (var mli in new byte[] { 0, 9 })
        {
            var block = Hex.Bytes("a65959a600000000" + "4142434445464748");
            block[7] = mli;
            var wrapped = aes.EncryptEcb(block, PaddingMode.None);
            Assert.False(kw.TryUnwrapWithPadding(wrapped, new byte[8], out _));
        }

        // And one with a non-zero padding octet: MLI 7 but the eighth octet set.
        var padded = aes.EncryptEcb(Hex.Bytes("a65959a600000007" + "4142434445464701"), PaddingMode.None);
        Assert.False(kw.TryUnwrapWithPadding(padded, new byte[8], out _));
        var clean = aes.EncryptEcb(Hex.Bytes("a65959a600000007" + "4142434445464700"), PaddingMode.None);
        Assert.True(kw.TryUnwrapWithPadding(clean, new byte[8], out var written));
        Assert.Equal(7, written);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(8)]
    [InlineData(15)]
    [InlineData(23)]
    [InlineData(25)]
    public void BadWrappedLengths_AreRefused_WithoutThrowing(int length)
    {
        using var kw = new AesKeyWrap(Hex.Bytes(Kek128));
        var destination = new byte[64];
        Assert.False(kw.TryUnwrap(new byte[length], destination, out _));
        Assert.False(kw.TryUnwrapWithPadding(new byte[length], destination, out _));
    }

    [Fact]
    public void ADestinationTooShort_IsRefused_WithoutThrowing()
    {
        using var kw = new AesKeyWrap(Hex.Bytes(Kek128));
        var wrapped = Hex.Bytes("1fa68b0a8112b447aef34bd8fb5a7b829d3e862371d2cfe5");
        var destination = new byte[15];
        Assert.False(kw.TryUnwrap(wrapped, destination, out _));
        Assert.False(kw.TryUnwrapWithPadding(wrapped, destination, out _));
    }

    [Fact]
    public void WrapArguments_AreChecked()
    {
        Assert.Throws<ArgumentException>(() => new AesKeyWrap(new byte[20]));
        using var kw = new AesKeyWrap(Hex.Bytes(Kek128));
        Assert.Throws<ArgumentException>(() => kw.Wrap(new byte[8], new byte[16]));
        Assert.Throws<ArgumentException>(() => kw.Wrap(new byte[20], new byte[28]));
        Assert.Throws<ArgumentException>(() => kw.Wrap(new byte[16], new byte[23]));
        Assert.Throws<ArgumentException>(() => kw.WrapWithPadding([], new byte[16]));
        Assert.Throws<ArgumentException>(() => kw.WrapWithPadding(new byte[9], new byte[23]));
        var shared = new byte[40];
        Assert.Throws<ArgumentException>(() => kw.Wrap(shared.AsSpan(0, 16), shared.AsSpan(8, 24)));
    }

    [Fact]
    public void Disposed_Throws()
    {
        var kw = new AesKeyWrap(Hex.Bytes(Kek128));
        kw.Dispose();
        kw.Dispose();
        Assert.Throws<ObjectDisposedException>(() => kw.Wrap(new byte[16], new byte[24]));
        Assert.Throws<ObjectDisposedException>(() => kw.TryUnwrapWithPadding(new byte[16], new byte[8], out _));
    }
}
