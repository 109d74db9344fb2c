using System.Buffers.Binary;
using System.Diagnostics;
using OpenBest.Protocol;
using OpenBest.Sessions;

namespace OpenBest.Sessions.Tests;

/// <summary>
/// The Lua dissector of tools/wireshark/emsdp.lua, run by Debian's tshark on a capture this test writes
/// from a real UE ↔ HSE session. CI installs tshark; elsewhere the test is skipped when it is missing.
/// </summary>
public sealed class WiresharkDissectorTests
{
    [Fact]
    public void Tshark_DecodesEveryMessageOfASession()
    {
        var tshark = FindTshark();
        if (tshark is null)
        {
            Assert.True(Environment.GetEnvironmentVariable("CI") is null, "CI must have tshark: .ci/run installs it");
            Assert.Skip("tshark is not installed (apt-get install tshark)");
        }

        using var h = new Harness(new HseOptions { CounterLengthPreference = [1] });
        var channel = h.Open(new UeChannelOptions { EasId = "eas.example.com", ServingNetwork = Harness.FiveG });
        var sid = h.Ue.SessionIdOf(channel);
        h.Pump(h.Ue.Send(channel, "reading"u8, ackRequested: true), uplink: true);
        h.Pump(h.Hse.RefreshKeys(sid), uplink: false);
        h.Pump(h.Ue.Terminate(channel), uplink: true);

        var directory = Directory.CreateTempSubdirectory("openbest-pcap-");
        try
        {
            var capture = Path.Combine(directory.FullName, "emsdp.pcap");
            WritePcap(capture, h.Wire);
            var script = Path.Combine(OpenBest.Testing.TestPaths.RepositoryRoot(), "tools", "wireshark", "emsdp.lua");
            var lines = Run(tshark, "-r", capture, "-X", $"lua_script:{script}", "-T", "fields", "-E", "separator=;",
                "-e", "emsdp.session_id", "-e", "emsdp.key_id", "-e", "emsdp.plane", "-e", "emsdp.command", "-e", "emsdp.cause", "-e", "emsdp.eas_id");

            Assert.Equal(h.Wire.Count, lines.Count);
            var commands = lines.Select(l => l.Split(';')[3]).ToList();
            Assert.Equal("0x10", commands[0]);                 // Session Request
            Assert.Equal("0x11", commands[1]);                 // Session Start
            Assert.Contains("0xe2", commands);                 // Data Ack
            Assert.Contains("0x30", commands);                 // Manage Keys Request
            Assert.Contains("0x31", commands);                 // Manage Keys Response
            Assert.Contains("0x20", commands);                 // Terminate Request
            Assert.Contains("0x21", commands);                 // Terminate Response
            Assert.Equal("eas.example.com", lines[0].Split(';')[5]);
            Assert.All(lines.Skip(1), l => Assert.Equal(sid.ToString(System.Globalization.CultureInfo.InvariantCulture), l.Split(';')[0]));
            var upLine = lines[h.Wire.FindIndex(w => w.Uplink && (w.Message[0] & 0x20) != 0)];
            Assert.Equal("", upLine.Split(';')[3]);            // UP: no command
            Assert.Equal("1", upLine.Split(';')[2]);           // plane bit

            // The full tree: every TLV named, no Lua error.
            var verbose = string.Join('\n', Run(tshark, "-r", capture, "-X", $"lua_script:{script}", "-V"));
            Assert.Contains("EMSDP (BEST, TS 33.163, wire profile 1)", verbose, StringComparison.Ordinal);
            Assert.Contains("HSE configuration (0x09)", verbose, StringComparison.Ordinal);
            Assert.DoesNotContain("Lua Error", verbose, StringComparison.Ordinal);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    /// <summary>A classic libpcap file: Ethernet, IPv4 and UDP around each message, port 3163 on the HSE side.</summary>
    private static void WritePcap(string path, List<(bool Uplink, byte[] Message)> messages)
    {
        using var file = File.Create(path);
        Span<byte> header = stackalloc byte[24];
        BinaryPrimitives.WriteUInt32LittleEndian(header, 0xa1b2c3d4);
        BinaryPrimitives.WriteUInt16LittleEndian(header[4..], 2);
        BinaryPrimitives.WriteUInt16LittleEndian(header[6..], 4);
        BinaryPrimitives.WriteUInt32LittleEndian(header[16..], 65535);
        BinaryPrimitives.WriteUInt32LittleEndian(header[20..], 1); // LINKTYPE_ETHERNET
        file.Write(header);
        var seconds = 1_795_000_000u;
        Span<byte> record = stackalloc byte[16];
        foreach (var (uplink, message) in messages)
        {
            var frame = new byte[14 + 20 + 8 + message.Length];
            frame[12] = 0x08; // IPv4
            var ip = frame.AsSpan(14);
            ip[0] = 0x45;
            BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(20 + 8 + message.Length));
            ip[8] = 64;
            ip[9] = 17; // UDP
            byte[] ue = [127, 0, 0, 2];
            byte[] hse = [127, 0, 0, 1];
            (uplink ? ue : hse).CopyTo(ip[12..]);
            (uplink ? hse : ue).CopyTo(ip[16..]);
            var udp = ip[20..];
            BinaryPrimitives.WriteUInt16BigEndian(udp, (ushort)(uplink ? 40000 : 3163));
            BinaryPrimitives.WriteUInt16BigEndian(udp[2..], (ushort)(uplink ? 3163 : 40000));
            BinaryPrimitives.WriteUInt16BigEndian(udp[4..], (ushort)(8 + message.Length));
            message.CopyTo(udp[8..]);

            record.Clear();
            BinaryPrimitives.WriteUInt32LittleEndian(record, seconds++);
            BinaryPrimitives.WriteUInt32LittleEndian(record[8..], (uint)frame.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(record[12..], (uint)frame.Length);
            file.Write(record);
            file.Write(frame);
        }
    }

    private static List<string> Run(string tshark, params string[] args)
    {
        var info = new ProcessStartInfo(tshark) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        // Seconds on a busy machine; two runs of it stay within a test's minute even when tshark hangs.
        if (!process.WaitForExit(TimeSpan.FromSeconds(25)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail("tshark did not finish within 25 s");
        }

        Assert.True(process.ExitCode == 0, $"tshark exited {process.ExitCode}: {stderr.Result}");
        Assert.DoesNotContain("Lua: Error", stderr.Result, StringComparison.Ordinal);
        return stdout.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries).ToList();
    }

    private static string? FindTshark() =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':')
            .Select(dir => Path.Combine(dir, "tshark")).FirstOrDefault(File.Exists);
}
