using System.Globalization;
using System.Security.Cryptography;
using OpenBest.Crypto;
using OpenBest.Crypto.Aead;
using OpenBest.Crypto.Aka;
using OpenBest.Protocol;

namespace OpenBest.Sessions;

/// <summary>
/// Decodes one EMSDP message for a person: every field, and, given the subscriber's keys and the
/// Session Request (and Session Start) it belongs to, the tag check and the plaintext.
/// </summary>
public sealed class EmsdpDecoder(TextWriter output)
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    /// <summary>Writes every field of <paramref name="message"/>; true when it decoded (and verified, when keys were given), false when malformed or not verified.</summary>
    /// <param name="message">The EMSDP message.</param>
    /// <param name="milenage">The subscriber's MILENAGE (K and OPc), to check the tag and decrypt; or null.</param>
    /// <param name="request">The Session Request the message's session began with (with the keys), or null.</param>
    /// <param name="start">The Session Start that answered it, or null.</param>
    public bool Decode(byte[] message, Milenage? milenage, byte[]? request, byte[]? start)
    {
        if (HeaderPrefix.TryRead(message, out var prefix) != ParseStatus.Ok)
        {
            Line("RESULT", "not an EMSDP type 01 message, or an invalid Session ID (a receiver drops it silently)");
            return false;
        }

        Line("PLANE", prefix.Plane == Plane.Control ? "control (CP)" : "user (UP)");
        Line("KEY ID", prefix.KeyId.ToString(Invariant));
        if (prefix.Plane == Plane.User)
        {
            Line("ACK REQUESTED", prefix.AckRequested ? "yes" : "no");
        }

        Line("SESSION ID", prefix.SessionId.ToString(Invariant));

        var startCommand = start is null ? null : ParseStart(start);
        if (start is not null && startCommand is null)
        {
            Line("RESULT", "--start is not a Session Start");
            return false;
        }

        // The counter length and tag size: Key ID 0 → n = 1, no tag; a Session Start → n = 1 and its suite's CP tag;
        // otherwise the session's, from its Session Start.
        if (prefix.KeyId == 0)
        {
            return DecodeFrame(message, prefix, 1, 0, milenage, request, null);
        }

        if (startCommand is { } s && !IsSameMessage(message, start!))
        {
            CipherSuite.TryGet(s.Configuration.SuiteId, out var suite);
            if (suite is null)
            {
                Line("RESULT", "the Session Start selects no suite");
                return false;
            }

            return DecodeFrame(message, prefix, s.Configuration.CounterLength, suite.TagSize(prefix.Plane), milenage, request, (start!, s));
        }

        foreach (var tag in new[] { 8, 16 })
        {
            if (prefix.Plane == Plane.Control && EmsdpFrame.TryParse(message, prefix, 1, tag, out var frame) == ParseStatus.Ok
                && ControlCommand.TryParse(frame.Body, out var command) == ParseStatus.Ok && command is SessionStart ss
                && CipherSuite.TryGet(ss.Configuration.SuiteId, out var suite) && suite.ControlPlaneTagSize == tag)
            {
                return DecodeFrame(message, prefix, 1, tag, milenage, request, null);
            }
        }

        Line("RESULT", "the counter length and tag size of this message come from its session: give --start (the Session Start)");
        return false;
    }

    private bool DecodeFrame(byte[] message, HeaderPrefix prefix, int n, int tagLength, Milenage? milenage, byte[]? request, (byte[] Bytes, SessionStart Command)? start)
    {
        if (EmsdpFrame.TryParse(message, prefix, n, tagLength, out var frame) != ParseStatus.Ok)
        {
            Line("RESULT", "malformed: shorter than its header, command code and tag (cause 0x0B)");
            return false;
        }

        Line("COUNTER FIELD", string.Create(Invariant, $"{frame.CounterField} (n = {n})"));
        ControlCommand? command = null;
        if (prefix.Plane == Plane.Control)
        {
            var status = ControlCommand.TryParse(frame.Body, out command);
            if (status != ParseStatus.Ok)
            {
                Line("RESULT", status == ParseStatus.UnknownComprehensionRequired ? "an unknown comprehension-required TLV (cause 0x0C)" : "malformed body (cause 0x0B)");
                return false;
            }

            Describe(command!);
        }
        else
        {
            Line("PAYLOAD", $"{frame.Body.Length} octets (ciphertext when the service is confidential): {Hex(frame.Body)}");
        }

        if (tagLength > 0)
        {
            Line("TAG", $"{Hex(frame.Tag)} ({tagLength} octets)");
        }

        if (milenage is null)
        {
            return true;
        }

        if (request is null)
        {
            Line("TAG CHECK", "needs --request (the Session Request the session started from)");
            return false;
        }

        if (ParseRequest(request) is not { } sessionRequest)
        {
            Line("RESULT", "--request is not a Session Request");
            return false;
        }

        var startCommand = start?.Command ?? command as SessionStart;
        if (startCommand is null)
        {
            Line("TAG CHECK", prefix.KeyId == 0 ? "no tag (Key ID 0)" : "needs --start (the Session Start of the session)");
            return prefix.KeyId == 0;
        }

        if (prefix.KeyId != 1)
        {
            Line("TAG CHECK", $"key set {prefix.KeyId} comes from a key refresh; only key set 1 can be derived from the Session Start");
            return false;
        }

        using var keys = DeriveKeySet(milenage, sessionRequest, startCommand, prefix.SessionId);
        if (keys is null)
        {
            return false;
        }

        var requestHash = SHA256.HashData(request);
        if (start is null)
        {
            // The Session Start itself: downlink CP counter 0, the request's hash in the associated data.
            var opened = EmsdpProtection.OpenControl(keys, Direction.Downlink, frame, requestHash);
            return Verdict(opened.Status == OpenStatus.Accepted, "Session Start tag (AD ends with SHA-256 of --request)");
        }

        foreach (var direction in new[] { Direction.Uplink, Direction.Downlink })
        {
            using var fresh = DeriveKeySet(milenage, sessionRequest, startCommand, prefix.SessionId, quiet: true)!;
            var payload = new byte[frame.Body.Length];
            var result = prefix.Plane == Plane.Control
                ? EmsdpProtection.OpenControl(fresh, direction, frame)
                : EmsdpProtection.OpenUser(fresh, direction, frame, payload);
            if (result.Status == OpenStatus.Accepted)
            {
                Line("DIRECTION", direction == Direction.Uplink ? "uplink (UE → network)" : "downlink (network → UE)");
                Line("COUNTER", result.Counter.ToString(Invariant));
                if (prefix.Plane == Plane.User)
                {
                    Line("PLAINTEXT", $"{Hex(payload)} \"{Printable(payload)}\"");
                }

                return Verdict(true, "tag");
            }
        }

        return Verdict(false, "tag (tried uplink and downlink, counter reconstructed from a fresh window)");
    }

    private KeySet? DeriveKeySet(Milenage milenage, SessionRequest request, SessionStart start, uint sessionId, bool quiet = false)
    {
        var usim = new Usim(milenage, new UsimSequenceState(SqnScheme.Default)) { CheckFreshness = false };
        using var answer = usim.Authenticate(start.Rand.Span, start.Autn.Span);
        if (answer.Status != UsimAuthenticationStatus.Success)
        {
            if (!quiet)
            {
                Line("AKA", "MAC failure: AUTN was not made with this K and OPc");
            }

            return null;
        }

        if (!quiet)
        {
            Line("AKA", string.Create(Invariant, $"AUTN verified, SQN {answer.Sqn:x12}, AMF {answer.Amf:x4}"));
        }

        if (!CipherSuite.TryGet(start.Configuration.SuiteId, out var suite))
        {
            return null;
        }

        var root = SessionKeyRoot.Derive(start.Configuration.KeyAgreement, answer.Ck, answer.Ik, start.Autn.Span[..6], request.ServingNetwork);
        try
        {
            return KeySet.Derive(EndpointRole.Ue, root, suite, start.Configuration.Service, start.Configuration.UeToEasMode, sessionId, 1, start.Rand.Span, request.UeNonce.Span, request.EasId);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(root);
        }
    }

    private bool Verdict(bool ok, string what)
    {
        Line("TAG CHECK", ok ? $"verified: {what}" : $"FAILED: {what}");
        return ok;
    }

    private void Describe(ControlCommand command)
    {
        Line("COMMAND", string.Create(Invariant, $"{Spaced(command.Code.ToString())} (0x{(byte)command.Code:x2})"));
        switch (command)
        {
            case SessionRequest r:
                Line("  IDENTITY", r.Imsi is { } imsi ? $"IMSI {imsi}" : $"SUCI {Hex(r.Suci!.Value.Span)}");
                var c = r.Configuration;
                Line("  UE CONFIGURATION", string.Create(Invariant, $"release {c.Release}; key agreements {c.KeyAgreements}; service {c.Service}{(c.UeToEasMode ? ", UE-to-EAS mode" : string.Empty)}; suites 0x{c.Suites:x2}; counter schemes {c.CounterSchemes}"));
                Line("  EAS ID", r.EasId);
                Line("  UE NONCE", Hex(r.UeNonce.Span));
                if (r.ServingNetwork is { } network)
                {
                    Line("  SERVING NETWORK", network.ToString());
                }

                if (r.Cookie is { } cookie)
                {
                    Line("  COOKIE", Hex(cookie.Span));
                }

                break;
            case SessionStart s:
                var h = s.Configuration;
                Line("  HSE CONFIGURATION", string.Create(Invariant, $"service {h.Service}{(h.UeToEasMode ? ", UE-to-EAS mode" : string.Empty)}; key agreement {h.KeyAgreement}; suite {h.SuiteId}; n = {h.CounterLength}"));
                Line("  RAND", Hex(s.Rand.Span));
                Line("  AUTN", Hex(s.Autn.Span));
                Line("  REQUEST CHECKSUM", Hex(s.RequestChecksum.Span));
                if (s.ConfirmationRequired)
                {
                    Line("  CONFIRMATION REQUIRED", "yes");
                }

                Optional("  KEY LIFETIME", s.KeyLifetime, "s");
                Optional("  EAS KEY IDENTIFIER", s.EasKeyIdentifier, string.Empty, hex: true);
                break;
            case ManageKeysRequest m when !m.IsUeRequest:
                Line("  NEW KEY ID", m.NewKeyId!.Value.ToString(Invariant));
                Line("  RAND", Hex(m.Rand!.Value.Span));
                Line("  AUTN", Hex(m.Autn!.Value.Span));
                Optional("  KEY LIFETIME", m.KeyLifetime, "s");
                break;
            case MessageReject j:
                Line("  CAUSE", string.Create(Invariant, $"0x{(byte)j.Cause:x2} {Spaced(j.Cause.ToString())}"));
                Line("  REJECTED COMMAND", string.Create(Invariant, $"0x{j.RejectedCommand:x2}"));
                if (j.RequestChecksum is { } sum)
                {
                    Line("  REQUEST CHECKSUM", Hex(sum.Span));
                }

                if (j.Auts is { } auts)
                {
                    Line("  AUTS", Hex(auts.Span));
                }

                Optional("  BACK-OFF", j.BackOffSeconds is { } b ? b : null, "s");
                break;
            case SessionTerminateRequest t when t.Cause is { } cause:
                Line("  CAUSE", string.Create(Invariant, $"0x{(byte)cause:x2} {Spaced(cause.ToString())}"));
                break;
            case DataAck a:
                Line("  ACKED COUNTER", a.AckedCounter.ToString(Invariant));
                Optional("  ACKED KEY ID", a.AckedKeyId is { } k ? k : null, string.Empty);
                if (a.AckedTag is { } tag)
                {
                    Line("  ACKED TAG", Hex(tag.Span));
                }

                break;
        }
    }

    private void Optional(string name, uint? value, string unit, bool hex = false)
    {
        if (value is { } v)
        {
            Line(name, hex ? v.ToString("x8", Invariant) : v.ToString(Invariant) + unit);
        }
    }

    private void Line(string name, string value) => output.WriteLine($"{name}: {value}");

    private static SessionStart? ParseStart(byte[] bytes)
    {
        if (HeaderPrefix.TryRead(bytes, out var prefix) != ParseStatus.Ok)
        {
            return null;
        }

        foreach (var tag in new[] { 0, 8, 16 })
        {
            if (EmsdpFrame.TryParse(bytes, prefix, 1, tag, out var frame) == ParseStatus.Ok
                && ControlCommand.TryParse(frame.Body, out var command) == ParseStatus.Ok && command is SessionStart start
                && (tag == 0 ? prefix.KeyId == 0 : CipherSuite.TryGet(start.Configuration.SuiteId, out var suite) && suite.ControlPlaneTagSize == tag))
            {
                return start;
            }
        }

        return null;
    }

    private static SessionRequest? ParseRequest(byte[] bytes) =>
        HeaderPrefix.TryRead(bytes, out var prefix) == ParseStatus.Ok
        && EmsdpFrame.TryParse(bytes, prefix, 1, 0, out var frame) == ParseStatus.Ok
        && ControlCommand.TryParse(frame.Body, out var command) == ParseStatus.Ok ? command as SessionRequest : null;

    private static bool IsSameMessage(byte[] a, byte[] b) => a.AsSpan().SequenceEqual(b);

    private static string Hex(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(bytes);

    private static string Printable(ReadOnlySpan<byte> bytes) => new([.. bytes.ToArray().Select(b => b is >= 0x20 and < 0x7F ? (char)b : '.')]);

    private static string Spaced(string pascal) => string.Concat(pascal.Select((ch, i) => i > 0 && char.IsUpper(ch) ? " " + ch : ch.ToString()));
}
