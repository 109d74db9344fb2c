using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace OpenBest.Card;

/// <summary>How an <see cref="AtModemChannel"/> reaches logical channels other than the basic one.</summary>
public enum AtLogicalChannels
{
    /// <summary>Every command in AT+CSIM, MANAGE CHANNEL and the channel bits of the class byte included (TS 27.007 8.17).</summary>
    Csim,

    /// <summary>
    /// AT+CCHO opens a channel on SELECT by AID, AT+CGLA carries its commands and AT+CCHC closes it (TS 27.007 8.43, 8.45,
    /// 8.46): for modems that refuse MANAGE CHANNEL in AT+CSIM.
    /// </summary>
    Cgla,
}

/// <summary>
/// A card behind a modem, over the modem's serial line: each APDU goes in <c>AT+CSIM=&lt;length&gt;,"&lt;hex&gt;"</c> and comes back in
/// <c>+CSIM: &lt;length&gt;,"&lt;hex&gt;"</c> followed by OK (TS 27.007 8.17; the length counts hex characters). The line is put in raw
/// mode (8N1, 115200 baud for a real UART) and echo is switched off with ATE0. A modem's ERROR or +CME ERROR is an
/// <see cref="IOException"/> naming the line.
/// </summary>
public sealed partial class AtModemChannel : IApduChannel
{
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(10);
    private readonly FileStream _line;
    private readonly AtLogicalChannels _mode;
    private readonly Lock _gate = new();
    private readonly Dictionary<int, string?> _sessions = []; // logical channel → +CCHO session id (null until SELECT)
    private readonly StringBuilder _pending = new();
    private bool _outOfStep;

    private AtModemChannel(FileStream line, string device, AtLogicalChannels mode)
    {
        _line = line;
        _mode = mode;
        Name = device;
    }

    /// <summary>The serial device.</summary>
    public string Name { get; }

    /// <summary>Opens <paramref name="device"/>, sets raw mode and switches echo off.</summary>
    /// <exception cref="IOException">The device cannot be opened or the modem does not answer AT.</exception>
    public static AtModemChannel Open(string device, AtLogicalChannels mode = AtLogicalChannels.Csim)
    {
        ArgumentException.ThrowIfNullOrEmpty(device);
        FileStream line;
        try
        {
            line = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(OpenDevice(device), ownsHandle: true), FileAccess.ReadWrite, 1);
        }
        catch (Exception e) when (e is UnauthorizedAccessException or IOException or ArgumentException)
        {
            throw new IOException($"AT {device}: cannot open the line ({e.Message}).", e);
        }

        var channel = new AtModemChannel(line, device, mode);
        try
        {
            channel.Command("ATE0");
        }
        catch
        {
            channel.Dispose();
            throw;
        }

        return channel;
    }

    /// <inheritdoc />
    public byte[] Transmit(ReadOnlySpan<byte> command)
    {
        lock (_gate)
        {
            var logical = command.Length >= 1 && (command[0] & 0x40) == 0 ? command[0] & 0x03 : 0;
            if (_mode == AtLogicalChannels.Cgla && command.Length >= 4 && command[1] == 0x70 && (command[0] & 0x80) == 0)
            {
                return ManageChannel(command);
            }

            if (_mode == AtLogicalChannels.Cgla && logical != 0)
            {
                return ViaCgla(logical, command);
            }

            var hex = Convert.ToHexString(command);
            var answer = Command(string.Create(CultureInfo.InvariantCulture, $"AT+CSIM={hex.Length},\"{hex}\""), "+CSIM:");
            return Payload(answer, "+CSIM:");
        }
    }

    /// <summary>Closes the line.</summary>
    public void Dispose() => _line.Dispose();

    private byte[] ManageChannel(ReadOnlySpan<byte> command)
    {
        if (command[2] == 0x00)
        {
            // Open: the modem opens the channel together with the SELECT that follows (AT+CCHO needs the AID).
            var number = Enumerable.Range(1, 3).FirstOrDefault(n => !_sessions.ContainsKey(n));
            if (number == 0)
            {
                return [0x68, 0x81];
            }

            _sessions[number] = null;
            return [(byte)number, 0x90, 0x00];
        }

        if (_sessions.Remove(command[3], out var session) && session is not null)
        {
            Command($"AT+CCHC={session}");
        }

        return [0x90, 0x00];
    }

    private byte[] ViaCgla(int logical, ReadOnlySpan<byte> command)
    {
        if (!_sessions.TryGetValue(logical, out var session))
        {
            return [0x68, 0x81];
        }

        if (session is null)
        {
            // The first command on the channel must be SELECT by AID: AT+CCHO="<AID>" opens it.
            if (command.Length < 6 || command[1] != 0xA4 || command[2] != 0x04 || command[4] > command.Length - 5)
            {
                return [0x69, 0x86];
            }

            var aid = Convert.ToHexString(command.Slice(5, command[4]));
            string opened;
            try
            {
                opened = Command($"AT+CCHO=\"{aid}\"", string.Empty);
            }
            catch (IOException)
            {
                _sessions.Remove(logical); // the modem opened nothing: the channel is free again
                throw;
            }

            session = opened.Trim().Trim('"');
            if (session.StartsWith("+CCHO:", StringComparison.Ordinal))
            {
                session = session[6..].Trim();
            }

            if (!int.TryParse(session, NumberStyles.None, CultureInfo.InvariantCulture, out _))
            {
                _sessions.Remove(logical);
                throw new IOException($"AT {Name}: AT+CCHO answered {opened}, not a session id.");
            }

            _sessions[logical] = session;
            return [0x90, 0x00];
        }

        var hex = Convert.ToHexString(command);
        var answer = Command(string.Create(CultureInfo.InvariantCulture, $"AT+CGLA={session},{hex.Length},\"{hex}\""), "+CGLA:");
        return Payload(answer, "+CGLA:");
    }

    private byte[] Payload(string answer, string prefix)
    {
        // +CSIM: <length>,"<hex>"
        var body = answer[prefix.Length..].Trim();
        var comma = body.IndexOf(',', StringComparison.Ordinal);
        if (comma < 0 || !int.TryParse(body[..comma], NumberStyles.None, CultureInfo.InvariantCulture, out var length))
        {
            throw new IOException($"AT {Name}: {prefix} answer is not <length>,\"<hex>\".");
        }

        var hex = body[(comma + 1)..].Trim().Trim('"');
        if (hex.Length != length || length < 4 || length % 2 != 0 || !hex.All(char.IsAsciiHexDigit))
        {
            throw new IOException($"AT {Name}: {prefix} answer length {length} does not match its {hex.Length} hex digits.");
        }

        return Convert.FromHexString(hex);
    }

    /// <summary>Sends one command line and reads lines up to OK; returns the line that starts with <paramref name="expect"/> (or the first other line).</summary>
    private string Command(string line, string? expect = null)
    {
        // After a command that got no answer in time, a late answer could be taken for the next command's: the line is done.
        if (_outOfStep)
        {
            throw new IOException($"AT {Name}: an earlier command got no answer in time; open the line again.");
        }

        _pending.Clear();
        var bytes = Encoding.ASCII.GetBytes(line + "\r");
        _line.Write(bytes);
        _line.Flush();
        var deadline = DateTime.UtcNow + CommandTimeout;
        string? result = null;
        while (true)
        {
            var text = ReadLine(deadline);
            if (text is null)
            {
                _outOfStep = true;
                throw new IOException($"AT {Name}: no answer to {Verb(line)} within {CommandTimeout.TotalSeconds:0} s.");
            }

            if (text.Length == 0 || text == line)
            {
                continue; // blank lines, and the echo before ATE0 takes effect
            }

            if (text == "OK")
            {
                if (expect is { Length: > 0 } && result is null)
                {
                    throw new IOException($"AT {Name}: {Verb(line)} answered OK without {expect}.");
                }

                return result ?? string.Empty;
            }

            if (text == "ERROR" || text.StartsWith("+CME ERROR", StringComparison.Ordinal))
            {
                throw new IOException($"AT {Name}: {Verb(line)} answered {text}.");
            }

            if (expect is not null && (expect.Length == 0 || text.StartsWith(expect, StringComparison.Ordinal)))
            {
                result ??= text;
            }
        }
    }

    private string? ReadLine(DateTime deadline)
    {
        var buffer = new byte[256];
        while (true)
        {
            var text = _pending.ToString();
            var end = text.IndexOfAny(['\r', '\n']);
            if (end >= 0)
            {
                _pending.Remove(0, end + 1);
                return text[..end].Trim();
            }

            if (DateTime.UtcNow > deadline)
            {
                return null;
            }

            // The line's VTIME makes a read return 0 octets after 0.2 s of silence.
            var read = _line.Read(buffer);
            if (read > 0)
            {
                _pending.Append(Encoding.ASCII.GetString(buffer, 0, read));
            }
        }
    }

    private static string Verb(string line) => line.Split('=', 2)[0];

    private static nint OpenDevice(string device)
    {
        const int ReadWrite = 2, NoControllingTerminal = 0x100, CloseOnExec = 0x80000;
        var fd = Open(device, ReadWrite | NoControllingTerminal | CloseOnExec);
        if (fd < 0)
        {
            throw new IOException($"errno {Marshal.GetLastPInvokeError()}");
        }

        var termios = new byte[60];
        if (TcGetAttr(fd, termios) != 0)
        {
            _ = Close(fd);
            throw new IOException("not a serial line (tcgetattr failed)");
        }

        // Raw 8N1 (cfmakeraw), 115200 baud, reads return after 0.2 s of silence (VMIN 0, VTIME 2).
        CfMakeRaw(termios);
        _ = CfSetSpeed(termios, 0x1002);
        termios[17 + 6] = 0; // c_cc[VMIN]; c_cc starts at offset 17 on Linux
        termios[17 + 5] = 2; // c_cc[VTIME], tenths of a second
        _ = TcSetAttr(fd, 0, termios);

        return fd;
    }

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(nint fd);

    [LibraryImport("libc", EntryPoint = "tcgetattr")]
    private static partial int TcGetAttr(nint fd, [Out] byte[] termios);

    [LibraryImport("libc", EntryPoint = "tcsetattr")]
    private static partial int TcSetAttr(nint fd, int when, byte[] termios);

    [LibraryImport("libc", EntryPoint = "cfmakeraw")]
    private static partial void CfMakeRaw([In, Out] byte[] termios);

    [LibraryImport("libc", EntryPoint = "cfsetspeed")]
    private static partial int CfSetSpeed([In, Out] byte[] termios, uint speed);
}
