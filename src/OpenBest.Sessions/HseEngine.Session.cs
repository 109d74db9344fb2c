using System.Security.Cryptography;
using OpenBest.Crypto.Aead;
using OpenBest.Crypto.Kdf;
using OpenBest.Protocol;

namespace OpenBest.Sessions;

public sealed partial class HseEngine
{
    /// <summary>Key ID 0 on an existing session: AKA failure Rejects while a Session Start is pending, or the no-security channel.</summary>
    private void OnUnprotected(HseSession session, ReadOnlySpan<byte> message, HeaderPrefix prefix, object? path, StepResult result)
    {
        if (EmsdpFrame.TryParse(message, prefix, 1, 0, out var frame) != ParseStatus.Ok)
        {
            Drop(result, session.Id, DropReason.Malformed);
            return;
        }

        if (session.Selected.Service == BestService.None && !session.Decoy && session.State is not HseState.Gone)
        {
            // The no-security channel (seed 000 section 3): every message has Key ID 0 and nothing is authenticated. User
            // data confirms and resumes the channel; Suspend, Resume and Terminate run unprotected (docs/protocol.md).
            if (prefix.Plane == Plane.User)
            {
                if (session.State is HseState.Terminating or HseState.Terminated)
                {
                    Drop(result, session.Id, DropReason.UnexpectedInState);
                    return;
                }

                if (session.State == HseState.StartSent)
                {
                    Confirm(session, result);
                }
                else if (session.State == HseState.Suspended)
                {
                    Resume(session, result);
                }

                var learned = session.Path is null;
                session.Path = path;
                session.Touch();
                result.Events.Add(new DataReceived(session.Id, 0, 0, frame.Body.ToArray(), false));
                if (learned && session.QueuedCount > 0)
                {
                    FlushQueue(session, result); // restored after a restart: what was queued meanwhile goes now
                }

                return;
            }

            if (session.State != HseState.StartSent && ControlCommand.TryParse(frame.Body, out var plainCommand) == ParseStatus.Ok
                && plainCommand is SessionTerminateRequest or SessionTerminateResponse or SessionSuspend or SessionResume)
            {
                session.Path = path;
                OnCommand(session, plainCommand, 0, fresh: true, result);
                return;
            }
        }

        if (prefix.Plane != Plane.Control || ControlCommand.TryParse(frame.Body, out var command) != ParseStatus.Ok || command is not MessageReject reject)
        {
            Drop(result, session.Id, DropReason.UnexpectedInState);
            return;
        }

        // Unauthenticated: acted on only for a session in "Session Start sent" (profile 6.2, AKA failures).
        if (session.State != HseState.StartSent || reject.RejectedCommand != (byte)CommandCode.SessionStart)
        {
            Drop(result, session.Id, DropReason.UnexpectedInState);
            return;
        }

        switch (reject.Cause)
        {
            case Cause.AkaMacFailure:
                // Drop the session; never another vector for it. A decoy is handled the same way.
                Remove(session);
                result.Events.Add(new SessionRejected(session.Id, Cause.AkaMacFailure));
                break;
            case Cause.AkaSynchronisationFailure when reject.Auts is { } auts && !session.ResyncDone && !session.Decoy:
                session.ResyncDone = true;
                if (!_subscribers.Resynchronise(session.Imsi, session.CurrentRand, auts.Span))
                {
                    Remove(session);
                    result.Events.Add(new SessionRejected(session.Id, Cause.AkaSynchronisationFailure));
                    return;
                }

                // A fresh Session Start: new RAND, same Session ID, the key set derived anew. The path stays
                // the request's source: an unauthenticated Reject never moves it (profile section 1).
                session.Deadline = Now + _options.ConfirmationTimeout;
                SendSessionStart(session, result);
                _answers[Convert.ToHexString(session.RequestHash)] = new CachedAnswer(session.StartMessage!, Now + _options.RetransmissionCacheLifetime);
                break;
            default:
                Drop(result, session.Id, DropReason.UnexpectedInState);
                break;
        }
    }

    private void OnProtected(HseSession session, ReadOnlySpan<byte> message, HeaderPrefix prefix, object? path, StepResult result)
    {
        var keys = session.Keys.Get(prefix.KeyId);
        if (keys is null || session.Suite is null)
        {
            Drop(result, session.Id, DropReason.UnknownSession);
            return;
        }

        if (EmsdpFrame.TryParse(message, prefix, session.N, session.Suite.TagSize(prefix.Plane), out var frame) != ParseStatus.Ok)
        {
            Drop(result, session.Id, DropReason.Malformed);
            return;
        }

        if (prefix.Plane == Plane.User && session.Selected.UeToEasMode)
        {
            Forward(session, keys, frame, path, result);
            return;
        }

        Span<byte> payload = stackalloc byte[frame.Body.Length];
        var opened = prefix.Plane == Plane.Control
            ? EmsdpProtection.OpenControl(keys, Direction.Uplink, frame)
            : EmsdpProtection.OpenUser(keys, Direction.Uplink, frame, payload);
        switch (opened.Status)
        {
            case OpenStatus.TagFailed:
                Drop(result, session.Id, DropReason.TagFailed);
                CheckIntegrityLimit(session, keys, result);
                return;
            case OpenStatus.OutsideWindow:
                Drop(result, session.Id, DropReason.Replay);
                return;
            case OpenStatus.NoKey:
                Drop(result, session.Id, DropReason.UnknownSession);
                return;
        }

        var fresh = opened.Status == OpenStatus.Accepted;
        if (fresh)
        {
            session.Touch();
            // The peer path moves only with a verified message above the highest accepted (profile section 1).
            // A session restored after a restart has none until then; what it queued meanwhile goes now.
            if ((long)opened.Counter == keys.ReceiveHighest(prefix.Plane) || session.Path is null)
            {
                var learned = session.Path is null;
                session.Path = path;
                if (learned && session.State == HseState.Established && session.QueuedCount > 0)
                {
                    FlushQueue(session, result);
                }
            }

            if (session.State == HseState.StartSent && prefix.KeyId == session.Keys.CurrentKeyId)
            {
                // Any verified message confirms the keys, except a Reject (the UE refusing the Session Start);
                // key agreement only needs the explicit Confirmation.
                var explicitConfirmation = prefix.Plane == Plane.Control && frame.Body[0] == (byte)CommandCode.SessionStartConfirmation;
                var reject = prefix.Plane == Plane.Control && frame.Body[0] == (byte)CommandCode.MessageReject;
                if (!reject && (session.Selected.Service != BestService.KeyAgreementOnly || explicitConfirmation))
                {
                    Confirm(session, result);
                }
            }
            else if (prefix.KeyId == session.Keys.PendingKeyId)
            {
                session.Keys.Promote(Now, _options.KeyGracePeriod);
                session.Outstanding = null;
                session.PendingRand = null;
                session.EnterpriseKeyId = session.PendingEnterpriseKeyId;
                session.PendingEnterpriseKeyId = null;
                session.KeyExpiry = _options.KeyLifetime is { } lifetime ? Now + lifetime : null;
                result.Events.Add(new KeysRefreshed(session.Id, prefix.KeyId));
                if (NeedsEasKeys(session.Selected) && session.EasPsk is not null)
                {
                    result.Events.Add(new EasKeysReady(session.Id, session.Request.EasId, prefix.KeyId, session.Suite, session.Selected.Service, session.N, BestKeys.EasKeyIdentifier(session.CurrentRand), session.EasPsk.ToArray()) { UeToEasMode = session.Selected.UeToEasMode, EnterpriseKeyIdentifier = session.EnterpriseKeyId?.ToArray() });
                }

                // Only now (a new refresh replaces the session's RAND and K_EAS_PSK with the pending set's).
                RefreshAgainIfAsked(session, result);
            }

            // Any authenticated UE message resumes a suspended session, except a Data Ack: it answers a push, and the
            // device stays suspended (docs/protocol.md, "Suspend, resume and push").
            var dataAck = prefix.Plane == Plane.Control && frame.Body.Length > 0 && frame.Body[0] == (byte)CommandCode.DataAck;
            if (session.State == HseState.Suspended && !dataAck)
            {
                Resume(session, result);
            }
        }

        if (prefix.Plane == Plane.User)
        {
            if (fresh)
            {
                result.Events.Add(new DataReceived(session.Id, prefix.KeyId, opened.Counter, payload.ToArray(), prefix.AckRequested));
            }

            if (prefix.AckRequested)
            {
                // A duplicate's Ack goes back where the duplicate came from: an old message replayed from
                // elsewhere never moves the session's path (profile section 1).
                SendAck(session, prefix.KeyId, opened.Counter, fresh, null, result, fresh ? null : path);
            }

            return;
        }

        if (ControlCommand.TryParse(frame.Body, out var command) != ParseStatus.Ok)
        {
            Drop(result, session.Id, DropReason.Malformed);
            return;
        }

        OnCommand(session, command!, prefix.KeyId, fresh, result);
    }

    /// <summary>
    /// A Data Ack for (Key ID, counter): sealed once; a duplicate gets the stored bytes again, never a new seal
    /// (profile section 3: "its Data Ack is sent again, rate limited").
    /// </summary>
    private static void SendAck(HseSession session, byte keyId, ulong counter, bool fresh, ReadOnlyMemory<byte>? ackedTag, StepResult result, object? to = null)
    {
        if (session.Acks.TryGet(keyId, counter, out var stored))
        {
            result.Add(stored, to ?? session.Path);
            return;
        }

        if (!fresh)
        {
            // Too old to have its Ack stored: nothing new is sealed for a replay. After a restart the cache is
            // empty, so Acks for messages accepted before it (at most the window's width of them, and only at or
            // below the highest counter restored) are sealed anew.
            if (session.RestoredAckBudget <= 0 || keyId != session.RestoredKeyId || (long)counter > session.RestoredHighest)
            {
                return;
            }

            session.RestoredAckBudget--;
        }

        var current = session.Keys.CurrentKeyId;
        var bytes = session.Keys.SealControl(session.Keys.Current!, session.Id, session.N, new DataAck(Wire.Low32(counter), current == keyId ? null : keyId, ackedTag));
        session.Touch();
        result.Add(bytes, to ?? session.Path);
        session.Acks.Add(keyId, counter, bytes);
    }

    private void OnCommand(HseSession session, ControlCommand command, byte messageKeyId, bool fresh, StepResult result)
    {
        switch (command)
        {
            case SessionStartConfirmation or ManageKeysResponse:
                break;
            case SessionTerminateRequest terminate:
                if (fresh || session.TerminateResponse is null)
                {
                    session.TerminateResponse = SendControl(session, SessionTerminateResponse.Instance, result);
                    session.Outstanding = null; // both ends may terminate at once: ours is answered by theirs
                    if (session.State != HseState.Terminated)
                    {
                        session.State = HseState.Terminated;
                        session.Deadline = Now + _options.TerminateLinger;
                        result.Events.Add(new SessionTerminated(session.Id, terminate.Cause, ByPeer: true));
                        EndDeliveries(session, result);
                    }
                }
                else
                {
                    result.Add(session.TerminateResponse, session.Path);
                }

                break;
            case SessionTerminateResponse when session.State == HseState.Terminating:
                session.Outstanding = null;
                session.State = HseState.Terminated;
                session.Deadline = Now + _options.TerminateLinger;
                result.Events.Add(new SessionTerminated(session.Id, null, ByPeer: false));
                EndDeliveries(session, result);
                break;
            case ManageKeysRequest { IsUeRequest: true } when fresh:
                if (session.Keys.PendingKeyId is null)
                {
                    StartRefresh(session, result);
                }

                break;
            case MessageReject reject when fresh:
                OnProtectedReject(session, reject, result);
                break;
            case SessionSuspend when fresh && session.State == HseState.Established:
                session.State = HseState.Suspended;
                result.Events.Add(new SessionSuspended(session.Id, ByPeer: true));
                break;
            case SessionResume when fresh:
                if (session.State == HseState.Suspended)
                {
                    Resume(session, result);
                }

                break;
            case DataAck ack when fresh:
                // Without a Key ID TLV the acknowledged message used the Ack's own key set (profile 6.2).
                var keyId = ack.AckedKeyId ?? messageKeyId;
                var counter = Reconstruct32(session.Keys.Get(keyId)?.NextUserCounter ?? 0, ack.AckedCounter);
                session.Keys.Acknowledged(keyId, counter);
                result.Events.Add(new DataAcknowledged(session.Id, keyId, counter) { Token = Delivered(session, keyId, counter) });
                break;
            default:
                if (fresh)
                {
                    Drop(result, session.Id, DropReason.UnexpectedInState);
                }

                break;
        }
    }

    private void OnProtectedReject(HseSession session, MessageReject reject, StepResult result)
    {
        if (reject.RejectedCommand == (byte)CommandCode.SessionStart && session.State == HseState.StartSent)
        {
            // The UE verified our Session Start and refuses its selection: the session never existed.
            Remove(session);
            result.Events.Add(new SessionRejected(session.Id, reject.Cause));
            return;
        }

        if (reject.RejectedCommand == (byte)CommandCode.ManageKeysRequest && session.PendingRand is { } rand)
        {
            if (reject.Cause == Cause.AkaSynchronisationFailure && reject.Auts is { } auts && !session.RefreshResyncDone
                && _subscribers.Resynchronise(session.Imsi, rand, auts.Span))
            {
                session.RefreshResyncDone = true;
                session.Keys.DropPending();
                StartRefresh(session, result, afterResync: true);
                return;
            }

            // A MAC failure, a second sync failure, or an Enterprise Key the UE does not hold: give up this refresh;
            // the current keys stay.
            session.Keys.DropPending();
            session.Outstanding = null;
            session.PendingRand = null;
            if (reject.Cause == Cause.NoCommonSuite && session.PendingEnterpriseKeyId is { } refused)
            {
                result.Events.Add(new EnterpriseKeyRefused(session.Id, session.Request.EasId, refused));
            }

            session.PendingEnterpriseKeyId = null;
            RefreshAgainIfAsked(session, result);
        }

        result.Events.Add(new SessionRejected(session.Id, reject.Cause, reject.BackOffSeconds is { } s ? TimeSpan.FromSeconds(s) : null));
    }

    private void Confirm(HseSession session, StepResult result)
    {
        session.State = HseState.Established;
        // What only the pending Session Start needed: an established session keeps its keys, not its setup.
        session.StartMessage = null;
        session.RequestHash = [];
        session.KeyExpiry = _options.KeyLifetime is { } lifetime ? Now + lifetime : null;
        var suite = session.Suite ?? CipherSuite.Aes128Ccm8;
        result.Events.Add(new SessionEstablished(session.Id, session.Keys.CurrentKeyId, session.Selected.Service, suite, session.N, session.Selected.UeToEasMode, session.Request.EasId));
        if (NeedsEasKeys(session.Selected) && session.EasPsk is not null)
        {
            result.Events.Add(new EasKeysReady(session.Id, session.Request.EasId, session.Keys.CurrentKeyId, suite, session.Selected.Service, session.N, BestKeys.EasKeyIdentifier(session.CurrentRand), session.EasPsk.ToArray()) { UeToEasMode = session.Selected.UeToEasMode, EnterpriseKeyIdentifier = session.EnterpriseKeyId?.ToArray() });
        }

        // UE-to-EAS mode: the Enterprise Key the EAS chose for this UE is named now that the UE authenticated, in a
        // refresh right away (the first key set had none).
        if (session.Selected.UeToEasMode && EnterpriseKeyIdentifierFor(session) is { } chosen)
        {
            StartRefresh(session, result, enterpriseKeyId: chosen);
        }
    }

    private void Resume(HseSession session, StepResult result)
    {
        session.State = HseState.Established;
        result.Events.Add(new SessionResumed(session.Id));
        FlushQueue(session, result);
    }

    private void FlushQueue(HseSession session, StepResult result)
    {
        var now = Now;
        while (session.QueuedCount > 0 && session.Queue.TryDequeue(out var queued))
        {
            // Each queued message is sealed only now, when it is delivered (profile 6.2); one paged while suspended and not
            // acknowledged goes again under a new counter (the device drops a repeat by its push message id).
            session.Touch();
            if (queued.Expires > now)
            {
                SendUser(session, queued.Payload.Span, queued.AckRequested, queued.Token, result);
            }
            else
            {
                GiveUp(session, queued, DownlinkUndelivered.Expired, result);
            }
        }
    }

    /// <summary>
    /// The UE acknowledged the downlink (Key ID, counter): a paged message waiting in the queue under it leaves the queue,
    /// and the application's token of the message (0 when none, or already reported) is returned.
    /// </summary>
    private static long Delivered(HseSession session, byte keyId, ulong counter)
    {
        long token = 0;
        if (keyId != 0 && session.QueuedCount > 0 && session.Queue.Any(q => q.PagedKeyId == keyId && q.PagedCounter == counter))
        {
            var kept = session.Queue.Where(q => !(q.PagedKeyId == keyId && q.PagedCounter == counter)).ToList();
            token = session.Queue.First(q => q.PagedKeyId == keyId && q.PagedCounter == counter).Token;
            session.Queue.Clear();
            foreach (var q in kept)
            {
                session.Queue.Enqueue(q);
            }

            session.Touch();
        }

        var sent = session.HasTokens ? session.Tokens.Take(keyId, counter) : 0;
        token = token != 0 ? token : sent;
        if (token != 0)
        {
            session.ForgetToken(token); // reported once, whichever of its copies (paged, flushed) is acknowledged
        }

        return token;
    }

    private void Forward(HseSession session, KeySet keys, in EmsdpFrame frame, object? path, StepResult result)
    {
        if (session.State is not (HseState.Established or HseState.Suspended or HseState.StartSent))
        {
            Drop(result, session.Id, DropReason.UnexpectedInState);
            return;
        }

        // The HSE cannot verify E2E traffic: it forwards (rate limited), and its Data Ack means "forwarded" (profile 6.2).
        var second = Now.ToUnixTimeSeconds();
        if (session.ForwardSecond != second)
        {
            session.ForwardSecond = second;
            session.ForwardsThisSecond = 0;
        }

        if (++session.ForwardsThisSecond > _options.MaxForwardsPerSessionPerSecond)
        {
            Drop(result, session.Id, DropReason.RateLimited);
            return;
        }

        session.ForwardWindows ??= NewWindows();
        var window = session.ForwardWindows[keys.KeyId];
        var counter = window.Reconstruct(frame.CounterField, frame.CounterLength);
        var fresh = window.IsAcceptable(counter);
        if (fresh)
        {
            window.Accept(counter);
            session.Touch();
        }

        session.ForwardWindows[keys.KeyId] = window;
        result.Events.Add(new UplinkForwarded(session.Id, session.Request.EasId, keys.KeyId, frame.Message.ToArray()));
        if (frame.Prefix.AckRequested && session.Keys.Current is not null)
        {
            // To where the message came from: the HSE cannot verify it, so it never moves the session's path (profile
            // section 1), but its answer must reach the device even while the session has no path (after a restart, or a
            // cluster shard's move), as a Session Request's answer goes to its source (docs/protocol.md, "UE-to-EAS mode").
            SendAck(session, keys.KeyId, counter, fresh, frame.Tag[..4].ToArray(), result, path);
        }
    }

    private static ReplayWindow[] NewWindows()
    {
        var windows = new ReplayWindow[8];
        for (var i = 0; i < windows.Length; i++)
        {
            windows[i] = new ReplayWindow();
        }

        return windows;
    }

    private void StartRefresh(HseSession session, StepResult result, bool afterResync = false, byte[]? enterpriseKeyId = null)
    {
        if (session.Keys.Current is null)
        {
            return;
        }

        var keyId = Wire.NextKeyId(session.Keys.CurrentKeyId);
        if (!session.Keys.IsFree(keyId))
        {
            // A refresh in flight serves, unless it names another Enterprise Key than the one wanted now; a Key ID still
            // held by a set in its grace period: this refresh runs when it is free.
            session.RefreshAgain |= session.Keys.PendingKeyId is null
                || (session.Selected.UeToEasMode && !(enterpriseKeyId ?? EnterpriseKeyIdentifierFor(session)).AsSpan().SequenceEqual(session.PendingEnterpriseKeyId));
            return;
        }

        session.RefreshAgain = false;
        // Looked up before anything changes (it may call the store).
        enterpriseKeyId ??= EnterpriseKeyIdentifierFor(session);
        using var vector = _subscribers.CreateVector(session.Imsi, Wire.ContextOf(session.Selected.KeyAgreement));
        if (vector is null)
        {
            return;
        }

        Counters.VectorsUsed++;
        if (!afterResync)
        {
            session.RefreshResyncDone = false;
        }

        var kRoot = SessionKeyRoot.Derive(session.Selected.KeyAgreement, vector.Ck, vector.Ik, vector.SqnXorAk, session.Request.ServingNetwork);
        try
        {
            var pending = KeySet.Derive(EndpointRole.Hse, kRoot, session.Suite!, session.Selected.Service, session.Selected.UeToEasMode, session.Id, keyId, vector.Rand, session.Request.UeNonce.Span, session.Request.EasId);
            session.Keys.InstallPending(pending);
            if (session.ForwardWindows is { } windows)
            {
                windows[keyId] = new ReplayWindow();
            }
            if (NeedsEasKeys(session.Selected))
            {
                session.EasPsk ??= new byte[32];
                KeySet.DeriveEasPsk(kRoot, session.Id, keyId, vector.Rand, session.Request.UeNonce.Span, session.Request.EasId, session.EasPsk);
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(kRoot);
        }

        session.PendingRand = vector.Rand.ToArray();
        session.CurrentRand = session.PendingRand;
        session.PendingEnterpriseKeyId = enterpriseKeyId;
        var request = new ManageKeysRequest(keyId, vector.Rand.ToArray(), vector.Autn.ToArray(),
            EnterpriseKeyIdentifier: enterpriseKeyId is { } eki ? (ReadOnlyMemory<byte>?)eki : null,
            KeyLifetime: _options.KeyLifetime is { } lifetime ? (uint)lifetime.TotalSeconds : null,
            EasKeyIdentifier: NeedsEasKeys(session.Selected) ? BestKeys.EasKeyIdentifier(vector.Rand) : null);
        var bytes = SendControl(session, request, result);
        session.Outstanding = new Outstanding(bytes, CommandCode.ManageKeysRequest, Now + _options.RetransmissionInterval);
    }

    /// <summary>Runs a refresh that was asked for while another was in flight.</summary>
    private void RefreshAgainIfAsked(HseSession session, StepResult result)
    {
        if (session.RefreshAgain && session.State == HseState.Established && session.Keys.PendingKeyId is null)
        {
            StartRefresh(session, result);
        }
    }

    private void CheckIntegrityLimit(HseSession session, KeySet keys, StepResult result)
    {
        var limit = keys.Suite.UserPlaneTagSize <= 4 ? 1L << 16 : 1L << 32;
        if (keys.TagFailures >= limit && keys.KeyId == session.Keys.CurrentKeyId && session.Keys.PendingKeyId is null && session.State == HseState.Established)
        {
            StartRefresh(session, result);
        }
    }

    private void TickSession(HseSession session, DateTimeOffset now, StepResult result)
    {
        if (session.Keys.Expire(now))
        {
            session.Touch();
        }

        if (session.RefreshAgain && session.Outstanding is null)
        {
            RefreshAgainIfAsked(session, result); // e.g. once an old set's grace period ended and its Key ID is free
        }

        switch (session.State)
        {
            case HseState.StartSent when now >= session.Deadline:
                Remove(session);
                if (!session.Decoy)
                {
                    result.Events.Add(new SessionTerminated(session.Id, null, ByPeer: false));
                }

                return;
            case HseState.Terminated when now >= session.Deadline:
                Remove(session);
                return;
        }

        if (session.Outstanding is { } outstanding && now >= outstanding.NextSend)
        {
            if (outstanding.Retries >= _options.MaxRetransmissions)
            {
                session.Outstanding = null;
                if (outstanding.Code == CommandCode.ManageKeysRequest)
                {
                    session.Keys.DropPending();
                    session.PendingRand = null;
                    session.PendingEnterpriseKeyId = null; // a UE with data waiting for its key asks again itself
                }
                else if (outstanding.Code == CommandCode.SessionTerminateRequest)
                {
                    session.State = HseState.Terminated;
                    session.Deadline = now + _options.TerminateLinger;
                    result.Events.Add(new SessionTerminated(session.Id, null, ByPeer: false));
                    EndDeliveries(session, result);
                }
            }
            else
            {
                // A retransmission re-sends the stored bytes unchanged (profile section 3).
                result.Add(outstanding.Message, session.Path);
                var interval = _options.RetransmissionInterval * Math.Pow(2, outstanding.Retries + 1);
                session.Outstanding = outstanding with { Retries = outstanding.Retries + 1, NextSend = now + interval };
            }
        }

        if (session.State == HseState.Established && session.KeyExpiry is { } expiry && now >= expiry && session.Keys.PendingKeyId is null)
        {
            session.KeyExpiry = null;
            StartRefresh(session, result);
        }

        // Every expired entry, not only the head: messages carry their own time to live, so a short one can wait behind a long one.
        if (session.QueuedCount > 0 && session.Queue.Any(q => q.Expires <= now))
        {
            var kept = new Queue<QueuedDownlink>();
            while (session.Queue.TryDequeue(out var queued))
            {
                if (queued.Expires > now)
                {
                    kept.Enqueue(queued);
                    continue;
                }

                Drop(result, session.Id, DropReason.RateLimited);
                GiveUp(session, queued, DownlinkUndelivered.Expired, result);
            }

            while (kept.TryDequeue(out var queued))
            {
                session.Queue.Enqueue(queued);
            }

            session.Touch();
        }
    }

    private void Remove(HseSession session)
    {
        session.State = HseState.Gone;
        if (session.Persisted)
        {
            _ended.Add(session.Id);
        }

        _sessions.Remove(session.Id);
        session.Dispose();
        Release(session.Id);
    }

    /// <summary>The full counter whose low 32 bits are <paramref name="low32"/>, at or below <paramref name="next"/>.</summary>
    private static ulong Reconstruct32(ulong next, uint low32)
    {
        var candidate = (next & ~0xFFFF_FFFFUL) | low32;
        return candidate >= next && candidate >= 1UL << 32 ? candidate - (1UL << 32) : candidate;
    }
}
