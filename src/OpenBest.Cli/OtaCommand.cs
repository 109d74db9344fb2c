using System.CommandLine;
using System.Globalization;
using System.Net.Http.Json;
using OpenBest.Card;
using OpenBest.Client;
using OpenBest.EasInterface;
using OpenBest.Hse;
using OpenBest.Protocol;

namespace OpenBest.Cli;

/// <summary>
/// OTA over BEST (seed 000 section 5): <c>best ota send</c>, the OTA server, builds TS 102 225 command packets and sends them
/// through the HSE's northbound API to the device's OTA channel (the enterprise ID <c>urn:best:ota</c>); <c>best ue ota</c>,
/// the device, hands each packet to its card (SMS-PP data download) and sends the card's PoR back.
/// </summary>
internal static class OtaCommand
{
    /// <summary>The enterprise ID that names a device's OTA channel.</summary>
    public const string OtaEnterprise = "urn:best:ota";

    public static Command CreateDevice()
    {
        var count = new Option<int>("--count") { Description = "stop after this many packets (0: until Ctrl+C or the timeout)", HelpName = "N", DefaultValueFactory = _ => 0 };
        var command = new Command("ota", $"The device's OTA channel ({OtaEnterprise}): every command packet the HSE delivers goes to the card as an SMS-PP data download\n" +
            "(marked as come over a protected BEST channel), and the card's PoR goes back to the OTA server. Needs --card.");
        var device = UeCommand.DeviceOptions.Create(command, 3600);
        command.Options.Add(count);
        command.Validators.Add(r => HexOption.Require(r, device.Card));
        command.SetAction(async (result, cancel) =>
        {
            var output = result.InvocationConfiguration.Output;
            var (options, card) = device.Client(result);
            using var cardLease = card;
            var uicc = new UiccClient(card!.Channel);
            await using var client = await BestClient.CreateAsync(options, cancel);
            var opened = await client.OpenAsync(device.Channel(result) with { EasId = OtaEnterprise }, cancel);
            if (opened.Channel is not { } channel)
            {
                result.InvocationConfiguration.Error.WriteLine($"best ue ota: no OTA channel ({opened.Rejected?.ToString() ?? "no answer"})");
                return ExitCodes.CheckFailed;
            }

            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"session {channel.SessionId}: OTA channel open ({channel.Service})"));
            output.Flush();
            var handled = 0;
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            timeout.CancelAfter(TimeSpan.FromSeconds(result.GetValue(device.Timeout)));
            try
            {
                await foreach (var packet in channel.Received.ReadAllAsync(timeout.Token))
                {
                    byte[] answer;
                    try
                    {
                        answer = OtaEnvelope.Deliver(uicc, packet.Payload.Span);
                    }
                    catch (IOException e)
                    {
                        output.WriteLine($"packet refused by the card: {e.Message}");
                        continue;
                    }

                    if (answer.Length > 0)
                    {
                        await channel.SendAsync(answer, acknowledged: true, timeout.Token);
                    }

                    handled++;
                    output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"packet {handled}: {packet.Payload.Length} octets to the card, {answer.Length} back"));
                    output.Flush();
                    if (result.GetValue(count) is > 0 and var wanted && handled >= wanted)
                    {
                        break;
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }

            using var closing = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await ((Task)channel.CloseAsync(closing.Token)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            return ExitCodes.Success;
        });
        return command;
    }

    public static Command CreateSend()
    {
        var hse = new Option<string>("--hse") { Description = "the HSE's enterprise interface (northbound API)", HelpName = "URL", DefaultValueFactory = _ => "https://127.0.0.1:3164/" };
        var dataDir = SubscriberCommand.DataDirOption();
        var externalId = new Option<string>("--to") { Description = $"the device, by its external id for {OtaEnterprise}", HelpName = "EXTERNAL-ID" };
        var tar = HexOption.Create("--tar", 3, "the TAR of the card application (B00001: the USIM's remote file management)");
        var spi = HexOption.Create("--spi", 2, "the SPI (TS 102 225 5.1.1), e.g. 1639: ciphered, CC, counter must be higher, PoR required, ciphered, with CC; 0001: no security (only over a protected BEST channel)");
        var kic = HexOption.Create("--kic", 16, "KIc (AES-CBC), for a ciphered SPI");
        var kid = HexOption.Create("--kid", 16, "KID (AES-CMAC), for an SPI with a CC");
        var keyVersion = new Option<byte>("--key-version") { Description = "the key version of KIc and KID (1..15)", HelpName = "N", DefaultValueFactory = _ => 1 };
        var counter = new Option<ulong>("--counter") { Description = "CNTR (above the card's last for this TAR when the SPI asks)", HelpName = "N", DefaultValueFactory = _ => 0 };
        var timeout = new Option<int>("--timeout") { Description = "seconds to wait for the PoR", HelpName = "SECONDS", DefaultValueFactory = _ => 30 };
        var apdus = new Argument<string[]>("APDU") { Description = "the C-APDUs of the command script (hex, compact format: CLA INS P1 P2 P3 [data])", Arity = ArgumentArity.OneOrMore };
        var command = new Command("send", $"The OTA server: build a TS 102 225 command packet (AES-CBC and AES-CMAC) for the card application at --tar and send it through\n" +
            $"the HSE to the device's OTA channel ({OtaEnterprise}, northbound API as that enterprise), then wait for the PoR and print it.");
        foreach (var option in new Option[] { hse, dataDir, externalId, tar, spi, kic, kid, keyVersion, counter, timeout })
        {
            command.Options.Add(option);
        }

        command.Arguments.Add(apdus);
        command.Validators.Add(r => HexOption.Require(r, externalId, tar, spi));
        command.SetAction(async (result, cancel) =>
        {
            var output = result.InvocationConfiguration.Output;
            var spiValue = new OtaSpi(result.GetValue(spi)![0], result.GetValue(spi)![1]);
            var version = result.GetValue(keyVersion);
            if (!spiValue.Unsecured && (result.GetResult(kic) is null || result.GetResult(kid) is null))
            {
                throw new CommandLineException("--kic and --kid: a secured SPI needs both keys");
            }

            OtaKeys? keys = spiValue.Unsecured ? null : new OtaKeys(version, result.GetValue(kic)!, version, result.GetValue(kid)!);
            byte[] script;
            try
            {
                script = [.. result.GetValue(apdus)!.SelectMany(Convert.FromHexString)];
            }
            catch (FormatException)
            {
                throw new CommandLineException("APDU: each must be hex");
            }

            var tarValue = result.GetValue(tar)!;
            var packet = OtaPacket.EncodeCommand(keys ?? new OtaKeys(0, [], 0, []), spiValue, tarValue, result.GetValue(counter), script);
            var directory = result.GetValue(dataDir)!;
            using var own = DevelopmentPki.LoadPair(DevelopmentPki.Eas(directory, OtaEnterprise));
            using var ca = DevelopmentPki.LoadCertificate(DevelopmentPki.Ca(directory).Certificate);
            var handler = new SocketsHttpHandler();
            DevelopmentPki.UseFor(handler.SslOptions, ca, own);
            using var http = new HttpClient(handler) { BaseAddress = new Uri(result.GetValue(hse)!), Timeout = TimeSpan.FromSeconds(30) };

            var sessions = await http.GetFromJsonAsync<List<NorthboundSession>>("api/v1/sessions", cancel) ?? [];
            if (sessions.LastOrDefault(s => s.ExternalId == result.GetValue(externalId)) is not { } session)
            {
                result.InvocationConfiguration.Error.WriteLine($"best ota send: {result.GetValue(externalId)} has no OTA channel open at the HSE");
                return ExitCodes.CheckFailed;
            }

            var before = (await http.GetFromJsonAsync<List<NorthboundUplink>>("api/v1/uplink?limit=1000", cancel) ?? []).Select(u => u.Sequence).DefaultIfEmpty(0).Max();
            using (var sent = await http.PostAsJsonAsync($"api/v1/sessions/{session.SessionId}/downlink", new NorthboundDownlink(Convert.ToBase64String(packet)), cancel))
            {
                if (!sent.IsSuccessStatusCode)
                {
                    result.InvocationConfiguration.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"best ota send: the HSE refused the downlink ({(int)sent.StatusCode})"));
                    return ExitCodes.CheckFailed;
                }
            }

            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"command packet ({packet.Length} octets) to session {session.SessionId}"));
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(result.GetValue(timeout));
            while (DateTime.UtcNow < deadline)
            {
                var uplink = await http.GetFromJsonAsync<List<NorthboundUplink>>(string.Create(CultureInfo.InvariantCulture, $"api/v1/uplink?after={before}"), cancel) ?? [];
                foreach (var message in uplink.Where(u => u.SessionId == session.SessionId))
                {
                    var answer = Convert.FromBase64String(message.Payload);
                    if (answer.Length > 3 && OtaPacket.TryDecodeResponse(keys, spiValue, answer.AsSpan(3), out var por, answer.AsSpan(0, 3)))
                    {
                        output.WriteLine(por!.Data.Length >= 3
                            ? string.Create(CultureInfo.InvariantCulture, $"PoR: {por.Status}; {por.Data[0]} command(s) run, last SW {Convert.ToHexString(por.Data, 1, 2)}{(por.Data.Length > 3 ? ", data " + Convert.ToHexStringLower(por.Data.AsSpan(3)) : string.Empty)}")
                            : $"PoR: {por.Status}");
                        return por.Status == OtaStatus.Ok ? ExitCodes.Success : ExitCodes.CheckFailed;
                    }

                    before = Math.Max(before, message.Sequence);
                }

                await Task.Delay(200, cancel);
            }

            result.InvocationConfiguration.Error.WriteLine($"best ota send: no PoR within {result.GetValue(timeout)} s");
            return ExitCodes.CheckFailed;
        });
        var ota = new Command("ota", $"OTA over BEST (TS 102 225/226 packets through the HSE to a device's {OtaEnterprise} channel and its card).");
        ota.Subcommands.Add(command);
        return ota;
    }
}
