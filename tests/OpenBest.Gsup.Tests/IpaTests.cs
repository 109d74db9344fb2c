using System.Buffers;

namespace OpenBest.Gsup.Tests;

/// <summary>
/// IPA multiplex framing and connection management, against the frames libosmocore's ipa.c sends (ipa_id_req_msg,
/// ipa_pong_msg, ipa_id_ack_msg) and the ID_RESP layout its ipa_ccm_make_id_resp writes.
/// </summary>
public sealed class IpaTests
{
    // libosmocore ipa.c, ipa_id_req_msg: what osmo-hlr sends on every new GSUP connection.
    private static readonly byte[] IdGetFrame = Convert.FromHexString("0011fe04010801070102010301040105010101 00".Replace(" ", string.Empty, StringComparison.Ordinal));

    [Fact]
    public void IdGet_Libosmocore_Frame_ParsesToTheStandardTags()
    {
        var buffer = new ReadOnlySequence<byte>(IdGetFrame);
        Assert.Equal(IpaFrameStatus.Ok, IpaFraming.TryRead(ref buffer, 4096, out var stream, out var payload));
        Assert.Equal((byte)IpaStreamId.Ccm, stream);
        Assert.True(buffer.IsEmpty);
        Assert.True(IpaIdGet.TryRead(payload.ToArray(), out var get));
        Assert.Equal(IpaIdGet.Standard.Tags, get!.Tags);

        var encoded = new byte[IpaIdGet.Standard.GetEncodedLength()];
        IpaIdGet.Standard.Write(encoded);
        Assert.Equal(IdGetFrame, IpaFraming.EncodeCcm(encoded));
    }

    [Fact]
    public void PongAndIdAck_AreLibosmocoreFrames()
    {
        Assert.Equal("0001FE01", Convert.ToHexString(IpaFraming.EncodeCcm(IpaCcm.Pong)));
        Assert.Equal("0001FE06", Convert.ToHexString(IpaFraming.EncodeCcm(IpaCcm.IdAck)));
        Assert.Equal("0001FE00", Convert.ToHexString(IpaFraming.EncodeCcm(IpaCcm.Ping)));
    }

    [Fact]
    public void IdResponse_HasLibosmocoreLayout_AndNamesTheUnit()
    {
        // ipa_ccm_make_id_resp: per tag 0x00, 1 + strlen + 1, tag, the string and its NUL.
        var response = IpaIdResponse.For(new IpaIdGet([IpaIdTag.UnitName, IpaIdTag.SerialNumber, IpaIdTag.Location1]), new IpaIdentity("HSE-1"));
        var bytes = response.Encode();
        Assert.Equal("05" + "000701" + "4853452D3100" + "000700" + "4853452D3100" + "000202" + "00", Convert.ToHexString(bytes));
        Assert.True(IpaIdResponse.TryRead(bytes, out var back));
        Assert.Equal("HSE-1", back!.ValueOf(IpaIdTag.SerialNumber));
        Assert.Equal("HSE-1", back.ValueOf(IpaIdTag.UnitName));
        Assert.Equal(string.Empty, back.ValueOf(IpaIdTag.Location1));
        Assert.Null(back.ValueOf(IpaIdTag.MacAddress));
    }

    [Fact]
    public void Framing_ReadsSplitAndByteByByteInput()
    {
        var gsup = IpaFraming.EncodeOsmo(IpaOsmoExtension.Gsup, GsupCodecTests.Hex("08" + "0108" + "00010100000000f1"));
        var stream = IdGetFrame.Concat(gsup).Concat(IpaFraming.EncodeCcm(IpaCcm.Ping)).ToArray();
        foreach (var chunk in new[] { 1, 2, 3, 5, 7, stream.Length })
        {
            var frames = new List<(byte Stream, byte[] Payload)>();
            var held = new List<byte>();
            for (var at = 0; at < stream.Length; at += chunk)
            {
                held.AddRange(stream.Skip(at).Take(chunk));
                var buffer = new ReadOnlySequence<byte>(held.ToArray());
                while (true)
                {
                    var before = buffer.Length;
                    var status = IpaFraming.TryRead(ref buffer, 4096, out var id, out var payload);
                    Assert.NotEqual(IpaFrameStatus.Invalid, status);
                    if (status == IpaFrameStatus.NeedMoreData)
                    {
                        // Nothing consumed.
                        Assert.Equal(before, buffer.Length);
                        break;
                    }

                    frames.Add((id, payload.ToArray()));
                }

                held = [.. buffer.ToArray()];
            }

            Assert.Equal(3, frames.Count);
            Assert.Equal((byte)IpaStreamId.Osmo, frames[1].Stream);
            Assert.Equal((byte)IpaOsmoExtension.Gsup, frames[1].Payload[0]);
            Assert.Equal(IpaCcmMessageType.Ping, (IpaCcmMessageType)frames[2].Payload[0]);
        }
    }

    [Fact]
    public void Framing_RefusesAnOversizedLength_BeforeBuffering()
    {
        var buffer = new ReadOnlySequence<byte>(Convert.FromHexString("1001ee05"));
        Assert.Equal(IpaFrameStatus.Invalid, IpaFraming.TryRead(ref buffer, 4096, out _, out _));
        Assert.Equal(4, buffer.Length);
    }

    [Theory]
    [InlineData("04")]
    [InlineData("0400")]
    [InlineData("040208")]
    [InlineData("0401")]
    [InlineData("05")]
    [InlineData("0500")]
    [InlineData("05000001")]
    [InlineData("0500090148")]
    public void Ccm_Malformed_IsRefused_Or_Empty(string hex)
    {
        var bytes = Convert.FromHexString(hex);
        if (bytes[0] == 0x04)
        {
            var ok = IpaIdGet.TryRead(bytes, out var get);
            Assert.True(!ok || get!.Tags.Count == 0);
        }
        else
        {
            var ok = IpaIdResponse.TryRead(bytes, out var response);
            Assert.True(!ok || response!.Entries.Count == 0);
        }
    }

    [Theory]
    [InlineData("")]
    [InlineData("has space")]
    [InlineData("nameðé")]
    public void Identity_RefusesUnusableNames(string name) => Assert.Throws<ArgumentException>(() => new IpaIdentity(name));
}
