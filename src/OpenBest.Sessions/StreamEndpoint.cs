using System.Buffers.Binary;

namespace OpenBest.Sessions;

/// <summary>What ended a stream that did not finish cleanly.</summary>
public enum StreamFailure : byte
{
    /// <summary>Still open, or finished cleanly.</summary>
    None = 0,

    /// <summary>The peer aborted the stream (RST).</summary>
    ResetByPeer = 1,

    /// <summary>Data went unacknowledged through every retransmission.</summary>
    TimedOut = 2,

    /// <summary>This end aborted it.</summary>
    Aborted = 3,

    /// <summary>The far end of the conversion failed (the TLS server could not be reached or verified, or it broke off).</summary>
    Unreachable = 4,
}

/// <summary>
/// One end of a reliable byte stream carried in BEST user-plane messages (the TLS converter's stream, docs/protocol.md
/// "TLS converter"), sans-IO: frames and the time go in, frames to send and the bytes received in order come out.
/// Ordered and acknowledged (cumulative acknowledgement, out-of-order segments kept within the window, retransmission with
/// exponential back-off and Karn's rule), flow-controlled (each frame advertises the free receive buffer; a sender facing a
/// zero window probes it), and closed cleanly in each direction (FIN, acknowledged). Not thread-safe: one caller at a time.
/// </summary>
/// <remarks>
/// Frame: type (1: 0x01 DATA, 0x02 ACK, 0x03 FIN, 0x04 RST) ‖ seq (4) ‖ ack (4) ‖ window (4) ‖ data. Offsets are the low
/// 32 bits of byte positions, read back as the value closest to the one expected; FIN takes one position after the last
/// octet. An RST carries its cause as its one data octet. A malformed frame is dropped and counted, never thrown.
/// </remarks>
public sealed class StreamEndpoint
{
    /// <summary>The most data one DATA frame carries (it then fits a 1280-octet datagram with the EMSDP header and tag).</summary>
    public const int MaxSegment = 1024;

    /// <summary>The frame header's length.</summary>
    public const int HeaderLength = 13;

    private const byte Data = 0x01, Ack = 0x02, Fin = 0x03, Rst = 0x04;
    private const int MaxInFlightSegments = 32;
    private readonly int _receiveBuffer;
    private readonly int _maxRetries;
    private readonly List<byte[]> _out = [];

    // Sending.
    private readonly Queue<byte[]> _unsent = new();
    private int _unsentOffset;
    private long _unsentBytes;
    private readonly SortedDictionary<long, Segment> _inFlight = [];
    private long _sendBase;
    private long _nextSeq;
    private long _peerWindow = MaxSegment;
    private bool _finRequested;
    private long _finSeq = -1;
    private long _finSentAt = -1;
    private int _finRetries;
    private long _rtoMs;
    private double _srttMs = -1;
    private double _rttVarMs;
    private long _probeAt = -1;
    private int _duplicateAcks;
    private long _lastRetransmitAt = -1;

    // Receiving.
    private readonly Queue<byte[]> _readable = new();
    private int _readableOffset;
    private long _readableBytes;
    private readonly SortedDictionary<long, byte[]> _outOfOrder = [];
    private long _outOfOrderBytes;
    private long _rcvNext;
    private long _peerFin = -1;

    /// <summary>A stream end with <paramref name="receiveBuffer"/> octets of receive buffer (the window it advertises).</summary>
    public StreamEndpoint(int receiveBuffer = 64 * 1024, TimeSpan? initialRetransmission = null, int maxRetries = 10)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(receiveBuffer, MaxSegment);
        _receiveBuffer = receiveBuffer;
        _maxRetries = maxRetries;
        _rtoMs = (long)(initialRetransmission ?? TimeSpan.FromSeconds(1)).TotalMilliseconds;
    }

    /// <summary>Octets written and not yet acknowledged by the peer (what <see cref="Write"/> callers keep below a bound).</summary>
    public long Unacknowledged => _unsentBytes + (_nextSeq - _sendBase);

    /// <summary>Octets received in order and not read yet.</summary>
    public long Readable => _readableBytes;

    /// <summary>Whether the peer finished its direction and everything it sent has been read.</summary>
    public bool RemoteFinished => _peerFin >= 0 && _rcvNext > _peerFin && _readableBytes == 0;

    /// <summary>Whether this end's FIN was acknowledged: everything written reached the peer.</summary>
    public bool LocalFinished => _finSeq >= 0 && _sendBase > _finSeq;

    /// <summary>Why the stream failed; <see cref="StreamFailure.None"/> while it has not.</summary>
    public StreamFailure Failure { get; private set; }

    /// <summary>Whether both directions are finished, or the stream failed.</summary>
    public bool Closed => Failure != StreamFailure.None || (RemoteFinished && LocalFinished);

    /// <summary>Frames dropped as malformed or out of the window.</summary>
    public long Dropped { get; private set; }

    /// <summary>Segments sent again after a timeout.</summary>
    public long Retransmitted { get; private set; }

    /// <summary>Queues <paramref name="data"/> to send (<see cref="Pump"/> sends what the window allows).</summary>
    /// <exception cref="InvalidOperationException">The stream was finished or failed.</exception>
    public void Write(ReadOnlySpan<byte> data)
    {
        if (_finRequested || Failure != StreamFailure.None)
        {
            throw new InvalidOperationException("The stream is finished or failed: nothing more can be written.");
        }

        if (!data.IsEmpty)
        {
            _unsent.Enqueue(data.ToArray());
            _unsentBytes += data.Length;
        }
    }

    /// <summary>Ends this direction once everything written is sent (FIN).</summary>
    public void Finish() => _finRequested = true;

    /// <summary>Aborts the stream: an RST with <paramref name="cause"/> goes to the peer, and nothing more is sent or delivered.</summary>
    public void Abort(StreamFailure cause = StreamFailure.Aborted)
    {
        if (Failure != StreamFailure.None)
        {
            return;
        }

        _out.Add(Frame(Rst, 0, [(byte)cause]));
        Fail(StreamFailure.Aborted);
    }

    /// <summary>Reads received octets in order; 0 when none are waiting (see <see cref="RemoteFinished"/> for the end).</summary>
    public int Read(Span<byte> buffer)
    {
        var before = Window();
        var read = 0;
        while (read < buffer.Length && _readable.Count > 0)
        {
            var head = _readable.Peek();
            var n = Math.Min(buffer.Length - read, head.Length - _readableOffset);
            head.AsSpan(_readableOffset, n).CopyTo(buffer[read..]);
            read += n;
            _readableOffset += n;
            if (_readableOffset == head.Length)
            {
                _readable.Dequeue();
                _readableOffset = 0;
            }
        }

        _readableBytes -= read;

        // A window that was (nearly) closed and opened by this read is announced at once: the peer may be waiting on it.
        if (before < MaxSegment && Window() >= MaxSegment && Failure == StreamFailure.None)
        {
            _out.Add(Frame(Ack, _nextSeq, []));
        }

        return read;
    }

    /// <summary>Takes a frame from the peer. False (and counted) when it is malformed; it never throws on peer input.</summary>
    public bool OnFrame(ReadOnlySpan<byte> frame, long nowMs)
    {
        if (frame.Length < HeaderLength || frame[0] is < Data or > Rst || Failure != StreamFailure.None)
        {
            Dropped++;
            return false;
        }

        var type = frame[0];
        var seq = Unwrap(BinaryPrimitives.ReadUInt32BigEndian(frame[1..]), _rcvNext);
        var ack = Unwrap(BinaryPrimitives.ReadUInt32BigEndian(frame[5..]), _sendBase);
        var window = BinaryPrimitives.ReadUInt32BigEndian(frame[9..]);
        var data = frame[HeaderLength..];
        if (type == Rst)
        {
            Fail(data.Length == 1 && data[0] == (byte)StreamFailure.Unreachable ? StreamFailure.Unreachable : StreamFailure.ResetByPeer);
            return true;
        }

        if (ack > _nextSeq + (_finSeq >= 0 ? 1 : 0) || (type != Data && data.Length != 0) || data.Length > MaxSegment)
        {
            Dropped++; // acknowledges what was never sent, or a shape no sender makes
            return false;
        }

        OnAck(ack, window, nowMs, type == Ack);
        if (type == Data)
        {
            OnData(seq, data);
            _out.Add(Frame(Ack, _nextSeq, []));
        }
        else if (type == Fin)
        {
            if (_peerFin < 0 && seq >= _rcvNext)
            {
                _peerFin = seq;
            }

            if (_peerFin == _rcvNext)
            {
                _rcvNext = _peerFin + 1; // FIN takes one position
            }

            _out.Add(Frame(Ack, _nextSeq, []));
        }

        return true;
    }

    /// <summary>Runs the timers (retransmission, window probe) and sends what the window allows; then <see cref="TakeFrames"/>.</summary>
    public void Pump(long nowMs)
    {
        if (Failure != StreamFailure.None)
        {
            return;
        }

        // Retransmission: the oldest segment in flight, or the FIN, whose timer ran out goes again, back-off doubled.
        if (_inFlight.Count > 0)
        {
            var (offset, oldest) = _inFlight.First();
            if (nowMs - oldest.TimerAt >= _rtoMs)
            {
                if (oldest.Retries >= _maxRetries)
                {
                    Fail(StreamFailure.TimedOut);
                    _out.Add(Frame(Rst, _nextSeq, [(byte)StreamFailure.TimedOut]));
                    return;
                }

                _inFlight[offset] = oldest with { TimerAt = nowMs, Retries = oldest.Retries + 1 };
                _out.Add(Frame(Data, offset, oldest.Data));
                Retransmitted++;
                _lastRetransmitAt = nowMs;
                _rtoMs = Math.Min(_rtoMs * 2, 60_000);
            }
        }
        else if (_finSentAt >= 0 && !LocalFinished && nowMs - _finSentAt >= _rtoMs)
        {
            if (_finRetries >= _maxRetries)
            {
                Fail(StreamFailure.TimedOut);
                return;
            }

            _finRetries++;
            _finSentAt = nowMs;
            _out.Add(Frame(Fin, _finSeq, []));
            _rtoMs = Math.Min(_rtoMs * 2, 60_000);
        }

        // New data, as far as the peer's window and the in-flight cap allow.
        while (_unsentBytes > 0 && _inFlight.Count < MaxInFlightSegments)
        {
            var room = _sendBase + _peerWindow - _nextSeq;
            if (room <= 0)
            {
                break;
            }

            var segment = TakeUnsent((int)Math.Min(Math.Min(room, MaxSegment), _unsentBytes));
            _inFlight[_nextSeq] = new Segment(segment, nowMs, nowMs, 0);
            _out.Add(Frame(Data, _nextSeq, segment));
            _nextSeq += segment.Length;
        }

        // A closed window with data waiting: probe it (an empty DATA frame, which the peer acknowledges with its window).
        if (_unsentBytes > 0 && _inFlight.Count == 0 && _sendBase + _peerWindow <= _nextSeq)
        {
            if (_probeAt < 0)
            {
                _probeAt = nowMs + _rtoMs;
            }
            else if (nowMs >= _probeAt)
            {
                _out.Add(Frame(Data, _nextSeq, []));
                _probeAt = nowMs + _rtoMs;
            }
        }
        else
        {
            _probeAt = -1;
        }

        if (_finRequested && _unsentBytes == 0 && _finSeq < 0)
        {
            _finSeq = _nextSeq;
            _finSentAt = nowMs;
            _out.Add(Frame(Fin, _finSeq, []));
        }
    }

    /// <summary>The frames to send now, in order (each one user-plane message).</summary>
    public IReadOnlyList<byte[]> TakeFrames()
    {
        if (_out.Count == 0)
        {
            return [];
        }

        var frames = _out.ToArray();
        _out.Clear();
        return frames;
    }

    /// <summary>When <see cref="Pump"/> next has timer work (retransmission, FIN, probe), or null when none waits.</summary>
    public long? NextTimer(long nowMs)
    {
        if (Failure != StreamFailure.None)
        {
            return null;
        }

        if (_inFlight.Count > 0)
        {
            return _inFlight.First().Value.TimerAt + _rtoMs;
        }

        if (_finSentAt >= 0 && !LocalFinished)
        {
            return _finSentAt + _rtoMs;
        }

        if (_probeAt >= 0)
        {
            return _probeAt;
        }

        return _unsentBytes > 0 || (_finRequested && _finSeq < 0) ? nowMs : null;
    }

    private void OnAck(long ack, uint window, long nowMs, bool pureAck)
    {
        _peerWindow = window;
        if (ack <= _sendBase)
        {
            // Three acknowledgements of the same position while data is in flight: the peer holds later segments and
            // misses the first one. It goes again at once (fast retransmit), without waiting for the timer.
            if (pureAck && ack == _sendBase && _inFlight.Count > 0 && ++_duplicateAcks == 3)
            {
                var (offset, oldest) = _inFlight.First();
                _inFlight[offset] = oldest with { TimerAt = nowMs, Retries = oldest.Retries + 1 };
                _out.Add(Frame(Data, offset, oldest.Data));
                Retransmitted++;
                _lastRetransmitAt = nowMs;
            }

            return;
        }

        _duplicateAcks = 0;

        // Karn: a sample only from the segment this acknowledgement ends at, sent once and after the last retransmission
        // (a segment held behind a lost one would measure the retransmission timer, not the path).
        foreach (var (offset, segment) in _inFlight.ToList())
        {
            if (offset + segment.Data.Length > ack)
            {
                break;
            }

            if (offset + segment.Data.Length == ack && segment.Retries == 0 && segment.SentAt > _lastRetransmitAt)
            {
                Sample(nowMs - segment.SentAt);
            }

            _inFlight.Remove(offset);
        }

        _sendBase = ack;
        if (_srttMs >= 0)
        {
            _rtoMs = (long)Math.Clamp(_srttMs + (4 * _rttVarMs), 200, 60_000); // progress ends the back-off
        }

        if (_inFlight.Count > 0)
        {
            // What is left in flight restarts its timer from this progress.
            var (first, segment) = _inFlight.First();
            _inFlight[first] = segment with { TimerAt = nowMs };
        }
    }

    private void OnData(long seq, ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty || (_peerFin >= 0 && seq + data.Length > _peerFin))
        {
            return; // a window probe, or data past the peer's own end
        }

        var end = seq + data.Length;
        if (end <= _rcvNext)
        {
            return; // a duplicate: acknowledged again
        }

        if (seq > _rcvNext)
        {
            // Out of order: kept when it fits the window.
            if (end - _rcvNext <= Window() && !_outOfOrder.ContainsKey(seq))
            {
                _outOfOrder[seq] = data.ToArray();
                _outOfOrderBytes += data.Length;
            }
            else
            {
                Dropped++;
            }

            return;
        }

        var fresh = data[(int)(_rcvNext - seq)..];
        if (fresh.Length > Window())
        {
            Dropped++; // the peer ignored the window
            return;
        }

        Deliver(fresh.ToArray());
        while (_outOfOrder.Count > 0)
        {
            var (offset, held) = _outOfOrder.First();
            if (offset > _rcvNext)
            {
                break;
            }

            _outOfOrder.Remove(offset);
            _outOfOrderBytes -= held.Length;
            if (offset + held.Length > _rcvNext)
            {
                Deliver(held[(int)(_rcvNext - offset)..]);
            }
        }

        if (_peerFin == _rcvNext)
        {
            _rcvNext = _peerFin + 1;
        }
    }

    private void Deliver(byte[] bytes)
    {
        _readable.Enqueue(bytes);
        _readableBytes += bytes.Length;
        _rcvNext += bytes.Length;
    }

    private long Window() => Math.Max(0, _receiveBuffer - _readableBytes - _outOfOrderBytes);

    private void Sample(long rttMs)
    {
        if (_srttMs < 0)
        {
            _srttMs = rttMs;
            _rttVarMs = rttMs / 2.0;
        }
        else
        {
            _rttVarMs = (0.75 * _rttVarMs) + (0.25 * Math.Abs(_srttMs - rttMs));
            _srttMs = (0.875 * _srttMs) + (0.125 * rttMs);
        }

        _rtoMs = (long)Math.Clamp(_srttMs + (4 * _rttVarMs), 200, 60_000);
    }

    private byte[] TakeUnsent(int count)
    {
        var segment = new byte[count];
        var taken = 0;
        while (taken < count)
        {
            var head = _unsent.Peek();
            var n = Math.Min(count - taken, head.Length - _unsentOffset);
            head.AsSpan(_unsentOffset, n).CopyTo(segment.AsSpan(taken));
            taken += n;
            _unsentOffset += n;
            if (_unsentOffset == head.Length)
            {
                _unsent.Dequeue();
                _unsentOffset = 0;
            }
        }

        _unsentBytes -= count;
        return segment;
    }

    private byte[] Frame(byte type, long seq, ReadOnlySpan<byte> data)
    {
        var window = Window();
        var frame = new byte[HeaderLength + data.Length];
        frame[0] = type;
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), (uint)seq);
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(5), (uint)_rcvNext);
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(9), (uint)window);
        data.CopyTo(frame.AsSpan(HeaderLength));
        return frame;
    }

    private void Fail(StreamFailure failure)
    {
        Failure = failure;
        _unsent.Clear();
        _unsentBytes = 0;
        _inFlight.Clear();
    }

    /// <summary>The position whose low 32 bits are <paramref name="wire"/> and which is closest to <paramref name="expected"/>.</summary>
    private static long Unwrap(uint wire, long expected)
    {
        var candidate = (expected & ~0xFFFF_FFFFL) | wire;
        if (candidate - expected > 0x8000_0000L)
        {
            candidate -= 0x1_0000_0000L;
        }
        else if (expected - candidate > 0x8000_0000L)
        {
            candidate += 0x1_0000_0000L;
        }

        return Math.Max(0, candidate);
    }

    /// <summary>The stream's positions and state, for diagnostics (no data).</summary>
    public override string ToString() =>
        $"send base {_sendBase}, next {_nextSeq}, unsent {_unsentBytes}, in flight {_inFlight.Count}, fin {_finSeq} (sent {_finSentAt}), peer window {_peerWindow}; " +
        $"receive next {_rcvNext}, peer fin {_peerFin}, readable {_readableBytes}, out of order {_outOfOrderBytes}; rto {_rtoMs} ms, {Failure}";

    private sealed record Segment(byte[] Data, long SentAt, long TimerAt, int Retries);
}
