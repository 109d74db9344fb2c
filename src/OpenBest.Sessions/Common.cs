using System.Security.Cryptography;
using OpenBest.Crypto.Aead;
using OpenBest.Crypto.Aka;
using OpenBest.Crypto.Kdf;
using OpenBest.Protocol;

namespace OpenBest.Sessions;

/// <summary>Bytes a state machine wants sent, and where: the peer path it came from (an opaque bearer address).</summary>
/// <param name="Message">One EMSDP message (no bearer framing).</param>
/// <param name="Path">The peer path; the bearer knows what it means.</param>
public readonly record struct Outgoing(ReadOnlyMemory<byte> Message, object? Path);

/// <summary>Something that happened in a session, for the application or the host.</summary>
public abstract record SessionEvent(uint SessionId);

/// <summary>The session's keys are confirmed and it carries data.</summary>
public sealed record SessionEstablished(uint SessionId, byte KeyId, BestService Service, CipherSuite Suite, int CounterLength, bool UeToEasMode, string EasId) : SessionEvent(SessionId);

/// <summary>An authenticated user-plane payload, delivered once.</summary>
public sealed record DataReceived(uint SessionId, byte KeyId, ulong Counter, ReadOnlyMemory<byte> Payload, bool AckRequested) : SessionEvent(SessionId);

/// <summary>The peer acknowledged the UP message with this counter.</summary>
public sealed record DataAcknowledged(uint SessionId, byte KeyId, ulong Counter) : SessionEvent(SessionId)
{
    /// <summary>The token the application gave the payload when it sent it (0 when none).</summary>
    public long Token { get; init; }
}

/// <summary>
/// The HSE gave up a downlink payload the application sent with a token (<see cref="HseEngine.SendDownlink(uint, ReadOnlySpan{byte}, bool, long, bool)"/>):
/// it will not be delivered, or its delivery will not be reported. Reported once per token, and never after its
/// <see cref="DataAcknowledged"/>.
/// </summary>
/// <param name="SessionId">The session.</param>
/// <param name="Token">The application's token.</param>
/// <param name="Reason">
/// <c>expired</c>: it waited in the queue of a suspended session longer than its time to live; <c>queue-full</c>: the queue
/// was full and it was the oldest; <c>session-ended</c>: the session ended while it was queued, or sent and not yet acknowledged.
/// </param>
public sealed record DownlinkUndelivered(uint SessionId, long Token, string Reason) : SessionEvent(SessionId)
{
    /// <summary>The reason of a message whose time to live passed while it was queued.</summary>
    public const string Expired = "expired";

    /// <summary>The reason of a message dropped from a full queue.</summary>
    public const string QueueFull = "queue-full";

    /// <summary>The reason of a message still queued, or sent and unacknowledged, when its session ended.</summary>
    public const string SessionEnded = "session-ended";
}

/// <summary>A new key set is in use.</summary>
public sealed record KeysRefreshed(uint SessionId, byte KeyId) : SessionEvent(SessionId);

/// <summary>
/// A message that waited for a key set with an Enterprise Key was given up (it waited longer than
/// <see cref="UeOptions.MaxHoldTime"/>, more than 64 waited, or the channel ended): it was never sent.
/// </summary>
public sealed record HeldDataDropped(uint SessionId, long Token) : SessionEvent(SessionId);

/// <summary>The UE refused a Manage Keys Request because it does not hold the Enterprise Key it named (Reject 0x08); the current keys stay.</summary>
public sealed record EnterpriseKeyRefused(uint SessionId, string EasId, byte[] EnterpriseKeyIdentifier) : SessionEvent(SessionId);

/// <summary>The session was suspended (by <paramref name="ByPeer"/> or locally).</summary>
public sealed record SessionSuspended(uint SessionId, bool ByPeer) : SessionEvent(SessionId);

/// <summary>The session was resumed.</summary>
public sealed record SessionResumed(uint SessionId) : SessionEvent(SessionId);

/// <summary>The peer rejected something, or the session could not start.</summary>
public sealed record SessionRejected(uint SessionId, Cause Cause, TimeSpan? BackOff = null) : SessionEvent(SessionId);

/// <summary>The session ended.</summary>
public sealed record SessionTerminated(uint SessionId, Cause? Cause, bool ByPeer) : SessionEvent(SessionId);

/// <summary>A message was dropped (tag, replay, malformed, policy); counted, never answered unless allowed.</summary>
public sealed record MessageDropped(uint SessionId, DropReason Reason) : SessionEvent(SessionId);

/// <summary>Why a message was dropped.</summary>
public enum DropReason
{
    /// <summary>Not an EMSDP message, or an invalid Session ID.</summary>
    NotEmsdp,

    /// <summary>Malformed.</summary>
    Malformed,

    /// <summary>No such session, or no such key set.</summary>
    UnknownSession,

    /// <summary>The tag did not verify.</summary>
    TagFailed,

    /// <summary>The counter is below the replay window.</summary>
    Replay,

    /// <summary>The message is not valid in the session's state.</summary>
    UnexpectedInState,

    /// <summary>A rate limit or queue bound was hit.</summary>
    RateLimited,

    /// <summary>A check of the UE's rules on a Session Start failed.</summary>
    SessionStartCheckFailed,

    /// <summary>UE-to-EAS mode: the message's key set has no Enterprise Key, and this end requires one (the operator could have sealed it).</summary>
    NoEnterpriseKey,

    /// <summary>A new Session Request while the engine's sessions are about to move to another host (a cluster's shard).</summary>
    Deferred,
}

/// <summary>The result of feeding a state machine: what to send, what happened.</summary>
public sealed class StepResult
{
    /// <summary>Messages to send.</summary>
    public List<Outgoing> Send { get; } = [];

    /// <summary>Events.</summary>
    public List<SessionEvent> Events { get; } = [];

    internal void Add(ReadOnlySpan<byte> message, object? path) => Send.Add(new Outgoing(message.ToArray(), path));
}

/// <summary>
/// Durable counter reservation (profile section 3): a sender reserves counters in blocks before it
/// uses them and, after a restart, resumes at the reserved limit, so no counter ever seals two
/// byte strings. Storage implements it; <see cref="NoCounterReservation"/> keeps nothing.
/// </summary>
public interface ICounterReservation
{
    /// <summary>Durably records that counters below <paramref name="limit"/> may be used for this key set, direction and plane.</summary>
    void Reserve(uint sessionId, byte keyId, Direction direction, Plane plane, ulong limit);
}

/// <summary>Reservation that records nothing (tests, simulators).</summary>
public sealed class NoCounterReservation : ICounterReservation
{
    /// <summary>The one instance.</summary>
    public static NoCounterReservation Instance { get; } = new();

    /// <inheritdoc/>
    public void Reserve(uint sessionId, byte keyId, Direction direction, Plane plane, ulong limit)
    {
    }
}

/// <summary>K_root of a key set (profile section 5): CK ‖ IK, K_ASME or K_HSE, by key agreement.</summary>
public static class SessionKeyRoot
{
    /// <summary>K_root from the AKA outputs; the caller zeroes it.</summary>
    /// <exception cref="NotSupportedException">The key agreement does not run over AKA.</exception>
    public static byte[] Derive(KeyAgreements agreement, ReadOnlySpan<byte> ck, ReadOnlySpan<byte> ik, ReadOnlySpan<byte> sqnXorAk, ServingNetwork? network)
    {
        var root = new byte[32];
        switch (agreement)
        {
            case KeyAgreements.UmtsAka:
                ck.CopyTo(root);
                ik.CopyTo(root.AsSpan(16));
                break;
            case KeyAgreements.EpsAka:
                KeyDerivation.KAsme(ck, ik, network!.PlmnId.Span, sqnXorAk, root);
                break;
            case KeyAgreements.FiveGAka:
                KeyDerivation.KHse5GAka(ck, ik, network!.Name!, sqnXorAk, root);
                break;
            case KeyAgreements.EapAkaPrime:
                Span<byte> ckPrime = stackalloc byte[16];
                Span<byte> ikPrime = stackalloc byte[16];
                KeyDerivation.CkIkPrime(ck, ik, network!.Name!, sqnXorAk, ckPrime, ikPrime);
                KeyDerivation.KHseEapAkaPrime(ckPrime, ikPrime, network.Name!, sqnXorAk, root);
                CryptographicOperations.ZeroMemory(ckPrime);
                CryptographicOperations.ZeroMemory(ikPrime);
                break;
            default:
                throw new NotSupportedException($"Key agreement {agreement} does not run over AKA.");
        }

        return root;
    }

}

/// <summary>
/// The Data Acks a receiver sent, by (Key ID, counter): a duplicate UP message gets the stored bytes again,
/// never a newly sealed Ack, so replays cannot make a receiver spend counters or amplify (profile sections 3, 7).
/// </summary>
internal sealed class AckCache
{
    private const int Capacity = 64;
    private readonly Dictionary<(byte, ulong), byte[]> _acks = [];
    private readonly Queue<(byte, ulong)> _order = new();

    public bool TryGet(byte keyId, ulong counter, out byte[] ack) => _acks.TryGetValue((keyId, counter), out ack!);

    public void Add(byte keyId, ulong counter, byte[] ack)
    {
        if (_acks.TryAdd((keyId, counter), ack))
        {
            _order.Enqueue((keyId, counter));
            if (_order.Count > Capacity)
            {
                _acks.Remove(_order.Dequeue());
            }
        }
    }
}

/// <summary>
/// The application's tokens of the downlink UP messages the HSE sealed with one, by (Key ID, counter), so that the UE's
/// Data Ack reports the token. Bounded (the oldest are forgotten) and in memory only.
/// </summary>
internal sealed class DownlinkTokens
{
    /// <summary>Messages remembered per session.</summary>
    public const int Capacity = 256;

    private readonly Dictionary<(byte, ulong), LinkedListNode<(byte KeyId, ulong Counter, long Token)>> _byMessage = [];
    private readonly LinkedList<(byte KeyId, ulong Counter, long Token)> _order = new();

    public int Count => _byMessage.Count;

    /// <summary>The distinct tokens remembered, oldest first.</summary>
    public IEnumerable<long> Tokens => _order.Select(e => e.Token).Distinct();

    public void Add(byte keyId, ulong counter, long token)
    {
        if (_byMessage.Remove((keyId, counter), out var old))
        {
            _order.Remove(old);
        }

        _byMessage[(keyId, counter)] = _order.AddLast((keyId, counter, token));
        if (_order.Count > Capacity)
        {
            var oldest = _order.First!.Value;
            _order.RemoveFirst();
            _byMessage.Remove((oldest.KeyId, oldest.Counter));
        }
    }

    /// <summary>The token of the message (Key ID, counter), or 0; every message sealed with that token is forgotten (it is reported once).</summary>
    public long Take(byte keyId, ulong counter)
    {
        if (!_byMessage.Remove((keyId, counter), out var node))
        {
            return 0;
        }

        _order.Remove(node);
        Forget(node.Value.Token);
        return node.Value.Token;
    }

    /// <summary>Forgets every message sealed with <paramref name="token"/> (a paged message is sealed again when it is flushed).</summary>
    public void Forget(long token)
    {
        for (var node = _order.First; node is not null;)
        {
            var next = node.Next;
            if (node.Value.Token == token)
            {
                _order.Remove(node);
                _byMessage.Remove((node.Value.KeyId, node.Value.Counter));
            }

            node = next;
        }
    }

    public void Clear()
    {
        _byMessage.Clear();
        _order.Clear();
    }
}

/// <summary>Helpers shared by the three roles.</summary>
internal static class Wire
{
    public const int MaxMessage = EmsdpProtection.MaxMessageLength;


    /// <summary>The next Key ID cycling 1 → 7 → 1.</summary>
    public static byte NextKeyId(byte keyId) => (byte)(keyId % 7 + 1);

    /// <summary>The AKA context a key agreement needs (EPS and 5G vectors carry the separation bit).</summary>
    public static AkaContext ContextOf(KeyAgreements agreement) => agreement switch
    {
        KeyAgreements.EpsAka => AkaContext.Eps,
        KeyAgreements.FiveGAka or KeyAgreements.EapAkaPrime => AkaContext.FiveG,
        _ => AkaContext.Umts,
    };

    public static uint Low32(ulong counter) => (uint)counter;
}
