using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using OpenBest.Testing;

namespace OpenBest.Card.Tests;

/// <summary>
/// A real pcscd, started in the foreground as a child of the tests with a reader configuration of its own: one vsmartcard vpcd
/// reader on a free port, which <c>best card</c> connects to. pcscd has one socket per machine (/run/pcscd), so every test that
/// uses it is in the "pcscd" collection. Where pcscd or vpcd is not installed the tests are skipped, except in CI (CI=true),
/// where that is a failure: .ci/run installs them.
/// </summary>
public sealed partial class Pcscd : IAsyncLifetime
{
    private const string Daemon = "/usr/sbin/pcscd";
    private const string VpcdDriver = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so";
    private DirectoryInfo? _directory;
    private Process? _process;

    /// <summary>The vpcd reader's name prefix (pcscd adds " 00 00").</summary>
    public const string ReaderName = "OpenBest Card Test";

    /// <summary>The reader cards are inserted into.</summary>
    public string Reader => ReaderName + " 00 00";

    /// <summary>The TCP port vpcd waits for the card on.</summary>
    public int Port { get; private set; }

    /// <summary>pcscd's output, for failure messages.</summary>
    public string Log => _directory is null ? string.Empty : File.ReadAllText(Path.Combine(_directory.FullName, "pcscd.log"));

    /// <summary>Skips (or, in CI, fails) a test where pcscd cannot run.</summary>
    public static void Require()
    {
        if (File.Exists(Daemon) && File.Exists(VpcdDriver))
        {
            return;
        }

        const string Missing = "pcscd and vsmartcard-vpcd are not installed (Debian: apt install pcscd vsmartcard-vpcd pcsc-tools opensc)";
        if (Environment.GetEnvironmentVariable("CI") == "true")
        {
            Assert.Fail(Missing);
        }

        Assert.Skip(Missing);
    }

    /// <summary>
    /// Waits until a card in the test reader answers a SELECT of the MF through PC/SC (pcscd polls the reader, so an inserted
    /// card shows a little later).
    /// </summary>
    public Task WaitForCardAsync() => Eventually.True(() => CardAnswers(), $"a card in {Reader} ({Log})");

    /// <summary>Waits until pcscd has seen the previous card leave the reader, so the next one is not mistaken for it.</summary>
    public Task WaitForNoCardAsync() => Eventually.True(() =>
    {
        try
        {
            using var channel = PcscChannel.Connect(ReaderName);
            return false;
        }
        catch (IOException)
        {
            return true;
        }
    }, $"the reader {Reader} to be empty ({Log})");

    private static bool CardAnswers()
    {
        try
        {
            using var channel = PcscChannel.Connect(ReaderName);
            var answer = channel.Transmit([0x00, 0xA4, 0x00, 0x0C, 0x02, 0x3F, 0x00]);
            return answer is [.., 0x90, 0x00];
        }
        catch (IOException)
        {
            return false;
        }
    }

    public async ValueTask InitializeAsync()
    {
        if (!File.Exists(Daemon) || !File.Exists(VpcdDriver))
        {
            return; // each test calls Require()
        }

        await StartAsync();
    }

    /// <summary>Stops this pcscd for a test that starts its own (the demo), and waits until its socket is gone.</summary>
    public async Task StopAsync()
    {
        await StopDaemonAsync();
        await Eventually.True(() => !SocketAnswers("/run/pcscd/pcscd.comm"), "pcscd to stop");
    }

    /// <summary>Starts this pcscd again after <see cref="StopAsync"/>.</summary>
    public async Task StartAsync()
    {
        _directory?.Delete(recursive: true);

        if (SocketAnswers("/run/pcscd/pcscd.comm"))
        {
            throw new InvalidOperationException("another pcscd is running (/run/pcscd/pcscd.comm answers); stop it (systemctl stop pcscd.socket pcscd) so the tests can start their own");
        }

        _directory = Directory.CreateTempSubdirectory("openbest-pcscd-");
        var conf = Directory.CreateDirectory(Path.Combine(_directory.FullName, "reader.conf.d"));
        Port = FreePortPair();
        await File.WriteAllTextAsync(Path.Combine(conf.FullName, "vpcd"), string.Create(CultureInfo.InvariantCulture,
            $"FRIENDLYNAME \"{ReaderName}\"\nDEVICENAME /dev/null:{Port}\nLIBPATH {VpcdDriver}\nCHANNELID {Port}\n"));
        var info = new ProcessStartInfo(Daemon) { RedirectStandardOutput = false, RedirectStandardError = false, UseShellExecute = false };
        info.ArgumentList.Add("--foreground");
        info.ArgumentList.Add("--config");
        info.ArgumentList.Add(conf.FullName);
        info.ArgumentList.Add("--info");
        var log = Path.Combine(_directory.FullName, "pcscd.log");
        var shell = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        shell.ArgumentList.Add("-c");
        shell.ArgumentList.Add($"exec \"$0\" \"$@\" >'{log}' 2>&1");
        shell.ArgumentList.Add(Daemon);
        foreach (var argument in info.ArgumentList)
        {
            shell.ArgumentList.Add(argument);
        }

        _process = Process.Start(shell)!;
        await Eventually.True(() =>
        {
            try
            {
                return PcscChannel.ListReaders().Contains(Reader);
            }
            catch (IOException)
            {
                return false;
            }
        }, $"pcscd to list {Reader} ({log})");
    }

    public async ValueTask DisposeAsync()
    {
        await StopDaemonAsync();
        _directory?.Delete(recursive: true);
        _directory = null;
    }

    private async Task StopDaemonAsync()
    {
        if (_process is { HasExited: false })
        {
            // SIGTERM: pcscd removes its socket and pid file.
            _ = Kill(_process.Id, 15);
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            try
            {
                await _process.WaitForExitAsync(wait.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: true);
            }
        }

        _process?.Dispose();
        _process = null;
    }

    private static int FreePortPair()
    {
        // vpcd listens on the port of its first slot and the next one for the second.
        for (var attempt = 0; attempt < 50; attempt++)
        {
            using var first = new TcpListener(IPAddress.Any, 0);
            first.Start();
            var port = ((IPEndPoint)first.LocalEndpoint).Port;
            if (port >= 65535)
            {
                continue;
            }

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

    private static bool SocketAnswers(string path)
    {
        if (!File.Exists(path))
        {
            return false;
        }

        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(path));
            return true;
        }
        catch (SocketException)
        {
            return false; // a stale socket of a pcscd that was killed
        }
    }

    [LibraryImport("libc", EntryPoint = "kill")]
    private static partial int Kill(int pid, int signal);
}

[CollectionDefinition("pcscd")]
public sealed class PcscdGroup : ICollectionFixture<Pcscd>;
