using System.Buffers.Binary;
using System.Text;

namespace OpenBest.Protocol;

/// <summary>
/// A control-plane command: the body of a CP message, command code (1 octet) then TLVs
/// (profile section 6). Each command is an immutable record named after the specification.
/// </summary>
/// <remarks>
/// Parsing never throws and never reads past the body: it returns <see cref="ParseStatus.Malformed"/>
/// (cause 0x0B) or <see cref="ParseStatus.UnknownComprehensionRequired"/> (cause 0x0C). An unknown
/// command code is malformed. Encoding writes TLVs in the order of the profile's lists.
/// </remarks>
public abstract record ControlCommand
{
    private const int MaxBody = 1 + (23 * 257);

    private protected ControlCommand()
    {
    }

    /// <summary>The command code.</summary>
    public abstract CommandCode Code { get; }

    /// <summary>The encoded body: command code then TLVs.</summary>
    public byte[] Encode()
    {
        Span<byte> buffer = stackalloc byte[MaxBody];
        return buffer[..Encode(buffer)].ToArray();
    }

    /// <summary>Writes the body into <paramref name="destination"/> and returns its length.</summary>
    /// <exception cref="ArgumentException">The destination is too short.</exception>
    public int Encode(Span<byte> destination)
    {
        if (destination.IsEmpty)
        {
            throw new ArgumentException("The destination is too short.", nameof(destination));
        }

        destination[0] = (byte)Code;
        var writer = new TlvWriter(destination[1..]);
        WriteTlvs(ref writer);
        return 1 + writer.Written;
    }

    /// <summary>The encoded length of the body.</summary>
    public int GetEncodedLength()
    {
        Span<byte> buffer = stackalloc byte[MaxBody];
        return Encode(buffer);
    }

    /// <summary>Parses a CP body (command code and TLVs).</summary>
    public static ParseStatus TryParse(ReadOnlySpan<byte> body, out ControlCommand? command)
    {
        command = null;
        if (body.IsEmpty)
        {
            return ParseStatus.Malformed;
        }

        Span<int> offsets = stackalloc int[256];
        var tlvs = body[1..];
        switch ((CommandCode)body[0])
        {
            case CommandCode.SessionRequest: return SessionRequest.TryParse(tlvs, offsets, out command);
            case CommandCode.SessionStart: return SessionStart.TryParse(tlvs, offsets, out command);
            case CommandCode.SessionStartConfirmation: return Empty(tlvs, offsets, SessionStartConfirmation.Instance, out command);
            case CommandCode.SessionTerminateRequest: return SessionTerminateRequest.TryParse(tlvs, offsets, out command);
            case CommandCode.SessionTerminateResponse: return Empty(tlvs, offsets, SessionTerminateResponse.Instance, out command);
            case CommandCode.ManageKeysRequest: return ManageKeysRequest.TryParse(tlvs, offsets, out command);
            case CommandCode.ManageKeysResponse: return Empty(tlvs, offsets, ManageKeysResponse.Instance, out command);
            case CommandCode.MessageReject: return MessageReject.TryParse(tlvs, offsets, out command);
            case CommandCode.SessionSuspend: return Empty(tlvs, offsets, SessionSuspend.Instance, out command);
            case CommandCode.SessionResume: return Empty(tlvs, offsets, SessionResume.Instance, out command);
            case CommandCode.DataAck: return DataAck.TryParse(tlvs, offsets, out command);
            default: return ParseStatus.Malformed;
        }
    }

    /// <summary>Whether <paramref name="code"/> is a command of this profile.</summary>
    public static bool IsKnown(byte code) => Enum.IsDefined((CommandCode)code);

    internal abstract void WriteTlvs(ref TlvWriter writer);

    private static ParseStatus Empty(ReadOnlySpan<byte> tlvs, Span<int> offsets, ControlCommand instance, out ControlCommand? command)
    {
        command = null;
        var status = TlvSet.TryParse(tlvs, [], offsets, out _);
        if (status == ParseStatus.Ok)
        {
            command = instance;
        }

        return status;
    }
}

/// <summary>
/// Session Request (0x10), UE → HSE, unprotected (Session ID 0, Key ID 0): IMSI (0x01) or SUCI (0x02) M;
/// UE configuration (0x03) M; Enterprise Setup (0x04) M; UE nonce (0x13) M; Serving Network (0x05) C;
/// Cookie (0x16) C.
/// </summary>
public sealed record SessionRequest(string? Imsi, ReadOnlyMemory<byte>? Suci, UeConfiguration Configuration, string EasId, ReadOnlyMemory<byte> UeNonce, ServingNetwork? ServingNetwork = null, ReadOnlyMemory<byte>? Cookie = null)
    : ControlCommand
{
    private static readonly TlvTag[] Allowed = [TlvTag.Imsi, TlvTag.Suci, TlvTag.UeConfiguration, TlvTag.EnterpriseSetup, TlvTag.ServingNetwork, TlvTag.UeNonce, TlvTag.Cookie];

    /// <inheritdoc/>
    public override CommandCode Code => CommandCode.SessionRequest;

    internal override void WriteTlvs(ref TlvWriter writer)
    {
        if ((Imsi is null) == (Suci is null))
        {
            throw new InvalidOperationException("A Session Request carries exactly one of IMSI and SUCI.");
        }

        if (UeNonce.Length != 8)
        {
            throw new InvalidOperationException("The UE nonce has 8 octets.");
        }

        if (Imsi is not null)
        {
            writer.Write(TlvTag.Imsi, ImsiCodec.Encode(Imsi));
        }
        else
        {
            writer.Write(TlvTag.Suci, Suci!.Value.Span);
        }

        Span<byte> configuration = stackalloc byte[5];
        Configuration.Write(configuration);
        writer.Write(TlvTag.UeConfiguration, configuration);
        writer.Write(TlvTag.EnterpriseSetup, Encoding.UTF8.GetBytes(EasId.Normalize(NormalizationForm.FormKC)));
        writer.Write(TlvTag.UeNonce, UeNonce.Span);
        if (ServingNetwork is not null)
        {
            writer.Write(TlvTag.ServingNetwork, ServingNetwork.Encode());
        }

        if (Cookie is { } cookie)
        {
            writer.Write(TlvTag.Cookie, cookie.Span);
        }
    }

    internal static ParseStatus TryParse(ReadOnlySpan<byte> tlvs, Span<int> offsets, out ControlCommand? command)
    {
        command = null;
        var status = TlvSet.TryParse(tlvs, Allowed, offsets, out var set);
        if (status != ParseStatus.Ok)
        {
            return status;
        }

        if (set.Has(TlvTag.Imsi) == set.Has(TlvTag.Suci) || !set.Has(TlvTag.UeConfiguration) || !set.Has(TlvTag.EnterpriseSetup) || !set.Has(TlvTag.UeNonce))
        {
            return ParseStatus.Malformed;
        }

        string? imsi = null;
        if (set.Has(TlvTag.Imsi) && !ImsiCodec.TryDecode(set.Get(TlvTag.Imsi), out imsi))
        {
            return ParseStatus.Malformed;
        }

        ServingNetwork? network = null;
        if (!UeConfiguration.TryRead(set.Get(TlvTag.UeConfiguration), out var configuration)
            || !Utf8.TryDecode(set.Get(TlvTag.EnterpriseSetup), out var easId) || !easId.IsNormalized(NormalizationForm.FormKC)
            || (set.Has(TlvTag.ServingNetwork) && !ServingNetwork.TryRead(set.Get(TlvTag.ServingNetwork), out network)))
        {
            return ParseStatus.Malformed;
        }

        command = new SessionRequest(imsi, set.GetCopy(TlvTag.Suci), configuration, easId, set.Get(TlvTag.UeNonce).ToArray(), network, set.GetCopy(TlvTag.Cookie));
        return ParseStatus.Ok;
    }
}

/// <summary>
/// Session Start (0x11), HSE → UE, under the new key set at CP counter 0: HSE configuration (0x09) M and
/// first; RAND (0x06) M; AUTN (0x07) M; Request checksum (0x0A) M; Confirmation required (0x0B) C;
/// Key lifetime (0x10) O; EAS key identifier (0x11) C; Enterprise Key Identifier (0x0E) O.
/// </summary>
public sealed record SessionStart(HseConfiguration Configuration, ReadOnlyMemory<byte> Rand, ReadOnlyMemory<byte> Autn, ReadOnlyMemory<byte> RequestChecksum, bool ConfirmationRequired = false, uint? KeyLifetime = null, uint? EasKeyIdentifier = null, ReadOnlyMemory<byte>? EnterpriseKeyIdentifier = null)
    : ControlCommand
{
    private static readonly TlvTag[] Allowed = [TlvTag.HseConfiguration, TlvTag.Rand, TlvTag.Autn, TlvTag.RequestChecksum, TlvTag.ConfirmationRequired, TlvTag.KeyLifetime, TlvTag.EasKeyIdentifier, TlvTag.EnterpriseKeyIdentifier];

    /// <inheritdoc/>
    public override CommandCode Code => CommandCode.SessionStart;

    internal override void WriteTlvs(ref TlvWriter writer)
    {
        Span<byte> configuration = stackalloc byte[4];
        Configuration.Write(configuration);
        writer.Write(TlvTag.HseConfiguration, configuration);
        writer.Write(TlvTag.Rand, Rand.Span);
        writer.Write(TlvTag.Autn, Autn.Span);
        writer.Write(TlvTag.RequestChecksum, RequestChecksum.Span);
        if (ConfirmationRequired)
        {
            writer.Write(TlvTag.ConfirmationRequired, default);
        }

        if (KeyLifetime is { } lifetime)
        {
            writer.WriteUInt32(TlvTag.KeyLifetime, lifetime);
        }

        if (EasKeyIdentifier is { } easKeyId)
        {
            writer.WriteUInt32(TlvTag.EasKeyIdentifier, easKeyId);
        }

        if (EnterpriseKeyIdentifier is { } ekid)
        {
            writer.Write(TlvTag.EnterpriseKeyIdentifier, ekid.Span);
        }
    }

    internal static ParseStatus TryParse(ReadOnlySpan<byte> tlvs, Span<int> offsets, out ControlCommand? command)
    {
        command = null;
        var status = TlvSet.TryParse(tlvs, Allowed, offsets, out var set);
        if (status != ParseStatus.Ok)
        {
            return status;
        }

        if (set.FirstTag != (byte)TlvTag.HseConfiguration || !set.Has(TlvTag.Rand) || !set.Has(TlvTag.Autn) || !set.Has(TlvTag.RequestChecksum)
            || !HseConfiguration.TryRead(set.Get(TlvTag.HseConfiguration), out var configuration))
        {
            return ParseStatus.Malformed;
        }

        command = new SessionStart(configuration, set.Get(TlvTag.Rand).ToArray(), set.Get(TlvTag.Autn).ToArray(), set.Get(TlvTag.RequestChecksum).ToArray(),
            set.Has(TlvTag.ConfirmationRequired), ReadUInt32(set, TlvTag.KeyLifetime), ReadUInt32(set, TlvTag.EasKeyIdentifier), set.GetCopy(TlvTag.EnterpriseKeyIdentifier));
        return ParseStatus.Ok;
    }

    internal static uint? ReadUInt32(TlvSet set, TlvTag tag) => set.Has(tag) ? BinaryPrimitives.ReadUInt32BigEndian(set.Get(tag)) : null;
}

/// <summary>Session Start Confirmation (0x12), UE → HSE, under the new key set; no TLVs.</summary>
public sealed record SessionStartConfirmation : ControlCommand
{
    /// <summary>The one instance.</summary>
    public static SessionStartConfirmation Instance { get; } = new();

    /// <inheritdoc/>
    public override CommandCode Code => CommandCode.SessionStartConfirmation;

    internal override void WriteTlvs(ref TlvWriter writer)
    {
    }
}

/// <summary>Session Terminate Request (0x20), either direction: Cause (0x0D) O.</summary>
public sealed record SessionTerminateRequest(Cause? Cause = null) : ControlCommand
{
    private static readonly TlvTag[] Allowed = [TlvTag.Cause];

    /// <inheritdoc/>
    public override CommandCode Code => CommandCode.SessionTerminateRequest;

    internal override void WriteTlvs(ref TlvWriter writer)
    {
        if (Cause is { } cause)
        {
            writer.WriteByte(TlvTag.Cause, (byte)cause);
        }
    }

    internal static ParseStatus TryParse(ReadOnlySpan<byte> tlvs, Span<int> offsets, out ControlCommand? command)
    {
        command = null;
        var status = TlvSet.TryParse(tlvs, Allowed, offsets, out var set);
        if (status != ParseStatus.Ok)
        {
            return status;
        }

        Cause? cause = null;
        if (set.Has(TlvTag.Cause))
        {
            if (!MessageReject.IsValidCause(set.Get(TlvTag.Cause)[0]))
            {
                return ParseStatus.Malformed;
            }

            cause = (Cause)set.Get(TlvTag.Cause)[0];
        }

        command = new SessionTerminateRequest(cause);
        return ParseStatus.Ok;
    }
}

/// <summary>Session Terminate Response (0x21), either direction; no TLVs.</summary>
public sealed record SessionTerminateResponse : ControlCommand
{
    /// <summary>The one instance.</summary>
    public static SessionTerminateResponse Instance { get; } = new();

    /// <inheritdoc/>
    public override CommandCode Code => CommandCode.SessionTerminateResponse;

    internal override void WriteTlvs(ref TlvWriter writer)
    {
    }
}

/// <summary>
/// Manage Keys Request (0x30). From the HSE: Key ID (0x0C, the next ID), RAND, AUTN, and optionally the
/// Enterprise Key Identifier (0x0E), Key lifetime (0x10) and EAS key identifier (0x11). From the UE: empty
/// (the UE asks the HSE for new keys).
/// </summary>
public sealed record ManageKeysRequest(byte? NewKeyId = null, ReadOnlyMemory<byte>? Rand = null, ReadOnlyMemory<byte>? Autn = null, ReadOnlyMemory<byte>? EnterpriseKeyIdentifier = null, uint? KeyLifetime = null, uint? EasKeyIdentifier = null)
    : ControlCommand
{
    private static readonly TlvTag[] Allowed = [TlvTag.KeyId, TlvTag.Rand, TlvTag.Autn, TlvTag.EnterpriseKeyIdentifier, TlvTag.KeyLifetime, TlvTag.EasKeyIdentifier];

    /// <summary>The UE's empty request.</summary>
    public static ManageKeysRequest FromUe { get; } = new();

    /// <summary>Whether this is the UE's empty request.</summary>
    public bool IsUeRequest => NewKeyId is null;

    /// <inheritdoc/>
    public override CommandCode Code => CommandCode.ManageKeysRequest;

    internal override void WriteTlvs(ref TlvWriter writer)
    {
        if (NewKeyId is not { } keyId)
        {
            return;
        }

        writer.WriteByte(TlvTag.KeyId, keyId);
        writer.Write(TlvTag.Rand, Rand!.Value.Span);
        writer.Write(TlvTag.Autn, Autn!.Value.Span);
        if (EnterpriseKeyIdentifier is { } ekid)
        {
            writer.Write(TlvTag.EnterpriseKeyIdentifier, ekid.Span);
        }

        if (KeyLifetime is { } lifetime)
        {
            writer.WriteUInt32(TlvTag.KeyLifetime, lifetime);
        }

        if (EasKeyIdentifier is { } easKeyId)
        {
            writer.WriteUInt32(TlvTag.EasKeyIdentifier, easKeyId);
        }
    }

    internal static ParseStatus TryParse(ReadOnlySpan<byte> tlvs, Span<int> offsets, out ControlCommand? command)
    {
        command = null;
        var status = TlvSet.TryParse(tlvs, Allowed, offsets, out var set);
        if (status != ParseStatus.Ok)
        {
            return status;
        }

        if (!set.Has(TlvTag.KeyId))
        {
            // The UE's form carries nothing.
            if (set.Has(TlvTag.Rand) || set.Has(TlvTag.Autn) || set.Has(TlvTag.EnterpriseKeyIdentifier) || set.Has(TlvTag.KeyLifetime) || set.Has(TlvTag.EasKeyIdentifier))
            {
                return ParseStatus.Malformed;
            }

            command = FromUe;
            return ParseStatus.Ok;
        }

        var keyId = set.Get(TlvTag.KeyId)[0];
        if (keyId is < 1 or > 7 || !set.Has(TlvTag.Rand) || !set.Has(TlvTag.Autn))
        {
            return ParseStatus.Malformed;
        }

        command = new ManageKeysRequest(keyId, set.Get(TlvTag.Rand).ToArray(), set.Get(TlvTag.Autn).ToArray(), set.GetCopy(TlvTag.EnterpriseKeyIdentifier),
            SessionStart.ReadUInt32(set, TlvTag.KeyLifetime), SessionStart.ReadUInt32(set, TlvTag.EasKeyIdentifier));
        return ParseStatus.Ok;
    }
}

/// <summary>Manage Keys Response (0x31), UE → HSE only, under the NEW key set at CP counter 0; no TLVs.</summary>
public sealed record ManageKeysResponse : ControlCommand
{
    /// <summary>The one instance.</summary>
    public static ManageKeysResponse Instance { get; } = new();

    /// <inheritdoc/>
    public override CommandCode Code => CommandCode.ManageKeysResponse;

    internal override void WriteTlvs(ref TlvWriter writer)
    {
    }
}

/// <summary>
/// Message Reject (0x80), either direction: Cause (0x0D) M; Rejected command (0x15) M; Request checksum
/// (0x0A) C (answering a Session Request); AUTS (0x08) C; Back-off timer (0x0F) O; Cookie (0x16) C.
/// </summary>
public sealed record MessageReject(Cause Cause, byte RejectedCommand, ReadOnlyMemory<byte>? RequestChecksum = null, ReadOnlyMemory<byte>? Auts = null, ushort? BackOffSeconds = null, ReadOnlyMemory<byte>? Cookie = null)
    : ControlCommand
{
    private static readonly TlvTag[] Allowed = [TlvTag.Cause, TlvTag.RejectedCommand, TlvTag.RequestChecksum, TlvTag.Auts, TlvTag.BackOffTimer, TlvTag.Cookie];

    /// <inheritdoc/>
    public override CommandCode Code => CommandCode.MessageReject;

    internal static bool IsValidCause(byte value) => value is >= 0x01 and <= 0x11;

    internal override void WriteTlvs(ref TlvWriter writer)
    {
        writer.WriteByte(TlvTag.Cause, (byte)Cause);
        writer.WriteByte(TlvTag.RejectedCommand, RejectedCommand);
        if (RequestChecksum is { } checksum)
        {
            writer.Write(TlvTag.RequestChecksum, checksum.Span);
        }

        if (Auts is { } auts)
        {
            writer.Write(TlvTag.Auts, auts.Span);
        }

        if (BackOffSeconds is { } backOff)
        {
            writer.WriteUInt16(TlvTag.BackOffTimer, backOff);
        }

        if (Cookie is { } cookie)
        {
            writer.Write(TlvTag.Cookie, cookie.Span);
        }
    }

    internal static ParseStatus TryParse(ReadOnlySpan<byte> tlvs, Span<int> offsets, out ControlCommand? command)
    {
        command = null;
        var status = TlvSet.TryParse(tlvs, Allowed, offsets, out var set);
        if (status != ParseStatus.Ok)
        {
            return status;
        }

        if (!set.Has(TlvTag.Cause) || !set.Has(TlvTag.RejectedCommand) || !IsValidCause(set.Get(TlvTag.Cause)[0]))
        {
            return ParseStatus.Malformed;
        }

        ushort? backOff = set.Has(TlvTag.BackOffTimer) ? BinaryPrimitives.ReadUInt16BigEndian(set.Get(TlvTag.BackOffTimer)) : null;
        command = new MessageReject((Cause)set.Get(TlvTag.Cause)[0], set.Get(TlvTag.RejectedCommand)[0], set.GetCopy(TlvTag.RequestChecksum), set.GetCopy(TlvTag.Auts), backOff, set.GetCopy(TlvTag.Cookie));
        return ParseStatus.Ok;
    }
}

/// <summary>Session Suspend (0xE0, profile extension), either direction; no TLVs.</summary>
public sealed record SessionSuspend : ControlCommand
{
    /// <summary>The one instance.</summary>
    public static SessionSuspend Instance { get; } = new();

    /// <inheritdoc/>
    public override CommandCode Code => CommandCode.SessionSuspend;

    internal override void WriteTlvs(ref TlvWriter writer)
    {
    }
}

/// <summary>Session Resume (0xE1, profile extension), UE → HSE; no TLVs.</summary>
public sealed record SessionResume : ControlCommand
{
    /// <summary>The one instance.</summary>
    public static SessionResume Instance { get; } = new();

    /// <inheritdoc/>
    public override CommandCode Code => CommandCode.SessionResume;

    internal override void WriteTlvs(ref TlvWriter writer)
    {
    }
}

/// <summary>
/// Data Ack (0xE2, profile extension), either direction: Acked counter (0x12) M, the low 32 bits of the
/// acknowledged UP counter; Key ID (0x0C) C, when the acknowledged message's key set differs from the
/// Ack's; Acked tag (0x14) C, in UE-to-EAS mode from the HSE (the first 4 octets of the message's tag).
/// </summary>
public sealed record DataAck(uint AckedCounter, byte? AckedKeyId = null, ReadOnlyMemory<byte>? AckedTag = null) : ControlCommand
{
    private static readonly TlvTag[] Allowed = [TlvTag.AckedCounter, TlvTag.KeyId, TlvTag.AckedTag];

    /// <inheritdoc/>
    public override CommandCode Code => CommandCode.DataAck;

    internal override void WriteTlvs(ref TlvWriter writer)
    {
        writer.WriteUInt32(TlvTag.AckedCounter, AckedCounter);
        if (AckedKeyId is { } keyId)
        {
            writer.WriteByte(TlvTag.KeyId, keyId);
        }

        if (AckedTag is { } tag)
        {
            writer.Write(TlvTag.AckedTag, tag.Span);
        }
    }

    internal static ParseStatus TryParse(ReadOnlySpan<byte> tlvs, Span<int> offsets, out ControlCommand? command)
    {
        command = null;
        var status = TlvSet.TryParse(tlvs, Allowed, offsets, out var set);
        if (status != ParseStatus.Ok)
        {
            return status;
        }

        if (!set.Has(TlvTag.AckedCounter) || (set.Has(TlvTag.KeyId) && set.Get(TlvTag.KeyId)[0] is < 1 or > 7))
        {
            return ParseStatus.Malformed;
        }

        byte? keyId = set.Has(TlvTag.KeyId) ? set.Get(TlvTag.KeyId)[0] : null;
        command = new DataAck(BinaryPrimitives.ReadUInt32BigEndian(set.Get(TlvTag.AckedCounter)), keyId, set.GetCopy(TlvTag.AckedTag));
        return ParseStatus.Ok;
    }
}
