using System.Diagnostics;
using System.Globalization;
using System.Text;
using OpenBest.Crypto.Aka;
using OpenBest.Testing;

namespace OpenBest.Card.Tests;

/// <summary>
/// <see cref="AtModemChannel"/> on a real serial line: a pseudo-terminal pair made by socat, whose other end is a
/// <see cref="ModemEmulator"/> relaying to the virtual card. AT+CSIM carries the USIM's AUTHENTICATE (MILENAGE test set 1)
/// and the EF_IMSI read; AT+CCHO / AT+CGLA / AT+CCHC carry the OBF secure element on a logical channel; a modem's ERROR or
/// +CME ERROR is an <see cref="IOException"/> that names the line and shows no APDU.
/// </summary>
public sealed class AtModemTests
{
    // MILENAGE test set 1 (TS 35.207/35.208): K, OPc, RAND, SQN ff9bb4d0b607, AUTN; RES, CK, IK.
    private static readonly byte[] K1 = Convert.FromHexString("465b5ce8b199b49faa5f0a2ee238a6bc");
    private static readonly byte[] Opc1 = Convert.FromHexString("cd63cb71954a9f4e48a5994e37a02baf");
    private static readonly byte[] Rand1 = Convert.FromHexString("23553cbe9637a89d218ae64dae47bf35");
    private static readonly byte[] Autn1 = Convert.FromHexString("55f328b43577b9b94a9ffac354dfafb3");
    private const ulong SqnMsBelowSet1 = 0xff9bb4d0b5e0;
    private const string Imsi = "001010123456789";
    private static readonly byte[] SeKey = Convert.FromHexString("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");

    [Fact]
    public async Task Csim_CardUsim_AuthenticatesWithMilenageSet1_AndReadsTheImsi()
    {
        await using var pair = await PseudoTerminalPair.StartAsync();
        using var card = VirtualUiccTests.Card(K1, Opc1, sqnMs: SqnMsBelowSet1, imsi: Imsi);
        await using var modem = ModemEmulator.Open(pair.Modem, card);
        using var usim = new CardUsim(AtModemChannel.Open(pair.Dte));
        Assert.Equal(pair.Dte, usim.Name);

        using (var result = usim.Authenticate(Rand1, Autn1))
        {
            Assert.Equal(UsimAuthenticationStatus.Success, result.Status);
            Assert.Equal("A54211D5E3BA50BF", Convert.ToHexString(result.Res));
            Assert.Equal("B40BA9A3C58B2A05BBF0D987B21BF8CB", Convert.ToHexString(result.Ck));
            Assert.Equal("F769BCD751044604127672711C6D3441", Convert.ToHexString(result.Ik));
        }

        Assert.Equal(Imsi, usim.ReadImsi());
        // The same AUTN again is a replay for the card: AUTS, through the modem as well.
        using (var replay = usim.Authenticate(Rand1, Autn1))
        {
            Assert.Equal(UsimAuthenticationStatus.SynchronisationFailure, replay.Status);
        }

        var commands = modem.Commands;
        Assert.Null(modem.Failure);
        // ATE0 first (echoed by the modem, which the channel skipped), then nothing but AT+CSIM with lengths the modem accepted.
        Assert.Equal("ATE0", commands[0]);
        Assert.All(commands.Skip(1), c => Assert.StartsWith("AT+CSIM=", c, StringComparison.Ordinal));
        Assert.Equal(2, commands.Count(c => c.StartsWith("AT+CSIM=78,\"008800812210" + Convert.ToHexString(Rand1) + "10" + Convert.ToHexString(Autn1), StringComparison.Ordinal)));
        Assert.Contains(commands, c => c.StartsWith("AT+CSIM=", StringComparison.Ordinal) && c.Contains("\"00C00000", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Cgla_ObfSecureElement_SealsDeviceData_OverCchoCglaCchc(bool cchoWithPrefix)
    {
        await using var pair = await PseudoTerminalPair.StartAsync();
        using var card = VirtualUiccTests.Card(K1, Opc1, keys: new Dictionary<byte, ReadOnlyMemory<byte>> { [1] = SeKey });
        await using var modem = ModemEmulator.Open(pair.Modem, card, cchoWithPrefix);
        using var channel = AtModemChannel.Open(pair.Dte, AtLogicalChannels.Cgla);

        SecureElementResult first;
        using (var se = ObfSecureElement.Open(channel))
        {
            Assert.NotEqual(0, se.LogicalChannel);
            first = se.EncryptDeviceData(1, "PVT"u8);
            Assert.True(first.Ok, $"{first} {modem}");
        }

        // The channel was closed with AT+CCHC; a second opening gets a new session from the modem.
        SecureElementResult second;
        using (var se = ObfSecureElement.Open(channel))
        {
            second = se.EncryptDeviceData(1, "PVT"u8);
            Assert.True(second.Ok, $"{second} {modem}");
        }

        foreach (var packet in new[] { first.Data, second.Data })
        {
            var plain = new byte[packet.Length - SealedData.Overhead];
            Assert.True(SealedData.TryOpen(SeKey, SealDirection.DeviceToServer, card.IccidOctets, packet, plain));
            Assert.Equal("PVT"u8.ToArray(), plain);
        }

        Assert.True(SealedData.TryHeader(first.Data, out _, out var c1) && SealedData.TryHeader(second.Data, out _, out var c2) && c2 > c1);

        var commands = modem.Commands;
        Assert.Null(modem.Failure);
        var s1 = ModemEmulator.FirstSessionId.ToString(CultureInfo.InvariantCulture);
        var s2 = (ModemEmulator.FirstSessionId + 1).ToString(CultureInfo.InvariantCulture);
        var aid = "\"" + Convert.ToHexString(ObfSecureElementApplication.Aid) + "\"";
        Assert.Equal(
            ["ATE0", $"AT+CCHO={aid}", $"AT+CGLA={s1},", $"AT+CCHC={s1}", $"AT+CCHO={aid}", $"AT+CGLA={s2},", $"AT+CCHC={s2}"],
            Runs(commands.Select(c => c.StartsWith("AT+CGLA=", StringComparison.Ordinal) ? c[..(c.IndexOf(',', StringComparison.Ordinal) + 1)] : c)));
        // MANAGE CHANNEL never went to the modem in AT+CSIM: the channel opened it with AT+CCHO.
        Assert.DoesNotContain(commands, c => c.StartsWith("AT+CSIM=", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Csim_ObfSecureElement_ManageChannelTravelsInCsim()
    {
        // In the default mode MANAGE CHANNEL and the channel bits of the class byte go to the modem as they are.
        await using var pair = await PseudoTerminalPair.StartAsync();
        using var card = VirtualUiccTests.Card(K1, Opc1, keys: new Dictionary<byte, ReadOnlyMemory<byte>> { [1] = SeKey });
        await using var modem = ModemEmulator.Open(pair.Modem, card);
        using var channel = AtModemChannel.Open(pair.Dte);

        SecureElementResult packet;
        using (var se = ObfSecureElement.Open(channel))
        {
            Assert.NotEqual(0, se.LogicalChannel);
            packet = se.EncryptDeviceData(1, "PVT"u8);
            Assert.True(packet.Ok, $"{packet} {modem}");
        }

        var plain = new byte[packet.Data.Length - SealedData.Overhead];
        Assert.True(SealedData.TryOpen(SeKey, SealDirection.DeviceToServer, card.IccidOctets, packet.Data, plain));
        Assert.Equal("PVT"u8.ToArray(), plain);
        var commands = modem.Commands;
        Assert.Null(modem.Failure);
        Assert.Equal("AT+CSIM=10,\"0070000001\"", commands[1]);
        Assert.Equal("AT+CSIM=8,\"00708001\"", commands[^1]);
        Assert.All(commands.Skip(1), c => Assert.StartsWith("AT+CSIM=", c, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("ERROR")]
    [InlineData("+CME ERROR: 13")]
    public async Task Csim_ModemRefuses_IsAnIOExceptionNamingTheLine_WithoutTheApdu(string refusal)
    {
        await using var pair = await PseudoTerminalPair.StartAsync();
        using var card = VirtualUiccTests.Card(K1, Opc1, sqnMs: SqnMsBelowSet1, imsi: Imsi);
        await using var modem = ModemEmulator.Open(pair.Modem, card);
        using var usim = new CardUsim(AtModemChannel.Open(pair.Dte));
        // The modem refuses AUTHENTICATE (CLA 00, INS 88) only: the SELECT before it goes through.
        modem.Refusal = line => line.StartsWith("AT+CSIM=", StringComparison.Ordinal) && line.Contains(",\"0088", StringComparison.Ordinal) ? refusal : null;

        var e = Assert.Throws<IOException>(() => usim.Authenticate(Rand1, Autn1));
        Assert.Contains(pair.Dte, e.Message, StringComparison.Ordinal);
        Assert.Contains(refusal, e.Message, StringComparison.Ordinal);
        Assert.Contains("AT+CSIM", e.Message, StringComparison.Ordinal);
        foreach (var secret in new[] { K1, Opc1, Rand1, Autn1 })
        {
            Assert.DoesNotContain(Convert.ToHexString(secret), e.Message, StringComparison.OrdinalIgnoreCase);
        }

        Assert.DoesNotContain("0088", e.Message, StringComparison.Ordinal);
        Assert.Contains(modem.Commands, c => c.Contains(",\"0088", StringComparison.Ordinal));

        // The line stays in step: once the modem relays again, the next commands are answered, and the refused AUTHENTICATE
        // never reached the card (its SQN is still fresh).
        modem.Refusal = null;
        Assert.Equal(Imsi, usim.ReadImsi());
        using var result = usim.Authenticate(Rand1, Autn1);
        Assert.Equal(UsimAuthenticationStatus.Success, result.Status);
        Assert.Equal("A54211D5E3BA50BF", Convert.ToHexString(result.Res));
        Assert.Null(modem.Failure);
    }

    [Fact]
    public async Task Open_ModemRefusesAte0_IsAnIOExceptionNamingTheLine()
    {
        await using var pair = await PseudoTerminalPair.StartAsync();
        using var card = VirtualUiccTests.Card(K1, Opc1);
        await using var modem = ModemEmulator.Open(pair.Modem, card);
        modem.Refusal = line => line == "ATE0" ? "ERROR" : null;

        var e = Assert.Throws<IOException>(() => AtModemChannel.Open(pair.Dte));
        Assert.Contains(pair.Dte, e.Message, StringComparison.Ordinal);
        Assert.Contains("ATE0", e.Message, StringComparison.Ordinal);
        Assert.Equal(["ATE0"], modem.Commands);
    }

    [Fact]
    public void Open_NoSuchDevice_IsAnIOExceptionNamingIt()
    {
        var device = Path.Combine(Path.GetTempPath(), "openbest-no-such-modem-" + Guid.NewGuid().ToString("N"));
        var e = Assert.Throws<IOException>(() => AtModemChannel.Open(device));
        Assert.Contains(device, e.Message, StringComparison.Ordinal);
    }

    /// <summary>The lines with each run of equal consecutive lines told once.</summary>
    private static string[] Runs(IEnumerable<string> lines)
    {
        var runs = new List<string>();
        foreach (var line in lines)
        {
            if (runs.Count == 0 || runs[^1] != line)
            {
                runs.Add(line);
            }
        }

        return [.. runs];
    }
}

/// <summary>
/// A pseudo-terminal pair made by socat in a folder of its own: <see cref="Modem"/> is the modem's end, <see cref="Dte"/> the
/// computer's (links to the two /dev/pts devices). Where socat is not installed the test is skipped, except in CI (CI=true),
/// where that is a failure: .ci/run installs it.
/// </summary>
internal sealed class PseudoTerminalPair : IAsyncDisposable
{
    private const string Socat = "/usr/bin/socat";
    private readonly DirectoryInfo _directory;
    private readonly Process _process;
    private readonly StringBuilder _log = new();

    private PseudoTerminalPair(DirectoryInfo directory, Process process)
    {
        _directory = directory;
        _process = process;
    }

    /// <summary>The modem's end of the line.</summary>
    public string Modem => Path.Combine(_directory.FullName, "modem");

    /// <summary>The computer's end of the line, which <see cref="AtModemChannel"/> opens.</summary>
    public string Dte => Path.Combine(_directory.FullName, "dte");

    /// <summary>What socat said, for failure messages.</summary>
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

    /// <summary>Starts socat and waits for both links; skips (or, in CI, fails) the test where socat is missing.</summary>
    public static async Task<PseudoTerminalPair> StartAsync()
    {
        if (!File.Exists(Socat))
        {
            const string Missing = "socat is not installed (Debian: apt install socat)";
            if (Environment.GetEnvironmentVariable("CI") == "true")
            {
                Assert.Fail(Missing);
            }

            Assert.Skip(Missing);
        }

        var directory = Directory.CreateTempSubdirectory("openbest-at-");
        var info = new ProcessStartInfo(Socat) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        info.ArgumentList.Add("-d");
        info.ArgumentList.Add("-d");
        info.ArgumentList.Add($"pty,raw,echo=0,link={Path.Combine(directory.FullName, "modem")}");
        info.ArgumentList.Add($"pty,raw,echo=0,link={Path.Combine(directory.FullName, "dte")}");
        Process process;
        try
        {
            process = Process.Start(info) ?? throw new InvalidOperationException($"{Socat} did not start");
        }
        catch
        {
            directory.Delete(recursive: true);
            throw;
        }

        var pair = new PseudoTerminalPair(directory, process);
        process.ErrorDataReceived += (_, e) => pair.Append(e.Data);
        process.OutputDataReceived += (_, e) => pair.Append(e.Data);
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        try
        {
            await Eventually.True(() =>
            {
                if (process.HasExited)
                {
                    Assert.Fail($"socat exited ({process.ExitCode}): {pair.Log}");
                }

                return File.Exists(pair.Modem) && File.Exists(pair.Dte);
            }, $"socat to link {pair.Modem} and {pair.Dte}");
        }
        catch
        {
            await pair.DisposeAsync();
            throw;
        }

        return pair;
    }

    /// <summary>Kills socat and deletes the folder.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill();
            }

            using var wait = new CancellationTokenSource(Eventually.Deadline);
            await _process.WaitForExitAsync(wait.Token);
        }
        finally
        {
            _process.Dispose();
            _directory.Delete(recursive: true);
        }
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_log)
        {
            _log.AppendLine(line);
        }
    }
}
