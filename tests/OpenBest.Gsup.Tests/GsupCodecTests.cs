using System.Buffers;

namespace OpenBest.Gsup.Tests;

/// <summary>
/// The GSUP codec against messages transcribed from libosmocore's GSUP test data (tests/gsup/gsup_test.c: the
/// "Send Authentication Info" messages and their TEST_IMSI_IE), never produced by this encoder; round trips; and
/// malformed input, which must never throw nor read past the buffer.
/// </summary>
public sealed class GsupCodecTests
{
    // TEST_IMSI_IE of gsup_test.c: IMSI 123456789012345 in BCD, filler F in the last high nibble.
    private const string ImsiIe = "0108214365870921 43f5";
    private const string Imsi = "123456789012345";

    // send_auth_info_req: type 0x08, the IMSI, TEST_CLASS_SUBSCR_IE (message class 1).
    private static readonly byte[] SendAuthInfoReq = Hex("08" + ImsiIe + "0a0101");

    // send_auth_info_req10: as above with TEST_NUM_VEC_IE(10).
    private static readonly byte[] SendAuthInfoReq10 = Hex("08" + ImsiIe + "52010a" + "0a0101");

    // send_auth_info_req_auts: AUTS 01..0e and RAND 01..10.
    private static readonly byte[] SendAuthInfoReqAuts = Hex("08" + ImsiIe + "260e" + "0102030405060708090a0b0c0d0e" + "2010" + "0102030405060708090a0b0c0d0e0f10");

    // send_auth_info_err: cause 0x07 (GPRS not allowed).
    private static readonly byte[] SendAuthInfoErr = Hex("09" + ImsiIe + "020107");

    // send_auth_info_res: two GSM triplets.
    private static readonly byte[] SendAuthInfoRes = Hex("0a" + ImsiIe
        + "0322" + "2010" + "0102030405060708090a0b0c0d0e0f10" + "2104" + "21222324" + "2208" + "3132333435363738"
        + "0322" + "2010" + "8182838485868788898a8b8c8d8e8f90" + "2104" + "a1a2a3a4" + "2208" + "b1b2b3b4b5b6b7b8");

    // send_auth_info_res_umts: two quintets with SRES and Kc.
    private static readonly byte[] SendAuthInfoResUmts = Hex("0a" + ImsiIe
        + "0362"
        + "2010" + "0102030405060708090a0b0c0d0e0f10" + "2104" + "21222324" + "2208" + "3132333435363738"
        + "2310" + "0102030405060708090a0b0c0d0e0f10" + "2410" + "0102030405060708090a0b0c0d0e0f10"
        + "2510" + "0102030405060708090a0b0c0d0e0f10" + "2708" + "0102030405060708"
        + "0362"
        + "2010" + "a1a2a3a4a5a6a7a8a9aaabacadaeaf10" + "2104" + "b1b2b3b4" + "2208" + "c1c2c3c4c5c6c7c8"
        + "2310" + "d1d2d3d4d5d6d7d8d9dadbdcdddedfd0" + "2410" + "e1e2e3e4e5e6e7e8e9eaebecedeeefe0"
        + "2510" + "f1f2f3f4f5f6f7f8f9fafbfcfdfefff0" + "2708" + "9192939495969798");

    public static TheoryData<string> LibosmocoreMessages() =>
    [
        Convert.ToHexString(SendAuthInfoReq), Convert.ToHexString(SendAuthInfoReq10), Convert.ToHexString(SendAuthInfoReqAuts),
        Convert.ToHexString(SendAuthInfoErr), Convert.ToHexString(SendAuthInfoRes), Convert.ToHexString(SendAuthInfoResUmts),
    ];

    [Fact]
    public void Request_Libosmocore_Decodes()
    {
        Assert.True(SendAuthInfoRequest.TryRead(SendAuthInfoReq, out var request));
        Assert.Equal(Imsi, request!.Imsi);
        Assert.Equal(GsupMessageClass.SubscriberManagement, request.MessageClass);
        Assert.Null(request.NumberOfVectors);
        Assert.False(request.IsResynchronisation);

        Assert.True(SendAuthInfoRequest.TryRead(SendAuthInfoReq10, out var ten));
        Assert.Equal((byte)10, ten!.NumberOfVectors);

        Assert.True(SendAuthInfoRequest.TryRead(SendAuthInfoReqAuts, out var resync));
        Assert.True(resync!.IsResynchronisation);
        Assert.Equal("0102030405060708090A0B0C0D0E", Convert.ToHexString(resync.Auts.Span));
        Assert.Equal("0102030405060708090A0B0C0D0E0F10", Convert.ToHexString(resync.Rand.Span));
    }

    [Fact]
    public void Request_Encoder_ReproducesLibosmocoreOctets()
    {
        // The encoder writes IEs in libosmocore's order (IMSI, AUTS, RAND, number of vectors, message class).
        Assert.Equal(SendAuthInfoReq, new SendAuthInfoRequest(Imsi) { MessageClass = GsupMessageClass.SubscriberManagement }.Encode());
        Assert.Equal(SendAuthInfoReq10, new SendAuthInfoRequest(Imsi) { NumberOfVectors = 10, MessageClass = GsupMessageClass.SubscriberManagement }.Encode());
        Assert.Equal(SendAuthInfoReqAuts, new SendAuthInfoRequest(Imsi, Hex("0102030405060708090a0b0c0d0e0f10"), Hex("0102030405060708090a0b0c0d0e")).Encode());
    }

    [Fact]
    public void Error_Libosmocore_Decodes()
    {
        Assert.True(SendAuthInfoError.TryRead(SendAuthInfoErr, out var error));
        Assert.Equal(Imsi, error!.Imsi);
        Assert.Equal(GsupCause.GprsNotAllowed, error.Cause);
        Assert.Equal(SendAuthInfoErr, error.Encode());
    }

    [Fact]
    public void Result_LibosmocoreUmts_DecodesTwoQuintets()
    {
        Assert.True(SendAuthInfoResult.TryRead(SendAuthInfoResUmts, out var result));
        Assert.Equal(Imsi, result!.Imsi);
        Assert.Equal(2, result.Tuples.Count);
        var second = result.Tuples[1];
        Assert.True(second.IsQuintet);
        Assert.Equal("A1A2A3A4A5A6A7A8A9AAABACADAEAF10", Convert.ToHexString(second.Rand.Span));
        Assert.Equal("B1B2B3B4", Convert.ToHexString(second.Sres.Span));
        Assert.Equal("C1C2C3C4C5C6C7C8", Convert.ToHexString(second.Kc.Span));
        Assert.Equal("D1D2D3D4D5D6D7D8D9DADBDCDDDEDFD0", Convert.ToHexString(second.Ik.Span));
        Assert.Equal("E1E2E3E4E5E6E7E8E9EAEBECEDEEEFE0", Convert.ToHexString(second.Ck.Span));
        Assert.Equal("F1F2F3F4F5F6F7F8F9FAFBFCFDFEFFF0", Convert.ToHexString(second.Autn.Span));
        Assert.Equal("9192939495969798", Convert.ToHexString(second.Res.Span));
        Assert.Equal(SendAuthInfoResUmts, result.Encode());
        Assert.DoesNotContain("D1D2", result.ToString(), StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("D1D2", second.ToString(), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void Result_LibosmocoreGsm_DecodesTriplets()
    {
        Assert.True(SendAuthInfoResult.TryRead(SendAuthInfoRes, out var result));
        Assert.Equal(2, result!.Tuples.Count);
        Assert.All(result.Tuples, t => Assert.False(t.IsQuintet));
        Assert.Equal("A1A2A3A4", Convert.ToHexString(result.Tuples[1].Sres.Span));
        Assert.Equal(SendAuthInfoRes, result.Encode());
    }

    [Theory]
    [MemberData(nameof(LibosmocoreMessages))]
    public void Header_NamesTypeAndImsi(string hex)
    {
        var message = Hex(hex);
        Assert.True(GsupMessage.TryReadHeader(message, out var type, out var imsi));
        Assert.Equal(message[0], type);
        Assert.Equal(Imsi, imsi);
    }

    [Theory]
    [MemberData(nameof(LibosmocoreMessages))]
    public void EveryTruncation_IsRefused_WithoutThrowing(string hex)
    {
        var message = Hex(hex);
        for (var length = 0; length < message.Length; length++)
        {
            // A copy of exactly that length: a parser reading past it would throw.
            var cut = message.AsSpan(0, length).ToArray();
            var anyOk = SendAuthInfoRequest.TryRead(cut, out _) | SendAuthInfoResult.TryRead(cut, out _) | SendAuthInfoError.TryRead(cut, out _);
            // A cut exactly between two tuples or before an optional IE is still a valid, shorter message.
            if (anyOk)
            {
                Assert.True(GsupMessage.TryReadHeader(cut, out _, out _));
            }
        }
    }

    [Fact]
    public void RandomMutations_NeverThrow()
    {
        var random = new Random(20260507);
        byte[][] seeds = [SendAuthInfoReq, SendAuthInfoReq10, SendAuthInfoReqAuts, SendAuthInfoErr, SendAuthInfoRes, SendAuthInfoResUmts];
        for (var i = 0; i < 20_000; i++)
        {
            var message = seeds[random.Next(seeds.Length)].ToArray();
            for (var flips = random.Next(1, 4); flips > 0; flips--)
            {
                message[random.Next(message.Length)] = (byte)random.Next(256);
            }

            var length = random.Next(message.Length + 1);
            var cut = message.AsSpan(0, length).ToArray();
            _ = SendAuthInfoRequest.TryRead(cut, out _);
            _ = SendAuthInfoResult.TryRead(cut, out _);
            _ = SendAuthInfoError.TryRead(cut, out _);
            _ = GsupMessage.TryReadHeader(cut, out _, out _);
        }

        for (var i = 0; i < 5_000; i++)
        {
            var noise = new byte[random.Next(64)];
            random.NextBytes(noise);
            _ = SendAuthInfoResult.TryRead(noise, out _);
            _ = SendAuthInfoRequest.TryRead(noise, out _);
            _ = IpaIdGet.TryRead(noise, out _);
            _ = IpaIdResponse.TryRead(noise, out _);
            _ = GsupImsi.TryRead(noise, out _);
        }
    }

    [Fact]
    public void Request_RoundTrips()
    {
        var random = new Random(7);
        for (var i = 0; i < 500; i++)
        {
            var imsi = string.Concat(Enumerable.Range(0, random.Next(6, 16)).Select(_ => (char)('0' + random.Next(10))));
            var resync = random.Next(2) == 0;
            var rand = new byte[16];
            var auts = new byte[14];
            random.NextBytes(rand);
            random.NextBytes(auts);
            var request = new SendAuthInfoRequest(imsi, resync ? rand : default, resync ? auts : default)
            {
                NumberOfVectors = random.Next(2) == 0 ? null : (byte)random.Next(256),
                CurrentRatType = random.Next(2) == 0 ? null : (GsupRatType)random.Next(4),
                MessageClass = random.Next(2) == 0 ? null : GsupMessageClass.SubscriberManagement,
            };
            var bytes = request.Encode();
            Assert.Equal(request.GetEncodedLength(), bytes.Length);
            Assert.True(SendAuthInfoRequest.TryRead(bytes, out var back));
            Assert.Equal(imsi, back!.Imsi);
            Assert.Equal(request.IsResynchronisation, back.IsResynchronisation);
            Assert.Equal(Convert.ToHexString(request.Rand.Span), Convert.ToHexString(back.Rand.Span));
            Assert.Equal(Convert.ToHexString(request.Auts.Span), Convert.ToHexString(back.Auts.Span));
            Assert.Equal(request.NumberOfVectors, back.NumberOfVectors);
            Assert.Equal(request.CurrentRatType, back.CurrentRatType);
            Assert.Equal(request.MessageClass, back.MessageClass);
        }
    }

    [Fact]
    public void Result_RoundTrips()
    {
        var random = new Random(11);
        for (var i = 0; i < 300; i++)
        {
            var tuples = Enumerable.Range(0, random.Next(0, 6)).Select(_ => RandomTuple(random)).ToList();
            var result = new SendAuthInfoResult("001010000000001", tuples);
            var bytes = result.Encode();
            Assert.True(SendAuthInfoResult.TryRead(bytes, out var back));
            Assert.Equal(result.Imsi, back!.Imsi);
            Assert.Equal(tuples, back.Tuples);
        }
    }

    [Fact]
    public void Result_IgnoresUnknownIes_AndRefusesRepeatsAndWrongLengths()
    {
        // GSUP specification, "Message Format": unknown IEs shall be ignored.
        var withUnknown = Hex("0a" + ImsiIe + "7702abcd" + "0312" + "2010" + "0102030405060708090a0b0c0d0e0f10");
        Assert.True(SendAuthInfoResult.TryRead(withUnknown, out var result));
        Assert.Single(result!.Tuples);

        Assert.False(SendAuthInfoResult.TryRead(Hex("0a" + ImsiIe + ImsiIe), out _));
        Assert.False(SendAuthInfoResult.TryRead(Hex("0a" + ImsiIe + "0306" + "20040102030a"), out _));
        Assert.False(SendAuthInfoResult.TryRead(Hex("0a" + ImsiIe + "0304" + "21020102"), out _));
        Assert.False(SendAuthInfoResult.TryRead(Hex("0a"), out _));
        Assert.False(SendAuthInfoResult.TryRead(SendAuthInfoErr, out _));
        var six = "0a" + ImsiIe + string.Concat(Enumerable.Repeat("0312" + "2010" + "0102030405060708090a0b0c0d0e0f10", 6));
        Assert.False(SendAuthInfoResult.TryRead(Hex(six), out _));
        Assert.False(SendAuthInfoError.TryRead(Hex("09" + ImsiIe), out _));
        Assert.False(SendAuthInfoError.TryRead(Hex("09" + ImsiIe + "02020707"), out _));
        Assert.False(SendAuthInfoRequest.TryRead(Hex("08" + ImsiIe + "2010" + "0102030405060708090a0b0c0d0e0f10"), out _));
    }

    [Theory]
    [InlineData("001010000000001", "00010100000000f1")]
    [InlineData("262420000000001", "62420200000000f1")]
    [InlineData("0010100000", "0001010000")]
    public void Imsi_Bcd_IsTs24008(string imsi, string hex)
    {
        var buffer = new byte[8];
        var length = GsupImsi.Write(imsi, buffer);
        Assert.Equal(hex, Convert.ToHexString(buffer, 0, length).ToLowerInvariant());
        Assert.True(GsupImsi.TryRead(buffer.AsSpan(0, length), out var back));
        Assert.Equal(imsi, back);
    }

    [Theory]
    [InlineData("")]
    [InlineData("f1")]
    [InlineData("1a00000000")]
    [InlineData("00f1000000")]
    [InlineData("0000000000000000f1")]
    [InlineData("0001")]
    public void Imsi_Malformed_IsRefused(string hex) => Assert.False(GsupImsi.TryRead(Hex(hex), out _));

    [Fact]
    public void Request_RefusesBadArguments()
    {
        Assert.Throws<ArgumentException>(() => new SendAuthInfoRequest("12345"));
        Assert.Throws<ArgumentException>(() => new SendAuthInfoRequest("00101000000000a"));
        Assert.Throws<ArgumentException>(() => new SendAuthInfoRequest(Imsi, new byte[16], default));
        Assert.Throws<ArgumentException>(() => new SendAuthInfoRequest(Imsi, new byte[16], new byte[13]));
    }

    [Fact]
    public void MessageTypes_CategoryBits()
    {
        // libosmocore gsup.h: request, error and result of a procedure differ only in the last two bits.
        Assert.True(GsupMessageTypes.IsRequest((byte)GsupMessageType.SendAuthInfoRequest));
        Assert.True(GsupMessageTypes.IsError((byte)GsupMessageType.SendAuthInfoError));
        Assert.True(GsupMessageTypes.IsResult((byte)GsupMessageType.SendAuthInfoResult));
        Assert.Equal((byte)GsupMessageType.SendAuthInfoRequest, GsupMessageTypes.RequestOf((byte)GsupMessageType.SendAuthInfoResult));
        Assert.Equal((byte)GsupMessageType.UpdateLocationRequest, GsupMessageTypes.RequestOf((byte)GsupMessageType.UpdateLocationError));
    }

    internal static byte[] Hex(string hex) => Convert.FromHexString(hex.Replace(" ", string.Empty, StringComparison.Ordinal));

    private static GsupAuthTuple RandomTuple(Random random)
    {
        byte[] Bytes(int n)
        {
            var b = new byte[n];
            random.NextBytes(b);
            return b;
        }

        var quintet = random.Next(2) == 0;
        return new GsupAuthTuple(Bytes(16), Bytes(4), Bytes(8),
            quintet ? Bytes(16) : default, quintet ? Bytes(16) : default, quintet ? Bytes(16) : default, quintet ? Bytes(random.Next(4, 17)) : default);
    }
}
