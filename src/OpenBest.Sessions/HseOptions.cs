using System.Security.Cryptography;
using OpenBest.Protocol;

namespace OpenBest.Sessions;

/// <summary>
/// Policy and limits of the HSE state machine. Every default is the profile's where it gives one.
/// </summary>
public sealed record HseOptions
{
    /// <summary>Suites in order of preference (IDs). Default 1, 2, 3, 4: the mandatory suite first.</summary>
    public IReadOnlyList<byte> SuitePreference { get; init; } = [1, 2, 3, 4];

    /// <summary>Counter lengths n in order of preference. Default 2, 1, 4: n = 2 survives long losses at one extra octet.</summary>
    public IReadOnlyList<byte> CounterLengthPreference { get; init; } = [2, 1, 4];

    /// <summary>Key agreements in order of preference (profile section 5: 5G AKA and EAP-AKA' first, only the home network can compute K_HSE).</summary>
    public IReadOnlyList<KeyAgreements> KeyAgreementPreference { get; init; } = [KeyAgreements.FiveGAka, KeyAgreements.EapAkaPrime, KeyAgreements.EpsAka, KeyAgreements.UmtsAka];

    /// <summary>Whether the no-security service may be selected (profile 6.2: off by default).</summary>
    public bool AllowNoSecurity { get; init; }

    /// <summary>Serving networks (names, or PLMN IDs as lowercase hex) where confidentiality is not allowed.</summary>
    public IReadOnlySet<string> ConfidentialityForbiddenIn { get; init; } = new HashSet<string>(StringComparer.Ordinal);

    /// <summary>In a network that forbids confidentiality: select integrity (true, default) or reject with cause 0x09 (false).</summary>
    public bool DowngradeToIntegrityWhereConfidentialityForbidden { get; init; } = true;

    /// <summary>Answer unknown identities with a decoy Session Start (profile section 7: on by default).</summary>
    public bool HideUnknownSubscribers { get; init; } = true;

    /// <summary>Ask for a cookie before any state or crypto (listeners that are not source-validated; profile 6.2).</summary>
    public bool RequireCookie { get; init; }

    /// <summary>The server secret for cookies and decoys: 32 random octets by default, per process.</summary>
    public ReadOnlyMemory<byte> ServerSecret { get; init; } = RandomNumberGenerator.GetBytes(32);

    /// <summary>A pending session not confirmed within this time is dropped (profile 6.2: 30 s).</summary>
    public TimeSpan ConfirmationTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long an old key set stays valid for receiving after a refresh (profile 6.2: 600 s).</summary>
    public TimeSpan KeyGracePeriod { get; init; } = TimeSpan.FromSeconds(600);

    /// <summary>How long a terminated session's keys are kept to answer a retransmitted Terminate (profile 6.2: 30 s).</summary>
    public TimeSpan TerminateLinger { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a Session Request's answer is cached for retransmissions, and the cookie/decoy epoch (60 s).</summary>
    public TimeSpan RetransmissionCacheLifetime { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>The key lifetime announced in Session Start (TLV 0x10), or null; the HSE refreshes when it ends.</summary>
    public TimeSpan? KeyLifetime { get; init; }

    /// <summary>First retransmission interval of a CP request; doubles up to <see cref="MaxRetransmissions"/> (2 s).</summary>
    public TimeSpan RetransmissionInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Retransmissions of a CP request before giving up (4).</summary>
    public int MaxRetransmissions { get; init; } = 4;

    /// <summary>Pending (unconfirmed) sessions at most; beyond it new requests get cause 0x0D with a back-off (10 000).</summary>
    public int MaxPendingSessions { get; init; } = 10_000;

    /// <summary>The back-off announced under congestion (60 s).</summary>
    public TimeSpan CongestionBackOff { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Downlink messages queued for a suspended session at most; the oldest is dropped beyond (32).</summary>
    public int MaxQueuedDownlink { get; init; } = 32;

    /// <summary>How long a queued downlink message lives (1 h).</summary>
    public TimeSpan QueuedDownlinkTimeToLive { get; init; } = TimeSpan.FromHours(1);

    /// <summary>
    /// The Session IDs this engine hands out: those congruent to <c>Offset</c> modulo <c>Stride</c> ((0, 1): all). Each shard of an
    /// HSE cluster owns one class, so a Session ID names its shard (docs/protocol.md, "HSE cluster").
    /// </summary>
    public (uint Offset, uint Stride) SessionIdClass { get; init; } = (0, 1);

    /// <summary>How long a Session ID is not reused after its session ended (profile section 2: 24 h).</summary>
    public TimeSpan SessionIdQuarantine { get; init; } = TimeSpan.FromHours(24);

    /// <summary>The EAS Ids sessions may name (Enterprise Setup), or null for any; others get cause 0x0A (unknown EAS).</summary>
    public IReadOnlySet<string>? KnownEasIds { get; init; }

    /// <summary>Sessions held at most (any state); beyond it new requests get cause 0x0E (1 000 000).</summary>
    public int MaxSessions { get; init; } = 1_000_000;

    /// <summary>Whether a subscriber may use a service with an EAS; a refusal is cause 0x10 (not authorised). Null allows all.</summary>
    public Func<string, string, BestService, bool>? Authorise { get; init; }

    /// <summary>
    /// Session Starts (vectors) per identity per minute at most, from all sources together; beyond it cause 0x0D (20). Each
    /// source has its own smaller share (<see cref="MaxVectorsPerSourcePerIdentityPerMinute"/>), so one source cannot use
    /// this budget up and lock the subscriber out.
    /// </summary>
    public int MaxVectorsPerIdentityPerMinute { get; init; } = 20;

    /// <summary>
    /// Session Starts (vectors) per identity per minute at most for one source (an address without its port, an IPv6 /64;
    /// see <see cref="Protocol.PeerSource"/>); beyond it that source gets cause 0x0D and the others keep the rest of the
    /// identity's budget (5: a device that retries after a lost Session Start needs two or three).
    /// </summary>
    public int MaxVectorsPerSourcePerIdentityPerMinute { get; init; } = 5;

    /// <summary>Sources tracked for the per-source budgets at most; past it a new source counts only toward the identity's budget (100 000).</summary>
    public int MaxTrackedSources { get; init; } = 100_000;

    /// <summary>UE-to-EAS uplink messages forwarded per session per second at most; the rest are dropped (100).</summary>
    public int MaxForwardsPerSessionPerSecond { get; init; } = 100;

    /// <summary>Rejects sent per second at most (all sources; profile section 7 rate limit) (100).</summary>
    public int MaxRejectsPerSecond { get; init; } = 100;

    /// <summary>
    /// Unprotected Rejects sent per second to one source at most (profile section 7: "rate limited per source") (10): a
    /// flooding source cannot use the global budget up, so a device elsewhere still gets its cookie or its cause.
    /// </summary>
    public int MaxRejectsPerSourcePerSecond { get; init; } = 10;

    /// <summary>
    /// The Enterprise Key Identifier to name (TLV 0x0E) in the Manage Keys Requests of a UE-to-EAS session, by (IMSI, EAS Id):
    /// the one the EAS last chose, or null for none (profile section 5). It is asked only after the UE authenticated: at key
    /// confirmation (a session whose UE and EAS have one is refreshed at once, naming it) and before each refresh. A lookup
    /// that throws counts as "no change".
    /// </summary>
    public Func<string, string, byte[]?>? EnterpriseKeyIdentifier { get; init; }

    /// <summary>Home network SUCI keys by public key identifier: (protection scheme, private key).</summary>
    public IReadOnlyDictionary<byte, (Crypto.Suci.SuciProtectionScheme Scheme, ReadOnlyMemory<byte> PrivateKey)> SuciKeys { get; init; } =
        new Dictionary<byte, (Crypto.Suci.SuciProtectionScheme, ReadOnlyMemory<byte>)>();
}
