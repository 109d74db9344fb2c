using System.Buffers.Binary;
using BenchmarkDotNet.Attributes;
using OpenBest.Crypto.Aead;
using OpenBest.Protocol;
using OpenBest.Sessions;

namespace OpenBest.Benchmarks;

/// <summary>
/// The receive path of one 64-octet UP message: parse, counter reconstruction, replay check, tag
/// verification, decryption, window update (confidential service, suite 1, n = 4).
/// </summary>
public class UplinkOpenBenchmarks
{
    private const int Ring = 1 << 16;
    private static readonly byte[] KRoot = new byte[32];
    private static readonly byte[] Fresh = new byte[16];
    private static readonly byte[] UeNonce = new byte[8];
    private readonly byte[][] _messages = new byte[Ring][];
    private readonly byte[] _payload = new byte[64];
    private KeySet _receiver = null!;
    private int _next;

    [Params(1, 2)]
    public byte Suite { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        CipherSuite.TryGet(Suite, out var suite);
        using var sender = KeySet.Derive(EndpointRole.Ue, KRoot, suite, BestService.Confidential, false, 5, 1, Fresh, UeNonce);
        for (var i = 0; i < Ring; i++)
        {
            var buffer = new byte[128];
            var length = EmsdpProtection.SealUser(sender, Direction.Uplink, 5, 4, (ulong)i, false, new byte[64], buffer);
            _messages[i] = buffer[..length];
        }

        NewReceiver();
    }

    [Benchmark(Description = "UP open: parse + replay + tag + decrypt, 64 octets")]
    public bool Open()
    {
        if (_next == Ring)
        {
            NewReceiver(); // every counter of the ring is used once per receiver
        }

        var message = _messages[_next++];
        HeaderPrefix.TryRead(message, out var prefix);
        EmsdpFrame.TryParse(message, prefix, 4, _receiver.Suite.UserPlaneTagSize, out var frame);
        return EmsdpProtection.OpenUser(_receiver, Direction.Uplink, frame, _payload).Status == OpenStatus.Accepted;
    }

    private void NewReceiver()
    {
        _receiver?.Dispose();
        CipherSuite.TryGet(Suite, out var suite);
        _receiver = KeySet.Derive(EndpointRole.Hse, KRoot, suite, BestService.Confidential, false, 5, 1, Fresh, UeNonce);
        _next = 0;
    }
}

/// <summary>
/// HSE-side session setup without storage: Session Request in, vector generation, K_HSE and key set
/// derivation, Session Start encoding and sealing out (5G AKA, confidential, suite 1).
/// </summary>
public class HseSetupBenchmarks
{
    private const int EngineLifetime = 50_000;
    private readonly InMemorySubscribers _subscribers = new();
    private byte[] _request = null!;
    private int _nonceOffset;
    private HseEngine _engine = null!;
    private ulong _nonce;
    private int _served;

    [GlobalSetup]
    public void Setup()
    {
        _subscribers.Add("208930000000001", new byte[16], new byte[16]);
        var request = new SessionRequest("208930000000001", null,
            new UeConfiguration(18, KeyAgreements.FiveGAka, BestService.Confidential, false, 0x0F, CounterSchemes.TwoOctets),
            "eas.example.com", new byte[8], ServingNetwork.FromName("5G:mnc093.mcc208.3gppnetwork.org"));
        var buffer = new byte[256];
        var length = EmsdpProtection.WriteUnprotected(0, request.Encode(), buffer);
        _request = buffer[..length];
        _nonceOffset = _request.AsSpan().IndexOf([(byte)TlvTag.UeNonce, (byte)8]) + 2;
        _engine = new HseEngine(_subscribers);

        // The work measured must be a real Session Start (Key ID 1), not a cheap Reject.
        var probe = _engine.Receive(_request, null);
        if (probe.Send.Count != 1 || probe.Send[0].Message.Span[0] != 0x42)
        {
            throw new InvalidOperationException("The benchmark request did not produce a Session Start.");
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _engine.Dispose();
        _subscribers.Dispose();
    }

    [Benchmark(Description = "HSE session setup (no storage)")]
    public int Setup1()
    {
        if (++_served == EngineLifetime)
        {
            _engine.Dispose(); // bound the memory of the sessions the benchmark leaves pending
            _engine = new HseEngine(_subscribers);
            _served = 0;
        }

        // A new attempt has a new UE nonce, so it is a new request (not a retransmission).
        BinaryPrimitives.WriteUInt64BigEndian(_request.AsSpan(_nonceOffset), ++_nonce);
        return _engine.Receive(_request, null).Send.Count;
    }
}
