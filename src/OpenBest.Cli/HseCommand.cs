using System.CommandLine;
using System.Globalization;
using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using OpenBest.Bearers;
using OpenBest.Hse;
using OpenBest.Hse.Server;
using OpenBest.Sessions;
using OpenBest.Storage;

namespace OpenBest.Cli;

/// <summary><c>best hse</c>: run an HSE on the data folder's SQLite database (or PostgreSQL), on UDP, TCP and a non-IP stream, until stopped.</summary>
internal static class HseCommand
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
        var auc = new Option<string?>("--auc") { Description = "gsup://HOST:PORT: authentication vectors from the operator's HLR (Osmocom GSUP) instead of the local store; the HSE then never holds K or OPc [Auc, $BEST_AUC]", HelpName = "URL" };
        var easPort = new Option<string?>("--eas-port") { Description = "serve the HSE–EAS interface (HTTPS, mutual TLS) on this port of the bind address, -1 for none [EasPort, $BEST_EAS_PORT; -1]; certificates from 'best pki init'", HelpName = "N" };
        var enterpriseKeys = new Option<string?>("--enterprise-keys") { Description = "allow or refuse end-to-end keys bound to an Enterprise Key the operator never sees (the lawful-interception switch) [EnterpriseKeys, $BEST_ENTERPRISE_KEYS; allow]", HelpName = "allow|refuse" };
        var northboundRate = new Option<string?>("--northbound-rate") { Description = "northbound API requests per second per caller; more get 429 with Retry-After [NorthboundRate, $BEST_NORTHBOUND_RATE; 100]", HelpName = "N" };
        var logFormat = new Option<string?>("--log-format") { Description = "structured logs on stderr: text or json [LogFormat, $BEST_LOG_FORMAT; text]", HelpName = "FORMAT" };
        var logLevel = new Option<string?>("--log-level") { Description = "Trace, Debug, Information, Warning, Error or None [LogLevel, $BEST_LOG_LEVEL; Information]", HelpName = "LEVEL" };
        var options = new (Option<string?> Option, string Setting)[]
        {
            (dataDir, "DataDir"), (postgres, "Postgres"), (bind, "Bind"), (udpPort, "UdpPort"), (tcpPort, "TcpPort"), (metricsPort, "MetricsPort"),
            (nonIp, "NonIp"), (easPort, "EasPort"), (auc, "Auc"), (enterpriseKeys, "EnterpriseKeys"), (northboundRate, "NorthboundRate"), (logFormat, "LogFormat"), (logLevel, "LogLevel"),
        };

        var command = new Command("hse", "Run the HSE: EMSDP over UDP, TCP and optionally a non-IP stream, on the subscribers and sessions of the data folder, until Ctrl+C or SIGTERM.\n" +
            "Settings come from the defaults, appsettings.json (section \"Hse\"), BEST_ environment variables and these options, in that order; every setting is checked before anything starts.\n" +
            "Settings without an option: " + string.Join(", ", HseSettings.Catalogue.Where(c => c.Name is not ("TlsServices" or "TlsInbound") && options.All(o => o.Setting != c.Name)).Select(c => $"{c.Name} ({HseSettings.EnvironmentName(c.Name)})")) + ".");
        var tlsService = new Option<string[]>("--tls-service") { Description = "the converter: a channel naming ID is relayed over TLS (1.2/1.3, certificate and host name checked, SNI) to HOST:PORT, trusting the CA in PEMFILE or the system's; repeat for several [TlsServices, $BEST_TLS_SERVICES, ';'-separated]", HelpName = "ID=HOST:PORT[,ca=PEMFILE]" };
        command.Options.Add(config);
        foreach (var (option, _) in options)
        {
            command.Options.Add(option);
        }

        command.Options.Add(tlsService);
        var tlsInbound = new Option<string[]>("--tls-inbound") { Description = "the converter the other way: accept TLS on PORT (the HSE's certificate, pki/hse.crt) and relay each client to the device its SNI names (its external id for EASID), over the device's channel naming EASID; repeatable [TlsInbound, $BEST_TLS_INBOUND]", HelpName = "PORT=EASID" };
        command.Options.Add(tlsInbound);
        command.Subcommands.Add(HseClientCommand.Create());
        var cluster = new Option<bool>("--cluster") { Description = "run as one node of an HSE cluster on the PostgreSQL database of --postgres (Orleans membership in that database; sessions sharded across the nodes; any node accepts any message)" };
        var nodeName = new Option<string?>("--node-name") { Description = "this node's name in the cluster [the host name]", HelpName = "NAME" };
        var siloPort = new Option<int?>("--silo-port") { Description = "the port the nodes talk to each other on [11111]", HelpName = "P" };
        var gatewayPort = new Option<int?>("--gateway-port") { Description = "the cluster's client gateway port [30000]", HelpName = "Q" };
        command.Options.Add(cluster);
        command.Options.Add(nodeName);
        command.Options.Add(siloPort);
        command.Options.Add(gatewayPort);

        command.SetAction(async (result, cancel) =>
        {
            var commandLine = options.Where(o => result.GetValue(o.Option) is not null).ToDictionary(o => o.Setting, o => result.GetValue(o.Option));
            if (result.GetValue(tlsService) is { Length: > 0 } services)
            {
                commandLine["TlsServices"] = string.Join(';', services);
            }

            if (result.GetValue(tlsInbound) is { Length: > 0 } inbound)
            {
                commandLine["TlsInbound"] = string.Join(';', inbound);
            }

            var settings = HseSettings.Load(result.GetValue(config), commandLine);
            // With the non-IP bearer on stdin/stdout, stdout carries frames: human output goes to stderr.
            var output = settings.NonIp == "-" ? result.InvocationConfiguration.Error : result.InvocationConfiguration.Output;
            if (result.GetValue(cluster))
            {
                var node = new OpenBest.Hse.Cluster.ClusterNodeOptions(
                    NodeName(result.GetValue(nodeName)),
                    Port(result.GetValue(siloPort) ?? 11111, "--silo-port"),
                    Port(result.GetValue(gatewayPort) ?? 30000, "--gateway-port"));
                return await ServiceRunner.RunAsync(settings.JsonLogs, settings.LogLevel, "OpenBest.Hse.Cluster",
                    (log, stopping) => OpenBest.Hse.Cluster.ClusterNodeRunner.RunAsync(settings, node, output, log, stopping));
            }

            if (result.GetValue(nodeName) is not null || result.GetValue(siloPort) is not null || result.GetValue(gatewayPort) is not null)
            {
                throw new ArgumentException("--node-name, --silo-port and --gateway-port go with --cluster");
            }

            // A .NET generic host: its logging (structured, on stderr), its lifetime (SIGTERM and Ctrl+C stop it
            // gracefully), and the HSE as its hosted service. A failure while starting (a busy port, a missing
            // certificate, another HSE on the database) propagates as one line.
            var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true, ContentRootPath = Directory.GetCurrentDirectory() });
            builder.Logging.ClearProviders();
            builder.Logging.SetMinimumLevel(settings.LogLevel);
            // A start that fails is reported as one line by the command, not as the host's stack trace.
            builder.Logging.AddFilter("Microsoft.Extensions.Hosting", LogLevel.None);
            builder.Logging.AddFilter("Microsoft.Hosting", LogLevel.None);
            if (settings.JsonLogs)
            {
                builder.Logging.AddJsonConsole(o => o.TimestampFormat = "O");
            }
            else
            {
                builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss.fff "; });
            }

            builder.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
            // One owner of SIGTERM and Ctrl+C: the command line's handler (which stops the host below). The host's
            // console lifetime would register a second handler, and the two raced (exit 143 instead of a graceful stop).
            builder.Services.AddSingleton<IHostLifetime, CommandLineLifetime>();
            builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(20));
            builder.Services.AddSingleton(new HseService(settings, output));
            builder.Services.AddHostedService(sp =>
            {
                var service = sp.GetRequiredService<HseService>();
                service.Attach(sp.GetRequiredService<ILoggerFactory>().CreateLogger("OpenBest.Hse"), sp.GetRequiredService<IHostApplicationLifetime>());
                return service;
            });
            using var app = builder.Build();
            var service = app.Services.GetRequiredService<HseService>();
            // SIGTERM or Ctrl+C, even while the HSE is still starting, asks for the graceful stop (queued work
            // committed, "stopped" printed), never for an abandoned start.
            var lifetime = app.Services.GetRequiredService<IHostApplicationLifetime>();
            using var stopOnSignal = cancel.Register(lifetime.StopApplication);
            using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, context => { context.Cancel = true; lifetime.StopApplication(); });
            using var sigint = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, context => { context.Cancel = true; lifetime.StopApplication(); });
            await app.RunAsync(CancellationToken.None);
            return service.ExitCode;
        });
        return command;
    }

    private static string NodeName(string? name)
    {
        var value = string.IsNullOrWhiteSpace(name) ? Environment.MachineName : name.Trim();
        if (value.Length > 64 || value.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')))
        {
            throw new ArgumentException($"--node-name '{name}': letters, digits, '-', '_' and '.' only, at most 64");
        }

        return value;
    }

    private static int Port(int port, string option) =>
        port is >= 1 and <= 65535 ? port : throw new ArgumentException($"{option} {port}: a port is 1..65535");
}

/// <summary>The host's lifetime when the command line owns the signals: nothing to wait for, nothing to register.</summary>
internal sealed class CommandLineLifetime : IHostLifetime
{
    public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
