using System.Security.Cryptography;
using OpenBest.Crypto.Aead;
using OpenBest.Crypto.Kdf;

namespace OpenBest.Protocol;

/// <summary>Which end of a BEST association holds a key set.</summary>
public enum EndpointRole
{
    /// <summary>The device.</summary>
    Ue,

    /// <summary>The HPLMN Security Endpoint.</summary>
    Hse,

    /// <summary>The Enterprise Application Server (UE-to-EAS mode).</summary>
    Eas,
}

/// <summary>
/// One of a session's (up to seven) key sets with its counters (profile sections 3 to 5): the CP key
/// K_E2Mint, the UP key of the selected service and mode, the send counters and the receive windows
/// per plane. Dispose it to zero the keys.
/// </summary>
/// <remarks>
/// Key use (profile section 4): CP always uses K_E2Mint. UP in UE-to-HSE mode uses K_E2Mint
/// (integrity) or K_E2Menc (confidential); in UE-to-EAS mode K_E2Eint or K_E2Eenc, which the HSE does
/// not hold (it forwards UP unmodified). The nonce's plane bit keeps CP and UP apart under K_E2Mint.
/// </remarks>
public sealed class KeySet : IDisposable
{
    private readonly AeadKey? _controlKey;
    private readonly AeadKey? _userKey;
    private ReplayWindow _receiveControl = new();
    private ReplayWindow _receiveUser = new();

    private KeySet(byte keyId, CipherSuite suite, BestService service, bool ueToEasMode, AeadKey? controlKey, AeadKey? userKey)
    {
        KeyId = keyId;
        Suite = suite;
        Service = service;
        UeToEasMode = ueToEasMode;
        _controlKey = controlKey;
        _userKey = userKey;
    }

    /// <summary>The Key ID, 1..7.</summary>
    public byte KeyId { get; }

    /// <summary>The cipher suite.</summary>
    public CipherSuite Suite { get; }

    /// <summary>The service.</summary>
    public BestService Service { get; }

    /// <summary>Whether UP is end to end (UE-to-EAS mode).</summary>
    public bool UeToEasMode { get; }

    /// <summary>Whether this end holds the CP key.</summary>
    public bool HasControlKey => _controlKey is not null;

    /// <summary>Whether this end holds the UP key.</summary>
    public bool HasUserKey => _userKey is not null;

    /// <summary>Whether UP payloads are encrypted.</summary>
    public bool IsConfidential => Service == BestService.Confidential;

    /// <summary>The next counter this end sends on the control plane.</summary>
    public ulong NextControlCounter { get; private set; }

    /// <summary>The next counter this end sends on the user plane.</summary>
    public ulong NextUserCounter { get; private set; }

    /// <summary>Takes the next send counter of <paramref name="plane"/> (the caller reserves it durably first).</summary>
    /// <exception cref="InvalidOperationException">The counter space is exhausted (2^48 − 1): the sender refuses to send.</exception>
    public ulong TakeCounter(Plane plane)
    {
        var counter = plane == Plane.Control ? NextControlCounter : NextUserCounter;
        if (counter >= ReplayWindow.MaxCounter)
        {
            throw new InvalidOperationException("The key set's counter space is exhausted: refresh the keys before sending more.");
        }

        if (plane == Plane.Control)
        {
            NextControlCounter = counter + 1;
        }
        else
        {
            NextUserCounter = counter + 1;
        }

        return counter;
    }

    /// <summary>After a restart: continue sending at the reserved limits (profile section 3).</summary>
    public void ResumeSendingAt(ulong control, ulong user)
    {
        NextControlCounter = Math.Max(NextControlCounter, control);
        NextUserCounter = Math.Max(NextUserCounter, user);
    }

    /// <summary>Tag failures seen on this key set (profile section 3, integrity limit).</summary>
    public long TagFailures { get; internal set; }

    /// <summary>Messages sealed under this key set (both planes).</summary>
    public long MessagesSealed { get; internal set; }

    /// <summary>The highest counter accepted on <paramref name="plane"/> (−1 when none).</summary>
    public long ReceiveHighest(Plane plane) => plane == Plane.Control ? _receiveControl.Highest : _receiveUser.Highest;

    internal ref ReplayWindow ReceiveWindow(Plane plane) => ref plane == Plane.Control ? ref _receiveControl : ref _receiveUser;

    internal AeadKey? KeyFor(Plane plane) => plane == Plane.Control ? _controlKey : _userKey;

    /// <summary>
    /// Derives the key set of the UE or the HSE from K_root (profile section 5). In UE-to-EAS mode the UE
    /// also derives the E2E keys (from K_Intermediate, the EAS Id and the optional Enterprise Key); the HSE
    /// holds only the CP key, and gives K_EAS_PSK (see <see cref="DeriveEasPsk"/>) to the EAS.
    /// </summary>
    public static KeySet Derive(EndpointRole role, ReadOnlySpan<byte> kRoot, CipherSuite suite, BestService service, bool ueToEasMode,
        uint sessionId, byte keyId, ReadOnlySpan<byte> fresh, ReadOnlySpan<byte> ueNonce, string? easId = null, ReadOnlySpan<byte> enterpriseKey = default)
    {
        ArgumentNullException.ThrowIfNull(suite);
        if (role == EndpointRole.Eas)
        {
            throw new ArgumentException("An EAS derives its key set from K_EAS_PSK: use DeriveForEas.", nameof(role));
        }

        Span<byte> key = stackalloc byte[32];
        AeadKey? control = null;
        AeadKey? user = null;
        try
        {
            BestKeys.KE2MInt(kRoot, suite, sessionId, keyId, fresh, ueNonce, key);
            control = suite.CreateKey(key[..suite.KeySize]);
            if (service is BestService.Integrity or BestService.Confidential)
            {
                if (!ueToEasMode)
                {
                    if (service == BestService.Integrity)
                    {
                        user = control; // K_E2Mint protects both planes: one key object (the nonce's plane bit keeps them apart)
                    }
                    else
                    {
                        BestKeys.KE2MEnc(kRoot, suite, sessionId, keyId, fresh, ueNonce, key);
                        user = suite.CreateKey(key[..suite.KeySize]);
                    }
                }
                else if (role == EndpointRole.Ue)
                {
                    ArgumentException.ThrowIfNullOrEmpty(easId);
                    Span<byte> psk = stackalloc byte[32];
                    DeriveEasPsk(kRoot, sessionId, keyId, fresh, ueNonce, easId, psk);
                    user = EndToEndKey(psk, suite, service, enterpriseKey);
                    CryptographicOperations.ZeroMemory(psk);
                }
            }

            return new KeySet(keyId, suite, service, ueToEasMode, control, user);
        }
        catch
        {
            control?.Dispose();
            if (!ReferenceEquals(user, control))
            {
                user?.Dispose();
            }

            throw;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    /// <summary>The EAS's key set: UP only, from the K_EAS_PSK the HSE delivered.</summary>
    public static KeySet DeriveForEas(ReadOnlySpan<byte> kEasPsk, CipherSuite suite, BestService service, byte keyId, ReadOnlySpan<byte> enterpriseKey = default)
    {
        ArgumentNullException.ThrowIfNull(suite);
        return new KeySet(keyId, suite, service, ueToEasMode: true, controlKey: null, EndToEndKey(kEasPsk, suite, service, enterpriseKey));
    }

    /// <summary>K_EAS_PSK = KDF(K_Intermediate, "EAS-PSK", EAS Id), K_Intermediate from K_root (profile section 5).</summary>
    public static void DeriveEasPsk(ReadOnlySpan<byte> kRoot, uint sessionId, byte keyId, ReadOnlySpan<byte> fresh, ReadOnlySpan<byte> ueNonce, string easId, Span<byte> kEasPsk)
    {
        Span<byte> intermediate = stackalloc byte[32];
        BestKeys.KIntermediate(kRoot, sessionId, keyId, fresh, ueNonce, intermediate);
        BestKeys.KEasPsk(intermediate, easId, kEasPsk);
        CryptographicOperations.ZeroMemory(intermediate);
    }

    /// <summary>
    /// Writes the key set's whole state (keys, send counters, receive windows, usage) so a restarted end can
    /// go on with it. The output holds key material: seal it at rest and zero the buffer.
    /// </summary>
    public void WriteState(BinaryWriter writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.Write(KeyId);
        writer.Write(Suite.Id);
        writer.Write((byte)Service);
        writer.Write(UeToEasMode);
        Span<byte> key = stackalloc byte[32];
        foreach (var handle in (ReadOnlySpan<AeadKey?>)[_controlKey, _userKey])
        {
            writer.Write(handle is not null);
            if (handle is not null)
            {
                handle.Export(key);
                writer.Write(key[..Suite.KeySize]);
            }
        }

        CryptographicOperations.ZeroMemory(key);
        writer.Write(NextControlCounter);
        writer.Write(NextUserCounter);
        writer.Write(TagFailures);
        writer.Write(MessagesSealed);
        foreach (var window in (ReadOnlySpan<ReplayWindow>)[_receiveControl, _receiveUser])
        {
            writer.Write(window.Highest);
            writer.Write(window.Bitmap);
        }
    }

    /// <summary>Reads a key set written by <see cref="WriteState"/>.</summary>
    /// <exception cref="InvalidDataException">The state is not one <see cref="WriteState"/> wrote.</exception>
    public static KeySet ReadState(BinaryReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var keyId = reader.ReadByte();
        if (keyId is < 1 or > 7 || !CipherSuite.TryGet(reader.ReadByte(), out var suite))
        {
            throw new InvalidDataException("A stored key set has an invalid Key ID or suite.");
        }

        var service = (BestService)reader.ReadByte();
        var ueToEas = reader.ReadBoolean();
        var handles = new AeadKey?[2];
        var key = new byte[suite.KeySize];
        try
        {
            for (var i = 0; i < 2; i++)
            {
                if (reader.ReadBoolean())
                {
                    if (reader.Read(key) != key.Length)
                    {
                        throw new InvalidDataException("A stored key set is truncated.");
                    }

                    handles[i] = i == 1 && handles[0] is not null && service == BestService.Integrity && !ueToEas ? handles[0] : suite.CreateKey(key);
                }
            }

            var set = new KeySet(keyId, suite, service, ueToEas, handles[0], handles[1])
            {
                NextControlCounter = reader.ReadUInt64(),
                NextUserCounter = reader.ReadUInt64(),
                TagFailures = reader.ReadInt64(),
                MessagesSealed = reader.ReadInt64(),
            };
            set._receiveControl = ReplayWindow.FromState(reader.ReadInt64(), reader.ReadUInt64());
            set._receiveUser = ReplayWindow.FromState(reader.ReadInt64(), reader.ReadUInt64());
            return set;
        }
        catch
        {
            handles[0]?.Dispose();
            handles[1]?.Dispose();
            throw;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    /// <summary>Zeroes the keys.</summary>
    public void Dispose()
    {
        _controlKey?.Dispose();
        if (!ReferenceEquals(_userKey, _controlKey))
        {
            _userKey?.Dispose();
        }
    }

    /// <summary>Never shows keys.</summary>
    public override string ToString() => $"KeySet({KeyId}, {Suite.Name}, {Service})";

    private static AeadKey EndToEndKey(ReadOnlySpan<byte> kEasPsk, CipherSuite suite, BestService service, ReadOnlySpan<byte> enterpriseKey)
    {
        Span<byte> key = stackalloc byte[32];
        try
        {
            if (service == BestService.Confidential)
            {
                BestKeys.KE2EEnc(kEasPsk, suite, enterpriseKey, key);
            }
            else
            {
                BestKeys.KE2EInt(kEasPsk, suite, enterpriseKey, key);
            }

            return suite.CreateKey(key[..suite.KeySize]);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }
}
