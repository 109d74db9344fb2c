using System.Security.Cryptography;
using OpenBest.Crypto.Aead;
using OpenBest.Protocol;

namespace OpenBest.Sessions;

/// <summary>
/// The EAS side of UE-to-EAS mode as a sans-IO state machine (profile 6.2): one entry per UE session whose
/// keys the HSE delivered (<see cref="EasKeysReady"/>). It opens the uplink the HSE forwards and seals the
/// downlink the HSE forwards unmodified; it owns the downlink counter of every key set it was given.
/// </summary>
public sealed class EasEndpoint : IDisposable
{
    private readonly Dictionary<uint, EasSession> _sessions = [];
    private readonly TimeProvider _time;
    private readonly ICounterReservation _reservation;
    private readonly TimeSpan _grace;

    /// <summary>Creates an EAS endpoint; old key sets stay valid for receiving for <paramref name="grace"/> (default 600 s).</summary>
    public EasEndpoint(TimeProvider? time = null, ICounterReservation? reservation = null, TimeSpan? grace = null)
    {
        _time = time ?? TimeProvider.System;
        _reservation = reservation ?? NoCounterReservation.Instance;
        _grace = grace ?? TimeSpan.FromSeconds(600);
    }

    /// <summary>Sessions known.</summary>
    public int SessionCount => _sessions.Count;

    /// <summary>
    /// Installs the keys of a new session or of a refreshed key set; the previous set stays for the grace
    /// period. Installing a Key ID that is already installed changes nothing.
    /// </summary>
    /// <exception cref="ArgumentException">The keys are not for a UP service.</exception>
    public void Install(EasKeysReady keys)
    {
        ArgumentNullException.ThrowIfNull(keys);
        if (keys.Service is not (BestService.Integrity or BestService.Confidential))
        {
            throw new ArgumentException("Only the integrity and confidential services carry an EMSDP user plane to the EAS.", nameof(keys));
        }

        if (!_sessions.TryGetValue(keys.SessionId, out var session))
        {
            session = new EasSession(keys.SessionId, keys.CounterLength, new SessionKeys(_reservation, Direction.Downlink));
            _sessions[keys.SessionId] = session;
        }

        if (session.Keys.Get(keys.KeyId) is not null && session.KeyIdentifiers[keys.KeyId] == keys.EasKeyIdentifier)
        {
            // Delivered again (a retried event, a restart that fetched the PSK again): keep the live set and
            // its counters; re-deriving would start the downlink counter at 0 and reuse nonces. A Key ID that
            // comes back with another key identifier (the Key ID cycled, or the Session ID was reused) is new.
            return;
        }

        session.N = keys.CounterLength;
        session.KeyIdentifiers[keys.KeyId] = keys.EasKeyIdentifier;
        var set = KeySet.DeriveForEas(keys.KEasPsk.Span, keys.Suite, keys.Service, keys.KeyId, session.EnterpriseKey);
        if (session.Keys.Current is null || session.Keys.CurrentKeyId == keys.KeyId)
        {
            session.Keys.InstallCurrent(set);
        }
        else
        {
            session.Keys.InstallPending(set);
            session.Keys.Promote(_time.GetUtcNow(), _grace);
        }
    }

    /// <summary>After a restart: send downlink on <paramref name="keyId"/> of <paramref name="sessionId"/> from the reserved limit on (profile section 3).</summary>
    public void ResumeDownlinkAt(uint sessionId, byte keyId, ulong limit)
    {
        if (_sessions.TryGetValue(sessionId, out var session) && session.Keys.Get(keyId) is { } set)
        {
            set.ResumeSendingAt(0, limit);
        }
    }

    /// <summary>Whether keys of <paramref name="sessionId"/> and <paramref name="keyId"/> are installed.</summary>
    public bool HasKeys(uint sessionId, byte keyId) => _sessions.TryGetValue(sessionId, out var session) && session.Keys.Get(keyId) is not null;

    /// <summary>Sets the Enterprise Key the UE of <paramref name="sessionId"/> shares with the enterprise, before <see cref="Install"/>.</summary>
    public void SetEnterpriseKey(uint sessionId, ReadOnlySpan<byte> enterpriseKey)
    {
        if (!_sessions.TryGetValue(sessionId, out var session))
        {
            session = new EasSession(sessionId, 1, new SessionKeys(_reservation, Direction.Downlink));
            _sessions[sessionId] = session;
        }

        CryptographicOperations.ZeroMemory(session.EnterpriseKey);
        session.EnterpriseKey = enterpriseKey.ToArray();
    }

    /// <summary>Opens an uplink UP message the HSE forwarded.</summary>
    public StepResult Receive(ReadOnlySpan<byte> message)
    {
        var result = new StepResult();
        if (HeaderPrefix.TryRead(message, out var prefix) != ParseStatus.Ok || prefix.Plane != Plane.User
            || !_sessions.TryGetValue(prefix.SessionId, out var session) || session.Keys.Get(prefix.KeyId) is not { } keys)
        {
            result.Events.Add(new MessageDropped(0, DropReason.UnknownSession));
            return result;
        }

        if (EmsdpFrame.TryParse(message, prefix, session.N, keys.Suite.UserPlaneTagSize, out var frame) != ParseStatus.Ok)
        {
            result.Events.Add(new MessageDropped(session.Id, DropReason.Malformed));
            return result;
        }

        var payload = new byte[frame.Body.Length];
        var opened = EmsdpProtection.OpenUser(keys, Direction.Uplink, frame, payload);
        switch (opened.Status)
        {
            case OpenStatus.Accepted:
                result.Events.Add(new DataReceived(session.Id, prefix.KeyId, opened.Counter, payload, prefix.AckRequested));
                break;
            case OpenStatus.Duplicate:
                break;
            default:
                result.Events.Add(new MessageDropped(session.Id, opened.Status == OpenStatus.OutsideWindow ? DropReason.Replay : DropReason.TagFailed));
                break;
        }

        return result;
    }

    /// <summary>Seals a downlink payload under the session's current key set; the bytes go to the HSE, which forwards them unmodified.</summary>
    /// <exception cref="InvalidOperationException">No keys for the session.</exception>
    public StepResult SendDownlink(uint sessionId, ReadOnlySpan<byte> payload, bool ackRequested = false)
    {
        if (!_sessions.TryGetValue(sessionId, out var session) || session.Keys.Current is not { } keys)
        {
            throw new InvalidOperationException($"No keys for session {sessionId}.");
        }

        var result = new StepResult();
        Span<byte> buffer = stackalloc byte[Wire.MaxMessage];
        var counter = session.Keys.NextCounter(keys, Plane.User, sessionId, session.N);
        var length = EmsdpProtection.SealUser(keys, Direction.Downlink, sessionId, session.N, counter, ackRequested, payload, buffer);
        result.Add(buffer[..length], null);
        return result;
    }

    /// <summary>Erases old key sets whose grace period ended.</summary>
    public void Tick()
    {
        var now = _time.GetUtcNow();
        foreach (var session in _sessions.Values)
        {
            session.Keys.Expire(now);
        }
    }

    /// <summary>Forgets a session and zeroes its keys (the HSE reported it terminated).</summary>
    public void Remove(uint sessionId)
    {
        if (_sessions.Remove(sessionId, out var session))
        {
            session.Dispose();
        }
    }

    /// <summary>Zeroes every key.</summary>
    public void Dispose()
    {
        foreach (var session in _sessions.Values)
        {
            session.Dispose();
        }

        _sessions.Clear();
    }

    private sealed class EasSession(uint id, int n, SessionKeys keys) : IDisposable
    {
        public uint Id { get; } = id;

        public int N { get; set; } = n;

        public SessionKeys Keys { get; } = keys;

        public byte[] EnterpriseKey { get; set; } = [];

        /// <summary>The EAS key identifier of the set installed under each Key ID.</summary>
        public uint[] KeyIdentifiers { get; } = new uint[8];

        public void Dispose()
        {
            Keys.Dispose();
            CryptographicOperations.ZeroMemory(EnterpriseKey);
        }
    }
}
