using System.Buffers;
using OpenBest.Crypto.Aead;
using OpenBest.Protocol;

namespace OpenBest.Protocol.Tests;

/// <summary>Header, Session ID, TLV and command codec (profile sections 2 and 6).</summary>
public sealed class CodecTests
{
    public static TheoryData<int> SampleIndexes => new(Enumerable.Range(0, Samples.All().Count()));

    [Theory]
    [MemberData(nameof(SampleIndexes))]
    public void EveryCommand_EncodeParse_RoundTrips(int index)
    {
        // Profile 6.1: every command has its own type with parse and encode.
        var command = Samples.All().ElementAt(index);
        var encoded = command.Encode();
        Assert.Equal(command.GetEncodedLength(), encoded.Length);
        Assert.Equal((byte)command.Code, encoded[0]);
        Assert.Equal(ParseStatus.Ok, ControlCommand.TryParse(encoded, out var parsed));
        Assert.Equal(command.GetType(), parsed!.GetType());
        Assert.Equal(Hex.String(encoded), Hex.String(parsed.Encode()));
    }

    [Theory]
    [InlineData(0u, "00")]
    [InlineData(63u, "3f")]
    [InlineData(64u, "4040")]
    [InlineData(16383u, "7fff")]
    [InlineData(16384u, "80004000")]
    [InlineData(SessionIdCodec.MaxValue, "bfffffff")]
    public void SessionId_MinimalVarint(uint value, string hex)
    {
        // Profile 2: 0x00 one octet (6 bits), 0x40 two (14), 0x80 four (30), big-endian, minimal.
        var buffer = new byte[4];
        var length = SessionIdCodec.Write(value, buffer);
        Assert.Equal(hex, Hex.String(buffer.AsSpan(0, length)));
        Assert.True(SessionIdCodec.TryRead(buffer.AsSpan(0, length), out var read, out var readLength));
        Assert.Equal(value, read);
        Assert.Equal(length, readLength);
    }

    [Theory]
    [InlineData("4005")]        // 5 in two octets: not minimal
    [InlineData("80000040")]    // 64 in four octets: not minimal
    [InlineData("c0")]          // the 0xC0 form is invalid
    [InlineData("40")]          // truncated
    [InlineData("800000")]      // truncated
    [InlineData("")]
    public void SessionId_InvalidForms_AreRefused(string hex)
    {
        Assert.False(SessionIdCodec.TryRead(Hex.Bytes(hex), out _, out _));
    }

    [Fact]
    public void SessionId_Over30Bits_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => SessionIdCodec.GetLength(1u << 30));
    }

    [Fact]
    public void Header_LayoutAsProfileSection2()
    {
        // 0x40 type 01 | 0x20 UP | Key ID 3 << 1 | A; Session ID 100 (2 octets); counter n = 2.
        var header = new EmsdpHeader(Plane.User, 3, true, 100, 2, 0x1_0203);
        var buffer = new byte[8];
        var length = header.Write(buffer);
        Assert.Equal("6740640203", Hex.String(buffer.AsSpan(0, length)));
        Assert.Equal(ParseStatus.Ok, HeaderPrefix.TryRead(buffer.AsSpan(0, length), out var prefix));
        Assert.Equal(Plane.User, prefix.Plane);
        Assert.Equal(3, prefix.KeyId);
        Assert.True(prefix.AckRequested);
        Assert.Equal(100u, prefix.SessionId);
    }

    [Fact]
    public void Header_ControlPlane_NeverSetsA()
    {
        var header = new EmsdpHeader(Plane.Control, 1, true, 1, 1, 0);
        Assert.Equal(0x42, header.Octet0);
    }

    [Theory]
    [InlineData("00")]
    [InlineData("80")]
    [InlineData("c2")]
    public void Header_OtherTypes_AreDropped(string octet0)
    {
        // Profile 2: type values other than 01 are dropped silently.
        Assert.Equal(ParseStatus.Drop, HeaderPrefix.TryRead(Hex.Bytes(octet0 + "0100"), out _));
    }

    [Fact]
    public void Header_ReservedBit_IsIgnored()
    {
        Assert.Equal(ParseStatus.Ok, HeaderPrefix.TryRead(Hex.Bytes("520100"), out var prefix));
        Assert.Equal(1, prefix.KeyId);
    }

    [Fact]
    public void Frame_TooShortForTag_IsMalformed()
    {
        var message = Hex.Bytes("4201" + "05" + "11" + "00112233");
        Assert.Equal(ParseStatus.Ok, HeaderPrefix.TryRead(message, out var prefix));
        Assert.Equal(ParseStatus.Malformed, EmsdpFrame.TryParse(message, prefix, 1, 8, out _));
        Assert.Equal(ParseStatus.Ok, EmsdpFrame.TryParse(message, prefix, 1, 4, out var frame));
        Assert.Equal("11", Hex.String(frame.Body));
        Assert.Equal("00112233", Hex.String(frame.Tag));
        Assert.Equal(5u, frame.CounterField);
    }

    [Fact]
    public void Tlv_InvalidTags00AndFF_AreMalformed()
    {
        // Profile 6: tags 0x00 and 0xFF are invalid.
        Assert.Equal(ParseStatus.Malformed, ControlCommand.TryParse(Hex.Bytes("e2" + "120400000001" + "0000"), out _));
        Assert.Equal(ParseStatus.Malformed, ControlCommand.TryParse(Hex.Bytes("e2" + "120400000001" + "ff00"), out _));
    }

    [Fact]
    public void Tlv_UnknownComprehensionRequired_IsCause0C()
    {
        Assert.Equal(ParseStatus.UnknownComprehensionRequired, ControlCommand.TryParse(Hex.Bytes("e2" + "120400000001" + "7f0100"), out _));
    }

    [Fact]
    public void Tlv_UnknownSkippable_IsSkipped()
    {
        Assert.Equal(ParseStatus.Ok, ControlCommand.TryParse(Hex.Bytes("e2" + "9a03aabbcc" + "120400000001"), out var command));
        Assert.Equal(1u, Assert.IsType<DataAck>(command).AckedCounter);
    }

    [Theory]
    [InlineData("e2" + "120400000001" + "120400000002")] // a tag twice
    [InlineData("e2" + "120500000001")]                 // past the body
    [InlineData("e2" + "1203000001")]                   // fixed length wrong
    [InlineData("e2" + "0c0100" + "120400000001")]      // Key ID 0 out of range
    [InlineData("e2" + "060400000000" + "120400000001")]// RAND is known but not carried by Data Ack
    [InlineData("e2")]                                  // mandatory Acked counter missing
    [InlineData("e2" + "12")]                           // a lone tag octet
    [InlineData("77")]                                  // unknown command
    [InlineData("")]
    [InlineData("12" + "0d0101")]                       // confirmation carries nothing
    [InlineData("80" + "0d0101")]                       // reject without Rejected command
    [InlineData("80" + "0d0112" + "150110")]            // cause out of range
    [InlineData("30" + "0601" + "00")]                  // MKR: RAND with the wrong length
    [InlineData("30" + "0c0102")]                       // MKR: Key ID without RAND/AUTN
    [InlineData("30" + "100400000001")]                 // MKR: lifetime without Key ID
    public void Malformed_BodiesAreCause0B(string hex)
    {
        Assert.Equal(ParseStatus.Malformed, ControlCommand.TryParse(Hex.Bytes(hex), out var command));
        Assert.Null(command);
    }

    [Fact]
    public void SessionStart_HseConfigurationMustBeFirst()
    {
        // Profile 6: the HSE configuration 0x09 is the first TLV of a Session Start.
        var start = (SessionStart)Samples.All().First(c => c is SessionStart);
        var encoded = start.Encode();
        Assert.Equal(0x09, encoded[1]);
        // Move the HSE configuration (6 octets) after RAND (18 octets).
        var reordered = new byte[encoded.Length];
        reordered[0] = encoded[0];
        encoded.AsSpan(7, 18).CopyTo(reordered.AsSpan(1));
        encoded.AsSpan(1, 6).CopyTo(reordered.AsSpan(19));
        encoded.AsSpan(25).CopyTo(reordered.AsSpan(25));
        Assert.Equal(ParseStatus.Malformed, ControlCommand.TryParse(reordered, out _));
    }

    [Fact]
    public void SessionRequest_NeedsExactlyOneIdentity()
    {
        var request = (SessionRequest)Samples.All().First();
        var encoded = request.Encode();
        // Append a SUCI next to the IMSI.
        var both = encoded.Concat(Hex.Bytes("020101")).ToArray();
        Assert.Equal(ParseStatus.Malformed, ControlCommand.TryParse(both, out _));
    }

    [Theory]
    [InlineData("0809101010325436600", false)]
    [InlineData("2980390000000010", true)]
    public void Imsi_EfImsiCoding(string hex, bool valid)
    {
        // TS 31.102 4.2.2 coding (pySim enc_imsi): 208930000000001 → 08 | 29 80 39 00 00 00 00 10.
        var value = hex.Length == 16 ? Hex.Bytes(hex) : [];
        Assert.Equal(valid, ImsiCodec.TryDecode(value, out var imsi));
        if (valid)
        {
            Assert.Equal("208930000000001", imsi);
            Assert.Equal(hex, Hex.String(ImsiCodec.Encode(imsi)));
        }
    }

    [Fact]
    public void Imsi_EvenLength_Example()
    {
        Assert.Equal("31011410325476f8", Hex.String(ImsiCodec.Encode("31041012345678")));
        Assert.True(ImsiCodec.TryDecode(Hex.Bytes("31011410325476f8"), out var imsi));
        Assert.Equal("31041012345678", imsi);
        Assert.False(ImsiCodec.TryDecode(Hex.Bytes("39011410325476f8"), out _)); // parity says odd
    }

    [Fact]
    public void HseConfiguration_ValueRanges()
    {
        static bool Parses(string config) =>
            ControlCommand.TryParse(Hex.Bytes("11" + "0904" + config + "0610" + new string('0', 32) + "0710" + new string('0', 32) + "0a08" + new string('0', 16)), out _) == ParseStatus.Ok;

        Assert.True(Parses("02040102"));
        Assert.False(Parses("02060102"));  // two key agreements
        Assert.False(Parses("02040502"));  // suite 5
        Assert.False(Parses("02040103"));  // n = 3
        Assert.False(Parses("0a040102"));  // undefined service bit
        Assert.True(Parses("03040001"));   // service none, suite 0
    }

    [Fact]
    public void StreamFraming_RoundTrip_AndPartialReads()
    {
        // Profile 1: a 2-octet big-endian length before every message on stream bearers.
        var message = Hex.Bytes("4201051100112233");
        var framed = new byte[message.Length + 2];
        StreamFraming.Write(message, framed);
        Assert.Equal("0008", Hex.String(framed.AsSpan(0, 2)));

        for (var cut = 0; cut < framed.Length; cut++)
        {
            var partial = new ReadOnlySequence<byte>(framed, 0, cut);
            Assert.Equal(FrameStatus.NeedMoreData, StreamFraming.TryRead(ref partial, out _));
            Assert.Equal(cut, partial.Length);
        }

        var whole = new ReadOnlySequence<byte>(framed.Concat(framed).ToArray());
        Assert.Equal(FrameStatus.Ok, StreamFraming.TryRead(ref whole, out var first));
        Assert.Equal(message, first.ToArray());
        Assert.Equal(framed.Length, whole.Length);

        var zero = new ReadOnlySequence<byte>(Hex.Bytes("0000aa"));
        Assert.Equal(FrameStatus.Invalid, StreamFraming.TryRead(ref zero, out _));
    }

    [Fact]
    public void StreamFraming_ByteByByteSegments()
    {
        var message = Hex.Bytes("4201051100112233");
        var framed = new byte[message.Length + 2];
        StreamFraming.Write(message, framed);
        var sequence = Segments.Split(framed);
        Assert.Equal(FrameStatus.Ok, StreamFraming.TryRead(ref sequence, out var read));
        Assert.Equal(message, read.ToArray());
    }
}

internal sealed class Segments : ReadOnlySequenceSegment<byte>
{
    private Segments(ReadOnlyMemory<byte> memory, long index)
    {
        Memory = memory;
        RunningIndex = index;
    }

    /// <summary>One segment per octet.</summary>
    public static ReadOnlySequence<byte> Split(byte[] bytes)
    {
        var first = new Segments(bytes.AsMemory(0, 1), 0);
        var last = first;
        for (var i = 1; i < bytes.Length; i++)
        {
            var next = new Segments(bytes.AsMemory(i, 1), i);
            last.Next = next;
            last = next;
        }

        return new ReadOnlySequence<byte>(first, 0, last, 1);
    }
}
