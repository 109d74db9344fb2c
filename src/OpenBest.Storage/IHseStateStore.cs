using OpenBest.Protocol;
using OpenBest.Sessions;

namespace OpenBest.Storage;

/// <summary>An uplink payload the HSE accepted, to store (UE-to-HSE mode: the northbound delivery).</summary>
public sealed record UplinkToStore(uint SessionId, string Imsi, string EasId, byte KeyId, ulong Counter, ReadOnlyMemory<byte> Payload, DateTimeOffset ReceivedAt);

/// <summary>An uplink payload as stored, with its place in the store's order.</summary>
public sealed record StoredUplink(long Seq, uint SessionId, string Imsi, string EasId, byte KeyId, ulong Counter, byte[] Payload, DateTimeOffset ReceivedAt);

/// <summary>A UE-to-EAS message to forward unmodified to an EAS through the outbox, with the subscriber it came from (so it can be delivered after its session ended).</summary>
public sealed record OutboxItem(string EasId, uint SessionId, ReadOnlyMemory<byte> Message, string? Imsi = null);

/// <summary>A message waiting in the outbox; <see cref="Imsi"/> is null for messages queued before schema version 4.</summary>
public sealed record OutboxEntry(long Seq, string EasId, uint SessionId, byte[] Message, int Attempts, DateTimeOffset NextAttempt, string? Imsi = null);

/// <summary>An EAS registered with the HSE (HSE–EAS interface): where it is reached.</summary>
public sealed record EasRegistration(string EasId, string RegistrationId, string Endpoint, DateTimeOffset RegisteredAt);

/// <summary>A K_EAS_PSK kept for key synchronisation (the last three per UE and EAS). The key is secret: never shown.</summary>
/// <remarks><c>EnterpriseKeyIdentifier</c>: in UE-to-EAS mode, the Enterprise Key Identifier the key set's K_E2E was derived with, or null.</remarks>
public sealed record PastPsk(string Imsi, string EasId, uint KeyIdentifier, uint SessionId, byte KeyId, byte Suite, string Service, int CounterLength, bool UeToEasMode, byte[] Psk, DateTimeOffset CreatedAt, byte[]? EnterpriseKeyIdentifier = null)
{
    /// <summary>Never shows the key.</summary>
    public override string ToString() => $"PastPsk({EasId}, key identifier {KeyIdentifier:x8}, session {SessionId}, key {KeyId})";
}

/// <summary>One line of the key delivery audit log: who received which key identifier for whom (never the key).</summary>
public sealed record AuditEntry(long Seq, DateTimeOffset At, string Event, string EasId, string Subject, uint KeyIdentifier);

/// <summary>
/// What one executor step changed, written in one transaction before the step's messages leave: sessions saved
/// and ended, uplink accepted (with the session's exact replay window), outbox items, the Session ID high-water mark.
/// </summary>
public sealed class HseBatch
{
    /// <summary>Sessions to save (insert or replace, with their downlink queue).</summary>
    public List<HseSessionSnapshot> Saved { get; } = [];

    /// <summary>Sessions to delete.</summary>
    public List<uint> Ended { get; } = [];

    /// <summary>Uplink payloads accepted.</summary>
    public List<UplinkToStore> Uplinks { get; } = [];

    /// <summary>Messages to forward to EASs.</summary>
    public List<OutboxItem> Outbox { get; } = [];

    /// <summary>The next Session ID never handed out, or 0 to leave it.</summary>
    public uint NextSessionId { get; set; }

    /// <summary>
    /// In a cluster: the shard and the epoch of the activation writing (see <see cref="IHseShardStore"/>). The store writes the
    /// batch only while that epoch is the shard's newest, and <see cref="NextSessionId"/> goes to the shard's row.
    /// </summary>
    public ShardFence? Fence { get; set; }

    /// <summary>
    /// The same for every attempt to write this batch (Guid.Empty: none). A store whose commit can end ambiguously (the
    /// connection dropped during COMMIT) records it with the batch, and takes a retry of a batch already written as done.
    /// </summary>
    public Guid CommitToken { get; set; }

    /// <summary>Whether there is nothing to write.</summary>
    public bool IsEmpty => Saved.Count == 0 && Ended.Count == 0 && Uplinks.Count == 0 && Outbox.Count == 0 && NextSessionId == 0;

    /// <summary>Empties the batch, zeroing the session states it held.</summary>
    public void Clear()
    {
        foreach (var saved in Saved)
        {
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(saved.State);
        }

        Saved.Clear();
        Ended.Clear();
        Uplinks.Clear();
        Outbox.Clear();
        NextSessionId = 0;
        CommitToken = Guid.Empty;
    }
}

/// <summary>A shard's newest activation: its epoch, node and when it took the shard.</summary>
public sealed record ShardOwner(int Shard, long Epoch, string Node, DateTimeOffset Taken);

/// <summary>The activation of a cluster shard that writes a batch: its shard and the epoch it took.</summary>
public sealed record ShardFence(int Shard, long Epoch);

/// <summary>
/// A commit refused because a newer activation of the same shard took it (its epoch is no longer the shard's newest):
/// nothing of the batch was written, and the activation must stop without sending anything of it.
/// </summary>
public sealed class StoreFencedException(int shard, long epoch) : InvalidOperationException($"shard {shard}: epoch {epoch} was overtaken by a newer activation")
{
    /// <summary>The shard.</summary>
    public int Shard { get; } = shard;

    /// <summary>The overtaken epoch.</summary>
    public long Epoch { get; } = epoch;
}

/// <summary>
/// The HSE cluster's part of the store: shards of the Session ID space, each taken by one activation at a time with an
/// epoch that fences the older ones (docs/protocol.md, "HSE cluster").
/// </summary>
public interface IHseShardStore
{
    /// <summary>
    /// Takes <paramref name="shard"/> for a new activation: its epoch grows by one (waiting for a commit of an older
    /// activation in flight), so from now on only this activation's batches are written.
    /// </summary>
    /// <param name="shard">The shard.</param>
    /// <param name="node">The node of the activation (shown by <see cref="ShardOwners"/>).</param>
    /// <returns>The new epoch and the shard's stored next Session ID (0 when none).</returns>
    (long Epoch, uint NextSessionId) TakeShard(int shard, string node);

    /// <summary>The cluster's number of shards: the one recorded in the database, or <paramref name="proposed"/>, recorded now when none is.</summary>
    int ClusterShards(int proposed);

    /// <summary>Every shard ever taken: its epoch, and the node and time of its newest activation.</summary>
    IReadOnlyList<ShardOwner> ShardOwners();

    /// <summary>The stored sessions of <paramref name="shard"/> (Session ID modulo <paramref name="shards"/>), opened; zero their states after use.</summary>
    IReadOnlyList<HseSessionSnapshot> LoadSessions(int shard, int shards);
}

/// <summary>Which services a subscriber or an EAS may use (null: any).</summary>
public static class ServicePolicy
{
    /// <summary>The bitmask of <paramref name="services"/> (bit i = service value i).</summary>
    public static int Mask(IEnumerable<BestService> services) => services.Aggregate(0, (mask, s) => mask | (1 << (int)s));

    /// <summary>Whether <paramref name="mask"/> (null: any) allows <paramref name="service"/>.</summary>
    public static bool Allows(int? mask, BestService service) => mask is not { } m || (m & (1 << (int)service)) != 0;

    /// <summary>Parses "integrity,confidential,key-agreement-only,none".</summary>
    /// <exception cref="FormatException">A name is unknown.</exception>
    public static int Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var mask = 0;
        foreach (var name in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            mask |= 1 << (int)(name.ToLowerInvariant() switch
            {
                "integrity" => BestService.Integrity,
                "confidential" => BestService.Confidential,
                "key-agreement-only" or "kao" => BestService.KeyAgreementOnly,
                "none" => BestService.None,
                _ => throw new FormatException($"unknown service '{name}' (integrity, confidential, key-agreement-only, none)"),
            });
        }

        return mask;
    }

    /// <summary>The names in <paramref name="mask"/>, or "any".</summary>
    public static string Describe(int? mask) => mask is not { } m ? "any" : string.Join(',',
        new[] { BestService.Integrity, BestService.Confidential, BestService.KeyAgreementOnly, BestService.None }
            .Where(s => (m & (1 << (int)s)) != 0)
            .Select(s => s switch { BestService.KeyAgreementOnly => "key-agreement-only", _ => s.ToString().ToLowerInvariant() }));
}

/// <summary>
/// The HSE's durable state beside its subscribers: sessions with their key sets (sealed at rest), counter
/// reservations and replay windows inside them, downlink queues, stored uplink, the outbox to EASs, EAS
/// registrations, external identifiers, past PSKs, the key delivery audit log and service policy.
/// </summary>
public interface IHseStateStore
{
    /// <summary>
    /// Takes the database's HSE lease: one HSE process serves the sessions of a database at a time (their Session
    /// IDs and counters live in that process between commits). Dispose the lease to release it.
    /// </summary>
    /// <exception cref="InvalidOperationException">Another HSE holds it.</exception>
    IDisposable AcquireHseLease();

    /// <summary>Writes a batch in one transaction.</summary>
    void Commit(HseBatch batch);

    /// <summary>Every stored session, opened (their states hold keys: zero them after restoring).</summary>
    /// <exception cref="InvalidOperationException">A session does not decrypt under this master key.</exception>
    IReadOnlyList<HseSessionSnapshot> LoadSessions();

    /// <summary>The stored Session ID high-water mark (1 when none).</summary>
    uint LoadNextSessionId();

    /// <summary>Stored uplink after <paramref name="afterSeq"/>, oldest first; only of sessions naming <paramref name="easId"/> when given.</summary>
    IReadOnlyList<StoredUplink> Uplinks(long afterSeq, int limit, string? easId = null);

    /// <summary>
    /// The head of <paramref name="easId"/>'s outbox that is due at <paramref name="now"/>, oldest first: it stops at the
    /// first message not yet due, so a message waiting for a retry is never overtaken.
    /// </summary>
    IReadOnlyList<OutboxEntry> DueOutbox(string easId, DateTimeOffset now, int limit);

    /// <summary>Removes a delivered outbox message.</summary>
    void OutboxDelivered(long seq);

    /// <summary>Counts a failed delivery and sets the next attempt.</summary>
    void OutboxRetry(long seq, DateTimeOffset nextAttempt);

    /// <summary>Registers (or re-registers) an EAS; what waits in its outbox becomes due at once.</summary>
    void RegisterEas(EasRegistration registration);

    /// <summary>Deregisters an EAS; false when it was not registered.</summary>
    bool DeregisterEas(string easId);

    /// <summary>Every registered EAS.</summary>
    IReadOnlyList<EasRegistration> EasRegistrations();

    /// <summary>Maps <paramref name="externalId"/> of <paramref name="enterprise"/> to a subscriber (replacing an earlier mapping of either).</summary>
    void SetExternalId(string enterprise, string externalId, string imsi);

    /// <summary>The subscriber behind an enterprise's external identifier, or null.</summary>
    string? ImsiOf(string enterprise, string externalId);

    /// <summary>A subscriber's external identifier for an enterprise, or null.</summary>
    string? ExternalIdOf(string enterprise, string imsi);

    /// <summary>Keeps a PSK (sealed); only the last <see cref="PsksPerUeAndEas"/> per UE and EAS are kept (profile section 5).</summary>
    void SavePsk(PastPsk psk);

    /// <summary>The kept PSKs of a UE for an EAS, newest first.</summary>
    IReadOnlyList<PastPsk> Psks(string imsi, string easId);

    /// <summary>PSKs kept per UE and EAS for key synchronisation (profile section 5: 3).</summary>
    public const int PsksPerUeAndEas = 3;

    /// <summary>Sets the Enterprise Key Identifier an EAS chose for a UE (null: none); the HSE names it in that UE's next key sets for the EAS.</summary>
    void SetEnterpriseKeyIdentifier(string imsi, string easId, byte[]? identifier);

    /// <summary>The Enterprise Key Identifier an EAS chose for a UE, or null.</summary>
    byte[]? EnterpriseKeyIdentifierOf(string imsi, string easId);

    /// <summary>Appends to the audit log.</summary>
    void Audit(string eventName, string easId, string subject, uint keyIdentifier);

    /// <summary>The newest <paramref name="limit"/> audit lines, newest first.</summary>
    IReadOnlyList<AuditEntry> AuditLog(int limit);

    /// <summary>Sets the services a subscriber may use (null: any).</summary>
    /// <returns>False for an unknown subscriber.</returns>
    bool SetSubscriberServices(string imsi, int? services);

    /// <summary>Sets the services an EAS may be used with (null: any).</summary>
    void SetEasServices(string easId, int? services);

    /// <summary>The services of a subscriber and of an EAS (null: any).</summary>
    (int? Subscriber, int? Eas) Services(string imsi, string easId);
}

/// <summary>How every provider seals session states and PSKs at rest: AES-256-GCM under the master key, bound to what they belong to.</summary>
public static class StateSealing
{
    /// <summary>The context of a session's state.</summary>
    public static string SessionContext(uint sessionId) => $"openbest/session/v1|{sessionId}";

    /// <summary>The context of a kept PSK.</summary>
    public static string PskContext(string imsi, string easId, uint keyIdentifier) => $"openbest/psk/v1|{imsi}|{easId}|{keyIdentifier}";

    /// <summary>Opens a sealed value, or throws naming <paramref name="what"/> (never the value).</summary>
    /// <exception cref="InvalidOperationException">It does not decrypt.</exception>
    public static byte[] Open(MasterKey key, byte[] sealedValue, string context, string what)
    {
        ArgumentNullException.ThrowIfNull(key);
        using var opened = key.Open(sealedValue, context) ?? throw new InvalidOperationException($"{what} does not decrypt: wrong master key, or the row was altered.");
        return opened.Span.ToArray();
    }
}
