using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;
using OpenBest.Card.Virtual;
using OpenBest.Testing;

namespace OpenBest.Card.Tests;

/// <summary>
/// A modem on the far end of a serial line (one side of a pseudo-terminal pair) that answers AT commands as TS 27.007 says and
/// relays the APDUs to a <see cref="VirtualUicc"/>: echo on until ATE0; AT+CSIM (8.17); AT+CCHO (8.45), which opens a
/// logical channel on the card and selects the AID there (P2 = 0C); AT+CGLA (8.43), which carries a command on the session's
/// channel (the channel bits of its class byte replaced by the card's channel); AT+CCHC (8.46). Anything else is ERROR. Every
/// command line it got is kept for assertions. Lines are read on a thread of their own, which stops on dispose.
/// </summary>
internal sealed partial class ModemEmulator : IAsyncDisposable
{
    private const string Ok = "\r\nOK\r\n";
    private const string Error = "\r\nERROR\r\n";
    private const string CmeOperationNotSupported = "\r\n+CME ERROR: 4\r\n";
    private const int FirstSession = 1234;

    private readonly FileStream _line;
    private readonly VirtualUicc _card;
    private readonly bool _cchoWithPrefix;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<string> _commands = [];
    private readonly Dictionary<int, byte> _sessions = []; // AT+CCHO session id → the card's logical channel
    private readonly Task _loop;
    private volatile Func<string, string?>? _refusal;
    private volatile Exception? _failure;
    private bool _echo = true;
    private int _nextSession = FirstSession;

    private ModemEmulator(FileStream line, VirtualUicc card, bool cchoWithPrefix)
    {
        _line = line;
        _card = card;
        _cchoWithPrefix = cchoWithPrefix;
        _loop = Task.Factory.StartNew(Run, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    /// <summary>
    /// The modem's answer instead of the usual one, for a command line (null: answer as usual), e.g. "ERROR" or
    /// "+CME ERROR: 13". Set it before the command is sent.
    /// </summary>
    public Func<string, string?>? Refusal
    {
        get => _refusal;
        set => _refusal = value;
    }

    /// <summary>Every command line received so far, in order (without the CR).</summary>
    public IReadOnlyList<string> Commands
    {
        get
        {
            lock (_commands)
            {
                return [.. _commands];
            }
        }
    }

    /// <summary>What stopped the modem before it was disposed, if anything did.</summary>
    public Exception? Failure => _failure;

    /// <summary>The first session id AT+CCHO hands out; the next ones count up from it.</summary>
    public static int FirstSessionId => FirstSession;

    /// <summary>
    /// Opens the modem's end of the line, <paramref name="device"/>, and starts answering. <paramref name="cchoWithPrefix"/>
    /// makes AT+CCHO answer "+CCHO: &lt;session&gt;" rather than the bare session id of TS 27.007.
    /// </summary>
    public static ModemEmulator Open(string device, VirtualUicc card, bool cchoWithPrefix = false)
    {
        const int ReadWrite = 2, NoControllingTerminal = 0x100, CloseOnExec = 0x80000;
        var fd = OpenDevice(device, ReadWrite | NoControllingTerminal | CloseOnExec);
        if (fd < 0)
        {
            throw new IOException($"modem emulator: cannot open {device} (errno {Marshal.GetLastPInvokeError()})");
        }

        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            return new ModemEmulator(new FileStream(handle, FileAccess.ReadWrite, bufferSize: 0), card, cchoWithPrefix);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Stops the reading thread (it polls the line every 0.1 s) and closes the line.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        try
        {
            await _loop.WaitAsync(Eventually.Deadline);
        }
        finally
        {
            await _line.DisposeAsync();
            _stop.Dispose();
        }
    }

    /// <summary>Lists the command lines and any failure, for assertion messages.</summary>
    public override string ToString() => $"ModemEmulator(commands: [{string.Join(" | ", Commands)}], failure: {Failure?.Message ?? "none"})";

    private void Run()
    {
        var buffer = new byte[512];
        var pending = new StringBuilder();
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                // poll first, so that the thread sees the stop request within 0.1 s however quiet the line is.
                var poll = new PollFd { Fd = (int)_line.SafeFileHandle.DangerousGetHandle(), Events = PollIn };
                if (Poll(ref poll, 1, 100) <= 0 || poll.Revents == 0)
                {
                    continue;
                }

                var read = _line.Read(buffer);
                if (read == 0)
                {
                    continue;
                }

                foreach (var c in Encoding.ASCII.GetString(buffer, 0, read))
                {
                    if (c == '\r')
                    {
                        var command = pending.ToString().Trim();
                        pending.Clear();
                        if (command.Length > 0)
                        {
                            Answer(command);
                        }
                    }
                    else if (c != '\n')
                    {
                        pending.Append(c);
                    }
                }
            }
        }
        catch (Exception e) when (!_stop.IsCancellationRequested)
        {
            _failure = e;
        }
    }

    private void Answer(string command)
    {
        lock (_commands)
        {
            _commands.Add(command);
        }

        if (_echo)
        {
            Write(command + "\r");
        }

        var refusal = _refusal?.Invoke(command);
        Write(refusal is not null ? $"\r\n{refusal}\r\n" : Reply(command));
    }

    private string Reply(string command)
    {
        if (command == "AT")
        {
            return Ok;
        }

        if (command == "ATE0")
        {
            _echo = false;
            return Ok;
        }

        if (command.StartsWith("AT+CSIM=", StringComparison.Ordinal))
        {
            return TryLengthAndHex(command["AT+CSIM=".Length..], out var apdu) ? Relayed("+CSIM", _card.Process(apdu)) : Error;
        }

        if (command.StartsWith("AT+CCHO=", StringComparison.Ordinal))
        {
            return OpenSession(command["AT+CCHO=".Length..]);
        }

        if (command.StartsWith("AT+CGLA=", StringComparison.Ordinal))
        {
            var arguments = command["AT+CGLA=".Length..];
            var comma = arguments.IndexOf(',', StringComparison.Ordinal);
            if (comma < 0 || !TrySession(arguments[..comma], out var channel) || !TryLengthAndHex(arguments[(comma + 1)..], out var apdu))
            {
                return Error;
            }

            if ((apdu[0] & 0x40) == 0)
            {
                apdu[0] = (byte)((apdu[0] & 0xFC) | channel);
            }

            return Relayed("+CGLA", _card.Process(apdu));
        }

        if (command.StartsWith("AT+CCHC=", StringComparison.Ordinal))
        {
            var text = command["AT+CCHC=".Length..];
            if (!TrySession(text, out var channel))
            {
                return Error;
            }

            _sessions.Remove(int.Parse(text, NumberStyles.None, CultureInfo.InvariantCulture));
            _card.Process([0x00, 0x70, 0x80, channel]);
            return Ok;
        }

        return Error;
    }

    private string OpenSession(string quotedAid)
    {
        if (!TryUnquoteHex(quotedAid, out var aid) || aid.Length is 0 or > 16)
        {
            return Error;
        }

        var opened = _card.Process([0x00, 0x70, 0x00, 0x00, 0x01]);
        if (opened is not [var channel and >= 1 and <= 3, 0x90, 0x00])
        {
            return CmeOperationNotSupported;
        }

        var selected = _card.Process([channel, 0xA4, 0x04, 0x0C, (byte)aid.Length, .. aid]);
        if (selected is not [.., 0x90, 0x00])
        {
            _card.Process([0x00, 0x70, 0x80, channel]);
            return CmeOperationNotSupported;
        }

        var session = _nextSession++;
        _sessions[session] = channel;
        return string.Create(CultureInfo.InvariantCulture, $"\r\n{(_cchoWithPrefix ? "+CCHO: " : string.Empty)}{session}\r\n{Ok}");
    }

    private bool TrySession(string text, out byte channel)
    {
        channel = 0;
        return int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var session) && _sessions.TryGetValue(session, out channel);
    }

    private static string Relayed(string prefix, byte[] response)
    {
        var hex = Convert.ToHexString(response);
        return string.Create(CultureInfo.InvariantCulture, $"\r\n{prefix}: {hex.Length},\"{hex}\"\r\n{Ok}");
    }

    /// <summary>&lt;length&gt;,"&lt;hex&gt;" where the length counts the hex digits of a command APDU (4 octets at least).</summary>
    private static bool TryLengthAndHex(string text, out byte[] apdu)
    {
        apdu = [];
        var comma = text.IndexOf(',', StringComparison.Ordinal);
        return comma > 0
            && int.TryParse(text[..comma], NumberStyles.None, CultureInfo.InvariantCulture, out var length)
            && TryUnquoteHex(text[(comma + 1)..], out apdu)
            && length == 2 * apdu.Length
            && apdu.Length >= 4;
    }

    private static bool TryUnquoteHex(string text, out byte[] octets)
    {
        octets = [];
        if (text.Length < 2 || text[0] != '"' || text[^1] != '"')
        {
            return false;
        }

        var hex = text[1..^1];
        if (hex.Length % 2 != 0 || !hex.All(char.IsAsciiHexDigit))
        {
            return false;
        }

        octets = Convert.FromHexString(hex);
        return true;
    }

    private void Write(string text)
    {
        _line.Write(Encoding.ASCII.GetBytes(text));
        _line.Flush();
    }

    private const short PollIn = 0x001;

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int OpenDevice(string path, int flags);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static partial int Poll(ref PollFd fds, nuint count, int timeout);
}
