using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using OpenBest.Card;

namespace OpenBest.Obf.Demo;

/// <summary>
/// A pcscd of our own, in the foreground as a child process, with vsmartcard vpcd readers (each entry two slots, on its port
/// and the next), so virtual cards are reached over real PC/SC: the demo's vehicles and the tests' cards.
/// </summary>
/// <remarks>
/// The vpcd driver keeps its card connections in a static table indexed by slot, so each reader entry loads its own copy of
/// the driver (a second entry on the same file would share the first one's cards). pcscd serves at most 16 reader slots
/// (PCSCLITE_MAX_READERS_CONTEXTS), so more cards take more daemons; pcscd 1.9 always listens on /run/pcscd/pcscd.comm, so a
/// private daemon runs in a mount namespace of its own (unshare, as root) where that directory is one of ours, and its
/// clients reach it through <see cref="PcscLibrary.ForSocket"/>.
/// </remarks>
public sealed class PcscdHost : IDisposable
{
    private const string Daemon = "/usr/sbin/pcscd";
    private const string VpcdDriver = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so";
    private const string Unshare = "/usr/bin/unshare";
    private readonly Process _process;
    private readonly string _directory;
    private readonly System.Text.StringBuilder _log = new();

    private PcscdHost(Process process, string directory, IReadOnlyList<(string Reader, int Port)> slots, PcscLibrary? library)
    {
        _process = process;
        _directory = directory;
        Slots = slots;
        Library = library;
    }

    /// <summary>The cards one pcscd serves (PCSCLITE_MAX_READERS_CONTEXTS).</summary>
    public const int MaxCards = 16;

    /// <summary>The client library that reaches this daemon: null for the machine's socket, else its private copy.</summary>
    public PcscLibrary? Library { get; }

    /// <summary>Whether daemons of our own can run beside the machine's (in mount namespaces: needs root and unshare).</summary>
    public static bool PrivateSupported => Installed && Environment.IsPrivilegedProcess && File.Exists(Unshare);

    /// <summary>Each card slot: the PC/SC reader name and the vpcd port a card connects to.</summary>
    public IReadOnlyList<(string Reader, int Port)> Slots { get; }

    /// <summary>Whether pcscd and the vpcd driver are installed.</summary>
    public static bool Installed => File.Exists(Daemon) && File.Exists(VpcdDriver);

    /// <summary>Whether a pcscd answers on the machine's PC/SC socket.</summary>
    public static bool Running => File.Exists("/run/pcscd/pcscd.comm") && Answers("/run/pcscd/pcscd.comm");

    /// <summary>
    /// Starts pcscd with slots for <paramref name="cards"/> cards (at most <see cref="MaxCards"/>) and waits until it lists
    /// them: on the machine's PC/SC socket, or with <paramref name="privateSocket"/> in a mount namespace of its own.
    /// </summary>
    /// <exception cref="InvalidOperationException">pcscd or vpcd is not installed, or another pcscd runs; the message says what to do.</exception>
    public static async Task<PcscdHost> StartAsync(int cards, CancellationToken cancellationToken, bool privateSocket = false)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(cards, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(cards, MaxCards);
        if (!Installed)
        {
            throw new InvalidOperationException("pcscd and vsmartcard-vpcd are not installed (apt install pcscd vsmartcard-vpcd), or use --no-pcsc");
        }

        if (privateSocket && !PrivateSupported)
        {
            throw new InvalidOperationException("a pcscd beside the machine's runs in a mount namespace of its own, which needs root and unshare (util-linux)");
        }

        if (!privateSocket && Running)
        {
            throw new InvalidOperationException("a pcscd is running already; the demo starts its own with a reader per card: stop it (systemctl stop pcscd.socket pcscd), or use --no-pcsc");
        }

        var directory = Directory.CreateTempSubdirectory("openbest-pcscd-").FullName;
        var conf = Directory.CreateDirectory(Path.Combine(directory, "reader.conf.d")).FullName;
        var drivers = Directory.CreateDirectory(Path.Combine(directory, "drivers")).FullName;
        var slots = new List<(string, int)>();
        for (var entry = 0; entry * 2 < cards; entry++)
        {
            var port = FreePortPair();
            var name = string.Create(CultureInfo.InvariantCulture, $"OpenBest vpcd {entry:D3}");
            var driver = Path.Combine(drivers, string.Create(CultureInfo.InvariantCulture, $"libifdvpcd-{entry:D3}.so"));
            File.Copy(VpcdDriver, driver);
            await File.WriteAllTextAsync(Path.Combine(conf, string.Create(CultureInfo.InvariantCulture, $"vpcd-{entry:D3}")),
                string.Create(CultureInfo.InvariantCulture, $"FRIENDLYNAME \"{name}\"\nDEVICENAME /dev/null:{port}\nLIBPATH {driver}\nCHANNELID {port}\n"), cancellationToken).ConfigureAwait(false);
            slots.Add((name + " 00 00", port));
            slots.Add((name + " 00 01", port + 1));
        }

        ProcessStartInfo info;
        PcscLibrary? library = null;
        if (privateSocket)
        {
            // unshare execs the shell and the shell execs pcscd: one process, signalled as the daemon.
            var run = Directory.CreateDirectory(Path.Combine(directory, "run")).FullName;
            info = new ProcessStartInfo(Unshare) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var argument in new[] { "--mount", "--propagation", "private", "--", "/bin/sh", "-c", $"mkdir -p /run/pcscd && mount --bind \"$0\" /run/pcscd && exec {Daemon} --foreground --config \"$1\"", run, conf })
            {
                info.ArgumentList.Add(argument);
            }

            library = PcscLibrary.ForSocket(Path.Combine(run, "pcscd.comm"));
        }
        else
        {
            info = new ProcessStartInfo(Daemon) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var argument in new[] { "--foreground", "--config", conf })
            {
                info.ArgumentList.Add(argument);
            }
        }

        var process = Process.Start(info)!;
        var pcscd = new PcscdHost(process, directory, slots[..cards], library);
        process.OutputDataReceived += (_, e) => pcscd.Append(e.Data);
        process.ErrorDataReceived += (_, e) => pcscd.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        try
        {
            return await WaitAsync(pcscd, process, deadline, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            pcscd.Dispose(); // never leave a pcscd holding the machine's PC/SC socket
            throw;
        }
    }

    private static async Task<PcscdHost> WaitAsync(PcscdHost pcscd, Process process, DateTime deadline, CancellationToken cancellationToken)
    {
        while (true)
        {
            try
            {
                var readers = PcscChannel.ListReaders(pcscd.Library);
                if (pcscd.Slots.All(s => readers.Contains(s.Reader)))
                {
                    return pcscd;
                }
            }
            catch (IOException)
            {
            }

            if (DateTime.UtcNow > deadline || process.HasExited)
            {
                throw new InvalidOperationException("pcscd did not list its vpcd readers within 60 s");
            }

            await Task.Delay(100, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The card in <paramref name="reader"/>, once it answers a SELECT of the MF through PC/SC (pcscd polls its readers, so an
    /// inserted card shows a little later); null while it does not. <paramref name="library"/> picks the daemon (default: the
    /// machine's).
    /// </summary>
    public static PcscChannel? TryConnect(string reader, PcscLibrary? library = null)
    {
        try
        {
            var channel = PcscChannel.Connect(reader, library);
            if (channel.Transmit([0x00, 0xA4, 0x00, 0x0C, 0x02, 0x3F, 0x00]) is [.., 0x90, 0x00])
            {
                return channel;
            }

            channel.Dispose();
        }
        catch (IOException)
        {
        }

        return null;
    }

    /// <summary>What pcscd said (its standard output and error).</summary>
    public string Log
    {
        get
        {
            lock (_log)
            {
                return _log.ToString();
            }
        }
    }

    /// <summary>Stops pcscd (SIGTERM, so it removes its socket) and its configuration.</summary>
    public void Dispose()
    {
        if (!_process.HasExited)
        {
            using (var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(CultureInfo.InvariantCulture)]))
            {
                kill.WaitForExit();
            }

            if (!_process.WaitForExit(TimeSpan.FromSeconds(30)))
            {
                _process.Kill(entireProcessTree: true);
            }
        }

        _process.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_log)
            {
                _log.AppendLine(line);
            }
        }
    }

    private static bool Answers(string path)
    {
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(path));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static int FreePortPair()
    {
        for (var attempt = 0; attempt < 100; attempt++)
        {
            using var first = new TcpListener(IPAddress.Any, 0);
            first.Start();
            var port = ((IPEndPoint)first.LocalEndpoint).Port;
            try
            {
                using var second = new TcpListener(IPAddress.Any, port + 1);
                second.Start();
                second.Stop();
                return port;
            }
            catch (SocketException)
            {
            }
        }

        throw new InvalidOperationException("no two free consecutive TCP ports");
    }
}
