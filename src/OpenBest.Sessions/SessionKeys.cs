using OpenBest.Crypto.Aead;
using OpenBest.Protocol;

namespace OpenBest.Sessions;

/// <summary>
/// The key sets of one session (profile sections 3 and 6.2): the current set, a pending set during a
/// key refresh, and old sets kept for receiving during the grace period; plus send-counter reservation.
/// </summary>
internal sealed class SessionKeys : IDisposable
{
    private readonly KeySet?[] _sets = new KeySet?[8];
    private readonly DateTimeOffset?[] _eraseAt = new DateTimeOffset?[8];
    private readonly ulong[] _reservedControl = new ulong[8];
    private readonly ulong[] _reservedUser = new ulong[8];
    private readonly long[] _lastAcked = [-1, -1, -1, -1, -1, -1, -1, -1];
    private readonly ICounterReservation _reservation;
    private readonly Direction _sendDirection;

    public SessionKeys(ICounterReservation reservation, Direction sendDirection)
    {
        _reservation = reservation;
        _sendDirection = sendDirection;
    }

    public byte CurrentKeyId { get; private set; }

    public byte? PendingKeyId { get; private set; }

    public KeySet? Current => CurrentKeyId == 0 ? null : _sets[CurrentKeyId];

    public KeySet? Pending => PendingKeyId is { } id ? _sets[id] : null;

    public KeySet? Get(byte keyId) => keyId is >= 1 and <= 7 ? _sets[keyId] : null;

    /// <summary>Whether <paramref name="keyId"/> may be used for a new key set (its old set is erased).</summary>
    public bool IsFree(byte keyId) => _sets[keyId] is null;

    /// <summary>Installs the first (or a re-run) key set as current, erasing whatever held that ID.</summary>
    public void InstallCurrent(KeySet set)
    {
        Erase(set.KeyId);
        _sets[set.KeyId] = set;
        CurrentKeyId = set.KeyId;
    }

    public void InstallPending(KeySet set)
    {
        if (PendingKeyId is { } old && old != set.KeyId)
        {
            Erase(old);
        }

        Erase(set.KeyId);
        _sets[set.KeyId] = set;
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
            _eraseAt[CurrentKeyId] = now + grace;
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
            if (_eraseAt[id] is { } at && at <= now)
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
        foreach (var at in _eraseAt)
        {
            if (at is { } value && (next is null || value < next))
            {
                next = value;
            }
        }

        return next;
    }

    /// <summary>Takes the next send counter of <paramref name="plane"/>, reserving a block durably first when needed.</summary>
    /// <exception cref="InvalidOperationException">The counter space of the key set is exhausted (2^48 − 1).</exception>
    public ulong NextCounter(KeySet set, Plane plane, uint sessionId, int counterLength)
    {
        var counter = plane == Plane.Control ? set.NextControlCounter : set.NextUserCounter;
        var reserved = plane == Plane.Control ? _reservedControl : _reservedUser;
        if (counter >= reserved[set.KeyId])
        {
            var block = BlockSize(counterLength);
            reserved[set.KeyId] = counter + block;
            _reservation.Reserve(sessionId, set.KeyId, _sendDirection, plane, reserved[set.KeyId]);
        }

        return set.TakeCounter(plane);
    }

    /// <summary>The highest acknowledged UP counter this end sent under <paramref name="keyId"/> (−1 when none): per key set, since a new set starts at 0.</summary>
    public long LastAcked(byte keyId) => keyId is >= 1 and <= 7 ? _lastAcked[keyId] : -1;

    /// <summary>Records a Data Ack for <paramref name="counter"/> under <paramref name="keyId"/>.</summary>
    public void Acknowledged(byte keyId, ulong counter)
    {
        if (keyId is >= 1 and <= 7)
        {
            _lastAcked[keyId] = Math.Max(_lastAcked[keyId], (long)counter);
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
            var set = _sets[id];
            if (set is null || id == PendingKeyId)
            {
                continue;
            }

            writer.Write(id);
            set.WriteState(writer);
            writer.Write(_eraseAt[id]?.ToUnixTimeMilliseconds() ?? -1);
            writer.Write(_reservedControl[id]);
            writer.Write(_reservedUser[id]);
            writer.Write(_lastAcked[id]);
        }

        writer.Write((byte)0);
    }

    /// <summary>
    /// Reads what <see cref="WriteState"/> wrote. Each set sends on from its reserved limits (profile section 3),
    /// so no counter written before a crash is used again.
    /// </summary>
    public void ReadState(BinaryReader reader)
    {
        CurrentKeyId = reader.ReadByte();
        byte id;
        while ((id = reader.ReadByte()) != 0)
        {
            var set = KeySet.ReadState(reader);
            if (set.KeyId != id || _sets[id] is not null)
            {
                set.Dispose();
                throw new InvalidDataException("A stored session repeats or mislabels a key set.");
            }

            _sets[id] = set;
            var eraseAt = reader.ReadInt64();
            _eraseAt[id] = eraseAt < 0 ? null : DateTimeOffset.FromUnixTimeMilliseconds(eraseAt);
            _reservedControl[id] = reader.ReadUInt64();
            _reservedUser[id] = reader.ReadUInt64();
            _lastAcked[id] = reader.ReadInt64();
            set.ResumeSendingAt(_reservedControl[id], _reservedUser[id]);
        }

        if (Current is null)
        {
            throw new InvalidDataException("A stored session has no current key set.");
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
        _sets[id]?.Dispose();
        _sets[id] = null;
        _eraseAt[id] = null;
        _reservedControl[id] = 0;
        _reservedUser[id] = 0;
        _lastAcked[id] = -1;
    }
}
