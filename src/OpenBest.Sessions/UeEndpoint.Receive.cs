using System.Security.Cryptography;
using OpenBest.Crypto.Aead;
using OpenBest.Crypto.Aka;
using OpenBest.Crypto.Kdf;
using OpenBest.Protocol;

namespace OpenBest.Sessions;

public sealed partial class UeEndpoint
{
    /// <summary>Feeds one message received on the bearer.</summary>
    public StepResult Receive(ReadOnlySpan<byte> message)
    {
        var result = new StepResult();
        if (HeaderPrefix.TryRead(message, out var prefix) != ParseStatus.Ok)
        {
            Drop(result, 0, DropReason.NotEmsdp);
            return result;
        }

        var channel = prefix.SessionId == 0 ? null : _channels.Values.FirstOrDefault(c => c.SessionId == prefix.SessionId && c.State is not (ChannelState.Requesting or ChannelState.Failed));
        if (channel is not null)
        {
            OnChannelMessage(channel, message, prefix, result);
            return result;
        }

        if (prefix.Plane != Plane.Control)
        {
            Drop(result, prefix.SessionId, DropReason.UnknownSession);
            return result;
        }

        if (prefix.KeyId == 0 && EmsdpFrame.TryParse(message, prefix, 1, 0, out var plain) == ParseStatus.Ok
            && plain.Body.Length > 0 && plain.Body[0] == (byte)CommandCode.MessageReject)
        {
            OnUnprotectedReject(plain, result);
            return result;
        }

        // A CP message for no known session: a Session Start candidate (n = 1). A byte-identical copy of an
        // accepted one is dropped before parsing.
        var hash = Convert.ToHexString(SHA256.HashData(message));
        if (_acceptedStarts.Contains(hash))
        {
            Drop(result, prefix.SessionId, DropReason.Replay);
            return result;
        }

        OnSessionStartCandidate(message, prefix, hash, result);
        return result;
    }

    /// <summary>Runs the timers: retransmissions of requests and acknowledged uplink, back-off, grace periods.</summary>
    public StepResult Tick()
    {
        var result = new StepResult();
        var now = Now;
        foreach (var c in _channels.Values)
        {
            c.Keys.Expire(now);
            if (c.Held.Count > 0)
            {
                TickHeld(c, now, result);
            }

            if (c.State == ChannelState.Terminated && c.TerminatedAt is { } at && now - at >= TerminateLinger)
            {
                // Keys kept 30 s to answer a retransmitted Terminate, then erased; the Session ID is free again.
                c.Keys.Dispose();
                c.SessionId = 0;
                c.TerminatedAt = null;
            }

            if (c.Outstanding is { } o && now >= o.NextSend && (c.BackOffUntil is null || now >= c.BackOffUntil))
            {
                if (o.Retries >= _options.MaxRetransmissions)
                {
                    c.Outstanding = null;
                    switch (o.Code)
                    {
                        case CommandCode.SessionRequest:
                            c.State = ChannelState.Failed;
                            result.Events.Add(new SessionRejected(0, c.LastHint == Cause.None ? Cause.UnknownSession : c.LastHint));
                            break;
                        case CommandCode.SessionTerminateRequest:
                            c.State = ChannelState.Terminated;
                            c.TerminatedAt = now;
                            result.Events.Add(new SessionTerminated(c.SessionId, null, ByPeer: false));
                            break;
                    }
                }
                else
                {
                    // Re-send the stored bytes unchanged, with a doubling interval.
                    result.Add(o.Message, null);
                    c.Outstanding = o with { Retries = o.Retries + 1, NextSend = now + (_options.RetransmissionInterval * Math.Pow(2, o.Retries + 1)) };
                }
            }

            foreach (var (key, pending) in c.Unacked.Where(p => now >= p.Value.NextSend).ToList())
            {
                if (pending.Retries >= _options.MaxRetransmissions)
                {
                    // No Data Ack after the retries: resynchronise with a new Session Request (profile section 3);
                    // unacknowledged payloads go again once the new session is up.
                    c.Pending.AddRange(c.Unacked.Values.OrderBy(p => p.NextSend).Select(p => (p.Payload, p.Token)));
                    c.Unacked.Clear();
                    c.Keys.Dispose();
                    c.SessionId = 0;
                    SendRequest(c, result);
                    break;
                }

                result.Add(pending.Message, null);
                c.Unacked[key] = pending with { Retries = pending.Retries + 1, NextSend = now + (_options.RetransmissionInterval * Math.Pow(2, pending.Retries + 1)) };
            }
        }

        return result;
    }

    private static readonly TimeSpan TerminateLinger = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Data waiting for a key set with an Enterprise Key: dropped (with its token) after <see cref="UeOptions.MaxHoldTime"/>,
    /// and while it waits the UE asks the HSE for new keys (an empty Manage Keys Request) after 10 s, then at doubling
    /// intervals up to 5 min, in case the refresh that names the key was lost.
    /// </summary>
    private void TickHeld(Channel c, DateTimeOffset now, StepResult result)
    {
        while (c.Held.TryPeek(out var oldest) && now - oldest.Since >= _options.MaxHoldTime)
        {
            c.Held.Dequeue();
            result.Events.Add(new HeldDataDropped(c.SessionId, oldest.Token));
        }

        if (c.Held.Count > 0 && c.State == ChannelState.Established && c.Outstanding is null && c.Keys.PendingKeyId is null && now >= c.NextKeyAsk)
        {
            var bytes = SendControl(c, ManageKeysRequest.FromUe, result);
            c.Outstanding = new Outstanding(bytes, CommandCode.ManageKeysRequest, now + _options.RetransmissionInterval);
            c.KeyAskInterval = c.KeyAskInterval == TimeSpan.Zero ? TimeSpan.FromSeconds(10) : TimeSpan.FromTicks(Math.Min(c.KeyAskInterval.Ticks * 2, TimeSpan.FromMinutes(5).Ticks));
            c.NextKeyAsk = now + c.KeyAskInterval;
        }
    }

    private void OnUnprotectedReject(in EmsdpFrame frame, StepResult result)
    {
        if (ControlCommand.TryParse(frame.Body, out var command) != ParseStatus.Ok || command is not MessageReject reject)
        {
            Drop(result, frame.Prefix.SessionId, DropReason.Malformed);
            return;
        }

        // Only a hint: honoured only when it echoes a pending request's checksum; never changes confirmed keys.
        var channel = _channels.Values.FirstOrDefault(c => c.State == ChannelState.Requesting && reject.RequestChecksum is { } sum && c.Requests.Any(r => sum.Span.SequenceEqual(r.Checksum)));
        if (channel is null)
        {
            Drop(result, frame.Prefix.SessionId, DropReason.UnexpectedInState);
            return;
        }

        channel.LastHint = reject.Cause;
        switch (reject.Cause)
        {
            case Cause.CookieRequired when reject.Cookie is { } cookie && channel.Requests.Count < 3:
                SendRequest(channel, result, cookie);
                break;
            case Cause.Congestion when reject.BackOffSeconds is { } seconds:
                // Cap the unprotected back-off to our own maximum and randomise it.
                var capped = TimeSpan.FromSeconds(Math.Min(seconds, _options.MaxBackOff.TotalSeconds));
                channel.BackOffUntil = Now + (capped * (0.5 + (Random.Shared.NextDouble() / 2)));
                result.Events.Add(new SessionRejected(0, reject.Cause, capped));
                break;
            default:
                result.Events.Add(new SessionRejected(0, reject.Cause));
                break;
        }
    }

    private void OnSessionStartCandidate(ReadOnlySpan<byte> message, HeaderPrefix prefix, string hash, StepResult result)
    {
        // The tag length depends on the suite inside the body: try each CP tag size the suites use.
        foreach (var tagLength in prefix.KeyId == 0 ? [0] : (ReadOnlySpan<int>)[8, 16])
        {
            if (EmsdpFrame.TryParse(message, prefix, 1, tagLength, out var frame) != ParseStatus.Ok
                || ControlCommand.TryParse(frame.Body, out var command) != ParseStatus.Ok || command is not SessionStart start)
            {
                continue;
            }

            if (prefix.KeyId != 0 && (!CipherSuite.TryGet(start.Configuration.SuiteId, out var s) || s.ControlPlaneTagSize != tagLength))
            {
                continue;
            }

            OnSessionStart(message, frame, start, hash, result);
            return;
        }

        Drop(result, prefix.SessionId, DropReason.Malformed);
    }

    private void OnSessionStart(ReadOnlySpan<byte> message, in EmsdpFrame frame, SessionStart start, string hash, StepResult result)
    {
        var sessionId = frame.Prefix.SessionId;
        var channel = _channels.Values.FirstOrDefault(c => c.State == ChannelState.Requesting && c.Requests.Any(r => start.RequestChecksum.Span.SequenceEqual(r.Checksum)));
        if (channel is null || sessionId == 0)
        {
            Drop(result, sessionId, DropReason.SessionStartCheckFailed);
            return;
        }

        var requestHash = channel.Requests.First(r => start.RequestChecksum.Span.SequenceEqual(r.Checksum)).Hash;

        var o = channel.Options;
        var selected = start.Configuration;
        var keyIdOk = (frame.Prefix.KeyId == 0) == (selected.Service == BestService.None) && (frame.Prefix.KeyId is 0 or 1);
        var serviceOk = selected.Service == o.Service
            || (selected.Service != BestService.None && o.Service != BestService.None && selected.Service != BestService.KeyAgreementOnly && (int)selected.Service >= (int)o.MinimumService);
        var selectionOk = keyIdOk && serviceOk && selected.UeToEasMode == o.UeToEasMode
            && (o.KeyAgreements & selected.KeyAgreement) != 0
            && (selected.Service == BestService.None || (CipherSuite.TryGet(selected.SuiteId, out var offeredSuite) && (o.Suites & offeredSuite.BitmapBit) != 0))
            && (o.CounterSchemes & (selected.CounterLength switch { 1 => CounterSchemes.OneOctet, 2 => CounterSchemes.TwoOctets, _ => CounterSchemes.FourOctets })) != 0
            && (selected.KeyAgreement != KeyAgreements.EpsAka || o.ServingNetwork is { Name: null })
            && (selected.KeyAgreement is not (KeyAgreements.FiveGAka or KeyAgreements.EapAkaPrime) || o.ServingNetwork is { Name: not null });

        // Selections no key can come from (a Key ID that contradicts the service, a key agreement without the
        // serving network it needs, no valid suite) are dropped before the USIM spends an SQN on them.
        var derivable = keyIdOk
            && (selected.Service == BestService.None || CipherSuite.TryGet(selected.SuiteId, out _))
            && selected.KeyAgreement switch
            {
                KeyAgreements.UmtsAka => true,
                KeyAgreements.EpsAka => o.ServingNetwork is { Name: null },
                KeyAgreements.FiveGAka or KeyAgreements.EapAkaPrime => o.ServingNetwork is { Name: not null },
                _ => false,
            };
        if (!derivable)
        {
            Drop(result, sessionId, DropReason.SessionStartCheckFailed);
            return;
        }

        using var answer = _usim.Authenticate(start.Rand.Span, start.Autn.Span);
        if (answer.Status == UsimAuthenticationStatus.MacFailure)
        {
            SendAkaReject(sessionId, new MessageReject(Cause.AkaMacFailure, (byte)CommandCode.SessionStart), result);
            return;
        }

        if (answer.Status == UsimAuthenticationStatus.SynchronisationFailure)
        {
            // At most one AUTS per pending request.
            if (!channel.AutsSent)
            {
                channel.AutsSent = true;
                SendAkaReject(sessionId, new MessageReject(Cause.AkaSynchronisationFailure, (byte)CommandCode.SessionStart, Auts: answer.Auts.ToArray()), result);
            }

            return;
        }

        if (!AmfAcceptable(answer.Amf, selected.KeyAgreement))
        {
            Drop(result, sessionId, DropReason.SessionStartCheckFailed);
            return;
        }

        if (selected.Service == BestService.None)
        {
            if (!selectionOk)
            {
                Drop(result, sessionId, DropReason.SessionStartCheckFailed);
                return;
            }

            Accept(channel, sessionId, selected, hash, result);
            return;
        }

        // UE-to-EAS mode: the Enterprise Key the EAS chose, by its identifier (TLV 0x0E); one this device does not hold
        // is a selection it cannot accept (Reject 0x08).
        var enterpriseKey = o.EnterpriseKeyFor(start.EnterpriseKeyIdentifier);
        selectionOk &= enterpriseKey is not null || !selected.UeToEasMode;
        CipherSuite.TryGet(selected.SuiteId, out var suite);
        var kRoot = SessionKeyRoot.Derive(selected.KeyAgreement, answer.Ck, answer.Ik, start.Autn.Span[..6], o.ServingNetwork);
        KeySet keys;
        byte[]? easPsk = null;
        try
        {
            keys = KeySet.Derive(EndpointRole.Ue, kRoot, suite!, selected.Service, selected.UeToEasMode, sessionId, 1, start.Rand.Span, channel.UeNonce, o.EasId, (enterpriseKey ?? default).Span);
            easPsk = EasPskOf(selected, kRoot, sessionId, 1, start.Rand.Span, channel.UeNonce, o.EasId);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(kRoot);
        }

        var opened = EmsdpProtection.OpenControl(keys, Direction.Downlink, frame, requestHash);
        if (opened.Status != OpenStatus.Accepted || opened.Counter != 0 || !selectionOk)
        {
            if (easPsk is not null)
            {
                CryptographicOperations.ZeroMemory(easPsk);
            }
        }

        if (opened.Status != OpenStatus.Accepted || opened.Counter != 0)
        {
            keys.Dispose();
            Drop(result, sessionId, DropReason.TagFailed);
            return;
        }

        if (!selectionOk)
        {
            // An authentic Session Start whose selection we do not accept: a protected Reject 0x08.
            channel.SessionId = sessionId;
            channel.N = selected.CounterLength;
            channel.Keys.InstallCurrent(keys);
            SendControl(channel, new MessageReject(Cause.NoCommonSuite, (byte)CommandCode.SessionStart), result);
            channel.Keys.Dispose();
            channel.State = ChannelState.Failed;
            channel.Outstanding = null;
            result.Events.Add(new SessionRejected(sessionId, Cause.NoCommonSuite));
            return;
        }

        channel.Keys.InstallCurrent(keys);
        channel.EnterpriseKeyIdentifier = start.EnterpriseKeyIdentifier?.ToArray();
        Array.Clear(channel.HasEnterpriseKey); // a new session: no key set of an earlier one counts
        channel.HasEnterpriseKey[1] = enterpriseKey is { IsEmpty: false };
        channel.AcceptedStart = message.ToArray();
        channel.SetEasPsk(easPsk, BestKeys.EasKeyIdentifier(start.Rand.Span));
        Accept(channel, sessionId, selected, hash, result);
        // An explicit Confirmation when asked, when there is no first payload, and in UE-to-EAS mode, where the
        // HSE cannot verify the UP message that would otherwise confirm.
        if (start.ConfirmationRequired || channel.FirstPayload is null || selected.UeToEasMode)
        {
            SendControl(channel, SessionStartConfirmation.Instance, result);
        }

        if (channel.FirstPayload is { } first && keys.HasUserKey)
        {
            channel.FirstPayload = null;
            SendUser(channel, first.Span, false, result);
        }

        foreach (var (payload, token) in channel.Pending)
        {
            SendUser(channel, payload, true, result, token);
        }

        channel.Pending.Clear();
    }

    private void Accept(Channel channel, uint sessionId, HseConfiguration selected, string hash, StepResult result)
    {
        _acceptedStarts.Add(hash);
        channel.SessionId = sessionId;
        channel.Selected = selected;
        channel.N = selected.CounterLength;
        channel.State = ChannelState.Established;
        channel.Outstanding = null;
        CipherSuite.TryGet(selected.SuiteId, out var suite);
        result.Events.Add(new SessionEstablished(sessionId, channel.Keys.CurrentKeyId, selected.Service, suite ?? CipherSuite.Aes128Ccm8, selected.CounterLength, selected.UeToEasMode, channel.Options.EasId));
    }

    private bool AmfAcceptable(ushort amf, KeyAgreements agreement)
    {
        // The ME checks the separation bit for EPS and 5G (TS 33.501 6.1.3.2), and a configured BEST marker.
        if (agreement is KeyAgreements.EpsAka or KeyAgreements.FiveGAka or KeyAgreements.EapAkaPrime && !AmfBits.HasSeparationBit(amf))
        {
            return false;
        }

        return _options.RequiredAmfMarker == 0 || (amf & _options.RequiredAmfMarker) == _options.RequiredAmfMarker;
    }

    private static void SendAkaReject(uint sessionId, MessageReject reject, StepResult result)
    {
        Span<byte> buffer = stackalloc byte[Wire.MaxMessage];
        var length = EmsdpProtection.WriteUnprotected(sessionId, reject.Encode(), buffer);
        result.Add(buffer[..length], null);
    }

    private void OnChannelMessage(Channel c, ReadOnlySpan<byte> message, HeaderPrefix prefix, StepResult result)
    {
        if (prefix.KeyId == 0)
        {
            if (c.Selected.Service == BestService.None && EmsdpFrame.TryParse(message, prefix, 1, 0, out var plain) == ParseStatus.Ok)
            {
                // The no-security channel: user data, and Suspend, Resume and Terminate, all unprotected (docs/protocol.md).
                if (prefix.Plane == Plane.User && c.State is ChannelState.Terminating or ChannelState.Terminated)
                {
                    Drop(result, c.SessionId, DropReason.UnexpectedInState);
                }
                else if (prefix.Plane == Plane.User)
                {
                    result.Events.Add(new DataReceived(c.SessionId, 0, 0, plain.Body.ToArray(), false));
                }
                else if (ControlCommand.TryParse(plain.Body, out var plainCommand) == ParseStatus.Ok
                    && plainCommand is SessionTerminateRequest or SessionTerminateResponse or SessionSuspend or SessionResume)
                {
                    OnCommand(c, plainCommand, 0, fresh: true, result);
                }
                else
                {
                    Drop(result, c.SessionId, DropReason.UnexpectedInState);
                }
            }
            else
            {
                // An unprotected message never changes a session whose keys are confirmed.
                Drop(result, c.SessionId, DropReason.UnexpectedInState);
            }

            return;
        }

        // The HSE answers a retransmitted Session Request with the same Session Start: a copy that arrives after
        // the channel took the first one is a duplicate, not a forgery (it is framed with n = 1, not the session's n).
        if (c.AcceptedStart is { } accepted && message.SequenceEqual(accepted))
        {
            Drop(result, c.SessionId, DropReason.Replay);
            return;
        }

        var keys = c.Keys.Get(prefix.KeyId);
        CipherSuite.TryGet(c.Selected.SuiteId, out var suite);
        if (keys is null || suite is null || EmsdpFrame.TryParse(message, prefix, c.N, suite.TagSize(prefix.Plane), out var frame) != ParseStatus.Ok)
        {
            Drop(result, c.SessionId, keys is null ? DropReason.UnknownSession : DropReason.Malformed);
            return;
        }

        Span<byte> payload = stackalloc byte[frame.Body.Length];
        var opened = prefix.Plane == Plane.Control
            ? EmsdpProtection.OpenControl(keys, Direction.Downlink, frame)
            : EmsdpProtection.OpenUser(keys, Direction.Downlink, frame, payload);
        if (opened.Status is not (OpenStatus.Accepted or OpenStatus.Duplicate))
        {
            Drop(result, c.SessionId, opened.Status == OpenStatus.OutsideWindow ? DropReason.Replay : DropReason.TagFailed);
            return;
        }

        var fresh = opened.Status == OpenStatus.Accepted;
        if (prefix.Plane == Plane.User && c.Selected.UeToEasMode && c.Options.RequiresEnterpriseKey && !c.HasEnterpriseKey[prefix.KeyId & 7])
        {
            // Downlink under a key set without the Enterprise Key: the operator could have sealed it.
            Drop(result, c.SessionId, DropReason.NoEnterpriseKey);
            return;
        }

        if (prefix.Plane == Plane.User)
        {
            if (fresh)
            {
                result.Events.Add(new DataReceived(c.SessionId, prefix.KeyId, opened.Counter, payload.ToArray(), prefix.AckRequested));
            }

            if (prefix.AckRequested)
            {
                // A duplicate gets the stored Ack again; nothing new is sealed for a replay.
                if (c.Acks.TryGet(prefix.KeyId, opened.Counter, out var stored))
                {
                    result.Add(stored, null);
                }
                else if (fresh)
                {
                    var current = c.Keys.CurrentKeyId;
                    c.Acks.Add(prefix.KeyId, opened.Counter, SendControl(c, new DataAck(Wire.Low32(opened.Counter), current == prefix.KeyId ? null : prefix.KeyId), result));
                }
            }

            return;
        }

        if (ControlCommand.TryParse(frame.Body, out var command) != ParseStatus.Ok)
        {
            Drop(result, c.SessionId, DropReason.Malformed);
            return;
        }

        OnCommand(c, command!, prefix.KeyId, fresh, result);
    }

    private void OnCommand(Channel c, ControlCommand command, byte messageKeyId, bool fresh, StepResult result)
    {
        switch (command)
        {
            case ManageKeysRequest { IsUeRequest: false } mkr:
                OnManageKeysRequest(c, mkr, result);
                break;
            case SessionTerminateRequest terminate:
                if (fresh || c.TerminateResponse is null)
                {
                    c.TerminateResponse = SendControl(c, SessionTerminateResponse.Instance, result);
                    c.Outstanding = null;
                    if (c.State != ChannelState.Terminated)
                    {
                        c.State = ChannelState.Terminated;
                        c.TerminatedAt = Now;
                        result.Events.Add(new SessionTerminated(c.SessionId, terminate.Cause, ByPeer: true));
                    }
                }
                else
                {
                    result.Add(c.TerminateResponse, null);
                }

                break;
            case SessionTerminateResponse when fresh && c.State == ChannelState.Terminating:
                c.State = ChannelState.Terminated;
                c.TerminatedAt = Now;
                c.Outstanding = null;
                result.Events.Add(new SessionTerminated(c.SessionId, null, ByPeer: false));
                break;
            case SessionSuspend when fresh && c.State == ChannelState.Established:
                c.State = ChannelState.Suspended;
                result.Events.Add(new SessionSuspended(c.SessionId, ByPeer: true));
                break;
            case DataAck ack when fresh:
                // Without a Key ID TLV the acknowledged message used the Ack's own key set (profile 6.2).
                var keyId = ack.AckedKeyId ?? messageKeyId;
                var match = c.Unacked.FirstOrDefault(p => p.Key.KeyId == keyId && Wire.Low32(p.Key.Counter) == ack.AckedCounter);
                if (match.Value is null)
                {
                    // Not one of ours that waits: a forced or late Ack still tells how far the peer got.
                    c.Keys.Acknowledged(keyId, ack.AckedCounter);
                    break;
                }

                // In UE-to-EAS mode the HSE's Ack means "forwarded" and must echo our tag (Acked tag, profile 6.2).
                if (c.Selected.UeToEasMode && (ack.AckedTag is not { } tag || !CryptographicOperations.FixedTimeEquals(tag.Span, match.Value.TagPrefix)))
                {
                    Drop(result, c.SessionId, DropReason.UnexpectedInState);
                    break;
                }

                c.Unacked.Remove(match.Key);
                c.Keys.Acknowledged(keyId, match.Key.Counter);
                result.Events.Add(new DataAcknowledged(c.SessionId, keyId, match.Key.Counter) { Token = match.Value.Token });
                break;
            case MessageReject reject when fresh:
                result.Events.Add(new SessionRejected(c.SessionId, reject.Cause, reject.BackOffSeconds is { } s ? TimeSpan.FromSeconds(Math.Min(s, _options.MaxBackOff.TotalSeconds)) : null));
                break;
            default:
                if (fresh)
                {
                    Drop(result, c.SessionId, DropReason.UnexpectedInState);
                }

                break;
        }
    }

    private void OnManageKeysRequest(Channel c, ManageKeysRequest mkr, StepResult result)
    {
        // A retransmitted request gets the same Response bytes (cached by RAND).
        var rand = Convert.ToHexString(mkr.Rand!.Value.Span);
        if (c.ManageKeysAnswers.TryGetValue(rand, out var cached))
        {
            result.Add(cached, null);
            return;
        }

        // The new key set's Enterprise Key, checked before the USIM runs: the one named (TLV 0x0E), else the unnamed one. A
        // name this device does not hold, or a key set without a key after one with it (a downgrade the operator could
        // read), is refused with a protected Reject 0x08, and the current keys stay.
        var o = c.Options;
        var enterpriseKey = o.EnterpriseKeyFor(mkr.EnterpriseKeyIdentifier);
        var downgrade = o.RequiresEnterpriseKey && enterpriseKey is { IsEmpty: true } && c.HasEnterpriseKey[c.Keys.CurrentKeyId & 7];
        if (c.Selected.UeToEasMode && (enterpriseKey is null || downgrade))
        {
            c.ManageKeysAnswers[rand] = SendControl(c, new MessageReject(Cause.NoCommonSuite, (byte)CommandCode.ManageKeysRequest), result);
            if (c.Outstanding?.Code == CommandCode.ManageKeysRequest)
            {
                c.Outstanding = null; // our own ask was answered, if not as hoped
            }

            return;
        }

        using var answer = _usim.Authenticate(mkr.Rand.Value.Span, mkr.Autn!.Value.Span);
        if (answer.Status != UsimAuthenticationStatus.Success || !AmfAcceptable(answer.Amf, c.Selected.KeyAgreement))
        {
            var reject = answer.Status == UsimAuthenticationStatus.SynchronisationFailure
                ? new MessageReject(Cause.AkaSynchronisationFailure, (byte)CommandCode.ManageKeysRequest, Auts: answer.Auts.ToArray())
                : new MessageReject(Cause.AkaMacFailure, (byte)CommandCode.ManageKeysRequest);
            c.ManageKeysAnswers[rand] = SendControl(c, reject, result);
            return;
        }

        CipherSuite.TryGet(c.Selected.SuiteId, out var suite);
        var kRoot = SessionKeyRoot.Derive(c.Selected.KeyAgreement, answer.Ck, answer.Ik, mkr.Autn.Value.Span[..6], o.ServingNetwork);
        try
        {
            var keys = KeySet.Derive(EndpointRole.Ue, kRoot, suite!, c.Selected.Service, c.Selected.UeToEasMode, c.SessionId, mkr.NewKeyId!.Value, mkr.Rand.Value.Span, c.UeNonce, o.EasId, (enterpriseKey ?? default).Span);
            c.Keys.InstallPending(keys);
            c.SetEasPsk(EasPskOf(c.Selected, kRoot, c.SessionId, mkr.NewKeyId.Value, mkr.Rand.Value.Span, c.UeNonce, o.EasId), BestKeys.EasKeyIdentifier(mkr.Rand.Value.Span));
            c.EnterpriseKeyIdentifier = mkr.EnterpriseKeyIdentifier?.ToArray();
            c.HasEnterpriseKey[mkr.NewKeyId.Value & 7] = enterpriseKey is { IsEmpty: false };
        }
        finally
        {
            CryptographicOperations.ZeroMemory(kRoot);
        }

        // The Response goes under the NEW key set at CP counter 0 (key confirmation); from then on the UE sends under it.
        c.ManageKeysAnswers[rand] = SendControl(c, ManageKeysResponse.Instance, result, c.Keys.Pending);
        c.Keys.Promote(Now, _options.KeyGracePeriod);
        if (c.Outstanding?.Code == CommandCode.ManageKeysRequest)
        {
            c.Outstanding = null;
        }

        result.Events.Add(new KeysRefreshed(c.SessionId, c.Keys.CurrentKeyId));
        SendHeld(c, result);
    }
}
