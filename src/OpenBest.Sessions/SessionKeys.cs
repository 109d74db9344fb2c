using OpenBest.Crypto.Aead;
using OpenBest.Protocol;

namespace OpenBest.Sessions;

/// <summary>
/// The key sets of one session (profile sections 3 and 6.2): the current set, a pending set during a
/// key refresh, and old sets kept for receiving during the grace period; plus send-counter reservation.
/// </summary>
internal sealed class SessionKeys : IDisposable
{
    // One slot per Key ID 1..7 (index 0 unused), in one array: an idle session's memory is mostly its keys.
    private readonly Slot[] _slots = NewSlots();
    private readonly ICounterReservation _reservation;
    private readonly Direction _sendDirection;

    public SessionKeys(ICounterReservation reservation, Direction sendDirection)
    {
        _reservation = reservation;
        _sendDirection = sendDirection;
    }

    public byte CurrentKeyId { get; private set; }

    public byte? PendingKeyId { get; private set; }

    public KeySet? Current => CurrentKeyId == 0 ? null : _slots[CurrentKeyId].Set;

    public KeySet? Pending => PendingKeyId is { } id ? _slots[id].Set : null;

    public KeySet? Get(byte keyId) => keyId is >= 1 and <= 7 ? _slots[keyId].Set : null;

    /// <summary>Whether <paramref name="keyId"/> may be used for a new key set (its old set is erased).</summary>
    public bool IsFree(byte keyId) => _slots[keyId].Set is null;

    /// <summary>Installs the first (or a re-run) key set as current, erasing whatever held that ID.</summary>
    public void InstallCurrent(KeySet set)
    {
        Erase(set.KeyId);
        _slots[set.KeyId].Set = set;
        CurrentKeyId = set.KeyId;
    }

    public void InstallPending(KeySet set)
    {
        if (PendingKeyId is { } old && old != set.KeyId)
        {
            Erase(old);
        }

        Erase(set.KeyId);
        _slots[set.KeyId].Set = set;
        PendingKeyId = set.KeyId;
    }

    /// <summary>The pending set becomes current; the old current set is kept for receiving until the grace period ends.</summary>
    public void Promote(DateTimeOffset now, TimeSpan grace)
    {
        if (PendingKeyId is not { } id)
        {
            return;
        }

        if (CurrentKeyId != 0 && CurrentKeyId != id)
        {
            _slots[CurrentKeyId].EraseAtTicks = (now + grace).UtcTicks;
        }

        CurrentKeyId = id;
        PendingKeyId = null;
    }

    public void DropPending()
    {
        if (PendingKeyId is { } id)
        {
            Erase(id);
            PendingKeyId = null;
        }
    }

    /// <summary>Erases old sets whose grace period ended.</summary>
    public bool Expire(DateTimeOffset now)
    {
        var erased = false;
        for (byte id = 1; id <= 7; id++)
        {
            if (_slots[id].EraseAtTicks != 0 && _slots[id].EraseAtTicks <= now.UtcTicks)
            {
                Erase(id);
                erased = true;
            }
        }

        return erased;
    }

    public DateTimeOffset? NextExpiry()
    {
        DateTimeOffset? next = null;
        foreach (var slot in _slots)
        {
            if (slot.EraseAtTicks != 0 && (next is null || slot.EraseAtTicks < next.Value.UtcTicks))
            {
                next = new DateTimeOffset(slot.EraseAtTicks, TimeSpan.Zero);
            }
        }

        return next;
    }

    /// <summary>Takes the next send counter of <paramref name="plane"/>, reserving a block durably first when needed.</summary>
    /// <exception cref="InvalidOperationException">The counter space of the key set is exhausted (2^48 − 1).</exception>
    public ulong NextCounter(KeySet set, Plane plane, uint sessionId, int counterLength)
    {
        var counter = plane == Plane.Control ? set.NextControlCounter : set.NextUserCounter;
        ref var slot = ref _slots[set.KeyId];
        ref var reserved = ref plane == Plane.Control ? ref slot.ReservedControl : ref slot.ReservedUser;
        if (counter >= reserved)
        {
            reserved = counter + BlockSize(counterLength);
            _reservation.Reserve(sessionId, set.KeyId, _sendDirection, plane, reserved);
        }

        return set.TakeCounter(plane);
    }

    /// <summary>The highest acknowledged UP counter this end sent under <paramref name="keyId"/> (−1 when none): per key set, since a new set starts at 0.</summary>
    public long LastAcked(byte keyId) => keyId is >= 1 and <= 7 ? _slots[keyId].LastAcked : -1;

    /// <summary>Records a Data Ack for <paramref name="counter"/> under <paramref name="keyId"/>.</summary>
    public void Acknowledged(byte keyId, ulong counter)
    {
        if (keyId is >= 1 and <= 7)
        {
            _slots[keyId].LastAcked = Math.Max(_slots[keyId].LastAcked, (long)counter);
        }
    }

    /// <summary>Seals <paramref name="command"/> under <paramref name="keys"/> at this end's next CP counter (reserved first) and returns the message.</summary>
    public byte[] SealControl(KeySet keys, uint sessionId, int counterLength, ControlCommand command, ReadOnlySpan<byte> requestHash = default)
    {
        Span<byte> buffer = stackalloc byte[Wire.MaxMessage];
        var counter = NextCounter(keys, Plane.Control, sessionId, counterLength);
        var length = EmsdpProtection.SealControl(keys, _sendDirection, sessionId, counterLength, counter, command.Encode(), requestHash, buffer);
        return buffer[..length].ToArray();
    }

    /// <summary>The reservation block: at most 2^(8n − 3) for n &lt; 4 (16 for n = 1, 4096 for n = 2), 64 for n = 4.</summary>
    public static ulong BlockSize(int counterLength) => counterLength switch
    {
        1 => 16,
        2 => 4096,
        _ => 64,
    };

    /// <summary>Whether a UP message at <paramref name="counter"/> must ask for an Ack: more than 2^(8n − 1) − block ahead of the last acknowledged.</summary>
    public static bool MustRequestAck(ulong counter, long lastAcked, int counterLength) =>
        counterLength < 4 && (long)counter - lastAcked > (1L << ((8 * counterLength) - 1)) - (long)BlockSize(counterLength);

    /// <summary>The usage limit at which a refresh starts: 2^24 messages for the AES suites, 2^32 for ChaCha20-Poly1305.</summary>
    public static long UsageLimit(CipherSuite suite) => suite.Id == 4 ? 1L << 32 : 1L << 24;

    /// <summary>
    /// Writes the live sets (not a pending one: a refresh not yet confirmed is run again) with their reservations,
    /// acknowledgements and grace deadlines. Holds key material: seal it.
    /// </summary>
    public void WriteState(BinaryWriter writer)
    {
        writer.Write(CurrentKeyId);
        for (byte id = 1; id <= 7; id++)
        {
            var set = _slots[id].Set;
            if (set is null || id == PendingKeyId)
            {
                continue;
            }

            writer.Write(id);
            set.WriteState(writer);
            writer.Write(_slots[id].EraseAtTicks == 0 ? -1 : new DateTimeOffset(_slots[id].EraseAtTicks, TimeSpan.Zero).ToUnixTimeMilliseconds());
            writer.Write(_slots[id].ReservedControl);
            writer.Write(_slots[id].ReservedUser);
            writer.Write(_slots[id].LastAcked);
        }

        writer.Write((byte)0);
    }

    /// <summary>
    /// Reads what <see cref="WriteState"/> wrote. Each set sends on from its reserved limits (profile section 3),
    /// so no counter written before a crash is used again.
    /// </summary>
    /// <param name="reader">Where the state is.</param>
    /// <param name="keyless">The session runs without keys (the no-security channel): no key set is expected.</param>
    public void ReadState(BinaryReader reader, bool keyless = false)
    {
        CurrentKeyId = reader.ReadByte();
        byte id;
        while ((id = reader.ReadByte()) != 0)
        {
            var set = KeySet.ReadState(reader);
            if (id > 7 || set.KeyId != id || _slots[id].Set is not null)
            {
                set.Dispose();
                throw new InvalidDataException("A stored session repeats or mislabels a key set.");
            }

            ref var slot = ref _slots[id];
            slot.Set = set;
            var eraseAt = reader.ReadInt64();
            slot.EraseAtTicks = eraseAt < 0 ? 0 : DateTimeOffset.FromUnixTimeMilliseconds(eraseAt).UtcTicks;
            slot.ReservedControl = reader.ReadUInt64();
            slot.ReservedUser = reader.ReadUInt64();
            slot.LastAcked = reader.ReadInt64();
            set.ResumeSendingAt(slot.ReservedControl, slot.ReservedUser);
        }

        if (keyless ? CurrentKeyId != 0 || Current is not null : Current is null)
        {
            throw new InvalidDataException(keyless ? "A stored no-security session holds keys." : "A stored session has no current key set.");
        }
    }

    public void Dispose()
    {
        for (byte id = 1; id <= 7; id++)
        {
            Erase(id);
        }

        CurrentKeyId = 0;
        PendingKeyId = null;
    }

    private void Erase(byte id)
    {
        _slots[id].Set?.Dispose();
        _slots[id] = new Slot { LastAcked = -1 };
    }

    private static Slot[] NewSlots()
    {
        var slots = new Slot[8];
        for (var i = 0; i < slots.Length; i++)
        {
            slots[i].LastAcked = -1;
        }

        return slots;
    }

    /// <summary>A Key ID's set with its grace deadline, send-counter reservations and last acknowledged counter.</summary>
    private struct Slot
    {
        public KeySet? Set;
        public long EraseAtTicks; // 0: kept
        public ulong ReservedControl;
        public ulong ReservedUser;
        public long LastAcked;
    }
}
