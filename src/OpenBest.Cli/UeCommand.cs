using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using OpenBest.Bearers;
using OpenBest.Crypto;
using OpenBest.Crypto.Aka;
using OpenBest.Protocol;
using OpenBest.Sessions;

namespace OpenBest.Cli;

/// <summary><c>best ue send</c>: a device from the command line, with a software USIM whose SQN state lives in a file.</summary>
internal static class UeCommand
{
    public static Command Create()
    {
        var command = new Command("ue", "A device from the command line: open a session with an HSE over UDP and send a message.");
        command.Subcommands.Add(CreateSend());
        return command;
    }

    private static Command CreateSend()
    {
        var imsi = new Option<string>("--imsi") { Description = "the device's IMSI, 6..15 digits", HelpName = "DIGITS" };
        var k = HexOption.Create("--k", 16, "the USIM's key K");
        var opc = HexOption.Create("--opc", 16, "the USIM's OPc");
        var hse = new Option<string>("--hse") { Description = "the HSE's UDP address", HelpName = "HOST:PORT", DefaultValueFactory = _ => "127.0.0.1:3163" };
        var eas = new Option<string>("--eas") { Description = "the EAS Id the channel names", HelpName = "ID", DefaultValueFactory = _ => "eas.example.com" };
        var service = new Option<string>("--service") { Description = "confidential or integrity", HelpName = "SERVICE", DefaultValueFactory = _ => "confidential" };
        var snn = new Option<string>("--snn") { Description = "the 5G serving network name", HelpName = "NAME", DefaultValueFactory = _ => "5G:mnc001.mcc001.3gppnetwork.org" };
        var state = new Option<FileInfo>("--usim-state") { Description = "a file that keeps the USIM's SQN array between runs (created when missing, mode 0600)", HelpName = "FILE" };
        var timeoutSeconds = new Option<int>("--timeout") { Description = "seconds to wait for the session and the Ack", HelpName = "SECONDS", DefaultValueFactory = _ => 30 };
        timeoutSeconds.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 1 or > 3600) { r.AddError("--timeout must be 1..3600 seconds"); } });
        var message = new Argument<string>("MESSAGE") { Description = "the text to send, acknowledged by the HSE" };
        service.AcceptOnlyFromAmong("confidential", "integrity");
        hse.Validators.Add(r => { if (!IPEndPoint.TryParse(r.GetValueOrDefault<string>() ?? string.Empty, out var e) || e.Port == 0) { r.AddError("--hse must be HOST:PORT, e.g. 127.0.0.1:3163"); } });
        imsi.Validators.Add(r => { if (r.GetValueOrDefault<string>() is not { Length: >= 6 and <= 15 } v || !v.All(char.IsAsciiDigit)) { r.AddError("--imsi must be 6..15 decimal digits"); } });

        var command = new Command("send", "Open a session with the HSE (AKA on the software USIM), send MESSAGE with an Ack request, wait for the Ack, terminate.");
        foreach (var option in new Option[] { imsi, k, opc, hse, eas, service, snn, state, timeoutSeconds })
        {
            command.Options.Add(option);
        }

        command.Arguments.Add(message);
        command.Validators.Add(r => HexOption.Require(r, imsi, k, opc));
        command.SetAction(async (result, cancel) =>
        {
            var output = result.InvocationConfiguration.Output;
            var stateFile = result.GetValue(state);
            var usimState = LoadState(stateFile);
            using var milenage = new Milenage(result.GetValue(k)!, result.GetValue(opc)!);
            var usim = new Usim(milenage, usimState) { CommitState = s => SaveState(stateFile, s) };
            using var ue = new UeEndpoint(usim, new UeOptions { Imsi = result.GetValue(imsi) });
            await using var bearer = UdpBearer.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            var path = bearer.PathTo(IPEndPoint.Parse(result.GetValue(hse)!));
            var options = new UeChannelOptions
            {
                EasId = result.GetValue(eas)!,
                Service = result.GetValue(service) == "integrity" ? BestService.Integrity : BestService.Confidential,
                ServingNetwork = ServingNetwork.FromName(result.GetValue(snn)!),
            };

            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            timeout.CancelAfter(TimeSpan.FromSeconds(result.GetValue(timeoutSeconds)));
            var step = ue.Open(options, out var channel);
            var payload = Encoding.UTF8.GetBytes(result.GetValue(message)!);
            var sent = false;
            var acknowledged = false;
            var terminated = false;
            try
            {
                using var ticker = new PeriodicTimer(TimeSpan.FromMilliseconds(500));
                Task<ReceivedMessage>? read = null;
                Task<bool>? tick = null;
                while (!terminated)
                {
                    foreach (var e in step.Events)
                    {
                        switch (e)
                        {
                            case SessionEstablished established:
                                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"session {established.SessionId}: {established.Service}, {established.Suite.Name}, n = {established.CounterLength}"));
                                break;
                            case DataAcknowledged:
                                acknowledged = true;
                                output.WriteLine("acknowledged");
                                break;
                            case SessionRejected rejected:
                                output.WriteLine($"rejected: {rejected.Cause}");
                                break;
                            case SessionTerminated:
                                terminated = true;
                                break;
                        }
                    }

                    foreach (var send in step.Send)
                    {
                        await path.SendAsync(send.Message, timeout.Token);
                    }

                    step = new StepResult();
                    if (ue.IsEstablished(channel) && !sent)
                    {
                        sent = true;
                        step = ue.Send(channel, payload, ackRequested: true);
                        continue;
                    }

                    if (acknowledged && ue.IsEstablished(channel))
                    {
                        step = ue.Terminate(channel);
                        continue;
                    }

                    // One outstanding read and one outstanding tick at a time, kept across turns.
                    read ??= bearer.Received.ReadAsync(timeout.Token).AsTask();
                    tick ??= ticker.WaitForNextTickAsync(timeout.Token).AsTask();
                    if (await Task.WhenAny(read, tick) == read)
                    {
                        step = ue.Receive((await read).Message.Span);
                        read = null;
                    }
                    else
                    {
                        await tick;
                        step = ue.Tick();
                        tick = null;
                    }
                }
            }
            catch (OperationCanceledException)
            {
                result.InvocationConfiguration.Error.WriteLine($"best ue send: no {(sent ? "Ack" : "session")} from {result.GetValue(hse)} within {result.GetValue(timeoutSeconds)} s");
                return ExitCodes.CheckFailed;
            }

            return acknowledged ? ExitCodes.Success : ExitCodes.CheckFailed;
        });
        return command;
    }

    private sealed record SavedState(int IndLength, string SqnMs, ulong[] SeqMs);

    private static UsimSequenceState LoadState(FileInfo? file)
    {
        if (file is null || !file.Exists)
        {
            return new UsimSequenceState(SqnScheme.Default);
        }

        var saved = JsonSerializer.Deserialize<SavedState>(File.ReadAllText(file.FullName))
            ?? throw new InvalidOperationException($"{file.FullName} holds no USIM state.");
        if (saved.SqnMs is not { Length: 12 } || !saved.SqnMs.All(char.IsAsciiHexDigit))
        {
            throw new InvalidOperationException($"{file.FullName}: SqnMs must be 12 hex digits.");
        }

        return UsimSequenceState.Restore(new SqnScheme(saved.IndLength), saved.SeqMs, ulong.Parse(saved.SqnMs, NumberStyles.HexNumber, CultureInfo.InvariantCulture));
    }

    /// <summary>Written to a private temporary file and moved into place: never half a state.</summary>
    private static void SaveState(FileInfo? file, UsimSequenceState state)
    {
        if (file is null)
        {
            return;
        }

        var json = JsonSerializer.Serialize(new SavedState(state.Scheme.IndLength, state.SqnMs.ToString("x12", CultureInfo.InvariantCulture), [.. state.SeqMsEntries]));
        var temporary = file.FullName + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var stream = new FileStream(temporary, options))
        {
            stream.Write(Encoding.UTF8.GetBytes(json));
            stream.Flush(flushToDisk: true);
        }

        File.Move(temporary, file.FullName, overwrite: true);
    }
}
