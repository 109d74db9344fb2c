using System.Text;

namespace OpenBest.Card;

/// <summary>
/// A card in a PC/SC reader, through libpcsclite (pcsc-lite's client library, which talks to pcscd): SCardEstablishContext,
/// SCardListReaders, SCardConnect (shared, T=0 or T=1), SCardTransmit inside a transaction, and a reconnect when another
/// application reset the card. On Linux, pcsc-lite's DWORD and LONG are the platform's <c>unsigned long</c> and <c>long</c>
/// (8 octets on 64-bit), hence <see cref="nint"/> throughout.
/// </summary>
public sealed unsafe class PcscChannel : IApduChannel
{
    private const nint ScopeSystem = 2;
    private const nint ShareShared = 2;
    private const nint ProtocolT0 = 1;
    private const nint ProtocolT1 = 2;
    private const nint LeaveCard = 0;
    private const nint ResetCard = 1;
    private const long Success = 0;
    private const long ResetCardWarning = 0x80100068;
    private const long NoReaders = 0x8010002E;
    private readonly Lock _gate = new();
    private readonly PcscLibrary _library;
    private nint _context;
    private nint _card;
    private nint _protocol;

    private PcscChannel(PcscLibrary library, nint context, nint card, nint protocol, string reader)
    {
        _library = library;
        _context = context;
        _card = card;
        _protocol = protocol;
        Name = reader;
    }

    /// <summary>The reader's name as pcscd gives it.</summary>
    public string Name { get; }

    /// <inheritdoc />
    public bool CaseFourWithLe => _protocol == ProtocolT1;

    /// <summary>The protocol in use: "T=0" or "T=1".</summary>
    public string Protocol => _protocol == (nint)ProtocolT1 ? "T=1" : "T=0";

    /// <summary>The readers pcscd knows (the machine's, or the one <paramref name="library"/> reaches).</summary>
    /// <exception cref="IOException">pcscd is not running or the library is missing.</exception>
    public static IReadOnlyList<string> ListReaders(PcscLibrary? library = null)
    {
        library ??= PcscLibrary.Default;
        var context = Establish(library);
        try
        {
            return Readers(library, context);
        }
        finally
        {
            _ = library.ReleaseContext(context);
        }
    }

    /// <summary>
    /// Connects to the card in the reader whose name starts with <paramref name="reader"/>, or in the first reader that
    /// holds a card when it is null.
    /// </summary>
    /// <exception cref="IOException">pcscd is not running, there is no such reader, or no card in it.</exception>
    public static PcscChannel Connect(string? reader = null, PcscLibrary? library = null)
    {
        library ??= PcscLibrary.Default;
        var context = Establish(library);
        try
        {
            var readers = Readers(library, context);
            var candidates = reader is null ? readers : [.. readers.Where(r => r.StartsWith(reader, StringComparison.Ordinal))];
            if (candidates.Count == 0)
            {
                throw new IOException(reader is null ? "PC/SC: no reader is connected." : $"PC/SC: no reader named {reader} (readers: {string.Join(", ", readers)}).");
            }

            long last = 0;
            foreach (var candidate in candidates)
            {
                nint card, protocol;
                var name = Encoding.UTF8.GetBytes(candidate + "\0");
                fixed (byte* n = name)
                {
                    last = library.Connect(context, n, ShareShared, ProtocolT0 | ProtocolT1, &card, &protocol);
                }

                if (last == Success)
                {
                    var channel = new PcscChannel(library, context, card, protocol, candidate);
                    context = 0;
                    return channel;
                }
            }

            throw new IOException($"PC/SC: no card in {string.Join(", ", candidates)} ({Describe(last)}).");
        }
        finally
        {
            if (context != 0)
            {
                _ = library.ReleaseContext(context);
            }
        }
    }

    /// <inheritdoc />
    public byte[] Transmit(ReadOnlySpan<byte> command)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_card == 0, this);
            var result = TransmitOnce(command, out var response);
            if (result == ResetCardWarning)
            {
                // Another application reset the card: reconnect and send again (the caller re-selects what it needs).
                var reconnect = ReconnectCard(LeaveCard);
                if (reconnect != Success)
                {
                    throw new IOException($"PC/SC {Name}: reconnect failed ({Describe(reconnect)}).");
                }

                result = TransmitOnce(command, out response);
            }

            if (result != Success)
            {
                throw new IOException($"PC/SC {Name}: SCardTransmit failed ({Describe(result)}).");
            }

            return response;
        }
    }

    /// <summary>Disconnects (leaving the card as it is) and releases the context.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_card != 0)
            {
                _ = _library.Disconnect(_card, LeaveCard);
                _card = 0;
            }

            if (_context != 0)
            {
                _ = _library.ReleaseContext(_context);
                _context = 0;
            }
        }
    }

    /// <summary>Resets the card (a cold start for what it keeps in RAM, such as logical channels).</summary>
    /// <exception cref="IOException">The reset failed.</exception>
    public void Reset()
    {
        lock (_gate)
        {
            var result = ReconnectCard(ResetCard);
            if (result != Success)
            {
                throw new IOException($"PC/SC {Name}: reset failed ({Describe(result)}).");
            }
        }
    }

    private long ReconnectCard(nint initialization)
    {
        nint protocol;
        var result = (long)_library.Reconnect(_card, ShareShared, ProtocolT0 | ProtocolT1, initialization, &protocol);
        if (result == Success)
        {
            _protocol = protocol;
        }

        return result;
    }

    private long TransmitOnce(ReadOnlySpan<byte> command, out byte[] response)
    {
        var buffer = new byte[258];
        var length = (nint)buffer.Length;
        // SCARD_IO_REQUEST: the protocol and the structure's length, two DWORDs.
        var pci = stackalloc nint[2];
        pci[0] = _protocol;
        pci[1] = 2 * sizeof(nint);
        long result;
        fixed (byte* send = command)
        fixed (byte* receive = buffer)
        {
            result = (long)_library.Transmit(_card, pci, send, command.Length, 0, receive, &length);
        }

        response = result == Success ? buffer[..(int)length] : [];
        System.Security.Cryptography.CryptographicOperations.ZeroMemory(buffer);
        return result;
    }

    private static nint Establish(PcscLibrary library)
    {
        nint context;
        var result = (long)library.EstablishContext(ScopeSystem, 0, 0, &context);
        if (result != Success)
        {
            throw new IOException($"PC/SC: cannot reach pcscd ({Describe(result)}); is pcscd running?");
        }

        return context;
    }

    private static List<string> Readers(PcscLibrary library, nint context)
    {
        var size = (nint)0;
        var result = (long)library.ListReaders(context, null, null, &size);
        if (result == NoReaders)
        {
            return [];
        }

        if (result != Success)
        {
            throw new IOException($"PC/SC: cannot list readers ({Describe(result)}).");
        }

        var names = new byte[(int)size];
        fixed (byte* n = names)
        {
            result = (long)library.ListReaders(context, null, n, &size);
        }

        if (result == NoReaders)
        {
            return [];
        }

        if (result != Success)
        {
            throw new IOException($"PC/SC: cannot list readers ({Describe(result)}).");
        }

        return [.. Encoding.UTF8.GetString(names, 0, (int)size).Split('\0', StringSplitOptions.RemoveEmptyEntries)];
    }

    private static string Describe(long code) => code switch
    {
        0x80100069 => "no card in the reader",
        0x80100066 => "the card does not answer",
        0x8010001D => "the PC/SC service is not running",
        0x8010000B => "sharing violation",
        0x8010002E => "no readers",
        0x80100009 => "unknown reader",
        0x80100017 => "the reader is unavailable",
        0x80100068 => "the card was reset",
        0x80100067 => "the card is unpowered",
        _ => $"0x{code:X8}",
    };
}
