using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace OpenBest.Bench;

/// <summary>The yardsticks measured beside the HSE in the same run (this machine is noisy: compare ratios, not absolute numbers).</summary>
/// <param name="UdpRoundTripsPerSecond">The loopback UDP request/response limit: a C echo server and client, 32 datagrams of 40 octets in flight.</param>
/// <param name="DtlsHandshakesPerSecond">OpenSSL DTLS 1.2 PSK handshakes per second (PSK-AES128-CCM8) of a C client against <c>openssl s_server</c>.</param>
/// <param name="DtlsFailures">Handshakes that failed in that time.</param>
public sealed record PeerFigures(double UdpRoundTripsPerSecond, double DtlsHandshakesPerSecond, long DtlsFailures);

/// <summary>
/// Builds and runs the two peer programs shipped in <c>bench/peers/</c> (embedded here): <c>udp_echo.c</c> and
/// <c>dtls_psk_rate.c</c>. Needs gcc, the OpenSSL headers (Debian <c>libssl-dev</c>) and the <c>openssl</c> command.
/// </summary>
public sealed class PeerBaselines : IDisposable
{
    private const string Psk = "00112233445566778899aabbccddeeff";
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-peers-");
    private string _udpEcho = string.Empty;
    private string _dtlsRate = string.Empty;

    /// <summary>Compiles the peer programs into a temporary folder.</summary>
    /// <exception cref="InvalidOperationException">gcc, the OpenSSL headers or a source is missing; the message says which.</exception>
    public async Task BuildAsync(CancellationToken cancel = default)
    {
        _udpEcho = await CompileAsync("udp_echo", [], cancel).ConfigureAwait(false);
        _dtlsRate = await CompileAsync("dtls_psk_rate", ["-lssl", "-lcrypto"], cancel).ConfigureAwait(false);
    }

    /// <summary>Runs both yardsticks, <paramref name="seconds"/> each.</summary>
    public async Task<PeerFigures> MeasureAsync(int seconds, CancellationToken cancel = default)
    {
        var udp = await UdpEchoAsync(seconds, cancel).ConfigureAwait(false);
        var (dtls, failed) = await DtlsAsync(seconds, cancel).ConfigureAwait(false);
        return new PeerFigures(udp, dtls, failed);
    }

    /// <summary>Deletes the programs.</summary>
    public void Dispose() => _directory.Delete(recursive: true);

    private async Task<double> UdpEchoAsync(int seconds, CancellationToken cancel)
    {
        var port = FreeUdpPort();
        using var server = Start(_udpEcho, "server", port.ToString(CultureInfo.InvariantCulture));
        try
        {
            await Task.Delay(200, cancel).ConfigureAwait(false); // the server binds before the client's first datagram
            var json = await RunAsync(_udpEcho, cancel, "client", port.ToString(CultureInfo.InvariantCulture), seconds.ToString(CultureInfo.InvariantCulture), "32", "40").ConfigureAwait(false);
            return JsonDocument.Parse(json).RootElement.GetProperty("round_trips_per_s").GetDouble();
        }
        finally
        {
            Stop(server);
        }
    }

    private async Task<(double Rate, long Failed)> DtlsAsync(int seconds, CancellationToken cancel)
    {
        var port = FreeUdpPort();
        using var server = Start("openssl", "s_server", "-dtls1_2", "-psk", Psk, "-psk_identity", "dev1", "-nocert", "-accept", port.ToString(CultureInfo.InvariantCulture), "-cipher", "PSK-AES128-CCM8", "-quiet");
        try
        {
            // s_server says nothing when it listens: a short probe run until a handshake succeeds (at most 10 s).
            for (var attempt = 0; ; attempt++)
            {
                var probe = JsonDocument.Parse(await RunAsync(_dtlsRate, cancel, port.ToString(CultureInfo.InvariantCulture), "0.2", Psk).ConfigureAwait(false)).RootElement;
                if (probe.GetProperty("dtls12_psk_handshakes_per_s").GetDouble() > 0)
                {
                    break;
                }

                if (attempt >= 50 || server.HasExited)
                {
                    throw new InvalidOperationException("openssl s_server -dtls1_2 did not complete a PSK handshake on loopback");
                }
            }

            var json = JsonDocument.Parse(await RunAsync(_dtlsRate, cancel, port.ToString(CultureInfo.InvariantCulture), seconds.ToString(CultureInfo.InvariantCulture), Psk).ConfigureAwait(false)).RootElement;
            return (json.GetProperty("dtls12_psk_handshakes_per_s").GetDouble(), json.GetProperty("failed").GetInt64());
        }
        finally
        {
            Stop(server);
        }
    }

    private async Task<string> CompileAsync(string name, string[] libraries, CancellationToken cancel)
    {
        var source = Path.Combine(_directory.FullName, name + ".c");
        using (var resource = typeof(PeerBaselines).Assembly.GetManifestResourceStream($"peers/{name}.c") ?? throw new InvalidOperationException($"the peer source {name}.c is not embedded"))
        using (var file = File.Create(source))
        {
            await resource.CopyToAsync(file, cancel).ConfigureAwait(false);
        }

        var program = Path.Combine(_directory.FullName, name);
        try
        {
            await RunAsync("gcc", cancel, ["-O2", "-o", program, source, .. libraries]).ConfigureAwait(false);
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            throw new InvalidOperationException($"cannot build the peer program {name}.c (needs gcc{(libraries.Length > 0 ? " and libssl-dev" : string.Empty)}): {e.Message}", e);
        }

        return program;
    }

    private static Process Start(string program, params string[] arguments)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        var process = Process.Start(info) ?? throw new InvalidOperationException($"{program} did not start");
        // Drained so a chatty peer never blocks on a full pipe.
        _ = process.StandardOutput.ReadToEndAsync();
        _ = process.StandardError.ReadToEndAsync();
        return process;
    }

    private static void Stop(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit(5000);
        }
        catch (InvalidOperationException)
        {
            // It had ended.
        }
    }

    private static async Task<string> RunAsync(string program, CancellationToken cancel, params string[] arguments)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        using var process = Process.Start(info) ?? throw new InvalidOperationException($"{program} did not start");
        var output = process.StandardOutput.ReadToEndAsync(cancel);
        var error = process.StandardError.ReadToEndAsync(cancel);
        await process.WaitForExitAsync(cancel).ConfigureAwait(false);
        if (process.ExitCode != 0)
        {
            var first = (await error.ConfigureAwait(false)).Split('\n', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault() ?? string.Empty;
            throw new InvalidOperationException($"{Path.GetFileName(program)} exited with {process.ExitCode}: {first}");
        }

        return await output.ConfigureAwait(false);
    }

    private static int FreeUdpPort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }
}
