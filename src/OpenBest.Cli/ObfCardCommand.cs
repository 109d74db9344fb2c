using System.CommandLine;
using System.Globalization;
using System.Text;
using OpenBest.Card;
using OpenBest.Crypto.Aka;
using OpenBest.Crypto.Kdf;
using OpenBest.Obf;

namespace OpenBest.Cli;

/// <summary>
/// The OBF device on a card (seed 003 appendix 2.2.1): GBA_U bootstrapping through the card, and <c>best obf seal|open</c>,
/// which hand bytes to the card's OBF secure element and print what it returns. The process only carries bytes; every
/// key stays in the card (--trace shows what entered it).
/// </summary>
internal static class ObfCardCommand
{
    /// <summary><c>best obf bootstrap --card</c>: GBA_U, then with --naf the card's Ks_ext_NAF, or Ks_int_NAF into a key index.</summary>
    public static async Task<int> BootstrapAsync(ParseResult result, string spec, string impi, Uri server, string? naf, byte[] ua, int? seKeyIndex, FileInfo? traceFile,
        Func<System.Security.Cryptography.X509Certificates.X509Certificate2> ca, CancellationToken cancel)
    {
        var output = result.InvocationConfiguration.Output;
        var error = result.InvocationConfiguration.Error;
        using var trace = traceFile is null ? null : Trace(traceFile.FullName);
        using var channel = Open(spec, trace);
        var usim = new CardUsim(channel, ownsChannel: false);
        GbaBootstrap bootstrap;
        try
        {
            var ran = await CardBootstrap.RunAsync(address => ObfClientCommand.Http(address, address.Scheme == Uri.UriSchemeHttps ? ca() : null, trace), usim, record =>
            {
                using var se = ObfSecureElement.Open(channel);
                return se.VerifyAndStoreServerKey(record);
            }, server, impi, cancel);
            bootstrap = ran.Bootstrap;
            if (ran.RecordRefused is { } sw)
            {
                bootstrap.Dispose();
                await error.WriteLineAsync($"best obf bootstrap: the card refused the transfer record ({StatusWord.Describe(sw)}): it was not signed by the server the card trusts");
                return ExitCodes.CheckFailed;
            }

            if (ran.Transferred)
            {
                await output.WriteLineAsync($"Transferred: the card verified the record and now trusts {ran.Server}");
            }
        }
        catch (HttpRequestException e)
        {
            await error.WriteLineAsync($"best obf bootstrap: --server {server}: {e.Message.ReplaceLineEndings(" ")}");
            return ExitCodes.CheckFailed;
        }

        using (bootstrap)
        {
            if (bootstrap.Status != GbaBootstrapStatus.Bootstrapped)
            {
                await error.WriteLineAsync($"best obf bootstrap: {bootstrap.Detail}");
                return ExitCodes.CheckFailed;
            }

            await output.WriteLineAsync($"B-TID: {bootstrap.BTid}");
            await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"Lifetime: {bootstrap.Lifetime.UtcDateTime:yyyy-MM-dd'T'HH:mm:ss'Z'}"));
            await output.WriteLineAsync("GBA: GBA_U (Ks stays in the card)");
            if (bootstrap.Resynchronised)
            {
                await output.WriteLineAsync("Resynchronised: yes");
            }
        }

        if (naf is null)
        {
            return ExitCodes.Success;
        }

        var nafId = Gba.NafId(naf, ua);
        if (seKeyIndex is { } index)
        {
            using var se = ObfSecureElement.Open(channel);
            var derived = se.DeriveKey((byte)index, nafId, impi);
            if (!derived.Ok)
            {
                await error.WriteLineAsync($"best obf bootstrap: the secure element refused key index {index}: {StatusWord.Describe(derived.Sw)}");
                return ExitCodes.CheckFailed;
            }

            await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"Secure element: key index {index} holds Ks_int_NAF for {naf} (it never leaves the card)"));
            return ExitCodes.Success;
        }

        var ksExtNaf = new byte[32];
        try
        {
            usim.DeriveNafKey(nafId, impi, ksExtNaf);
            await output.WriteLineAsync($"Ks_ext_NAF ({naf}, {Convert.ToHexStringLower(ua)}): {Convert.ToHexStringLower(ksExtNaf)}");
        }
        finally
        {
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(ksExtNaf);
        }

        return ExitCodes.Success;
    }

    /// <summary><c>best obf seal</c>: Encrypt Device Data on the card.</summary>
    public static Command CreateSeal()
    {
        var (card, keyIndex, trace) = Options("the key index the card seals under (a key from the bootstrap, installed or imported)");
        var message = new Argument<string>("MESSAGE") { Description = "the device data (text) the card seals" };
        var command = new Command("seal", "Encrypt Device Data (seed 003 2.2.1.3): the card's OBF secure element seals MESSAGE under a key index, with its counter\n" +
            "and TRUST tag; the packet is printed in hex for the application server. The key never leaves the card.");
        foreach (var option in new Option[] { card, keyIndex, trace })
        {
            command.Options.Add(option);
        }

        command.Arguments.Add(message);
        command.Validators.Add(r => HexOption.Require(r, card, keyIndex));
        command.SetAction(result =>
        {
            var text = Encoding.UTF8.GetBytes(result.GetValue(message)!);
            if (text.Length is 0 or > ObfSecureElementApplication.MaxPlaintext)
            {
                throw new CommandLineException(string.Create(CultureInfo.InvariantCulture, $"MESSAGE must be 1..{ObfSecureElementApplication.MaxPlaintext} octets of UTF-8"));
            }

            return Run(result, card, trace, se =>
            {
                var sealedData = se.EncryptDeviceData((byte)result.GetValue(keyIndex)!.Value, text);
                if (!sealedData.Ok)
                {
                    result.InvocationConfiguration.Error.WriteLine($"best obf seal: the secure element refused: {StatusWord.Describe(sealedData.Sw)}");
                    return ExitCodes.CheckFailed;
                }

                result.InvocationConfiguration.Output.WriteLine(Convert.ToHexStringLower(sealedData.Data));
                return ExitCodes.Success;
            });
        });
        return command;
    }

    /// <summary><c>best obf open</c>: Decrypt Data on the card (the server's TRUST data and counter checked there).</summary>
    public static Command CreateOpen()
    {
        var (card, keyIndex, trace) = Options("the key index the server sealed under");
        var packet = new Argument<string>("PACKET") { Description = "the server's packet in hex" };
        var command = new Command("open", "Decrypt Server Data (seed 003 2.2.1.2): the card checks the packet's TRUST tag and counter (a replay is refused) and\n" +
            "opens it; the command is printed. Exit 1 when the card refuses (forged, altered or replayed).");
        foreach (var option in new Option[] { card, keyIndex, trace })
        {
            command.Options.Add(option);
        }

        command.Arguments.Add(packet);
        command.Validators.Add(r => HexOption.Require(r, card, keyIndex));
        command.SetAction(result =>
        {
            var hex = result.GetValue(packet)!;
            if (hex.Length % 2 != 0 || hex.Length / 2 is < SealedData.Overhead or > 255 || !hex.All(char.IsAsciiHexDigit))
            {
                throw new CommandLineException(string.Create(CultureInfo.InvariantCulture, $"PACKET must be {SealedData.Overhead}..255 octets in hex"));
            }

            return Run(result, card, trace, se =>
            {
                var opened = se.DecryptData((byte)result.GetValue(keyIndex)!.Value, Convert.FromHexString(hex));
                if (!opened.Ok)
                {
                    var why = opened.Sw switch
                    {
                        StatusWord.SecurityStatusNotSatisfied => "the TRUST data does not verify (not sealed by a holder of this key, or altered)",
                        StatusWord.ConditionsNotSatisfied => "a replay (its counter was used already)",
                        _ => StatusWord.Describe(opened.Sw),
                    };
                    result.InvocationConfiguration.Error.WriteLine($"best obf open: the secure element refused: {why}");
                    return ExitCodes.CheckFailed;
                }

                result.InvocationConfiguration.Output.WriteLine(Encoding.UTF8.GetString(opened.Data));
                return ExitCodes.Success;
            });
        });
        return command;
    }

    private static (Option<string> Card, Option<int?> KeyIndex, Option<FileInfo> Trace) Options(string keyIndexDescription)
    {
        var card = CardOption.Create("the card holding the OBF secure element: pcsc, pcsc:READER, at:DEVICE or at-cgla:DEVICE");
        var keyIndex = new Option<int?>("--key-index") { Description = keyIndexDescription, HelpName = "N" };
        keyIndex.Validators.Add(r => { if (r.GetValueOrDefault<int?>() is not (>= 0 and <= 255)) { r.AddError("--key-index must be 0..255"); } });
        return (card, keyIndex, ObfClientCommand.TraceOption());
    }

    private static int Run(ParseResult result, Option<string> card, Option<FileInfo> trace, Func<ObfSecureElement, int> work)
    {
        using var traceWriter = result.GetValue(trace) is { } file ? Trace(file.FullName) : null;
        using var channel = Open(result.GetValue(card)!, traceWriter);
        ObfSecureElement se;
        try
        {
            se = ObfSecureElement.Open(channel);
        }
        catch (IOException e)
        {
            throw new CommandLineException($"--card {result.GetValue(card)}: {e.Message}");
        }

        using (se)
        {
            return work(se);
        }
    }

    /// <summary>A trace file, appended to and private to its owner (mode 0600): it can hold what a card returns.</summary>
    private static StreamWriter Trace(string path)
    {
        var options = new FileStreamOptions { Mode = FileMode.Append, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        return new StreamWriter(path, options);
    }

    private static IApduChannel Open(string spec, TextWriter? trace)
    {
        IApduChannel channel;
        try
        {
            channel = CardReader.Open(spec);
        }
        catch (IOException e)
        {
            throw new CommandLineException($"--card {spec}: {e.Message}");
        }

        return trace is null ? channel : new TracingChannel(channel, trace);
    }
}
