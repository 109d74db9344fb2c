using System.CommandLine;
using System.Globalization;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using OpenBest.Bearers;
using OpenBest.Hse;
using OpenBest.Sessions;
using OpenBest.Storage;

namespace OpenBest.Cli;

/// <summary><c>best hse</c>: run an HSE on the data folder's SQLite database (or PostgreSQL), on UDP, TCP and a non-IP stream, until stopped.</summary>
internal static partial class HseCommand
{
    public static Command Create()
    {
        var config = new Option<string?>("--config") { Description = "an appsettings.json to read (section \"Hse\"); ./appsettings.json when present", HelpName = "FILE" };
        var dataDir = new Option<string?>("--data-dir") { Description = "the data folder (database, master key) [DataDir, $BEST_DATA_DIR; openbest-data]", HelpName = "DIR" };
        var postgres = new Option<string?>("--postgres") { Description = "a PostgreSQL connection string instead of SQLite [Postgres, $BEST_POSTGRES]", HelpName = "CONNECTION" };
        var bind = new Option<string?>("--bind") { Description = "the address to listen on [Bind, $BEST_BIND; 127.0.0.1]", HelpName = "ADDRESS" };
        var udpPort = new Option<string?>("--udp-port") { Description = "the UDP port, 0 for any free one [UdpPort, $BEST_UDP_PORT; 3163]", HelpName = "N" };
        var tcpPort = new Option<string?>("--tcp-port") { Description = "the TCP port, 0 for any free one, -1 for none [TcpPort, $BEST_TCP_PORT; 3163]", HelpName = "N" };
        var metricsPort = new Option<string?>("--metrics-port") { Description = "serve /metrics and /health over HTTP on this port, -1 for none [MetricsPort, $BEST_METRICS_PORT; -1]", HelpName = "N" };
        var nonIp = new Option<string?>("--non-ip") { Description = "also serve a non-IP stream bearer: a serial device path, or - for stdin/stdout [NonIp, $BEST_NON_IP]", HelpName = "PATH|-" };
        var easPort = new Option<string?>("--eas-port") { Description = "serve the HSE–EAS interface (HTTPS, mutual TLS) on this port of the bind address, -1 for none [EasPort, $BEST_EAS_PORT; -1]; certificates from 'best pki init'", HelpName = "N" };
        var logFormat = new Option<string?>("--log-format") { Description = "structured logs on stderr: text or json [LogFormat, $BEST_LOG_FORMAT; text]", HelpName = "FORMAT" };
        var logLevel = new Option<string?>("--log-level") { Description = "Trace, Debug, Information, Warning, Error or None [LogLevel, $BEST_LOG_LEVEL; Information]", HelpName = "LEVEL" };
        var options = new (Option<string?> Option, string Setting)[]
        {
            (dataDir, "DataDir"), (postgres, "Postgres"), (bind, "Bind"), (udpPort, "UdpPort"), (tcpPort, "TcpPort"), (metricsPort, "MetricsPort"),
            (nonIp, "NonIp"), (easPort, "EasPort"), (logFormat, "LogFormat"), (logLevel, "LogLevel"),
        };

        var command = new Command("hse", "Run the HSE: EMSDP over UDP, TCP and optionally a non-IP stream, on the subscribers and sessions of the data folder, until Ctrl+C or SIGTERM.\n" +
            "Settings come from the defaults, appsettings.json (section \"Hse\"), BEST_ environment variables and these options, in that order; every setting is checked before anything starts.\n" +
            "Settings without an option: " + string.Join(", ", HseSettings.Catalogue.Where(c => options.All(o => o.Setting != c.Name)).Select(c => $"{c.Name} ({HseSettings.EnvironmentName(c.Name)})")) + ".");
        command.Options.Add(config);
        foreach (var (option, _) in options)
        {
            command.Options.Add(option);
        }

        command.SetAction(async (result, cancel) =>
        {
            var commandLine = options.Where(o => result.GetValue(o.Option) is not null).ToDictionary(o => o.Setting, o => result.GetValue(o.Option));
            var settings = HseSettings.Load(result.GetValue(config), commandLine);
            // With the non-IP bearer on stdin/stdout, stdout carries frames: human output goes to stderr.
            var output = settings.NonIp == "-" ? result.InvocationConfiguration.Error : result.InvocationConfiguration.Output;
            using var logs = LoggerFactory.Create(b =>
            {
                b.SetMinimumLevel(settings.LogLevel);
                if (settings.JsonLogs)
                {
                    b.AddJsonConsole(o => o.TimestampFormat = "O");
                }
                else
                {
                    b.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; });
                }

                b.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
            });
            var log = logs.CreateLogger("OpenBest.Hse");

            // Bind first: a bad address or a busy port fails before anything is written to the data folder.
            var bearers = new List<IBearer>();
            var udp = UdpBearer.Bind(new IPEndPoint(settings.Bind, settings.UdpPort), queue: 65_536, socketBuffer: UdpBearer.ServerSocketBuffer);
            bearers.Add(udp);
            TcpBearer? tcp = null;
            try
            {
                if (settings.TcpPort >= 0)
                {
                    tcp = TcpBearer.Listen(new IPEndPoint(settings.Bind, settings.TcpPort));
                    bearers.Add(tcp);
                }

                if (settings.NonIp.Length > 0)
                {
                    bearers.Add(settings.NonIp == "-" ? StreamBearer.OverStandardStreams() : StreamBearer.OverDevice(settings.NonIp));
                }
            }
            catch
            {
                foreach (var bearer in bearers)
                {
                    await bearer.DisposeAsync();
                }

                throw;
            }

            // The interface's certificates load before anything is written: a missing one is one line naming it.
            using var easServer = settings.EasPort >= 0 ? EasInterface.DevelopmentPki.LoadPair(new EasInterface.DevelopmentPki.Pair(settings.EasCertificate, settings.EasKey)) : null;
            using var easCa = settings.EasPort >= 0 ? EasInterface.DevelopmentPki.LoadCertificate(settings.EasCa) : null;
            using var key = MasterKey.Load(settings.DataDir);
            using var store = StoreFactory.Open(settings.DataDir, settings.Postgres, key);
            var state = (IHseStateStore)store;
            using var lease = state.AcquireHseLease();
            using var subscribers = new StoreSubscribers(store, settings.SqnInd, seqBlock: settings.SeqBlock);
            var policy = new StorePolicy(state);
            var engine = new HseEngine(subscribers, settings.Engine with { Authorise = policy.Authorise });
            var host = new HseHost(engine, bearers, queue: settings.WorkQueue, state: state);
            var restored = host.Restore();
            if (host.Unreadable > 0)
            {
                LogUnreadable(log, host.Unreadable);
            }

            host.Start();
            using var metrics = new HseMetrics(host);
            Microsoft.AspNetCore.Builder.WebApplication? web = null;
            if (settings.MetricsPort >= 0)
            {
                web = await HseWeb.StartAsync(host, metrics, new IPEndPoint(settings.Bind, settings.MetricsPort), cancel);
            }

            Microsoft.AspNetCore.Builder.WebApplication? eas = null;
            EasDelivery? delivery = null;
            if (easServer is not null)
            {
                eas = await EasApi.StartAsync(host, state, easServer, easCa!, new IPEndPoint(settings.Bind, settings.EasPort), cancel);
                delivery = new EasDelivery(host, state, easServer, easCa!);
            }

            var storeName = StoreFactory.Describe(settings.Postgres);
            LogStarted(log, udp.LocalEndPoint?.ToString() ?? "-", tcp?.LocalEndPoint?.ToString() ?? "none", settings.NonIp.Length == 0 ? "none" : settings.NonIp, storeName, restored, settings.Sources);
            var webText = (web is null ? string.Empty : $", metrics on {HseWeb.Address(web)}/metrics") + (eas is null ? string.Empty : $", EAS interface on {HseWeb.Address(eas)}");
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"HSE listening on udp {udp.LocalEndPoint}{(tcp is null ? string.Empty : $" and tcp {tcp.LocalEndPoint}")}{(settings.NonIp.Length == 0 ? string.Empty : $" and non-IP {settings.NonIp}")}, {store.List().Count} subscriber(s) and {restored} restored session(s) in {storeName}{webText}; Ctrl+C stops it"));
            output.Flush();
            var events = 0L;
            try
            {
                // The events end when the host stops, or fails for good.
                await foreach (var e in host.Events.ReadAllAsync(cancel))
                {
                    events++;
                    metrics.Record(e);
                    delivery?.OnEvent(e);
                    LogEvent(log, e);
                }
            }
            catch (OperationCanceledException)
            {
            }

            if (host.Faulted.IsCompleted)
            {
                LogStoreFailed(log, host.LastError ?? "unknown");
            }

            // The host stops before its bearers close: queued work is run and committed, nothing is sent on a closed socket.
            if (web is not null)
            {
                await web.DisposeAsync();
            }

            if (delivery is not null)
            {
                await delivery.DisposeAsync();
            }

            if (eas is not null)
            {
                await eas.DisposeAsync();
            }

            await host.DisposeAsync();
            foreach (var bearer in bearers)
            {
                await bearer.DisposeAsync();
            }

            LogStopped(log, host.Received, host.Sent, host.Commits, host.Errors);
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"stopped: {host.Received} messages received, {host.Sent} sent, {host.Commits} commits, {host.Errors} errors, {events} events"));
            return host.Faulted.IsCompleted ? ExitCodes.CheckFailed : ExitCodes.Success;
        });
        return command;
    }

    private static void LogEvent(ILogger log, SessionEvent e)
    {
        // Session IDs, services and suites only: never keys, never the IMSI; the EAS Id is the UE's text, printed as data.
        switch (e)
        {
            case SessionEstablished s:
                LogEstablished(log, s.SessionId, s.Service, s.Suite.Name, s.CounterLength, s.UeToEasMode, Printable(s.EasId));
                break;
            case SessionTerminated t:
                LogTerminated(log, t.SessionId, t.Cause?.ToString() ?? "none", t.ByPeer);
                break;
            case SessionRejected r:
                LogRejected(log, r.SessionId, r.Cause);
                break;
            case KeysRefreshed k:
                LogRefreshed(log, k.SessionId, k.KeyId);
                break;
            case MessageDropped d:
                LogDropped(log, d.SessionId, d.Reason);
                break;
        }
    }

    private static string Printable(string text) => new([.. text.Select(ch => char.IsControl(ch) ? '?' : ch)]);

    [LoggerMessage(1, LogLevel.Information, "HSE started: udp {Udp}, tcp {Tcp}, non-IP {NonIp}, store {Store}, {Restored} sessions restored, settings from {Sources}")]
    private static partial void LogStarted(ILogger log, string udp, string tcp, string nonIp, string store, int restored, string sources);

    [LoggerMessage(2, LogLevel.Information, "session {SessionId} established: {Service}, {Suite}, n={CounterLength}, UE-to-EAS {UeToEas}, EAS {EasId}")]
    private static partial void LogEstablished(ILogger log, uint sessionId, Protocol.BestService service, string suite, int counterLength, bool ueToEas, string easId);

    [LoggerMessage(3, LogLevel.Information, "session {SessionId} terminated: cause {Cause}, by peer {ByPeer}")]
    private static partial void LogTerminated(ILogger log, uint sessionId, string cause, bool byPeer);

    [LoggerMessage(4, LogLevel.Information, "session {SessionId} rejected: {Cause}")]
    private static partial void LogRejected(ILogger log, uint sessionId, Protocol.Cause cause);

    [LoggerMessage(5, LogLevel.Debug, "session {SessionId} keys refreshed to key {KeyId}")]
    private static partial void LogRefreshed(ILogger log, uint sessionId, byte keyId);

    [LoggerMessage(6, LogLevel.Debug, "session {SessionId}: message dropped ({Reason})")]
    private static partial void LogDropped(ILogger log, uint sessionId, DropReason reason);

    [LoggerMessage(7, LogLevel.Critical, "the store failed for good ({Error}): the HSE stopped; nothing unrecorded was sent, restart it on the same database")]
    private static partial void LogStoreFailed(ILogger log, string error);

    [LoggerMessage(9, LogLevel.Warning, "{Count} stored sessions could not be read and were deleted (their devices start new sessions)")]
    private static partial void LogUnreadable(ILogger log, int count);

    [LoggerMessage(8, LogLevel.Information, "HSE stopped: {Received} received, {Sent} sent, {Commits} commits, {Errors} errors")]
    private static partial void LogStopped(ILogger log, long received, long sent, long commits, long errors);
}
