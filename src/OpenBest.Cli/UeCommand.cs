using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Text;
using OpenBest.Card;
using OpenBest.Client;
using OpenBest.Protocol;
using OpenBest.Sessions;

namespace OpenBest.Cli;

/// <summary><c>best ue send|listen</c>: a device from the command line (the BestClient SDK), with a software USIM whose SQN state lives in a file, or a card.</summary>
internal static class UeCommand
{
    public static Command Create()
    {
        var command = new Command("ue", "A device from the command line: open a channel with an HSE and send a message or listen for downlink; agree a PSK for a\n" +
            "TLS, DTLS or IKEv2 peer (psk); reach a TLS server through the HSE's converter (stream); carry OTA packets to the card (ota).");
        command.Subcommands.Add(CreateSend());
        command.Subcommands.Add(CreateListen());
        command.Subcommands.Add(UePushCommand.Create());
        command.Subcommands.Add(CreatePsk());
        command.Subcommands.Add(CreateStream());
        command.Subcommands.Add(OtaCommand.CreateDevice());
        return command;
    }

    internal sealed record DeviceOptions(Option<string> Imsi, Option<byte[]> K, Option<byte[]> Opc, Option<string> Hse, Option<bool> Tcp, Option<string> Eas, Option<string> Service, Option<string> Snn, Option<FileInfo> State, Option<int> Timeout, Option<bool> EndToEnd, Option<EnterpriseKey[]> EnterpriseKeys, Option<string> Card)
    {
        public static DeviceOptions Create(Command command, int defaultTimeout)
        {
            var imsi = new Option<string>("--imsi") { Description = "the device's IMSI, 6..15 digits", HelpName = "DIGITS" };
            var k = HexOption.Create("--k", 16, "the USIM's key K");
            var opc = HexOption.Create("--opc", 16, "the USIM's OPc");
            var hse = new Option<string>("--hse") { Description = "the HSE's address", HelpName = "HOST:PORT", DefaultValueFactory = _ => "127.0.0.1:3163" };
            var tcp = new Option<bool>("--tcp") { Description = "reach the HSE over TCP instead of UDP" };
            var eas = new Option<string>("--eas") { Description = "the EAS Id the channel names", HelpName = "ID", DefaultValueFactory = _ => "eas.example.com" };
            var service = new Option<string>("--service") { Description = "confidential, integrity, or none (the no-security channel: nothing protected, no Data Ack; only where the HSE allows it)", HelpName = "SERVICE", DefaultValueFactory = _ => "confidential" };
            var snn = new Option<string>("--snn") { Description = "the 5G serving network name", HelpName = "NAME", DefaultValueFactory = _ => "5G:mnc001.mcc001.3gppnetwork.org" };
            var state = new Option<FileInfo>("--usim-state") { Description = "a file that keeps the USIM's SQN array between runs (created when missing, mode 0600)", HelpName = "FILE" };
            var timeout = new Option<int>("--timeout") { Description = "seconds to wait for the session (and the Ack, or downlink)", HelpName = "SECONDS", DefaultValueFactory = _ => defaultTimeout };
            timeout.Within(1, 86_400, "seconds");
            service.Validators.Add(r => { if (r.GetValueOrDefault<string>() is not ("confidential" or "integrity" or "none")) { r.AddError("--service must be confidential, integrity or none"); } });
            hse.Validators.Add(r => { if (!IPEndPoint.TryParse(r.GetValueOrDefault<string>() ?? string.Empty, out var e) || e.Port == 0) { r.AddError("--hse must be HOST:PORT, e.g. 127.0.0.1:3163"); } });
            imsi.Validators.Add(r => { if (r.GetValueOrDefault<string>() is not { Length: >= 6 and <= 15 } v || !v.All(char.IsAsciiDigit)) { r.AddError("--imsi must be 6..15 decimal digits"); } });
            var e2e = new Option<bool>("--e2e") { Description = "UE-to-EAS mode: the user plane is protected end to end to the EAS (the HSE forwards it unopened)" };
            var enterpriseKeys = HexOption.EnterpriseKeys("UE-to-EAS mode: an Enterprise Key shared with the enterprise, as IDENTIFIER:KEY in hex (identifier 1..16 octets), used when the HSE names it; repeat for several");
            var card = CardOption.Create("the USIM is on a card that runs AKA itself (K never leaves it): pcsc (the first reader with a card), pcsc:READER, at:DEVICE (a modem's AT+CSIM) or at-cgla:DEVICE; instead of --k and --opc");
            foreach (var option in new Option[] { imsi, k, opc, hse, tcp, eas, service, snn, state, timeout, e2e, enterpriseKeys, card })
            {
                command.Options.Add(option);
            }

            command.Validators.Add(r =>
            {
                if (r.GetResult(card) is null)
                {
                    HexOption.Require(r, imsi, k, opc);
                }
                else if (r.GetResult(k) is not null || r.GetResult(opc) is not null || r.GetResult(state) is not null)
                {
                    r.AddError("--card replaces --k, --opc and --usim-state: the card keeps K, OPc and its SQN array");
                }
            });
            return new DeviceOptions(imsi, k, opc, hse, tcp, eas, service, snn, state, timeout, e2e, enterpriseKeys, card);
        }

        /// <summary>The client's options and, with --card, the open card (the caller disposes it after the client).</summary>
        public (BestClientOptions Options, CardUsim? Card) Client(ParseResult result)
        {
            var endpoint = IPEndPoint.Parse(result.GetValue(Hse)!);
            var card = result.GetValue(Card) is { } spec ? CardOption.Open(spec) : null;
            try
            {
                var options = new BestClientOptions
                {
                    // With a card and no --imsi, the IMSI is the card's (EF_IMSI).
                    Imsi = result.GetValue(Imsi) ?? card?.ReadImsi() ?? string.Empty,
                    K = result.GetValue(K) ?? [],
                    Opc = result.GetValue(Opc) ?? [],
                    Card = card,
                    Transport = result.GetValue(Tcp) ? new BestTransport.Tcp(endpoint) : new BestTransport.Udp(endpoint),
                    UsimStateFile = result.GetValue(State)?.FullName,
                    OperationTimeout = TimeSpan.FromSeconds(result.GetValue(Timeout)),
                };
                return (options, card);
            }
            catch
            {
                card?.Dispose();
                throw;
            }
        }

        public UeChannelOptions Channel(ParseResult result) => new()
        {
            EasId = result.GetValue(Eas)!,
            Service = ServiceOf(result),
            // Asking for "none" is accepting it; every other request keeps the default minimum (integrity).
            MinimumService = ServiceOf(result) == BestService.None ? BestService.None : BestService.Integrity,
            ServingNetwork = ServingNetwork.FromName(result.GetValue(Snn)!),
            UeToEasMode = result.GetValue(EndToEnd),
            EnterpriseKeys = result.GetValue(EnterpriseKeys) ?? [],
        };

        public BestService ServiceOf(ParseResult result) => result.GetValue(Service) switch
        {
            "integrity" => BestService.Integrity,
            "none" => BestService.None,
            _ => BestService.Confidential,
        };

        /// <summary>Opens the channel and reports it; null (after one line on stderr) when it did not open.</summary>
        public async Task<BestChannel?> OpenAsync(BestClient client, ParseResult result, CancellationToken cancel)
        {
            var output = result.InvocationConfiguration.Output;
            var opened = await client.OpenAsync(Channel(result), cancel);
            if (opened.Channel is { } channel)
            {
                output.WriteLine(channel.Service == BestService.None
                    ? string.Create(CultureInfo.InvariantCulture, $"session {channel.SessionId}: no security (nothing is protected)")
                    : string.Create(CultureInfo.InvariantCulture, $"session {channel.SessionId}: {channel.Service}, {channel.Suite?.Name}"));
                output.Flush();
                return channel;
            }

            var name = result.CommandResult.Command.Name;
            result.InvocationConfiguration.Error.WriteLine(opened.Rejected is { } cause
                ? $"best ue {name}: rejected by the HSE: {cause}{(opened.BackOff is { } b ? string.Create(CultureInfo.InvariantCulture, $", back off {b.TotalSeconds:0} s") : string.Empty)}"
                : $"best ue {name}: no session from {result.GetValue(Hse)} within {result.GetValue(Timeout)} s");
            return null;
        }
    }

    private static Command CreateSend()
    {
        var command = new Command("send", "Open a channel with the HSE (AKA on the software USIM or on --card), send MESSAGE with an Ack request, wait for the Ack, terminate.");
        var device = DeviceOptions.Create(command, 30);
        var message = new Argument<string>("MESSAGE") { Description = "the text to send, acknowledged by the HSE" };
        command.Arguments.Add(message);
        command.SetAction(async (result, cancel) =>
        {
            var output = result.InvocationConfiguration.Output;
            var (options, card) = device.Client(result);
            using var cardLease = card;
            await using var client = await BestClient.CreateAsync(options, cancel);
            if (await device.OpenAsync(client, result, cancel) is not { } channel)
            {
                return ExitCodes.CheckFailed;
            }

            var status = await channel.SendAsync(Encoding.UTF8.GetBytes(result.GetValue(message)!), acknowledged: true, cancel);
            if (channel.Service == BestService.None)
            {
                // Nothing to wait for: the no-security channel has no Data Ack.
                output.WriteLine("sent (no security: the no-security channel has no Data Ack)");
                await channel.CloseAsync(cancel);
                return ExitCodes.Success;
            }

            if (status != SendStatus.Acknowledged)
            {
                result.InvocationConfiguration.Error.WriteLine($"best ue send: no Ack from {result.GetValue(device.Hse)} within {result.GetValue(device.Timeout)} s");
                return ExitCodes.CheckFailed;
            }

            // UE-to-EAS mode with Enterprise Keys: the message waited for the key set that names one.
            output.WriteLine(channel.EnterpriseKeyIdentifier is { } named ? $"acknowledged (under Enterprise Key {Convert.ToHexString(named).ToLowerInvariant()})" : "acknowledged");
            await channel.CloseAsync(cancel);
            return ExitCodes.Success;
        });
        return command;
    }

    private static Command CreateStream()
    {
        var command = new Command("stream", "The TLS converter, like openssl s_client: open a channel naming a TLS service of the HSE (--eas ID, the HSE's --tls-service),\n" +
            "copy stdin to the service and the service's answer to stdout; the HSE speaks TLS to the unchanged server. Ends when the service ends the stream\n" +
            "(after stdin ended); one summary line on stderr. Exit 1 when the HSE could not reach or verify the server.");
        var device = DeviceOptions.Create(command, 30);
        command.SetAction(async (result, cancel) =>
        {
            var error = result.InvocationConfiguration.Error;
            var (options, card) = device.Client(result);
            using var cardLease = card;
            await using var client = await BestClient.CreateAsync(options, cancel);
            var opened = await client.OpenAsync(device.Channel(result), cancel);
            if (opened.Channel is not { } channel)
            {
                error.WriteLine(opened.Rejected is { } cause ? $"best ue stream: rejected by the HSE: {cause}" : $"best ue stream: no session from {result.GetValue(device.Hse)} within {result.GetValue(device.Timeout)} s");
                return ExitCodes.CheckFailed;
            }

            long up = 0, down = 0;
            var failure = StreamFailure.None;
            var stream = channel.OpenStream();
            await using (stream)
            {
                using var stdin = Console.OpenStandardInput();
                using var stdout = Console.OpenStandardOutput();
                var upward = Task.Run(async () =>
                {
                    var buffer = new byte[8192];
                    int n;
                    while ((n = await stdin.ReadAsync(buffer, cancel)) > 0)
                    {
                        await stream.WriteAsync(buffer.AsMemory(0, n), cancel);
                        up += n;
                    }

                    await stream.ShutdownWriteAsync();
                }, cancel);
                try
                {
                    var buffer = new byte[16 * 1024];
                    int n;
                    while ((n = await stream.ReadAsync(buffer, cancel)) > 0)
                    {
                        await stdout.WriteAsync(buffer.AsMemory(0, n), cancel);
                        await stdout.FlushAsync(cancel);
                        down += n;
                    }
                }
                catch (IOException)
                {
                    failure = stream.Failure;
                }

                if (failure == StreamFailure.None && upward.IsCompleted)
                {
                    await upward;
                }

                error.WriteLine(failure == StreamFailure.None
                    ? string.Create(CultureInfo.InvariantCulture, $"session {channel.SessionId} ({channel.Service}, {channel.Suite?.Name}): {up} octets to the service, {down} from it; on the bearer, session set-up included: {client.SentOctets} octets in {client.SentMessages} messages sent, {client.ReceivedOctets} in {client.ReceivedMessages} received")
                    : $"best ue stream: {StreamPump.Describe(failure)} (the HSE's TLS to the service named {result.GetValue(device.Eas)})");
            }

            using var closing = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await ((Task)channel.CloseAsync(closing.Token)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            return failure == StreamFailure.None ? ExitCodes.Success : ExitCodes.CheckFailed;
        });
        return command;
    }

    private static Command CreatePsk()
    {
        var endpoint = new Option<string>("--endpoint") { Description = "one endpoint of the enterprise (EMSE Id, e.g. a gateway's name): its own key, K_EMSE_PSK, from the same AKA run", HelpName = "EMSE-ID" };
        endpoint.Validators.Add(r => { if (r.GetValueOrDefault<string>() is not { Length: >= 1 and <= 253 } v || v.Any(c => char.IsWhiteSpace(c) || c == '#')) { r.AddError("--endpoint must be 1..253 characters without spaces or '#'"); } });
        var externalId = new Option<string>("--external-id") { Description = "the device's identifier at the enterprise, as the HSE's register names it (never the IMSI): the first part of the PSK identity", HelpName = "ID" };
        var format = PskFormat.Option();
        var command = new Command("psk", "Key agreement only: run a BEST session with the HSE that agrees a PSK for the EAS (no user plane), and print the PSK identity\n" +
            "(EXTERNAL-ID#KEY-ID) and the key for a PSK peer: OpenSSL or GnuTLS (TLS 1.2/1.3, DTLS 1.2), or strongSwan (IKEv2). The EAS takes the same key\n" +
            "from the HSE (best eas psk, or its TLS/DTLS-PSK servers).");
        var device = DeviceOptions.Create(command, 30);
        command.Options.Add(endpoint);
        command.Options.Add(externalId);
        command.Options.Add(format);
        command.Validators.Add(r => HexOption.Require(r, externalId));
        command.SetAction(async (result, cancel) =>
        {
            var (options, card) = device.Client(result);
            using var cardLease = card;
            await using var client = await BestClient.CreateAsync(options, cancel);
            var opened = await client.OpenAsync(device.Channel(result) with { Service = BestService.KeyAgreementOnly, MinimumService = BestService.KeyAgreementOnly }, cancel);
            if (opened.Channel is not { } channel)
            {
                result.InvocationConfiguration.Error.WriteLine(opened.Rejected is { } cause ? $"best ue psk: rejected by the HSE: {cause}" : $"best ue psk: no session from {result.GetValue(device.Hse)} within {result.GetValue(device.Timeout)} s");
                return ExitCodes.CheckFailed;
            }

            var psk = new byte[32];
            try
            {
                var ok = result.GetValue(endpoint) is { } emse ? channel.TryGetPsk(emse, psk, out var keyIdentifier) : channel.TryGetPsk(psk, out keyIdentifier);
                if (!ok)
                {
                    result.InvocationConfiguration.Error.WriteLine("best ue psk: the session agreed no PSK (the HSE does not offer key agreement only to this device?)");
                    return ExitCodes.CheckFailed;
                }

                // The key is printed once the HSE holds it: the HSE keeps a PSK before it answers what follows the Session
                // Start Confirmation, so the Terminate Response of this one-shot session says the key is there (and the HSE
                // keeps the device's last three PSKs for the EAS after the session ends).
                if (!await channel.CloseAsync(cancel))
                {
                    result.InvocationConfiguration.Error.WriteLine($"best ue psk: the HSE did not answer the end of the session within {result.GetValue(device.Timeout)} s, so the key may not be kept there");
                    return ExitCodes.CheckFailed;
                }

                PskFormat.Write(result.InvocationConfiguration.Output, result.GetValue(format)!, BestChannel.PskIdentity(result.GetValue(externalId)!, keyIdentifier), psk);
                return ExitCodes.Success;
            }
            finally
            {
                System.Security.Cryptography.CryptographicOperations.ZeroMemory(psk);
            }
        });
        return command;
    }

    private static Command CreateListen()
    {
        var count = new Option<int>("--count") { Description = "stop after this many downlink messages (0: until Ctrl+C or the timeout)", HelpName = "N", DefaultValueFactory = _ => 0 };
        count.Validators.Add(r => { if (r.GetValueOrDefault<int>() < 0) { r.AddError("--count must be 0 or more"); } });
        var command = new Command("listen", "Open a channel with the HSE and print every downlink message (text, or hex when not UTF-8) until Ctrl+C, --count messages or --timeout.");
        var device = DeviceOptions.Create(command, 3600);
        command.Options.Add(count);
        command.SetAction(async (result, cancel) =>
        {
            var output = result.InvocationConfiguration.Output;
            var (options, card) = device.Client(result);
            using var cardLease = card;
            await using var client = await BestClient.CreateAsync(options, cancel);
            if (await device.OpenAsync(client, result, cancel) is not { } channel)
            {
                return ExitCodes.CheckFailed;
            }

            var wanted = result.GetValue(count);
            var received = 0;
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            timeout.CancelAfter(TimeSpan.FromSeconds(result.GetValue(device.Timeout)));
            try
            {
                await foreach (var downlink in channel.Received.ReadAllAsync(timeout.Token))
                {
                    received++;
                    output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"session {downlink.SessionId}: {PeerText.Printable(downlink.Payload.Span)}"));
                    output.Flush();
                    if (wanted > 0 && received >= wanted)
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
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{received} message(s) received"));
            return wanted > 0 && received < wanted ? ExitCodes.CheckFailed : ExitCodes.Success;
        });
        return command;
    }
}
