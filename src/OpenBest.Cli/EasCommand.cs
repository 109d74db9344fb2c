using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Text;
using OpenBest.Eas;
using OpenBest.EasInterface;
using OpenBest.Sessions;

using OpenBest.Protocol;

namespace OpenBest.Cli;

/// <summary><c>best eas</c>: the reference Enterprise Application Server.</summary>
internal static class EasCommand
{
    public static Command Create()
    {
        var easId = new Option<string>("--eas-id") { Description = "this EAS's Id (its certificate's common name)", HelpName = "ID" };
        var hse = new Option<string>("--hse") { Description = "the HSE's EAS interface", HelpName = "URL", DefaultValueFactory = _ => "https://127.0.0.1:3164/" };
        var dataDir = SubscriberCommand.DataDirOption();
        var port = new Option<int>("--port") { Description = "the port the HSE reaches this EAS on (0: any free one)", HelpName = "N", DefaultValueFactory = _ => 0 };
        var bind = new Option<string>("--bind") { Description = "the address to listen on", HelpName = "ADDRESS", DefaultValueFactory = _ => "127.0.0.1" };
        var enterpriseKeys = HexOption.EnterpriseKeysByDevice(
            "an Enterprise Key shared with a device, as EXTERNAL-ID=IDENTIFIER:KEY (hex; identifier 1..16 octets): the HSE names it to the device and its keys use it; repeat for several (a device's last one is asked for)");
        var endpointId = new Option<string>("--endpoint-id") { Description = "key agreement only: this server is one endpoint of the enterprise (EMSE Id); its PSKs are that endpoint's own keys", HelpName = "EMSE-ID" };
        var tlsPskPort = new Option<int?>("--tls-psk-port") { Description = "key agreement only: serve TLS 1.3 external PSK and TLS 1.2 PSK on this TCP port (keys from the HSE by PSK identity); each line received is printed and answered", HelpName = "N" };
        var dtlsPskPort = new Option<int?>("--dtls-psk-port") { Description = "key agreement only: serve DTLS 1.2 PSK on this UDP port (keys from the HSE); each record received is printed and answered", HelpName = "N" };
        foreach (var option in new[] { tlsPskPort, dtlsPskPort })
        {
            option.Validators.Add(r => { if (r.GetValueOrDefault<int?>() is < 0 or > 65535) { r.AddError($"{option.Name} must be 0..65535"); } });
        }

        hse.Validators.Add(r => { if (!Uri.TryCreate(r.GetValueOrDefault<string>(), UriKind.Absolute, out var u) || u.Scheme != Uri.UriSchemeHttps) { r.AddError("--hse must be an https URL, e.g. https://127.0.0.1:3164/"); } });
        port.Within(0, 65535);
        bind.Validators.Add(r => { if (!IPAddress.TryParse(r.GetValueOrDefault<string>(), out _)) { r.AddError("--bind must be an IP address"); } });
        var command = new Command("eas",
            "Run the reference EAS: register with the HSE (mutual TLS; certificates from 'best pki init --eas ID'), print the UE-to-EAS uplink it opens\n" +
            "(each message once, across restarts), and read commands from stdin: 'SESSION TEXT' sends TEXT as downlink, 'refresh EXTERNAL-ID' asks for new keys.");
        foreach (var option in new Option[] { easId, hse, dataDir, port, bind, enterpriseKeys, endpointId, tlsPskPort, dtlsPskPort })
        {
            command.Options.Add(option);
        }

        command.Subcommands.Add(CreatePsk());

        command.Validators.Add(r => HexOption.Require(r, easId));
        command.SetAction(async (result, cancel) =>
        {
            var output = result.InvocationConfiguration.Output;
            var error = result.InvocationConfiguration.Error;
            var directory = result.GetValue(dataDir)!;
            var id = result.GetValue(easId)!;
            using var certificate = DevelopmentPki.LoadPair(DevelopmentPki.Eas(directory, id));
            using var ca = DevelopmentPki.LoadCertificate(DevelopmentPki.Ca(directory).Certificate);
            var gate = new object();
            await using var eas = await ReferenceEas.StartAsync(new EasOptions
            {
                EasId = id,
                Hse = new Uri(result.GetValue(hse)!),
                Certificate = certificate,
                Ca = ca,
                Listen = new IPEndPoint(IPAddress.Parse(result.GetValue(bind)!), result.GetValue(port)),
                NamedEnterpriseKeys = (result.GetValue(enterpriseKeys) ?? [])
                    .GroupBy(e => e.ExternalId, StringComparer.Ordinal)
                    .ToDictionary(g => g.Key, g => (IReadOnlyList<EnterpriseKey>)[.. g.Select(e => e.Key)], StringComparer.Ordinal),
                StateDirectory = Path.Combine(directory, "eas-" + new string([.. id.Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' ? c : '_')])),
                EndpointId = result.GetValue(endpointId),
            }, received =>
            {
                lock (gate)
                {
                    output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"#{received.Sequence} session {received.SessionId} ({received.ExternalId}): {PeerText.Printable(received.Payload)}"));
                    output.Flush();
                }

                return Task.CompletedTask;
            }, cancel);
            var bindAddress = IPAddress.Parse(result.GetValue(bind)!);
            void Print(string line)
            {
                lock (gate)
                {
                    output.WriteLine(line);
                    output.Flush();
                }
            }

            await using var tls = result.GetValue(tlsPskPort) is { } tlsPort
                ? eas.StartTls(new IPEndPoint(bindAddress, tlsPort), async (identity, stream, token) =>
                {
                    using var reader = new StreamReader(stream, Encoding.UTF8, leaveOpen: true);
                    while (await reader.ReadLineAsync(token) is { } line)
                    {
                        Print($"tls-psk {identity}: {PeerText.Printable(Encoding.UTF8.GetBytes(line))}");
                        await stream.WriteAsync(Encoding.UTF8.GetBytes($"ok: {line}\n"), token);
                        await stream.FlushAsync(token);
                    }
                })
                : null;
            using var dtls = result.GetValue(dtlsPskPort) is { } dtlsPort
                ? eas.StartDtls(new IPEndPoint(bindAddress, dtlsPort), (identity, record) =>
                {
                    Print($"dtls-psk {identity}: {PeerText.Printable(record)}");
                    return [.. "ok: "u8, .. record];
                })
                : null;
            Print($"EAS {id} registered with {result.GetValue(hse)} as {eas.RegistrationId}, listening on {eas.Endpoint}" +
                (tls is null ? string.Empty : $"; TLS-PSK on {tls.LocalEndPoint}") + (dtls is null ? string.Empty : $"; DTLS-PSK on {dtls.LocalEndPoint}") + "; Ctrl+C stops it");

            try
            {
                var input = Console.In;
                while (!cancel.IsCancellationRequested && await input.ReadLineAsync(cancel) is { } line)
                {
                    var parts = line.Trim().Split(' ', 2, StringSplitOptions.RemoveEmptyEntries);
                    if (parts.Length == 2 && parts[0] == "refresh")
                    {
                        var ok = await eas.RequestRefreshAsync(parts[1], cancel);
                        lock (gate)
                        {
                            output.WriteLine(ok ? $"refresh of {parts[1]} requested" : $"the HSE refused the refresh of {parts[1]} (no live session, or one refresh in the last 10 s)");
                        }
                    }
                    else if (parts.Length == 2 && uint.TryParse(parts[0], CultureInfo.InvariantCulture, out var session))
                    {
                        try
                        {
                            var ok = await eas.SendDownlinkAsync(session, Encoding.UTF8.GetBytes(parts[1]), cancel);
                            lock (gate)
                            {
                                output.WriteLine(ok ? $"downlink to session {session} handed to the HSE" : $"the HSE refused the downlink to session {session}");
                            }
                        }
                        catch (InvalidOperationException)
                        {
                            error.WriteLine($"best eas: no keys for session {session} yet");
                        }
                    }
                    else if (parts.Length > 0)
                    {
                        error.WriteLine("best eas: commands are 'SESSION TEXT' and 'refresh EXTERNAL-ID'");
                    }
                }

                // stdin ended (e.g. </dev/null): keep serving until stopped.
                await Task.Delay(Timeout.Infinite, cancel);
            }
            catch (OperationCanceledException)
            {
            }

            return ExitCodes.Success;
        });
        return command;
    }

    /// <summary><c>best eas psk</c>: the key a PSK peer of the enterprise (an IKE gateway, an OpenSSL or GnuTLS server) takes from the HSE.</summary>
    private static Command CreatePsk()
    {
        var hse = new Option<string>("--hse") { Description = "the HSE's EAS interface", HelpName = "URL", DefaultValueFactory = _ => "https://127.0.0.1:3164/" };
        hse.Validators.Add(r => { if (!Uri.TryCreate(r.GetValueOrDefault<string>(), UriKind.Absolute, out var u) || u.Scheme != Uri.UriSchemeHttps) { r.AddError("--hse must be an https URL, e.g. https://127.0.0.1:3164/"); } });
        var dataDir = SubscriberCommand.DataDirOption();
        var easId = new Option<string>("--eas-id") { Description = "the EAS Id the key was agreed for (its certificate authenticates the request)", HelpName = "ID" };
        var identity = new Option<string>("--identity") { Description = "the PSK identity the device presents: EXTERNAL-ID#KEY-ID (8 hex digits)", HelpName = "IDENTITY" };
        var endpoint = new Option<string>("--endpoint") { Description = "one endpoint of the enterprise (EMSE Id): its own key, K_EMSE_PSK", HelpName = "EMSE-ID" };
        var format = PskFormat.Option();
        identity.Validators.Add(r => { if (r.GetValueOrDefault<string>() is not { } v || v.LastIndexOf('#') is var h && (h <= 0 || v.Length - h - 1 != 8 || !v[(h + 1)..].All(char.IsAsciiHexDigit))) { r.AddError("--identity must be EXTERNAL-ID#KEY-ID with 8 hex digits"); } });
        var command = new Command("psk", "Key agreement only: fetch from the HSE (mutual TLS as --eas-id) the PSK a device agreed for this EAS, and print it for a PSK\n" +
            "peer that is not the reference EAS: OpenSSL or GnuTLS arguments, or a strongSwan swanctl secrets section. The HSE keeps the last 3 per device.");
        foreach (var option in new Option[] { easId, identity, endpoint, format, hse, dataDir })
        {
            command.Options.Add(option);
        }

        command.Validators.Add(r => HexOption.Require(r, easId, identity));
        command.SetAction(async (result, cancel) =>
        {
            var directory = result.GetValue(dataDir)!;
            var id = result.GetValue(easId)!;
            using var certificate = DevelopmentPki.LoadPair(DevelopmentPki.Eas(directory, id));
            using var ca = DevelopmentPki.LoadCertificate(DevelopmentPki.Ca(directory).Certificate);
            var options = new EasOptions { EasId = id, Hse = new Uri(result.GetValue(hse)!), Certificate = certificate, Ca = ca, StateDirectory = directory, EndpointId = result.GetValue(endpoint) };
            var name = result.GetValue(identity)!;
            byte[]? key;
            try
            {
                key = await ReferenceEas.FetchPskOnceAsync(options, name, cancel);
            }
            catch (HttpRequestException e)
            {
                throw new IOException($"--hse {result.GetValue(hse)}: {e.Message}", e);
            }

            if (key is null)
            {
                result.InvocationConfiguration.Error.WriteLine($"best eas psk: the HSE holds no key {name} for {id}");
                return ExitCodes.CheckFailed;
            }

            try
            {
                PskFormat.Write(result.InvocationConfiguration.Output, result.GetValue(format)!, name, key);
            }
            finally
            {
                System.Security.Cryptography.CryptographicOperations.ZeroMemory(key);
            }

            return ExitCodes.Success;
        });
        return command;
    }
}
