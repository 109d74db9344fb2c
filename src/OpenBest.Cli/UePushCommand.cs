using System.CommandLine;
using System.Globalization;
using OpenBest.Client;
using OpenBest.Protocol;

namespace OpenBest.Cli;

/// <summary><c>best ue push</c>: the device's push channel (and management channel) as a command.</summary>
internal static class UePushCommand
{
    public static Command Create()
    {
        var command = new Command("push",
            "Open the push channel (EAS Id urn:best:push, or urn:best:mgmt with --management) and keep it suspended, as a device does at boot;\n" +
            "print each push message (application port, id, text or hex) until Ctrl+C, --count messages or --timeout. A session request\n" +
            "(port 1) from an enterprise opens a session with it at once and prints it.");
        var device = UeCommand.DeviceOptions.Create(command, 3600);
        var count = new Option<int>("--count") { Description = "stop after this many push messages (0: until Ctrl+C or --timeout)", HelpName = "N", DefaultValueFactory = _ => 0 };
        var management = new Option<bool>("--management") { Description = "the management channel (urn:best:mgmt) instead of the push channel" };
        command.Options.Add(count);
        command.Options.Add(management);
        command.SetAction(async (result, cancel) =>
        {
            var output = result.InvocationConfiguration.Output;
            var (options, card) = device.Client(result);
            using var cardLease = card;
            await using var client = await BestClient.CreateAsync(options, cancel);
            var easId = result.GetValue(management) ? PushMessage.ManagementEasId : PushMessage.PushEasId;
            BestPushChannel push;
            try
            {
                push = await BestPushChannel.OpenAsync(client, easId, device.Channel(result) with { EasId = easId, UeToEasMode = false, EnterpriseKeys = [] }, cancel);
            }
            catch (BestPushChannelException e)
            {
                result.InvocationConfiguration.Error.WriteLine($"best ue push: {e.Message}");
                return ExitCodes.CheckFailed;
            }

            await using var pushLease = push;
            var wanted = result.GetValue(count);
            var received = 0;
            using var done = CancellationTokenSource.CreateLinkedTokenSource(cancel);
            done.CancelAfter(TimeSpan.FromSeconds(result.GetValue(device.Timeout)));
            var gate = new object();
            void Print(string line)
            {
                lock (gate)
                {
                    output.WriteLine(line);
                    output.Flush();
                }
            }

            Print(string.Create(CultureInfo.InvariantCulture, $"{easId} channel: session {push.Channel.SessionId}, suspended; waiting for push messages"));
            var sessions = new List<BestChannel>();
            push.SessionRequested = async (enterprise, service, ct) =>
            {
                var opened = await client.OpenAsync(device.Channel(result) with { EasId = enterprise, Service = service, UeToEasMode = false }, ct);
                Print(opened.Channel is { } channel
                    ? string.Create(CultureInfo.InvariantCulture, $"session request from {PeerText.Printable(enterprise)}: session {channel.SessionId} opened, {channel.Service}, {channel.Suite?.Name}")
                    : $"session request from {PeerText.Printable(enterprise)}: no session ({opened.Rejected?.ToString() ?? "no answer"})");
                if (opened.Channel is { } kept)
                {
                    lock (sessions)
                    {
                        sessions.Add(kept);
                    }
                }
            };
            push.Fallback = (message, _) =>
                {
                Print(string.Create(CultureInfo.InvariantCulture, $"push port {message.Port} (id {message.MessageId:x8}): {PeerText.Printable(message.Body.Span)}"));
                    if (Interlocked.Increment(ref received) == wanted)
                    {
                        done.Cancel();
                    }

                    return Task.CompletedTask;
                };

            try
            {
                await Task.Delay(Timeout.Infinite, done.Token);
            }
            catch (OperationCanceledException)
            {
            }

            return wanted == 0 || received >= wanted ? ExitCodes.Success : ExitCodes.CheckFailed;
        });
        return command;
    }
}
