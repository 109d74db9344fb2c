using System.Security.Cryptography;
using OpenBest.Crypto.Aead;
using OpenBest.Protocol;

namespace OpenBest.Protocol.Tests;

/// <summary>Counters, replay window and message protection (profile sections 3 and 4).</summary>
public sealed class ProtectionTests
{
    private static readonly byte[] KRoot = Hex.Bytes("7d1258ecf1a532b7cbfb3b0d7ff803ef4c57904964c0e422b8ad5ae43fc02b84");
    private static readonly byte[] Rand = Hex.Bytes("81e92b6c0ee0e12ebceba8d92a99dfa5");
    private static readonly byte[] Nonce = Hex.Bytes("0001020304050607");

    private static (KeySet Ue, KeySet Hse) Pair(CipherSuite suite, BestService service, uint sessionId = 5) =>
        (KeySet.Derive(EndpointRole.Ue, KRoot, suite, service, false, sessionId, 1, Rand, Nonce),
         KeySet.Derive(EndpointRole.Hse, KRoot, suite, service, false, sessionId, 1, Rand, Nonce));

    [Theory]
    [InlineData(-1, 0, 1, 0UL)]
    [InlineData(255, 0, 1, 256UL)]
    [InlineData(300, 0x2c, 1, 300UL)]      // a duplicate of 300 reconstructs to 300
    [InlineData(300, 0x2e, 1, 302UL)]
    [InlineData(300, 0xac, 1, 428UL)]      // 172 and 428 are both 128 from 300's successor 301? 301−172 = 129, 428−301 = 127
    [InlineData(1000, 0x00, 2, 0UL)]       // n = 2: 0 is closer to 1001 than 65536
    [InlineData(65600, 0x10, 2, 65552UL)]
    public void Reconstruct_ClosestToHighestPlusOne(long highest, int field, int n, ulong expected)
    {
        // Profile 3: the candidate closest to highest accepted + 1, ties toward the larger, never negative.
        var window = highest < 0 ? new ReplayWindow() : ReplayWindow.FromFloor(highest);
        Assert.Equal(expected, window.Reconstruct((uint)field, n));
    }

    [Fact]
    public void Reconstruct_Tie_GoesToTheLarger()
    {
        // highest = 127, expected 128; field 0 with n = 1: candidates 0 and 256 are both 128 away.
        Assert.Equal(256UL, ReplayWindow.FromFloor(127).Reconstruct(0, 1));
    }

    [Fact]
    public void Window_64Wide_AcceptsOutOfOrder_RefusesOldAndDuplicates()
    {
        var window = new ReplayWindow();
        window.Accept(100);
        Assert.True(window.IsAcceptable(99));
        Assert.True(window.IsAcceptable(37));    // 100 − 63
        Assert.False(window.IsAcceptable(36));   // 100 − 64: below the window
        Assert.False(window.IsAcceptable(100));
        Assert.True(window.WasAccepted(100));
        window.Accept(99);
        Assert.False(window.IsAcceptable(99));
        window.Accept(200);
        Assert.False(window.IsAcceptable(136));
        Assert.True(window.IsAcceptable(137));
        Assert.False(window.WasAccepted(100));   // slid out
    }

    [Fact]
    public void Window_FromFloor_RefusesEverythingAtOrBelow()
    {
        var window = ReplayWindow.FromFloor(500);
        Assert.False(window.IsAcceptable(500));
        Assert.False(window.IsAcceptable(480));
        Assert.True(window.IsAcceptable(501));
    }

    public static TheoryData<byte, BestService> SuitesAndServices()
    {
        var data = new TheoryData<byte, BestService>();
        foreach (var suite in new byte[] { 1, 2, 3, 4 })
        {
            data.Add(suite, BestService.Integrity);
            data.Add(suite, BestService.Confidential);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(SuitesAndServices))]
    public void UserPlane_SealOpen_BothDirections(byte suiteId, BestService service)
    {
        CipherSuite.TryGet(suiteId, out var suite);
        var (ue, hse) = Pair(suite, service);
        var payload = "meter reading 1234"u8.ToArray();
        var message = new byte[256];
        var length = EmsdpProtection.SealUser(ue, Direction.Uplink, 5, 2, 7, true, payload, message);
        Assert.Equal(1 + 1 + 2 + payload.Length + suite.UserPlaneTagSize, length);
        var wire = message.AsSpan(0, length);
        Assert.Equal(service == BestService.Integrity, wire.IndexOf(payload) >= 0);

        Assert.Equal(ParseStatus.Ok, HeaderPrefix.TryRead(wire, out var prefix));
        Assert.True(prefix.AckRequested);
        Assert.Equal(ParseStatus.Ok, EmsdpFrame.TryParse(wire, prefix, 2, suite.UserPlaneTagSize, out var frame));
        var opened = new byte[frame.Body.Length];
        var result = EmsdpProtection.OpenUser(hse, Direction.Uplink, frame, opened);
        Assert.Equal(new OpenResult(OpenStatus.Accepted, 7), result);
        Assert.Equal(payload, opened);

        // The same bytes again: verified, not delivered again.
        Assert.Equal(OpenStatus.Duplicate, EmsdpProtection.OpenUser(hse, Direction.Uplink, frame, opened).Status);
        // The same bytes as if sent downlink: another nonce, fails.
        Assert.Equal(OpenStatus.TagFailed, EmsdpProtection.OpenUser(ue, Direction.Downlink, frame, opened).Status);
        ue.Dispose();
        hse.Dispose();
    }

    [Theory]
    [MemberData(nameof(SuitesAndServices))]
    public void UserPlane_EveryTamperedOctet_IsDetected(byte suiteId, BestService service)
    {
        // Profile 4: the tag covers the header and the payload; tampering any octet fails.
        CipherSuite.TryGet(suiteId, out var suite);
        var (ue, hse) = Pair(suite, service, sessionId: 300);
        var message = new byte[256];
        var length = EmsdpProtection.SealUser(ue, Direction.Uplink, 300, 1, 9, false, "abc"u8, message);
        for (var i = 0; i < length; i++)
        {
            var copy = message.AsSpan(0, length).ToArray();
            copy[i] ^= 0x01;
            if (HeaderPrefix.TryRead(copy, out var prefix) != ParseStatus.Ok || prefix.SessionId != 300 || prefix.KeyId != 1 || prefix.Plane != Plane.User)
            {
                continue; // the session lookup itself fails: dropped before any crypto
            }

            Assert.Equal(ParseStatus.Ok, EmsdpFrame.TryParse(copy, prefix, 1, suite.UserPlaneTagSize, out var frame));
            var status = EmsdpProtection.OpenUser(hse, Direction.Uplink, frame, new byte[frame.Body.Length]).Status;
            Assert.True(status is OpenStatus.TagFailed or OpenStatus.OutsideWindow, $"octet {i}: {status}");
        }
    }

    [Fact]
    public void ControlPlane_SessionStartBindsTheRequest()
    {
        // Profile 4: the Session Start's associated data ends with SHA-256(Session Request as sent).
        var (ue, hse) = Pair(CipherSuite.Aes128Ccm8, BestService.Confidential);
        var request = Hex.Bytes("10aabbcc");
        var hash = SHA256.HashData(request);
        var body = new SessionStart(new HseConfiguration(BestService.Confidential, false, KeyAgreements.FiveGAka, 1, 1), Rand, new byte[16], hash.AsMemory(0, 8)).Encode();
        var message = new byte[256];
        var length = EmsdpProtection.SealControl(hse, Direction.Downlink, 5, 1, 0, body, hash, message);
        Assert.Equal(ParseStatus.Ok, HeaderPrefix.TryRead(message.AsSpan(0, length), out var prefix));
        Assert.Equal(ParseStatus.Ok, EmsdpFrame.TryParse(message.AsSpan(0, length), prefix, 1, 8, out var frame));

        var otherHash = SHA256.HashData(Hex.Bytes("10aabbcd"));
        Assert.Equal(OpenStatus.TagFailed, EmsdpProtection.OpenControl(ue, Direction.Downlink, frame, otherHash).Status);
        Assert.Equal(new OpenResult(OpenStatus.Accepted, 0), EmsdpProtection.OpenControl(ue, Direction.Downlink, frame, hash));
    }

    [Fact]
    public void OneOctetCounter_WrapsOverThousandsOfMessages_WithLossAndReordering()
    {
        // Profile 3: n = 1 carries the low 8 bits; the receiver reconstructs across wraps.
        var (ue, hse) = Pair(CipherSuite.Aes128Ccm4, BestService.Confidential);
        var random = new Random(7);
        var pending = new List<byte[]>();
        var delivered = 0;
        var buffer = new byte[64];
        for (ulong counter = 0; counter < 5000; counter++)
        {
            var length = EmsdpProtection.SealUser(ue, Direction.Uplink, 5, 1, counter, false, BitConverter.GetBytes(counter), buffer);
            if (random.Next(10) == 0)
            {
                continue; // lost
            }

            pending.Add(buffer.AsSpan(0, length).ToArray());
            if (pending.Count < 4)
            {
                continue;
            }

            // Deliver a small batch in shuffled order (reordering well inside the window).
            foreach (var message in pending.OrderBy(_ => random.Next()))
            {
                HeaderPrefix.TryRead(message, out var prefix);
                EmsdpFrame.TryParse(message, prefix, 1, 4, out var frame);
                var payload = new byte[8];
                var result = EmsdpProtection.OpenUser(hse, Direction.Uplink, frame, payload);
                Assert.Equal(OpenStatus.Accepted, result.Status);
                Assert.Equal(BitConverter.ToUInt64(payload), result.Counter);
                delivered++;
            }

            pending.Clear();
        }

        Assert.True(delivered > 4000);
    }

    [Fact]
    public void OneOctetCounter_LossLongerThanHalfTheSpace_IsRecoveredByTheNextCandidates()
    {
        // Profile 3: if the tag fails at c, try c + 2^(8n) and c + 2·2^(8n).
        var (ue, hse) = Pair(CipherSuite.Aes128Ccm8, BestService.Integrity);
        var buffer = new byte[64];
        var length = EmsdpProtection.SealUser(ue, Direction.Uplink, 5, 1, 0, false, "a"u8, buffer);
        Open(buffer.AsSpan(0, length));
        length = EmsdpProtection.SealUser(ue, Direction.Uplink, 5, 1, 300, false, "b"u8, buffer); // 299 lost
        var result = Open(buffer.AsSpan(0, length));
        Assert.Equal(new OpenResult(OpenStatus.Accepted, 300), result);
        Assert.Equal(1, hse.TagFailures);

        OpenResult Open(ReadOnlySpan<byte> message)
        {
            HeaderPrefix.TryRead(message, out var prefix);
            EmsdpFrame.TryParse(message, prefix, 1, 8, out var frame);
            return EmsdpProtection.OpenUser(hse, Direction.Uplink, frame, new byte[frame.Body.Length]);
        }
    }

    [Fact]
    public void UeToEasMode_HseHasNoUserKey_EasOpensWhatTheUeSealed()
    {
        // Profile 4/5: in UE-to-EAS mode UP uses K_E2Eint/K_E2Eenc; the HSE forwards UP unmodified.
        var ue = KeySet.Derive(EndpointRole.Ue, KRoot, CipherSuite.Aes128Gcm, BestService.Confidential, true, 9, 2, Rand, Nonce, "eas.example.com", "ent"u8);
        var hse = KeySet.Derive(EndpointRole.Hse, KRoot, CipherSuite.Aes128Gcm, BestService.Confidential, true, 9, 2, Rand, Nonce, "eas.example.com");
        Assert.True(hse.HasControlKey);
        Assert.False(hse.HasUserKey);
        var psk = new byte[32];
        KeySet.DeriveEasPsk(KRoot, 9, 2, Rand, Nonce, "eas.example.com", psk);
        var eas = KeySet.DeriveForEas(psk, CipherSuite.Aes128Gcm, BestService.Confidential, 2, "ent"u8);
        var wrongEnterpriseKey = KeySet.DeriveForEas(psk, CipherSuite.Aes128Gcm, BestService.Confidential, 2, "other"u8);

        var buffer = new byte[128];
        var length = EmsdpProtection.SealUser(ue, Direction.Uplink, 9, 4, 1, false, "secret"u8, buffer);
        HeaderPrefix.TryRead(buffer.AsSpan(0, length), out var prefix);
        EmsdpFrame.TryParse(buffer.AsSpan(0, length), prefix, 4, 16, out var frame);
        Assert.Equal(OpenStatus.NoKey, EmsdpProtection.OpenUser(hse, Direction.Uplink, frame, new byte[64]).Status);
        Assert.Equal(OpenStatus.TagFailed, EmsdpProtection.OpenUser(wrongEnterpriseKey, Direction.Uplink, frame, new byte[64]).Status);
        var payload = new byte[frame.Body.Length];
        Assert.Equal(OpenStatus.Accepted, EmsdpProtection.OpenUser(eas, Direction.Uplink, frame, payload).Status);
        Assert.Equal("secret"u8.ToArray(), payload);
    }
}
