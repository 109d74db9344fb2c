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
        hse.Validators.Add(r => { if (!Uri.TryCreate(r.GetValueOrDefault<string>(), UriKind.Absolute, out var u) || u.Scheme != Uri.UriSchemeHttps) { r.AddError("--hse must be an https URL, e.g. https://127.0.0.1:3164/"); } });
        port.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 0 or > 65535) { r.AddError("--port must be 0..65535"); } });
        bind.Validators.Add(r => { if (!IPAddress.TryParse(r.GetValueOrDefault<string>(), out _)) { r.AddError("--bind must be an IP address"); } });
        var command = new Command("eas",
            "Run the reference EAS: register with the HSE (mutual TLS; certificates from 'best pki init --eas ID'), print the UE-to-EAS uplink it opens\n" +
            "(each message once, across restarts), and read commands from stdin: 'SESSION TEXT' sends TEXT as downlink, 'refresh EXTERNAL-ID' asks for new keys.");
        foreach (var option in new Option[] { easId, hse, dataDir, port, bind, enterpriseKeys })
        {
            command.Options.Add(option);
        }

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
            }, received =>
            {
                lock (gate)
                {
                    output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"#{received.Sequence} session {received.SessionId} ({received.ExternalId}): {PeerText.Printable(received.Payload)}"));
                    output.Flush();
                }

                return Task.CompletedTask;
            }, cancel);
            lock (gate)
            {
                output.WriteLine($"EAS {id} registered with {result.GetValue(hse)} as {eas.RegistrationId}, listening on {eas.Endpoint}; Ctrl+C stops it");
                output.Flush();
            }

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
}
