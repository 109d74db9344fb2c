using System.Security.Cryptography;
using OpenBest.Protocol;

namespace OpenBest.Sessions;

/// <summary>A downlink message queued for a suspended session, sealed only when it is delivered (profile 6.2).</summary>
/// <param name="Payload">The payload.</param>
/// <param name="AckRequested">Whether its delivery asks for a Data Ack.</param>
/// <param name="Expires">When it is given up if still queued (its time to live).</param>
public sealed record QueuedDownlink(ReadOnlyMemory<byte> Payload, bool AckRequested, DateTimeOffset Expires)
{
    /// <summary>
    /// The application's token for delivery reports (<see cref="DataAcknowledged"/>, <see cref="DownlinkUndelivered"/>), or 0.
    /// In memory only: the store keeps the three positional fields, so a restored queue has no tokens.
    /// </summary>
    public long Token { get; init; }

    /// <summary>The Key ID the message was paged under while it waits (a network push), or 0 when it was not paged. In memory only.</summary>
    public byte PagedKeyId { get; internal init; }

    /// <summary>The UP counter the message was paged under (see <see cref="PagedKeyId"/>).</summary>
    public ulong PagedCounter { get; internal init; }
}

/// <summary>
/// The durable state of one established (or suspended) HSE session: what a restarted HSE needs to go on with it.
/// <see cref="State"/> holds key material: the store seals it at rest, and the host zeroes it after use.
/// </summary>
/// <param name="SessionId">The Session ID.</param>
/// <param name="Imsi">The subscriber.</param>
/// <param name="EasId">The EAS the session names.</param>
/// <param name="Suspended">Whether the session is suspended.</param>
/// <param name="State">The engine's serialised state (keys, counters at their reserved limits, replay windows).</param>
/// <param name="Queue">Downlink messages queued for the suspended session.</param>
public sealed record HseSessionSnapshot(uint SessionId, string Imsi, string EasId, bool Suspended, byte[] State, IReadOnlyList<QueuedDownlink> Queue)
{
    /// <summary>Never shows the state.</summary>
    public override string ToString() => $"HseSessionSnapshot({SessionId}, {EasId}, {(Suspended ? "suspended" : "established")}, {Queue.Count} queued)";
}

public sealed partial class HseEngine
{
    // Version 2 adds the Enterprise Key Identifier of the current key set; version 1 states are still read.
    private const byte SnapshotVersion = 2;
    private readonly HashSet<uint> _dirty = [];
    private readonly HashSet<uint> _ended = [];

    /// <summary>The next Session ID never handed out: persist it, and give it to <see cref="ResumeSessionIdsAt"/> after a restart.</summary>
    public uint NextSessionId => _neverUsed;

    /// <summary>After a restart: hand out Session IDs from <paramref name="next"/> on, so no ID of a session before the crash is reused early.</summary>
    public void ResumeSessionIdsAt(uint next) => _neverUsed = Math.Max(_neverUsed, AlignSessionId(next));

    /// <summary>
    /// Drains what changed since the last call: the durable state of each established or suspended session that
    /// changed (saved), and the IDs of stored sessions that ended (to delete). A host that persists sessions
    /// writes both, in one transaction, before it sends the step's messages (profile section 3: counters are
    /// reserved before use, and a receiver persists its exact highest counter with the message it stores).
    /// </summary>
    public void TakeChanges(ICollection<HseSessionSnapshot> saved, ICollection<uint> ended)
    {
        ArgumentNullException.ThrowIfNull(saved);
        ArgumentNullException.ThrowIfNull(ended);
        foreach (var id in _dirty)
        {
            // The no-security channel is kept too (without keys): it survives a restart like the others.
            if (_sessions.TryGetValue(id, out var session) && !session.Decoy && session.State is HseState.Established or HseState.Suspended)
            {
                saved.Add(Snapshot(session));
                session.Persisted = true;
            }
            else if (session is not null && session.Persisted && session.State is not (HseState.Established or HseState.Suspended))
            {
                session.Persisted = false;
                _ended.Add(id);
            }
        }

        foreach (var id in _ended)
        {
            ended.Add(id);
        }

        _dirty.Clear();
        _ended.Clear();
    }

    /// <summary>Whether anything changed since the last <see cref="TakeChanges"/>.</summary>
    public bool HasChanges => _dirty.Count > 0 || _ended.Count > 0;

    /// <summary>
    /// Restores a session a previous run saved. It sends on from its reserved counter limits, its replay windows
    /// are exactly as stored, and its peer path is unknown until the UE sends.
    /// </summary>
    /// <exception cref="InvalidDataException">The state is not one this engine wrote.</exception>
    public void Restore(HseSessionSnapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        using var stream = new MemoryStream(snapshot.State, writable: false);
        using var reader = new BinaryReader(stream);
        var version = snapshot.State.Length < 5 ? (byte)0 : reader.ReadByte();
        if (version is not (1 or SnapshotVersion) || reader.ReadUInt32() != snapshot.SessionId || snapshot.SessionId is 0 or > SessionIdCodec.MaxValue)
        {
            throw new InvalidDataException($"Session {snapshot.SessionId} was stored in an unknown format.");
        }

        var id = snapshot.SessionId;
        var session = new HseSession(id, _reservation, _pending, _dirty);
        try
        {
            session.Imsi = reader.ReadString();
            var suspended = reader.ReadBoolean();
            session.Selected = new HseConfiguration((BestService)reader.ReadByte(), reader.ReadBoolean(), (KeyAgreements)reader.ReadByte(), reader.ReadByte(), reader.ReadByte());
            session.N = session.Selected.CounterLength;
            var keyless = session.Selected.Service == BestService.None;
            Crypto.Aead.CipherSuite? suite = null;
            if (ControlCommand.TryParse(reader.ReadBytes(reader.ReadUInt16()), out var request) != ParseStatus.Ok || request is not SessionRequest sessionRequest
                || (!keyless && !Crypto.Aead.CipherSuite.TryGet(session.Selected.SuiteId, out suite)))
            {
                throw new InvalidDataException($"Session {id} was stored with an invalid request or suite.");
            }

            session.Request = sessionRequest;
            session.Suite = suite;
            session.CurrentRand = reader.ReadBytes(reader.ReadByte());
            if (reader.ReadBoolean())
            {
                session.EasPsk = reader.ReadBytes(32);
            }

            var expiry = reader.ReadInt64();
            session.KeyExpiry = expiry < 0 ? null : DateTimeOffset.FromUnixTimeMilliseconds(expiry);
            if (reader.ReadBoolean())
            {
                session.ForwardWindows = new ReplayWindow[8];
                for (var i = 0; i < 8; i++)
                {
                    session.ForwardWindows[i] = ReplayWindow.FromState(reader.ReadInt64(), reader.ReadUInt64());
                }
            }
            session.Keys.ReadState(reader, keyless);
            if (version >= 2 && reader.ReadByte() is var ekiLength and > 0)
            {
                session.EnterpriseKeyId = reader.ReadBytes(ekiLength);
            }

            foreach (var queued in snapshot.Queue)
            {
                session.Queue.Enqueue(queued);
            }

            session.State = suspended ? HseState.Suspended : HseState.Established;
            session.Persisted = true;
            session.RestoredAckBudget = ReplayWindow.Width;
            session.RestoredKeyId = session.Keys.CurrentKeyId;
            // In UE-to-EAS mode the user plane's counters are the forwarded ones (the HSE cannot open those messages).
            session.RestoredHighest = session.Selected.UeToEasMode && session.ForwardWindows is { } windows
                ? windows[session.Keys.CurrentKeyId].Highest
                : session.Keys.Current?.ReceiveHighest(Crypto.Aead.Plane.User) ?? -1;
        }
        catch (EndOfStreamException)
        {
            session.Dispose();
            throw new InvalidDataException($"Session {id} was stored truncated.");
        }
        catch
        {
            session.Dispose();
            throw;
        }

        if (_sessions.Remove(id, out var old))
        {
            old.Dispose();
        }

        _sessions[id] = session;
        _dirty.Remove(id);
        _neverUsed = Math.Max(_neverUsed, AlignSessionId(id + 1));
    }

    private HseSessionSnapshot Snapshot(HseSession session)
    {
        using var stream = new MemoryStream(4096); // never grows: no copy of the keys is left behind
        using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            writer.Write(SnapshotVersion);
            writer.Write(session.Id);
            writer.Write(session.Imsi);
            writer.Write(session.State == HseState.Suspended);
            var selected = session.Selected;
            writer.Write((byte)selected.Service);
            writer.Write(selected.UeToEasMode);
            writer.Write((byte)selected.KeyAgreement);
            writer.Write(selected.SuiteId);
            writer.Write(selected.CounterLength);
            var request = session.Request.Encode();
            writer.Write((ushort)request.Length);
            writer.Write(request);
            writer.Write((byte)session.CurrentRand.Length);
            writer.Write(session.CurrentRand);
            writer.Write(session.EasPsk is not null);
            if (session.EasPsk is not null)
            {
                writer.Write(session.EasPsk);
            }

            // A refresh in flight is not kept: the restored session runs it again at once.
            var expiry = session.Keys.PendingKeyId is not null ? Now : session.KeyExpiry;
            writer.Write(expiry?.ToUnixTimeMilliseconds() ?? -1);
            writer.Write(session.ForwardWindows is not null);
            foreach (var window in session.ForwardWindows ?? [])
            {
                writer.Write(window.Highest);
                writer.Write(window.Bitmap);
            }
            session.Keys.WriteState(writer);
            writer.Write((byte)(session.EnterpriseKeyId?.Length ?? 0));
            writer.Write(session.EnterpriseKeyId ?? []);
        }

        var state = stream.ToArray();
        CryptographicOperations.ZeroMemory(stream.GetBuffer());
        return new HseSessionSnapshot(session.Id, session.Imsi, session.Request.EasId, session.State == HseState.Suspended, state, session.QueuedCount == 0 ? [] : [.. session.Queue]);
    }
}
