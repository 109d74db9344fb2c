using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using OpenBest.Crypto.Kdf;

namespace OpenBest.Card.Virtual;

/// <summary>
/// The OBF secure-element application (seed 003 appendix 2.2.2; format in docs/protocol.md "OBF secure element"): Encrypt
/// Device Data, Decrypt Data, key installation under a key the card trusts, keys from the GBA bootstrap, Verify-and-Store
/// of a new server key, GET DATA.
/// </summary>
public sealed partial class VirtualUicc
{
    private ResponseApdu SecureElement(CommandApdu apdu) => apdu.Ins switch
    {
        ObfSecureElementApplication.InsEncryptDeviceData => EncryptDeviceData(apdu),
        ObfSecureElementApplication.InsDecryptData => DecryptData(apdu),
        ObfSecureElementApplication.InsInstallKey => InstallKey(apdu),
        ObfSecureElementApplication.InsDeriveKey => DeriveKey(apdu),
        ObfSecureElementApplication.InsVerifyServerKey => VerifyServerKey(apdu),
        ObfSecureElementApplication.InsGetData => GetData(apdu),
        _ => new ResponseApdu([], StatusWord.InsNotSupported),
    };

    private ResponseApdu EncryptDeviceData(CommandApdu apdu)
    {
        if (apdu.P2 != 0)
        {
            return new ResponseApdu([], StatusWord.IncorrectP1P2);
        }

        if (apdu.Data.Length is 0 or > ObfSecureElementApplication.MaxPlaintext)
        {
            return new ResponseApdu([], StatusWord.WrongLength);
        }

        if (Slot(apdu.P1) is not { } slot)
        {
            return new ResponseApdu([], StatusWord.ReferencedDataNotFound);
        }

        // The counter is on disk before the packet leaves: a counter is never used twice, even across a power cut.
        slot.DeviceCounter++;
        Save();
        return new ResponseApdu(SealedData.Seal(slot.Key, SealDirection.DeviceToServer, slot.Index, slot.DeviceCounter, IccidOctets, apdu.Data.Span), StatusWord.Ok);
    }

    private ResponseApdu DecryptData(CommandApdu apdu)
    {
        if (apdu.P2 != 0)
        {
            return new ResponseApdu([], StatusWord.IncorrectP1P2);
        }

        var (plain, sw) = OpenServerPacket(apdu.P1, apdu.Data.Span);
        return new ResponseApdu(plain, sw);
    }

    private ResponseApdu InstallKey(CommandApdu apdu)
    {
        if (apdu.P1 == apdu.P2)
        {
            return new ResponseApdu([], StatusWord.IncorrectP1P2);
        }

        if (Slot(apdu.P1) is { Origin: KeyOrigin.Personalised })
        {
            return new ResponseApdu([], StatusWord.ConditionsNotSatisfied); // a personalised key is never replaced over the air
        }

        var (plain, sw) = OpenServerPacket(apdu.P2, apdu.Data.Span, commit: false);
        try
        {
            if (sw != StatusWord.Ok)
            {
                return new ResponseApdu([], sw);
            }

            if (plain.Length != 33 || plain[0] != apdu.P1)
            {
                return new ResponseApdu([], StatusWord.IncorrectData);
            }

            if (SetSlot(apdu.P1, KeyOrigin.Installed, plain.AsSpan(1)) is var set && set != StatusWord.Ok)
            {
                return new ResponseApdu([], set);
            }

            Slot(apdu.P2)!.ServerCounter = SealedData.TryHeader(apdu.Data.Span, out _, out var counter) ? counter : 0;
            Save();
            return new ResponseApdu([], StatusWord.Ok);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plain);
        }
    }

    private ResponseApdu DeriveKey(CommandApdu apdu)
    {
        if (apdu.P2 != 0)
        {
            return new ResponseApdu([], StatusWord.IncorrectP1P2);
        }

        if (!TryNafAndImpi(apdu.Data.Span, out var nafId, out var impi))
        {
            return new ResponseApdu([], StatusWord.IncorrectData);
        }

        if (_state.Ks.Length != 32 || Slot(apdu.P1) is { Origin: KeyOrigin.Personalised or KeyOrigin.Installed })
        {
            return new ResponseApdu([], StatusWord.ConditionsNotSatisfied);
        }

        var key = new byte[32];
        try
        {
            Gba.KsIntNaf(_state.Ks.AsSpan(0, 16), _state.Ks.AsSpan(16), _state.GbaRand, impi, nafId, key);
            if (SetSlot(apdu.P1, KeyOrigin.Bootstrap, key) is var set && set != StatusWord.Ok)
            {
                return new ResponseApdu([], set);
            }

            Save();
            return new ResponseApdu([], StatusWord.Ok);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    private ResponseApdu VerifyServerKey(CommandApdu apdu)
    {
        if (apdu.P1 != 0 || apdu.P2 != 0)
        {
            return new ResponseApdu([], StatusWord.IncorrectP1P2);
        }

        if (_state.ServerPublicKey.Length != 65)
        {
            return new ResponseApdu([], StatusWord.ReferencedDataNotFound);
        }

        var record = apdu.Data.Span;
        if (!ServerKeyRecord.TryParse(record, out var sequence, out var endpoint, out var iccid, out var publicKey, out _) || iccid != _state.Iccid)
        {
            return new ResponseApdu([], StatusWord.IncorrectData);
        }

        if (!ServerKeyRecord.Verify(_state.ServerPublicKey, record))
        {
            return new ResponseApdu([], StatusWord.SecurityStatusNotSatisfied);
        }

        if (sequence <= _state.ServerKeySequence)
        {
            return new ResponseApdu([], StatusWord.ConditionsNotSatisfied); // an old record replayed
        }

        _state.ServerKeySequence = sequence;
        _state.ServerEndpoint = endpoint;
        _state.ServerPublicKey = publicKey;
        Save();
        return new ResponseApdu([], StatusWord.Ok);
    }

    private ResponseApdu GetData(CommandApdu apdu)
    {
        switch ((apdu.P1 << 8) | apdu.P2)
        {
            case 0x0001:
                if (_state.ServerPublicKey.Length != 65)
                {
                    return new ResponseApdu([], StatusWord.ReferencedDataNotFound);
                }

                var endpoint = Encoding.UTF8.GetBytes(_state.ServerEndpoint);
                var sequence = new byte[8];
                BinaryPrimitives.WriteUInt64BigEndian(sequence, _state.ServerKeySequence);
                return new ResponseApdu([.. sequence, (byte)endpoint.Length, .. endpoint, .. _state.ServerPublicKey], StatusWord.Ok);
            case 0x0002:
                return new ResponseApdu([.. _state.Slots.OrderBy(s => s.Index).SelectMany(s => new[] { s.Index, (byte)s.Origin })], StatusWord.Ok);
            default:
                return new ResponseApdu([], StatusWord.IncorrectP1P2);
        }
    }

    /// <summary>
    /// Opens a server packet under key index <paramref name="index"/>: header for that index, tag (the TRUST data), then a
    /// counter above the last accepted one. With <paramref name="commit"/> the counter is stored before the plaintext leaves.
    /// </summary>
    private (byte[] Plain, ushort Sw) OpenServerPacket(byte index, ReadOnlySpan<byte> packet, bool commit = true)
    {
        if (!SealedData.TryHeader(packet, out var keyIndex, out var counter) || keyIndex != index)
        {
            return ([], packet.Length < SealedData.Overhead ? StatusWord.WrongLength : StatusWord.IncorrectData);
        }

        if (Slot(index) is not { } slot)
        {
            return ([], StatusWord.ReferencedDataNotFound);
        }

        var plain = new byte[packet.Length - SealedData.Overhead];
        if (!SealedData.TryOpen(slot.Key, SealDirection.ServerToDevice, IccidOctets, packet, plain))
        {
            return ([], StatusWord.SecurityStatusNotSatisfied);
        }

        if (counter <= slot.ServerCounter)
        {
            CryptographicOperations.ZeroMemory(plain);
            return ([], StatusWord.ConditionsNotSatisfied); // a replay: the counter was used already
        }

        if (commit)
        {
            slot.ServerCounter = counter;
            Save();
        }

        return (plain, StatusWord.Ok);
    }

    private KeySlot? Slot(byte index) => _state.Slots.FirstOrDefault(s => s.Index == index);

    /// <summary>
    /// Puts <paramref name="key"/> at <paramref name="index"/>: the same key keeps its counters; a key the slot held before is
    /// refused (its counters would start again, and with them nonces and accepted packets); a new key starts at zero.
    /// </summary>
    private ushort SetSlot(byte index, KeyOrigin origin, ReadOnlySpan<byte> key)
    {
        if (Slot(index) is { } existing)
        {
            if (!CryptographicOperations.FixedTimeEquals(existing.Key, key))
            {
                var fingerprint = Convert.ToHexString(SHA256.HashData(key));
                if (existing.Retired.Contains(fingerprint))
                {
                    return StatusWord.ConditionsNotSatisfied;
                }

                existing.Retired.Add(Convert.ToHexString(SHA256.HashData(existing.Key)));
                if (existing.Retired.Count > 64)
                {
                    existing.Retired.RemoveAt(0);
                }

                CryptographicOperations.ZeroMemory(existing.Key);
                existing.Key = key.ToArray();
                existing.DeviceCounter = 0;
                existing.ServerCounter = 0;
            }

            existing.Origin = origin;
            return StatusWord.Ok;
        }

        if (_state.Slots.Count >= SecureElementSlots)
        {
            return StatusWord.NotEnoughMemory;
        }

        _state.Slots.Add(new KeySlot { Index = index, Origin = origin, Key = key.ToArray() });
        return StatusWord.Ok;
    }
}
