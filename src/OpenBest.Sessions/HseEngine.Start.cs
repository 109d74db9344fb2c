using System.Security.Cryptography;
using OpenBest.Crypto;
using OpenBest.Crypto.Aead;
using OpenBest.Crypto.Aka;
using OpenBest.Crypto.Kdf;
using OpenBest.Protocol;

namespace OpenBest.Sessions;

public sealed partial class HseEngine
{
    /// <summary>
    /// The subscriber a Session Request (Session ID 0) names, its SUCI de-concealed with <paramref name="options"/>' keys; null
    /// for any other message or one that does not parse. A cluster node routes a request to its subscriber's shard by it.
    /// </summary>
    public static string? SubscriberOf(ReadOnlySpan<byte> message, HseOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!TryReadRequestBody(message, out var body) || ControlCommand.TryParse(body, out var command) != ParseStatus.Ok || command is not SessionRequest request)
        {
            return null;
        }

        return TryResolveIdentity(request, options, out var imsi) ? imsi : null;
    }

    /// <summary>
    /// A Message Reject with the congestion cause (0x0D) and <paramref name="backOff"/> for a Session Request
    /// that a host cannot take (its queue is full), no longer than the request; null for any other message, which is
    /// dropped instead (a protected message's answer needs its session's keys, and a Reject is never answered).
    /// </summary>
    public static byte[]? CongestionRejectFor(ReadOnlySpan<byte> message, TimeSpan backOff)
    {
        if (!TryReadRequestBody(message, out var body) || body[0] != (byte)CommandCode.SessionRequest)
        {
            return null;
        }

        var checksum = SHA256.HashData(message)[..8];
        var reject = new MessageReject(Cause.Congestion, (byte)CommandCode.SessionRequest, checksum, BackOffSeconds: (ushort)Math.Clamp(backOff.TotalSeconds, 0, ushort.MaxValue));
        Span<byte> buffer = stackalloc byte[Wire.MaxMessage];
        var length = EmsdpProtection.WriteUnprotected(0, reject.Encode(), buffer);
        return length <= message.Length ? buffer[..length].ToArray() : null;
    }

    /// <summary>The body of an unprotected control message to Session ID 0 (what may be a Session Request); false for anything else.</summary>
    private static bool TryReadRequestBody(ReadOnlySpan<byte> message, out ReadOnlySpan<byte> body)
    {
        body = default;
        if (HeaderPrefix.TryRead(message, out var prefix) != ParseStatus.Ok || prefix.SessionId != 0 || prefix.Plane != Plane.Control
            || EmsdpFrame.TryParse(message, prefix, 1, 0, out var frame) != ParseStatus.Ok || frame.Body.Length == 0)
        {
            return false;
        }

        body = frame.Body;
        return true;
    }

    private void OnSessionRequest(ReadOnlySpan<byte> message, HeaderPrefix prefix, object? path, StepResult result)
    {
        if (EmsdpFrame.TryParse(message, prefix, 1, 0, out var frame) != ParseStatus.Ok)
        {
            Drop(result, 0, DropReason.Malformed);
            return;
        }

        var hash = SHA256.HashData(message);
        var checksum = hash[..8];
        if (frame.Body[0] == (byte)CommandCode.MessageReject)
        {
            Drop(result, 0, DropReason.UnexpectedInState); // never answer a Reject
            return;
        }

        var status = ControlCommand.TryParse(frame.Body, out var command);
        if (status != ParseStatus.Ok || command is not SessionRequest request)
        {
            Drop(result, 0, DropReason.Malformed);
            var cause = status == ParseStatus.UnknownComprehensionRequired ? Cause.UnknownComprehensionRequiredTlv : Cause.MalformedMessage;
            SendUnprotectedReject(result, 0, new MessageReject(cause, frame.Body[0], checksum), message.Length, path);
            return;
        }

        // An identical request (from any source) gets the identical answer, with no new vector.
        var cacheKey = Convert.ToHexString(hash);
        if (_answers.TryGetValue(cacheKey, out var cached) && cached.Expires > Now)
        {
            result.Add(cached.Message, path);
            return;
        }

        if (!AcceptsNewSessions)
        {
            Drop(result, 0, DropReason.Deferred);
            return;
        }

        if (_options.RequireCookie && !CookieValid(message, request, path))
        {
            SendUnprotectedReject(result, 0, new MessageReject(Cause.CookieRequired, (byte)CommandCode.SessionRequest, checksum, Cookie: Cookie(path, RequestWithoutCookie(message, request))), message.Length, path);
            return;
        }

        if (_sessions.Count >= _options.MaxSessions)
        {
            SendUnprotectedReject(result, 0, new MessageReject(Cause.SessionLimitReached, (byte)CommandCode.SessionRequest, checksum), message.Length, path);
            return;
        }

        if (_options.KnownEasIds is { } known && !known.Contains(request.EasId))
        {
            SendUnprotectedReject(result, 0, new MessageReject(Cause.UnknownEas, (byte)CommandCode.SessionRequest, checksum), message.Length, path);
            return;
        }

        if (_pending.Value >= _options.MaxPendingSessions)
        {
            SendUnprotectedReject(result, 0, new MessageReject(Cause.Congestion, (byte)CommandCode.SessionRequest, checksum, BackOffSeconds: (ushort)_options.CongestionBackOff.TotalSeconds), message.Length, path);
            return;
        }

        var (selected, refusal) = Select(request);
        if (refusal != Cause.None)
        {
            SendUnprotectedReject(result, 0, new MessageReject(refusal, (byte)CommandCode.SessionRequest, checksum), message.Length, path);
            return;
        }

        if (!TryResolveIdentity(request, out var imsi))
        {
            SendUnprotectedReject(result, 0, new MessageReject(Cause.MalformedMessage, (byte)CommandCode.SessionRequest, checksum), message.Length, path);
            return;
        }

        if (_options.Authorise is { } authorise && !authorise(imsi, request.EasId, selected.Service))
        {
            SendUnprotectedReject(result, 0, new MessageReject(Cause.NotAuthorised, (byte)CommandCode.SessionRequest, checksum), message.Length, path);
            return;
        }

        if (!TakeVectorToken(imsi, path))
        {
            SendUnprotectedReject(result, 0, new MessageReject(Cause.Congestion, (byte)CommandCode.SessionRequest, checksum, BackOffSeconds: 60), message.Length, path);
            return;
        }

        var session = new HseSession(AllocateSessionId(), _reservation, _pending, _dirty)
        {
            Imsi = imsi,
            Request = request,
            RequestHash = hash,
            Selected = selected,
            N = selected.CounterLength,
            Path = path,
            State = HseState.StartSent,
            Deadline = Now + _options.ConfirmationTimeout,
        };
        CipherSuite.TryGet(selected.SuiteId, out var suite);
        session.Suite = suite;
        _sessions[session.Id] = session;

        if (!SendSessionStart(session, result))
        {
            if (!_options.HideUnknownSubscribers)
            {
                Remove(session);
                SendUnprotectedReject(result, 0, new MessageReject(Cause.UnknownSubscriber, (byte)CommandCode.SessionRequest, checksum), message.Length, path);
                return;
            }

            SendDecoyStart(session, result);
        }

        _answers[cacheKey] = new CachedAnswer(session.StartMessage!, Now + _options.RetransmissionCacheLifetime);
    }

    /// <summary>
    /// The Enterprise Key Identifier to name for a UE-to-EAS session's next key set (1 to 16 octets), or null: the one kept
    /// for the UE and EAS, else (and when the lookup fails) the current key set's.
    /// </summary>
    private byte[]? EnterpriseKeyIdentifierFor(HseSession session)
    {
        if (!session.Selected.UeToEasMode)
        {
            return null;
        }

        if (_options.EnterpriseKeyIdentifier is not { } lookup)
        {
            return session.EnterpriseKeyId;
        }

        try
        {
            // Never back to none: a key set the UE's Enterprise Key protects is only ever followed by another that names one.
            return lookup(session.Imsi, session.Request.EasId) is { Length: >= 1 and <= 16 } eki ? eki : session.EnterpriseKeyId;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            EnterpriseKeyLookupFailures++;
            return session.EnterpriseKeyId;
        }
    }

    /// <summary>Builds and sends the Session Start for a new vector; false for an unknown subscriber.</summary>
    private bool SendSessionStart(HseSession session, StepResult result)
    {
        var selected = session.Selected;
        using var vector = _subscribers.CreateVector(session.Imsi, Wire.ContextOf(selected.KeyAgreement));
        if (vector is null)
        {
            return false;
        }

        Counters.VectorsUsed++;
        session.CurrentRand = vector.Rand.ToArray();
        // Never an Enterprise Key Identifier (0x0E) here: a decoy could not show the same, so it would tell who is a
        // subscriber; it is named after the UE authenticated, in a Manage Keys Request (docs/protocol.md).
        var start = new SessionStart(selected, vector.Rand.ToArray(), vector.Autn.ToArray(), session.RequestHash.AsMemory(0, 8),
            ConfirmationRequired: selected.Service == BestService.KeyAgreementOnly,
            KeyLifetime: _options.KeyLifetime is { } lifetime ? (uint)lifetime.TotalSeconds : null,
            EasKeyIdentifier: NeedsEasKeys(selected) ? BestKeys.EasKeyIdentifier(vector.Rand) : null);

        Span<byte> buffer = stackalloc byte[Wire.MaxMessage];
        int length;
        if (selected.Service == BestService.None)
        {
            session.Keys.Dispose();
            length = EmsdpProtection.WriteUnprotected(session.Id, start.Encode(), buffer);
        }
        else
        {
            var kRoot = SessionKeyRoot.Derive(selected.KeyAgreement, vector.Ck, vector.Ik, vector.SqnXorAk, session.Request.ServingNetwork);
            try
            {
                var keys = KeySet.Derive(EndpointRole.Hse, kRoot, session.Suite!, selected.Service, selected.UeToEasMode, session.Id, 1, vector.Rand, session.Request.UeNonce.Span, session.Request.EasId);
                session.Keys.InstallCurrent(keys);
                if (NeedsEasKeys(selected))
                {
                    session.EasPsk = new byte[32];
                    KeySet.DeriveEasPsk(kRoot, session.Id, 1, vector.Rand, session.Request.UeNonce.Span, session.Request.EasId, session.EasPsk);
                }
            }
            finally
            {
                CryptographicOperations.ZeroMemory(kRoot);
            }

            // Session Start: n = 1, counter 0 of the new key set, request hash in the associated data.
            var counter = session.Keys.NextCounter(session.Keys.Current!, Plane.Control, session.Id, 1);
            length = EmsdpProtection.SealControl(session.Keys.Current!, Direction.Downlink, session.Id, 1, counter, start.Encode(), session.RequestHash, buffer);
        }

        session.StartMessage = buffer[..length].ToArray();
        result.Add(session.StartMessage, session.Path);
        return true;
    }

    /// <summary>
    /// An unknown identity gets a well-formed Session Start whose RAND and AUTN come from
    /// (server secret, identity, request hash, epoch) and a tag under a key nobody holds (profile section 7).
    /// </summary>
    private void SendDecoyStart(HseSession session, StepResult result)
    {
        session.Decoy = true;
        var epoch = Now.ToUnixTimeSeconds() / (long)Math.Max(1, _options.RetransmissionCacheLifetime.TotalSeconds);
        var seed = HMACSHA256.HashData(_options.ServerSecret.Span, [.. System.Text.Encoding.UTF8.GetBytes(session.Imsi), .. session.RequestHash, .. BitConverter.GetBytes(epoch)]);
        var more = SHA256.HashData(seed);
        var start = new SessionStart(session.Selected, seed.AsMemory(0, 16), more.AsMemory(0, 16), session.RequestHash.AsMemory(0, 8),
            ConfirmationRequired: session.Selected.Service == BestService.KeyAgreementOnly,
            KeyLifetime: _options.KeyLifetime is { } lifetime ? (uint)lifetime.TotalSeconds : null,
            EasKeyIdentifier: NeedsEasKeys(session.Selected) ? BestKeys.EasKeyIdentifier(seed.AsSpan(0, 16)) : null);
        Span<byte> buffer = stackalloc byte[Wire.MaxMessage];
        int length;
        if (session.Selected.Service == BestService.None)
        {
            length = EmsdpProtection.WriteUnprotected(session.Id, start.Encode(), buffer);
        }
        else
        {
            using var keys = KeySet.Derive(EndpointRole.Hse, more, session.Suite!, session.Selected.Service, false, session.Id, 1, seed.AsSpan(0, 16), session.Request.UeNonce.Span);
            length = EmsdpProtection.SealControl(keys, Direction.Downlink, session.Id, 1, 0, start.Encode(), session.RequestHash, buffer);
        }

        session.StartMessage = buffer[..length].ToArray();
        result.Add(session.StartMessage, session.Path);
    }

    private static bool NeedsEasKeys(HseConfiguration selected) => selected.UeToEasMode || selected.Service == BestService.KeyAgreementOnly;

    /// <summary>The HSE's selection (profile 6.2): service, key agreement, suite and n from what the UE offered and the policy.</summary>
    private (HseConfiguration Selected, Cause Refusal) Select(SessionRequest request)
    {
        var offered = request.Configuration;
        var service = offered.Service;
        if (service == BestService.None && !_options.AllowNoSecurity)
        {
            return (default, Cause.ServiceNotSupported);
        }

        var network = request.ServingNetwork;
        if (service == BestService.Confidential)
        {
            if (network is null)
            {
                return (default, Cause.MalformedMessage);
            }

            var key = network.Name ?? Convert.ToHexStringLower(network.PlmnId.Span);
            if (_options.ConfidentialityForbiddenIn.Contains(key))
            {
                if (!_options.DowngradeToIntegrityWhereConfidentialityForbidden)
                {
                    return (default, Cause.ServiceNotAllowedInServingNetwork);
                }

                service = BestService.Integrity;
            }
        }

        KeyAgreements? agreement = null;
        foreach (var candidate in _options.KeyAgreementPreference)
        {
            if ((offered.KeyAgreements & candidate) == 0)
            {
                continue;
            }

            var usable = candidate switch
            {
                KeyAgreements.UmtsAka => true,
                KeyAgreements.EpsAka => network is { Name: null },
                KeyAgreements.FiveGAka or KeyAgreements.EapAkaPrime => network is { Name: not null } && network.Name.StartsWith("5G:", StringComparison.Ordinal),
                _ => false,
            };
            if (usable)
            {
                agreement = candidate;
                break;
            }
        }

        byte suite = 0;
        if (service != BestService.None)
        {
            foreach (var id in _options.SuitePreference)
            {
                if (CipherSuite.TryGet(id, out var s) && (offered.Suites & s.BitmapBit) != 0 && s.Algorithm.IsSupported)
                {
                    suite = id;
                    break;
                }
            }
        }

        byte n = 0;
        foreach (var length in _options.CounterLengthPreference)
        {
            var bit = length switch { 1 => CounterSchemes.OneOctet, 2 => CounterSchemes.TwoOctets, _ => CounterSchemes.FourOctets };
            if ((offered.CounterSchemes & bit) != 0)
            {
                n = length;
                break;
            }
        }

        if (agreement is null || n == 0 || (service != BestService.None && suite == 0))
        {
            return (default, Cause.NoCommonSuite);
        }

        return (new HseConfiguration(service, offered.UeToEasMode, agreement.Value, suite, n), Cause.None);
    }

    private bool TryResolveIdentity(SessionRequest request, out string imsi) => TryResolveIdentity(request, _options, out imsi);

    /// <summary>The IMSI of a request: given in clear, or its SUCI de-concealed with <paramref name="options"/>' keys.</summary>
    private static bool TryResolveIdentity(SessionRequest request, HseOptions options, out string imsi)
    {
        if (request.Imsi is { } plain)
        {
            imsi = plain;
            return true;
        }

        return SuciResolver.TryResolve(request.Suci!.Value.Span, options.SuciKeys, out imsi);
    }

    /// <summary>
    /// Vectors are rate limited per identity (profile 6.2, denial of service), and within that per source and identity, so that
    /// one source naming a known IMSI cannot use the identity's budget up and keep the real device off the service. A refused
    /// request takes nothing from either budget. Behind <see cref="HseOptions.RequireCookie"/> only requests that came back with
    /// their cookie (return-routable sources) get this far; without it a spoofed source counts as whatever it claims.
    /// </summary>
    private bool TakeVectorToken(string imsi, object? path)
    {
        var minute = Now.ToUnixTimeSeconds() / 60;
        var source = (PeerSource.Of(path), imsi);
        var (sourceWindow, sourceCount) = _sourceVectorBudget.GetValueOrDefault(source);
        sourceCount = sourceWindow == minute ? sourceCount : 0;
        if (sourceCount >= _options.MaxVectorsPerSourcePerIdentityPerMinute)
        {
            return false;
        }

        var (window, count) = _vectorBudget.GetValueOrDefault(imsi);
        count = window == minute ? count : 0;
        if (count >= _options.MaxVectorsPerIdentityPerMinute)
        {
            return false;
        }

        if ((_vectorBudget.Count >= _options.MaxTrackedSources || _sourceVectorBudget.Count >= _options.MaxTrackedSources) && _budgetPrunedMinute != minute)
        {
            // Only this minute's entries matter: the older ones go, at most once a minute (never a scan per request).
            _budgetPrunedMinute = minute;
            Prune(_vectorBudget, minute);
            Prune(_sourceVectorBudget, minute);
        }

        _vectorBudget[imsi] = (minute, count + 1);
        if (_sourceVectorBudget.Count < _options.MaxTrackedSources)
        {
            // Still full after pruning (a spray of spoofed sources): a new source then counts toward the identity's budget only.
            _sourceVectorBudget[source] = (minute, sourceCount + 1);
        }

        return true;
    }

    private static void Prune<TKey>(Dictionary<TKey, (long Minute, int Count)> budget, long minute)
        where TKey : notnull
    {
        foreach (var key in budget.Where(e => e.Value.Minute != minute).Select(e => e.Key).ToList())
        {
            budget.Remove(key);
        }
    }

    private uint AllocateSessionId()
    {
        var now = Now;
        if (_released.TryPeek(out var head) && head.FreeAt <= now)
        {
            _released.Dequeue();
            return head.Id;
        }

        if (_neverUsed > SessionIdCodec.MaxValue)
        {
            throw new InvalidOperationException("Session IDs exhausted.");
        }

        var id = _neverUsed;
        _neverUsed = (uint)Math.Min((long)id + _options.SessionIdClass.Stride, uint.MaxValue);
        return id;
    }

    private void Release(uint id) => _released.Enqueue((id, Now + _options.SessionIdQuarantine));

    // Cookie = HMAC(secret, source address ‖ SHA-256(request without its Cookie TLV) ‖ epoch), truncated to 8 octets.
    private byte[] Cookie(object? path, ReadOnlySpan<byte> requestWithoutCookie)
    {
        var epoch = Now.ToUnixTimeSeconds() / (long)Math.Max(1, _options.RetransmissionCacheLifetime.TotalSeconds);
        return CookieAt(path, requestWithoutCookie, epoch);
    }

    private byte[] CookieAt(object? path, ReadOnlySpan<byte> requestWithoutCookie, long epoch)
    {
        var address = System.Text.Encoding.UTF8.GetBytes(path?.ToString() ?? string.Empty);
        return HMACSHA256.HashData(_options.ServerSecret.Span, [.. address, .. SHA256.HashData(requestWithoutCookie), .. BitConverter.GetBytes(epoch)])[..8];
    }

    private bool CookieValid(ReadOnlySpan<byte> message, SessionRequest request, object? path)
    {
        if (request.Cookie is not { } cookie)
        {
            return false;
        }

        var original = RequestWithoutCookie(message, request);
        var epoch = Now.ToUnixTimeSeconds() / (long)Math.Max(1, _options.RetransmissionCacheLifetime.TotalSeconds);
        return CryptographicOperations.FixedTimeEquals(cookie.Span, CookieAt(path, original, epoch))
            || CryptographicOperations.FixedTimeEquals(cookie.Span, CookieAt(path, original, epoch - 1));
    }

    /// <summary>The request as it was before the UE added the Cookie TLV: the received bytes with that TLV cut out (never re-encoded).</summary>
    private static byte[] RequestWithoutCookie(ReadOnlySpan<byte> message, SessionRequest request)
    {
        if (request.Cookie is null)
        {
            return message.ToArray();
        }

        // Header (octet 0, Session ID 0, counter) = 3 octets, then the command code, then TLVs.
        var position = 4;
        while (position + 2 <= message.Length)
        {
            var length = message[position + 1];
            if (message[position] == (byte)TlvTag.Cookie)
            {
                return [.. message[..position], .. message[(position + 2 + length)..]];
            }

            position += 2 + length;
        }

        return message.ToArray();
    }
}
