using System.Security.Cryptography;
using OpenBest.Crypto;
using OpenBest.Crypto.Aead;
using OpenBest.Crypto.Aka;
using OpenBest.Protocol;

namespace OpenBest.Sessions;

/// <summary>
/// The UE side of EMSDP as a sans-IO state machine (profile section 6.2): several channels over one
/// bearer, each with its own Session ID, keys, service and EAS. Bytes, timer ticks and application calls
/// in; bytes and events out. Not thread-safe: one logical owner drives it.
/// </summary>
public sealed partial class UeEndpoint : IDisposable
{
    private readonly IUsim _usim;
    private readonly UeOptions _options;
    private readonly TimeProvider _time;
    private readonly ICounterReservation _reservation;
    private readonly Dictionary<int, Channel> _channels = [];
    private readonly HashSet<string> _acceptedStarts = new(StringComparer.Ordinal);
    private int _nextHandle = 1;

    /// <summary>Creates a device endpoint over a (software) USIM.</summary>
    public UeEndpoint(IUsim usim, UeOptions options, TimeProvider? time = null, ICounterReservation? reservation = null)
    {
        ArgumentNullException.ThrowIfNull(usim);
        ArgumentNullException.ThrowIfNull(options);
        if ((options.Imsi is null) == (options.Suci is null))
        {
            throw new ArgumentException("Give exactly one of Imsi and Suci.", nameof(options));
        }

        _usim = usim;
        _options = options;
        _time = time ?? TimeProvider.System;
        _reservation = reservation ?? NoCounterReservation.Instance;
    }

    /// <summary>Messages dropped, by reason.</summary>
    public Dictionary<DropReason, long> Dropped { get; } = [];

    private DateTimeOffset Now => _time.GetUtcNow();

    /// <summary>The Session ID of a channel (0 until its Session Start is accepted).</summary>
    public uint SessionIdOf(int channel) => Get(channel).SessionId;

    /// <summary>Whether a channel is established (keys confirmed on this side).</summary>
    public bool IsEstablished(int channel) => Get(channel).State is ChannelState.Established or ChannelState.Suspended;

    /// <summary>
    /// Whether a channel is suspended. Downlink that reaches it meanwhile (a push) is delivered and acknowledged, and the
    /// channel stays suspended: only sending data, or <see cref="Resume"/>, resumes it.
    /// </summary>
    public bool IsSuspended(int channel) => Get(channel).State == ChannelState.Suspended;

    /// <summary>The current Key ID of a channel.</summary>
    public byte CurrentKeyIdOf(int channel) => Get(channel).Keys.CurrentKeyId;

    /// <summary>What the HSE selected for a channel.</summary>
    public HseConfiguration SelectedOf(int channel) => Get(channel).Selected;

    /// <summary>
    /// Opens a channel: sends a Session Request. <paramref name="firstPayload"/>, when given, is sent as the
    /// first UP message right after the Session Start verifies (it confirms the keys); otherwise an explicit
    /// Session Start Confirmation is sent.
    /// </summary>
    public StepResult Open(UeChannelOptions options, out int channel, ReadOnlyMemory<byte>? firstPayload = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var result = new StepResult();
        var c = new Channel(_nextHandle++, options, new SessionKeys(_reservation, Direction.Uplink)) { FirstPayload = firstPayload };
        _channels[c.Handle] = c;
        channel = c.Handle;
        SendRequest(c, result);
        return result;
    }

    /// <summary>Sends an uplink payload on an established channel (a suspended one resumes).</summary>
    /// <exception cref="InvalidOperationException">The channel is not established or carries no user plane.</exception>
    /// <param name="channel">The channel.</param>
    /// <param name="payload">The payload.</param>
    /// <param name="ackRequested">Whether to ask for a Data Ack (retransmitted with back-off until it comes; after the retries the
    /// channel resynchronises with a new Session Request and sends the payload again).</param>
    /// <param name="token">The application's token for this payload, echoed in its <see cref="DataAcknowledged"/> even after a resynchronisation.</param>
    public StepResult Send(int channel, ReadOnlySpan<byte> payload, bool ackRequested = false, long token = 0)
    {
        var result = new StepResult();
        var c = Get(channel);
        if (c.State is not (ChannelState.Established or ChannelState.Suspended))
        {
            throw new InvalidOperationException($"Channel {channel} is not established.");
        }

        if (c.State == ChannelState.Suspended)
        {
            if (c.HoldsData)
            {
                // The data will wait, so it cannot resume the session at the HSE: an explicit Resume does.
                SendControl(c, SessionResume.Instance, result);
            }

            c.State = ChannelState.Established;
            result.Events.Add(new SessionResumed(c.SessionId));
        }

        SendUser(c, payload, ackRequested, result, token);
        return result;
    }

    /// <summary>Asks the HSE for new keys (an empty Manage Keys Request; profile 6.2).</summary>
    public StepResult RequestKeyRefresh(int channel)
    {
        var result = new StepResult();
        var c = Established(channel);
        var bytes = SendControl(c, ManageKeysRequest.FromUe, result);
        c.Outstanding = new Outstanding(bytes, CommandCode.ManageKeysRequest, Now + _options.RetransmissionInterval);
        return result;
    }

    /// <summary>Suspends the channel: the HSE keeps keys and counters and queues downlink.</summary>
    public StepResult Suspend(int channel)
    {
        var result = new StepResult();
        var c = Established(channel);
        SendControl(c, SessionSuspend.Instance, result);
        c.State = ChannelState.Suspended;
        result.Events.Add(new SessionSuspended(c.SessionId, ByPeer: false));
        return result;
    }

    /// <summary>Resumes a suspended channel: the HSE delivers what it queued.</summary>
    public StepResult Resume(int channel)
    {
        var result = new StepResult();
        var c = Established(channel);
        SendControl(c, SessionResume.Instance, result);
        c.State = ChannelState.Established;
        result.Events.Add(new SessionResumed(c.SessionId));
        return result;
    }

    /// <summary>Terminates the channel (retransmitted until answered).</summary>
    public StepResult Terminate(int channel, Cause? cause = null)
    {
        var result = new StepResult();
        var c = Established(channel);
        var bytes = SendControl(c, new SessionTerminateRequest(cause), result);
        c.State = ChannelState.Terminating;
        c.DropHeld(result);
        c.Outstanding = new Outstanding(bytes, CommandCode.SessionTerminateRequest, Now + _options.RetransmissionInterval);
        return result;
    }

    /// <summary>
    /// The K_EAS_PSK of a key-agreement-only or UE-to-EAS channel's current key set, and its EAS key identifier (profile
    /// section 5): for an application protocol such as DTLS-PSK with the EAS (PSK identity
    /// <c>&lt;external id&gt;#&lt;key identifier as 8 hex digits&gt;</c>). False when the channel has none.
    /// </summary>
    public bool TryGetEasPsk(int channel, Span<byte> psk, out uint keyIdentifier)
    {
        var c = Get(channel);
        keyIdentifier = c.EasKeyIdentifier;
        if (c.EasPsk is null || c.State is not (ChannelState.Established or ChannelState.Suspended))
        {
            return false;
        }

        c.EasPsk.CopyTo(psk);
        return true;
    }

    /// <summary>The Enterprise Key Identifier the HSE named for a UE-to-EAS channel's current key set (TLV 0x0E), or null when it named none.</summary>
    public byte[]? EnterpriseKeyIdentifierOf(int channel) => Get(channel).EnterpriseKeyIdentifier?.ToArray();

    /// <summary>Whether a channel's data waits for a key set with an Enterprise Key (UE-to-EAS mode; see <see cref="UeOptions"/>).</summary>
    public bool IsHoldingData(int channel) => Get(channel).HoldsData;

    /// <summary>Gives up a message that waits for a key set with an Enterprise Key (its sender stopped waiting): it is never sent.</summary>
    public void CancelHeld(int channel, long token)
    {
        if (_channels.TryGetValue(channel, out var c) && c.Held.Any(h => h.Token == token))
        {
            var keep = c.Held.Where(h => h.Token != token).ToList();
            c.Held.Clear();
            foreach (var held in keep)
            {
                c.Held.Enqueue(held);
            }
        }
    }

    /// <summary>Forgets a channel without a word to the HSE (an open that timed out): no retransmission, no late events; its keys are zeroed.</summary>
    public void Abandon(int channel)
    {
        if (_channels.Remove(channel, out var c))
        {
            c.Held.Clear();
            c.Keys.Dispose();
            c.SetEasPsk(null, 0);
        }
    }

    /// <summary>Zeroes every key.</summary>
    public void Dispose()
    {
        foreach (var c in _channels.Values)
        {
            c.Keys.Dispose();
            c.SetEasPsk(null, 0);
        }

        _channels.Clear();
    }

    private Channel Get(int channel) => _channels.TryGetValue(channel, out var c) ? c : throw new ArgumentException($"No channel {channel}.", nameof(channel));

    private Channel Established(int channel)
    {
        var c = Get(channel);
        return c.State is ChannelState.Established or ChannelState.Suspended ? c : throw new InvalidOperationException($"Channel {channel} is not established.");
    }

    private void Drop(StepResult result, uint sessionId, DropReason reason)
    {
        Dropped[reason] = Dropped.GetValueOrDefault(reason) + 1;
        result.Events.Add(new MessageDropped(sessionId, reason));
    }

    private void SendRequest(Channel c, StepResult result, ReadOnlyMemory<byte>? cookie = null)
    {
        if (cookie is null)
        {
            // A new attempt has a new UE nonce; a cookie retry keeps it (profile 6.2).
            c.UeNonce = _options.UeNonceSource?.Invoke() ?? RandomNumberGenerator.GetBytes(8);
            if (c.UeNonce.Length != 8)
            {
                throw new InvalidOperationException("UeNonceSource must return 8 octets.");
            }

            c.AutsSent = false;
            c.Requests.Clear();
        }

        var o = c.Options;
        var request = new SessionRequest(_options.Imsi, _options.Suci,
            new UeConfiguration(UeConfiguration.CurrentRelease, o.KeyAgreements, o.Service, o.UeToEasMode, o.Suites, o.CounterSchemes),
            o.EasId, c.UeNonce, o.ServingNetwork, cookie);
        Span<byte> buffer = stackalloc byte[Wire.MaxMessage];
        var length = EmsdpProtection.WriteUnprotected(0, request.Encode(), buffer);
        var bytes = buffer[..length].ToArray();
        var hash = SHA256.HashData(bytes);

        // Every request sent with this nonce stays answerable: an unprotected Reject (a cookie request
        // among them) is only a hint and must not make the UE forget what it is waiting for.
        c.Requests.Add((hash[..8], hash));
        c.State = ChannelState.Requesting;
        var retries = c.Outstanding is { Code: CommandCode.SessionRequest } previous && cookie is not null ? previous.Retries : 0;
        c.Outstanding = new Outstanding(bytes, CommandCode.SessionRequest, Now + _options.RetransmissionInterval, retries);
        result.Add(bytes, null);
    }

    /// <summary>K_EAS_PSK when the service gives the EAS keys (key agreement only, UE-to-EAS mode); null otherwise.</summary>
    private static byte[]? EasPskOf(HseConfiguration selected, ReadOnlySpan<byte> kRoot, uint sessionId, byte keyId, ReadOnlySpan<byte> rand, ReadOnlySpan<byte> ueNonce, string easId)
    {
        if (selected.Service != BestService.KeyAgreementOnly && !selected.UeToEasMode)
        {
            return null;
        }

        var psk = GC.AllocateArray<byte>(32, pinned: true); // one per UE-to-EAS or key-agreement-only key set of a device: rare
        KeySet.DeriveEasPsk(kRoot, sessionId, keyId, rand, ueNonce, easId, psk);
        return psk;
    }

    private static byte[] SendControl(Channel c, ControlCommand command, StepResult result, KeySet? keys = null)
    {
        byte[] bytes;
        if (c.Selected.Service == BestService.None)
        {
            // The no-security channel: Key ID 0, n = 1, counter 0, no tag (docs/protocol.md).
            Span<byte> buffer = stackalloc byte[Wire.MaxMessage];
            var length = EmsdpProtection.WriteUnprotected(c.SessionId, command.Encode(), buffer);
            bytes = buffer[..length].ToArray();
        }
        else
        {
            bytes = c.Keys.SealControl(keys ?? c.Keys.Current!, c.SessionId, c.N, command);
        }

        result.Add(bytes, null);
        return bytes;
    }

    private void SendUser(Channel c, ReadOnlySpan<byte> payload, bool ackRequested, StepResult result, long token = 0)
    {
        if (c.HoldsData)
        {
            // No Enterprise Key in this key set: the data waits for the HSE to name one (profile section 5).
            if (c.Held.Count == 0)
            {
                // The first to wait: ask for new keys after 10 s if the refresh that names the key has not come by then.
                c.KeyAskInterval = TimeSpan.Zero;
                c.NextKeyAsk = Now + TimeSpan.FromSeconds(10);
            }

            if (c.Held.Count >= 64)
            {
                result.Events.Add(new HeldDataDropped(c.SessionId, c.Held.Dequeue().Token));
            }

            c.Held.Enqueue((payload.ToArray(), ackRequested, token, Now));
            return;
        }

        Span<byte> buffer = stackalloc byte[Wire.MaxMessage];
        int length;
        ulong counter = 0;
        if (c.Selected.Service == BestService.None)
        {
            // No counter and no tag: the no-security channel has no Data Ack (docs/protocol.md).
            ackRequested = false;
            var header = new EmsdpHeader(Plane.User, 0, false, c.SessionId, 1, 0);
            length = header.Write(buffer);
            payload.CopyTo(buffer[length..]);
            length += payload.Length;
        }
        else
        {
            var keys = c.Keys.Current ?? throw new InvalidOperationException("The channel has no keys.");
            if (!keys.HasUserKey)
            {
                throw new InvalidOperationException("This channel carries no EMSDP user plane (key agreement only).");
            }

            counter = c.Keys.NextCounter(keys, Plane.User, c.SessionId, c.N);
            ackRequested |= SessionKeys.MustRequestAck(counter, c.Keys.LastAcked(keys.KeyId), c.N);
            length = EmsdpProtection.SealUser(keys, Direction.Uplink, c.SessionId, c.N, counter, ackRequested, payload, buffer);
        }

        var bytes = buffer[..length].ToArray();
        result.Add(bytes, null);
        if (ackRequested)
        {
            // The first 4 octets of the tag: in UE-to-EAS mode the HSE's "forwarded" Ack must echo them.
            var tagSize = c.Keys.Current is { } k ? k.Suite.UserPlaneTagSize : 0;
            c.Unacked[(c.Keys.CurrentKeyId, counter)] = new PendingUplink(bytes, payload.ToArray(), Now + _options.RetransmissionInterval, 0, bytes.AsSpan(bytes.Length - tagSize, Math.Min(4, tagSize)).ToArray(), token);
        }
    }

    /// <summary>Sends the data that waited for a key set with an Enterprise Key, once the current one has it.</summary>
    private void SendHeld(Channel c, StepResult result)
    {
        while (c.State == ChannelState.Established && !c.HoldsData && c.Held.TryDequeue(out var held))
        {
            SendUser(c, held.Payload, held.Ack, result, held.Token);
        }
    }

    private enum ChannelState
    {
        Requesting,
        Established,
        Suspended,
        Terminating,
        Terminated,
        Failed,
    }

    private sealed record Outstanding(byte[] Message, CommandCode Code, DateTimeOffset NextSend, int Retries = 0);

    private sealed record PendingUplink(byte[] Message, byte[] Payload, DateTimeOffset NextSend, int Retries, byte[] TagPrefix, long Token);

    private sealed class Channel(int handle, UeChannelOptions options, SessionKeys keys)
    {
        public int Handle { get; } = handle;

        public UeChannelOptions Options { get; } = options;

        public SessionKeys Keys { get; } = keys;

        public ChannelState State { get; set; }

        public uint SessionId { get; set; }

        public int N { get; set; } = 1;

        public HseConfiguration Selected { get; set; }

        public byte[] UeNonce { get; set; } = [];

        /// <summary>The Session Start this channel took, to recognise the HSE's retransmitted copies.</summary>
        public byte[]? AcceptedStart { get; set; }

        public byte[]? EasPsk { get; private set; }

        public uint EasKeyIdentifier { get; private set; }

        /// <summary>The Enterprise Key Identifier of the current key set (TLV 0x0E), or null when none was named.</summary>
        public byte[]? EnterpriseKeyIdentifier { get; set; }

        /// <summary>By Key ID: whether that key set's K_E2E was derived with an Enterprise Key.</summary>
        public bool[] HasEnterpriseKey { get; } = new bool[8];

        /// <summary>Whether data must wait: UE-to-EAS mode, an Enterprise Key required, and the current key set has none.</summary>
        public bool HoldsData => Selected.UeToEasMode && Options.RequiresEnterpriseKey && !HasEnterpriseKey[Keys.CurrentKeyId & 7];

        /// <summary>Data waiting for a key set with an Enterprise Key (at most 64; the oldest goes).</summary>
        public Queue<(byte[] Payload, bool Ack, long Token, DateTimeOffset Since)> Held { get; } = new();

        /// <summary>When the UE next asks for new keys while data waits for an Enterprise Key.</summary>
        public DateTimeOffset NextKeyAsk { get; set; }

        /// <summary>The interval of those asks (10 s, doubling to 5 min; zero before the first).</summary>
        public TimeSpan KeyAskInterval { get; set; }

        /// <summary>Drops what waits (the channel ended), each with an event carrying its token.</summary>
        public void DropHeld(StepResult result)
        {
            while (Held.TryDequeue(out var held))
            {
                result.Events.Add(new HeldDataDropped(SessionId, held.Token));
            }
        }

        /// <summary>Replaces K_EAS_PSK (zeroing the old one).</summary>
        public void SetEasPsk(byte[]? psk, uint keyIdentifier)
        {
            if (EasPsk is not null)
            {
                CryptographicOperations.ZeroMemory(EasPsk);
            }

            EasPsk = psk;
            EasKeyIdentifier = psk is null ? 0 : keyIdentifier;
        }

        /// <summary>(checksum, SHA-256) of every Session Request sent with the current nonce.</summary>
        public List<(byte[] Checksum, byte[] Hash)> Requests { get; } = [];

        public DateTimeOffset? TerminatedAt { get; set; }

        public AckCache Acks { get; } = new();

        public bool AutsSent { get; set; }

        public Cause LastHint { get; set; }

        public DateTimeOffset? BackOffUntil { get; set; }

        public ReadOnlyMemory<byte>? FirstPayload { get; set; }

        public Outstanding? Outstanding { get; set; }

        public byte[]? TerminateResponse { get; set; }

        public Dictionary<string, byte[]> ManageKeysAnswers { get; } = new(StringComparer.Ordinal);

        public Dictionary<(byte KeyId, ulong Counter), PendingUplink> Unacked { get; } = [];

        public List<(byte[] Payload, long Token)> Pending { get; } = [];
    }
}
