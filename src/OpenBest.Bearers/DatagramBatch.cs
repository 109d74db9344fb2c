using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace OpenBest.Bearers;

/// <summary>
/// Many datagrams per system call on Linux: <c>recvmmsg(2)</c> fills up to <see cref="Capacity"/> datagrams at once, and
/// <c>sendmmsg(2)</c> sends a batch to several addresses at once. On a busy server the per-call cost of the kernel (and of
/// the hypervisor, on a virtual machine) dominates small datagrams; batching pays it once per batch. The buffers live in
/// native memory owned by the batch (never moved, freed on dispose). Elsewhere than Linux, <see cref="IsSupported"/> is
/// false and callers keep to one datagram per call.
/// </summary>
public sealed unsafe class DatagramBatch : IDisposable
{
    private const int AddressSize = 128; // sizeof(struct sockaddr_storage)
    private const int MsgWaitForOne = 0x10000;
    private const int MsgDontWait = 0x40;
    private readonly int _maxDatagram;
    private readonly MMsgHdr* _headers;
    private readonly IoVec* _vectors;
    private readonly byte* _addresses;
    private readonly byte* _buffers;
    private int _pending;
    private bool _disposed;

    /// <summary>Whether this platform has recvmmsg and sendmmsg (Linux).</summary>
    public static bool IsSupported { get; } = OperatingSystem.IsLinux() && (RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.Arm64);

    /// <summary>A batch of <paramref name="capacity"/> datagrams of at most <paramref name="maxDatagram"/> octets each.</summary>
    /// <exception cref="PlatformNotSupportedException">Not Linux.</exception>
    public DatagramBatch(int capacity, int maxDatagram)
    {
        if (!IsSupported)
        {
            throw new PlatformNotSupportedException("recvmmsg/sendmmsg need Linux.");
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxDatagram, 1);
        Capacity = capacity;
        _maxDatagram = maxDatagram;
        _headers = (MMsgHdr*)NativeMemory.AllocZeroed((nuint)(capacity * sizeof(MMsgHdr)));
        _vectors = (IoVec*)NativeMemory.AllocZeroed((nuint)(capacity * sizeof(IoVec)));
        _addresses = (byte*)NativeMemory.AllocZeroed((nuint)(capacity * AddressSize));
        _buffers = (byte*)NativeMemory.AllocZeroed((nuint)(capacity * maxDatagram));
    }

    /// <summary>Datagrams per call at most.</summary>
    public int Capacity { get; }

    /// <summary>Datagrams added since the last <see cref="Send"/>.</summary>
    public int Count => _pending;

    /// <summary>
    /// Waits for datagrams on <paramref name="socket"/> (a blocking socket; its receive timeout bounds the wait) and takes
    /// as many as are there, up to <see cref="Capacity"/>. Returns how many (0 on a timeout); read them with
    /// <see cref="Datagram"/> and <see cref="Address"/>.
    /// </summary>
    /// <exception cref="SocketException">The socket failed (not a timeout).</exception>
    public int Receive(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        ObjectDisposedException.ThrowIf(_disposed, this);
        Prepare(Capacity, receiving: true);
        var fd = (int)socket.SafeHandle.DangerousGetHandle();
        var received = recvmmsg(fd, _headers, (uint)Capacity, MsgWaitForOne, null);
        if (received < 0)
        {
            var error = Marshal.GetLastPInvokeError();
            // EAGAIN/EWOULDBLOCK (11): the receive timeout passed; EINTR (4): a signal.
            if (error is 11 or 4)
            {
                return 0;
            }

            throw new SocketException(error);
        }

        return received;
    }

    /// <summary>The octets of received datagram <paramref name="index"/>; longer than the buffer: truncated (check <see cref="Truncated"/>).</summary>
    public ReadOnlySpan<byte> Datagram(int index)
    {
        CheckIndex(index);
        return new ReadOnlySpan<byte>(_buffers + ((long)index * _maxDatagram), (int)Math.Min(_headers[index].Length, (uint)_maxDatagram));
    }

    /// <summary>Whether received datagram <paramref name="index"/> did not fit the buffer.</summary>
    public bool Truncated(int index)
    {
        CheckIndex(index);
        return (_headers[index].Header.Flags & 0x20) != 0; // MSG_TRUNC
    }

    /// <summary>Copies the sender of received datagram <paramref name="index"/> into <paramref name="address"/>.</summary>
    public void Address(int index, SocketAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        CheckIndex(index);
        var length = (int)Math.Min(_headers[index].Header.NameLength, (uint)Math.Min(AddressSize, address.Buffer.Length));
        new ReadOnlySpan<byte>(_addresses + ((long)index * AddressSize), length).CopyTo(address.Buffer.Span);
        address.Size = length;
    }

    /// <summary>Adds a datagram to send to <paramref name="to"/>; false when the batch is full or the datagram too long.</summary>
    public bool TryAdd(ReadOnlySpan<byte> datagram, SocketAddress to)
    {
        ArgumentNullException.ThrowIfNull(to);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_pending >= Capacity || datagram.Length > _maxDatagram || to.Size > AddressSize)
        {
            return false;
        }

        datagram.CopyTo(new Span<byte>(_buffers + ((long)_pending * _maxDatagram), _maxDatagram));
        to.Buffer.Span[..to.Size].CopyTo(new Span<byte>(_addresses + ((long)_pending * AddressSize), AddressSize));
        _headers[_pending].Header.NameLength = (uint)to.Size;
        _vectors[_pending].Length = (nuint)datagram.Length;
        _pending++;
        return true;
    }

    /// <summary>
    /// Sends the datagrams added (one call, or a few when the kernel takes part of them) and empties the batch. Returns how
    /// many the kernel took; the rest are lost, as datagrams are on a full buffer.
    /// </summary>
    public int Send(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var count = _pending;
        _pending = 0;
        if (count == 0)
        {
            return 0;
        }

        // The lengths were set by TryAdd; the rest of each header points at its slot.
        for (var i = 0; i < count; i++)
        {
            var length = _vectors[i].Length;
            var nameLength = _headers[i].Header.NameLength;
            Slot(i);
            _vectors[i].Length = length;
            _headers[i].Header.NameLength = nameLength;
        }

        var fd = (int)socket.SafeHandle.DangerousGetHandle();
        var sent = 0;
        while (sent < count)
        {
            var result = sendmmsg(fd, _headers + sent, (uint)(count - sent), MsgDontWait);
            if (result <= 0)
            {
                // A full buffer (EAGAIN) or an unreachable peer (ECONNREFUSED from an earlier ICMP): skip one and go on.
                if (result < 0 && Marshal.GetLastPInvokeError() is 4)
                {
                    continue;
                }

                sent++;
                continue;
            }

            sent += result;
        }

        return sent;
    }

    /// <summary>Frees the native buffers.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        NativeMemory.Free(_headers);
        NativeMemory.Free(_vectors);
        NativeMemory.Free(_addresses);
        NativeMemory.Free(_buffers);
    }

    private void Prepare(int count, bool receiving)
    {
        for (var i = 0; i < count; i++)
        {
            Slot(i);
            if (receiving)
            {
                _vectors[i].Length = (nuint)_maxDatagram;
                _headers[i].Header.NameLength = AddressSize;
            }
        }
    }

    private void Slot(int i)
    {
        _vectors[i].Base = _buffers + ((long)i * _maxDatagram);
        _headers[i] = default;
        _headers[i].Header.Name = _addresses + ((long)i * AddressSize);
        _headers[i].Header.Vectors = _vectors + i;
        _headers[i].Header.VectorCount = 1;
    }

    private void CheckIndex(int index)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Capacity);
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int recvmmsg(int fd, MMsgHdr* vectors, uint count, int flags, void* timeout);

    [DllImport("libc", SetLastError = true)]
    private static extern int sendmmsg(int fd, MMsgHdr* vectors, uint count, int flags);

    // struct iovec, struct msghdr and struct mmsghdr of Linux on 64-bit targets.
    [StructLayout(LayoutKind.Sequential)]
    private struct IoVec
    {
        public byte* Base;
        public nuint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MsgHdr
    {
        public byte* Name;
        public uint NameLength;
        public IoVec* Vectors;
        public nuint VectorCount;
        public void* Control;
        public nuint ControlLength;
        public int Flags;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MMsgHdr
    {
        public MsgHdr Header;
        public uint Length;
    }
}
