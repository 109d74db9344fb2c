using System.Text;
using OpenBest.Protocol;

namespace OpenBest.Protocol.Tests;

/// <summary>The push message format (profile 6.2 "Suspend / Resume / push"; docs/protocol.md, "Suspend, resume and push").</summary>
public sealed class PushMessageTests
{
    [Fact]
    public void RoundTrip_AndTheExactOctets()
    {
        var message = new PushMessage(0x1234, 0xA1B2C3D4, "body"u8.ToArray());
        var bytes = message.ToArray();
        Assert.Equal("011234a1b2c3d4" + Convert.ToHexStringLower("body"u8), Convert.ToHexStringLower(bytes));
        Assert.Equal(bytes.Length, message.Length);
        Assert.True(PushMessage.TryParse(bytes, out var parsed));
        Assert.Equal((message.Port, message.MessageId), (parsed.Port, parsed.MessageId));
        Assert.Equal("body"u8.ToArray(), parsed.Body.ToArray());
        Assert.Equal(bytes, parsed.ToArray());
    }

    [Fact]
    public void EmptyBody_IsAPushMessage()
    {
        Assert.True(PushMessage.TryParse(new PushMessage(65535, 0, default).ToArray(), out var parsed));
        Assert.Equal(65535, parsed.Port);
        Assert.True(parsed.Body.IsEmpty);
    }

    [Fact]
    public void Write_IntoAShortDestination_Throws()
    {
        var message = new PushMessage(2, 1, new byte[3]);
        Assert.Throws<ArgumentException>(() => message.Write(new byte[message.Length - 1]));
        Assert.Equal(message.Length, message.Write(new byte[message.Length + 5]));
    }

    [Theory]
    [InlineData("")]
    [InlineData("01")]
    [InlineData("011234a1b2c3")]      // one octet short of the message id
    [InlineData("021234a1b2c3d4")]    // another version
    [InlineData("001234a1b2c3d4ff")]
    public void TruncatedOrOtherVersions_AreNotPushMessages(string hex)
    {
        Assert.False(PushMessage.TryParse(Convert.FromHexString(hex), out var parsed));
        Assert.Equal(default, parsed);
    }

    [Fact]
    public void Garbage_NeverThrows_AndNeverReadsPastTheBuffer()
    {
        // Every prefix of random octets, each parsed from an exact-length copy (a read past it would throw).
        var random = new Random(163);
        for (var round = 0; round < 2000; round++)
        {
            var bytes = new byte[random.Next(0, 40)];
            random.NextBytes(bytes);
            if (round % 3 == 0 && bytes.Length > 0)
            {
                bytes[0] = PushMessage.CurrentVersion;
            }

            for (var length = 0; length <= bytes.Length; length++)
            {
                var slice = bytes.AsSpan(0, length).ToArray();
                if (PushMessage.TryParse(slice, out var parsed))
                {
                    Assert.Equal(slice, parsed.ToArray());
                    _ = parsed.TryGetSessionRequest(out _, out _);
                }

                _ = PushMessage.TryReadSessionRequest(slice, out _, out _);
            }
        }
    }

    [Fact]
    public void SessionRequest_Body_RoundTrips()
    {
        // Reserved port 1: service (the BestService code) | EAS Id (UTF-8, 1..253 octets).
        var body = PushMessage.SessionRequestBody(BestService.Integrity, "eas.example.com");
        Assert.Equal("01" + Convert.ToHexStringLower("eas.example.com"u8), Convert.ToHexStringLower(body));
        var message = PushMessage.SessionRequest(9, BestService.Confidential, "émse.example.com");
        Assert.Equal(PushMessage.SessionRequestPort, message.Port);
        Assert.True(PushMessage.TryParse(message.ToArray(), out var parsed));
        Assert.True(parsed.TryGetSessionRequest(out var service, out var easId));
        Assert.Equal((BestService.Confidential, "émse.example.com"), (service, easId));
        Assert.False(new PushMessage(2, 9, body).TryGetSessionRequest(out _, out _)); // not port 1
    }

    [Fact]
    public void SessionRequest_EasIdOf253Octets_IsTheLongest()
    {
        var longest = new string('a', PushMessage.MaxEasIdLength);
        Assert.True(PushMessage.TryReadSessionRequest(PushMessage.SessionRequestBody(BestService.Integrity, longest), out _, out var easId));
        Assert.Equal(longest, easId);
        Assert.Throws<ArgumentException>(() => PushMessage.SessionRequestBody(BestService.Integrity, longest + "a"));
        Assert.Throws<ArgumentException>(() => PushMessage.SessionRequestBody(BestService.Integrity, ""));
        Assert.Throws<ArgumentException>(() => PushMessage.SessionRequestBody((BestService)9, "eas.example.com"));
    }

    [Theory]
    [InlineData("")]                    // nothing
    [InlineData("01")]                  // no EAS Id
    [InlineData("0461")]                // not a service code
    [InlineData("01c328")]              // not UTF-8
    [InlineData("01ff")]                // not UTF-8
    public void SessionRequest_InvalidBodies_AreRefused(string hex)
    {
        Assert.False(PushMessage.TryReadSessionRequest(Convert.FromHexString(hex), out _, out var easId));
        Assert.Equal(string.Empty, easId);
    }

    [Fact]
    public void SessionRequest_EasIdOver253Octets_IsRefused()
    {
        var body = new byte[2 + PushMessage.MaxEasIdLength];
        body[0] = (byte)BestService.Integrity;
        body.AsSpan(1).Fill((byte)'a');
        Assert.False(PushMessage.TryReadSessionRequest(body, out _, out _));
    }

    [Fact]
    public void ReservedNames_AndToString_ShowNoBody()
    {
        Assert.Equal("urn:best:push", PushMessage.PushEasId);
        Assert.Equal("urn:best:mgmt", PushMessage.ManagementEasId);
        var text = new PushMessage(5, 1, Encoding.UTF8.GetBytes("secret-command")).ToString();
        Assert.DoesNotContain("secret", text, StringComparison.Ordinal);
    }
}
