using System.Buffers.Binary;
using System.Net.Sockets;

namespace OpenBest.Card.Virtual;

/// <summary>
/// Puts a <see cref="VirtualUicc"/> into a vsmartcard vpcd reader: the card connects to the reader's TCP port (default
/// localhost:35963) and answers what pcscd sends, each message a 2-octet big-endian length and a body. A one-octet body
/// is a control: 00 power off, 01 power on, 02 reset (no answer), 04 ATR (answered with the ATR); any longer body is a
/// command APDU, answered with the response APDU. When the reader goes away the card reconnects until stopped.
/// </summary>
public sealed class VpcdConnection
{
    /// <summary>vpcd's default port.</summary>
    public const int DefaultPort = 35963;

    private readonly VirtualUicc _card;
    private readonly string _host;
    private readonly int _port;
    private long _connections;

    /// <summary>A connection of <paramref name="card"/> to vpcd at <paramref name="host"/>:<paramref name="port"/>.</summary>
    public VpcdConnection(VirtualUicc card, string host = "localhost", int port = DefaultPort)
    {
        ArgumentNullException.ThrowIfNull(card);
        ArgumentException.ThrowIfNullOrEmpty(host);
        ArgumentOutOfRangeException.ThrowIfLessThan(port, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, 65535);
        _card = card;
        _host = host;
        _port = port;
    }

    /// <summary>Times the card has been inserted into the reader (connected).</summary>
    public long Connections => Interlocked.Read(ref _connections);

    /// <summary>Called with one line when the card is inserted or removed.</summary>
    public Action<string>? Log { get; init; }

    /// <summary>Serves until <paramref name="cancellationToken"/> fires, reconnecting every 0.5 s while the reader is away.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var announcedWaiting = false;
        while (!cancellationToken.IsCancellationRequested)
        {
            using var client = new TcpClient { NoDelay = true };
            try
            {
                await client.ConnectAsync(_host, _port, cancellationToken).ConfigureAwait(false);
            }
            catch (SocketException)
            {
                if (!announcedWaiting)
                {
                    Log?.Invoke($"waiting for the vpcd reader at {_host}:{_port}");
                    announcedWaiting = true;
                }

                await Task.Delay(TimeSpan.FromMilliseconds(500), cancellationToken).ConfigureAwait(false);
                continue;
            }
            catch (OperationCanceledException)
            {
                return;
            }

            announcedWaiting = false;
            Interlocked.Increment(ref _connections);
            Log?.Invoke($"inserted into the vpcd reader at {_host}:{_port}");
            try
            {
                await ServeAsync(client.Client, client.GetStream(), cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or SocketException)
            {
                // The reader went away (pcscd stopped); wait for it again.
            }
            catch (OperationCanceledException)
            {
                return;
            }

            Log?.Invoke("removed from the reader");
        }
    }

    private static void QuickAck(Socket socket)
    {
        if (OperatingSystem.IsLinux())
        {
            try
            {
                socket.SetRawSocketOption(6 /* IPPROTO_TCP */, 12 /* TCP_QUICKACK */, [1, 0, 0, 0]);
            }
            catch (SocketException)
            {
            }
        }
    }

    private async Task ServeAsync(Socket socket, NetworkStream stream, CancellationToken cancellationToken)
    {
        var header = new byte[2];
        var body = new byte[0xFFFF];
        while (true)
        {
            // vpcd writes a length and its body in two sends; acknowledging at once keeps Nagle's algorithm on its side
            // from holding the body for our delayed ACK (40 ms a command otherwise).
            QuickAck(socket);
            await stream.ReadExactlyAsync(header, cancellationToken).ConfigureAwait(false);
            QuickAck(socket);
            var length = BinaryPrimitives.ReadUInt16BigEndian(header);
            await stream.ReadExactlyAsync(body.AsMemory(0, length), cancellationToken).ConfigureAwait(false);
            byte[]? answer = null;
            if (length == 1)
            {
                switch (body[0])
                {
                    case 0x00 or 0x01 or 0x02:
                        _card.PowerOn(); // off, on and reset all end with a card in its reset state
                        break;
                    case 0x04:
                        answer = VirtualUicc.Atr;
                        break;
                }
            }
            else if (length > 1)
            {
                answer = _card.Process(body.AsSpan(0, length));
            }

            if (answer is not null)
            {
                var frame = new byte[2 + answer.Length];
                BinaryPrimitives.WriteUInt16BigEndian(frame, (ushort)answer.Length);
                answer.CopyTo(frame, 2);
                await stream.WriteAsync(frame, cancellationToken).ConfigureAwait(false);
                System.Security.Cryptography.CryptographicOperations.ZeroMemory(frame);
            }

            System.Security.Cryptography.CryptographicOperations.ZeroMemory(body.AsSpan(0, length));
        }
    }
}
