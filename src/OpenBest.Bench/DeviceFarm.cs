using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Buffers.Binary;
using OpenBest.Bearers;
using OpenBest.Crypto;
using OpenBest.Crypto.Aka;
using OpenBest.Protocol;
using OpenBest.Sessions;
using OpenBest.Storage;

namespace OpenBest.Bench;

/// <summary>What a <see cref="DeviceFarm"/>'s devices do when a session opens or an Ack comes.</summary>
internal enum FarmMode
{
    /// <summary>Open once and stay.</summary>
    OpenOnce,

    /// <summary>Open a new session as soon as the last one is established (the one before is forgotten, as a device that restarts does).</summary>
    OpenBackToBack,

    /// <summary>Keep a window of uplink messages in flight: W − 1 without an Ack, then one with; the next window when the Ack comes.</summary>
    Uplink,

    /// <summary>Do nothing new.</summary>
    Idle,
}

/// <summary>
/// The bench's simulated devices: each a software USIM and the real UE state machine, behind a few UDP sockets shared as
/// devices behind a NAT share an address (a device keeps its own session, keys and counters; only the socket is shared).
/// Each socket has a thread that takes datagrams in batches (recvmmsg), hands each to its device by Session ID (or, for a
/// Session Start, by the checksum of the request it answers), and sends what the devices answered in one call (sendmmsg).
/// The simulator runs on the same cores as the HSE it measures, so it is kept as lean as the HSE.
/// </summary>
internal sealed class DeviceFarm : IDisposable
{
    private static readonly UeChannelOptions ChannelOptions = new() { EasId = "eas.example.com", ServingNetwork = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org"), CounterSchemes = CounterSchemes.TwoOctets | CounterSchemes.FourOctets };
    private readonly Group[] _groups;
    private readonly Device[] _devices;
    private readonly CancellationTokenSource _stop = new();
    private long _established;
    private long _acknowledged;

    public DeviceFarm(IReadOnlyList<NewSubscriber> subscribers, IPEndPoint hse, int sockets)
    {
        var groups = Math.Clamp(sockets, 1, subscribers.Count);
        _groups = new Group[groups];
        for (var g = 0; g < groups; g++)
        {
            _groups[g] = new Group(this, hse);
        }

        _devices = new Device[subscribers.Count];
        for (var i = 0; i < subscribers.Count; i++)
        {
            _devices[i] = new Device(_groups[i % groups], subscribers[i]);
        }

        foreach (var group in _groups)
        {
            group.Start();
        }
    }

    /// <summary>What the devices do next.</summary>
    public FarmMode Mode { get; set; } = FarmMode.OpenOnce;

    /// <summary>Uplink messages in flight per device.</summary>
    public int Window { get; set; } = 16;

    /// <summary>Sessions the devices saw established (UE side).</summary>
    public long Established => Interlocked.Read(ref _established);

    /// <summary>Acknowledged uplink messages (UE side).</summary>
    public long Acknowledged => Interlocked.Read(ref _acknowledged);

    /// <summary>The devices.</summary>
    public int Count => _devices.Length;

    /// <summary>Setup latencies (ms) of the sessions established since the last call.</summary>
    public List<double> TakeSetupLatencies() => Take(g => g.SetupLatencies);

    /// <summary>Ack latencies (ms) since the last call.</summary>
    public List<double> TakeAckLatencies() => Take(g => g.AckLatencies);

    /// <summary>How many devices hold an established session.</summary>
    public int EstablishedDevices => _devices.Count(d => d.Channel >= 0 && d.IsEstablished);

    /// <summary>Every device (without a session, or all) opens one now.</summary>
    public void OpenAll(bool onlyWithout = false)
    {
        foreach (var device in _devices)
        {
            if (!onlyWithout || !device.IsEstablished)
            {
                device.Group.Run(device, () => device.Open());
            }
        }
    }

    /// <summary>Every established device starts its uplink window.</summary>
    public void StartUplink()
    {
        foreach (var device in _devices.Where(d => d.IsEstablished))
        {
            device.Group.Run(device, () => device.SendWindow());
        }
    }

    /// <summary>Runs every device's timers (retransmissions); the bench calls it twice a second.</summary>
    public void Tick()
    {
        foreach (var device in _devices)
        {
            device.Group.Run(device, () => device.Handle(device.Ue.Tick()));
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        foreach (var group in _groups)
        {
            group.Dispose();
        }

        foreach (var device in _devices)
        {
            device.Dispose();
        }

        _stop.Dispose();
    }

    private List<double> Take(Func<Group, List<double>> list)
    {
        var result = new List<double>();
        foreach (var group in _groups)
        {
            lock (group.Gate)
            {
                result.AddRange(list(group));
                list(group).Clear();
            }
        }

        return result;
    }

    /// <summary>One socket, its thread and its devices; everything of a group runs under its gate.</summary>
    private sealed class Group : IDisposable
    {
        private readonly DeviceFarm _farm;
        private readonly Socket _socket;
        private readonly SocketAddress _hse;
        private readonly DatagramBatch? _receive;
        private readonly DatagramBatch? _send;
        private readonly Thread _thread;
        private readonly Dictionary<uint, Device> _bySession = [];
        private readonly Dictionary<ulong, Device> _byRequest = [];
        private bool _inBatch;

        public Group(DeviceFarm farm, IPEndPoint hse)
        {
            _farm = farm;
            _socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp) { ReceiveBufferSize = 1 << 20, SendBufferSize = 1 << 20 };
            _socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            _socket.ReceiveTimeout = 250;
            _hse = hse.Serialize();
            if (DatagramBatch.IsSupported)
            {
                _receive = new DatagramBatch(64, 2048);
                _send = new DatagramBatch(256, 2048);
            }

            _thread = new Thread(Loop) { IsBackground = true, Name = "bench devices" };
        }

        public Lock Gate { get; } = new();

        public List<double> SetupLatencies { get; } = [];

        public List<double> AckLatencies { get; } = [];

        public DeviceFarm Farm => _farm;

        public void Start() => _thread.Start();

        /// <summary>Runs <paramref name="action"/> for a device under the gate, and sends what it produced.</summary>
        public void Run(Device device, Action action)
        {
            lock (Gate)
            {
                action();
                if (!_inBatch)
                {
                    Flush();
                }
            }
        }

        public void Send(ReadOnlyMemory<byte> datagram)
        {
            if (_send is not null && (_send.TryAdd(datagram.Span, _hse) || (Flush() && _send.TryAdd(datagram.Span, _hse))))
            {
                return;
            }

            try
            {
                _socket.SendTo(datagram.Span, SocketFlags.None, _hse);
            }
            catch (SocketException)
            {
                // Lost, as on a network: retransmission covers it.
            }
        }

        public void Expect(ulong requestChecksum, Device device) => _byRequest[requestChecksum] = device;

        public void Forget(uint sessionId) => _bySession.Remove(sessionId);

        public void Bind(uint sessionId, Device device, ulong requestChecksum)
        {
            _bySession[sessionId] = device;
            _byRequest.Remove(requestChecksum);
        }

        public void Dispose()
        {
            try
            {
                _socket.Shutdown(SocketShutdown.Both);
            }
            catch (SocketException)
            {
            }

            _thread.Join(TimeSpan.FromSeconds(5));
            _socket.Dispose();
            _receive?.Dispose();
            _send?.Dispose();
        }

        private bool Flush()
        {
            if (_send is { Count: > 0 })
            {
                _send.Send(_socket);
            }

            return true;
        }

        private void Loop()
        {
            var buffer = new byte[2048];
            while (!_farm._stop.IsCancellationRequested)
            {
                try
                {
                    if (_receive is not null)
                    {
                        var count = _receive.Receive(_socket);
                        lock (Gate)
                        {
                            _inBatch = true;
                            for (var i = 0; i < count; i++)
                            {
                                Deliver(_receive.Datagram(i));
                            }

                            _inBatch = false;
                            Flush();
                        }
                    }
                    else
                    {
                        var length = _socket.Receive(buffer);
                        lock (Gate)
                        {
                            Deliver(buffer.AsSpan(0, length));
                        }
                    }
                }
                catch (SocketException e) when (e.SocketErrorCode is SocketError.TimedOut or SocketError.WouldBlock or SocketError.ConnectionReset)
                {
                }
                catch (Exception e) when (e is ObjectDisposedException or SocketException)
                {
                    return;
                }
            }
        }

        private void Deliver(ReadOnlySpan<byte> datagram)
        {
            if (HeaderPrefix.TryRead(datagram, out var prefix) != ParseStatus.Ok)
            {
                return;
            }

            if (prefix.SessionId != 0 && _bySession.TryGetValue(prefix.SessionId, out var device))
            {
                device.Handle(device.Ue.Receive(datagram));
                return;
            }

            // A Session Start (or a Reject of a Session Request): the request checksum (TLV 0x0A) names the device.
            if (RequestChecksum(datagram, prefix) is { } checksum && _byRequest.TryGetValue(checksum, out device))
            {
                device.Handle(device.Ue.Receive(datagram));
            }
        }

        private static ulong? RequestChecksum(ReadOnlySpan<byte> datagram, HeaderPrefix prefix)
        {
            // Header prefix, then the 1-octet counter of a Key ID 0 message or a Session Start (n = 1), the command code, TLVs.
            var position = prefix.Length + 1 + 1;
            while (position + 2 <= datagram.Length)
            {
                var tag = datagram[position];
                var length = datagram[position + 1];
                if (position + 2 + length > datagram.Length)
                {
                    return null;
                }

                if (tag == 0x0A && length == 8)
                {
                    return BinaryPrimitives.ReadUInt64BigEndian(datagram.Slice(position + 2, 8));
                }

                position += 2 + length;
            }

            return null;
        }
    }

    /// <summary>One simulated device.</summary>
    private sealed class Device : IDisposable
    {
        private readonly Milenage _milenage;
        private readonly byte[] _payload = new byte[32];
        private long _openedAt;
        private long _windowAt;
        private ulong _requestChecksum;
        private bool _awaitingAck;

        public Device(Group group, NewSubscriber subscriber)
        {
            Group = group;
            _milenage = new Milenage(subscriber.K, subscriber.Opc);
            Ue = new UeEndpoint(new Usim(_milenage, new UsimSequenceState(SqnScheme.Default)), new UeOptions { Imsi = subscriber.Imsi });
        }

        public Group Group { get; }

        public UeEndpoint Ue { get; }

        public int Channel { get; private set; } = -1;

        public bool IsEstablished { get; private set; }

        private uint SessionId { get; set; }

        /// <summary>Opens a new session (under the gate).</summary>
        public void Open()
        {
            if (Channel >= 0)
            {
                Ue.Abandon(Channel);
                Group.Forget(SessionId);
            }

            IsEstablished = false;
            _openedAt = Stopwatch.GetTimestamp();
            var step = Ue.Open(ChannelOptions, out var channel);
            Channel = channel;
            Span<byte> hash = stackalloc byte[32];
            foreach (var send in step.Send)
            {
                // The Session Start will name this request by the first 8 octets of its SHA-256 (profile 6.2).
                SHA256.HashData(send.Message.Span, hash);
                _requestChecksum = BinaryPrimitives.ReadUInt64BigEndian(hash);
                Group.Expect(_requestChecksum, this);
            }

            Handle(step);
        }

        /// <summary>Sends a window of uplink (under the gate).</summary>
        public void SendWindow()
        {
            var farm = Group.Farm;
            for (var i = 0; i < farm.Window - 1; i++)
            {
                Handle(Ue.Send(Channel, _payload));
            }

            _windowAt = Stopwatch.GetTimestamp();
            _awaitingAck = true;
            Handle(Ue.Send(Channel, _payload, ackRequested: true));
        }

        /// <summary>The step's events, then its datagrams (under the gate).</summary>
        public void Handle(StepResult step)
        {
            var farm = Group.Farm;
            var nextWindow = false;
            foreach (var e in step.Events)
            {
                switch (e)
                {
                    case SessionEstablished established:
                        IsEstablished = true;
                        SessionId = established.SessionId;
                        Group.Bind(established.SessionId, this, _requestChecksum);
                        Interlocked.Increment(ref farm._established);
                        Group.SetupLatencies.Add(Stopwatch.GetElapsedTime(_openedAt).TotalMilliseconds);
                        break;
                    case DataAcknowledged when _awaitingAck:
                        _awaitingAck = false;
                        nextWindow = true;
                        Interlocked.Increment(ref farm._acknowledged);
                        Group.AckLatencies.Add(Stopwatch.GetElapsedTime(_windowAt).TotalMilliseconds);
                        break;
                }
            }

            foreach (var send in step.Send)
            {
                Group.Send(send.Message);
            }

            // What comes next, in the same batch.
            if (step.Events.Count > 0)
            {
                if (farm.Mode == FarmMode.OpenBackToBack && step.Events.Any(e => e is SessionEstablished))
                {
                    Open();
                }
                else if (farm.Mode == FarmMode.Uplink && nextWindow)
                {
                    SendWindow();
                }
            }
        }

        public void Dispose()
        {
            Ue.Dispose();
            _milenage.Dispose();
        }
    }
}
