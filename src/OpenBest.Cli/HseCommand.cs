using System.CommandLine;
using System.Globalization;
using System.Net;
using OpenBest.Bearers;
using OpenBest.Hse;
using OpenBest.Sessions;
using OpenBest.Storage;

namespace OpenBest.Cli;

/// <summary><c>best hse</c>: run an HSE on the data folder's SQLite database, on UDP and TCP, until stopped.</summary>
internal static class HseCommand
{
    public static Command Create()
    {
        var dataDir = SubscriberCommand.DataDirOption();
        var postgres = StoreFactory.PostgresOption();
        var bind = new Option<string>("--bind") { Description = "the address to listen on (loopback by default)", HelpName = "ADDRESS", DefaultValueFactory = _ => "127.0.0.1" };
        var udpPort = new Option<int>("--udp-port") { Description = "the UDP port (0 picks a free one)", HelpName = "N", DefaultValueFactory = _ => UdpBearer.DefaultPort };
        var metricsPort = new Option<int>("--metrics-port") { Description = "serve /metrics (Prometheus text) and /health over HTTP on this port of the bind address (0 picks a free one; -1, the default, for none)", HelpName = "N", DefaultValueFactory = _ => -1 };
        metricsPort.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < -1 or > 65535) { r.AddError("--metrics-port must be -1..65535"); } });
        var tcpPort = new Option<int>("--tcp-port") { Description = "the TCP port (0 picks a free one; -1 for no TCP)", HelpName = "N", DefaultValueFactory = _ => UdpBearer.DefaultPort };
        bind.Validators.Add(r => { if (!IPAddress.TryParse(r.GetValueOrDefault<string>(), out _)) { r.AddError("--bind must be an IP address, e.g. 127.0.0.1"); } });
        udpPort.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 0 or > 65535) { r.AddError("--udp-port must be 0..65535"); } });
        tcpPort.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < -1 or > 65535) { r.AddError("--tcp-port must be -1..65535"); } });

        var command = new Command("hse", "Run the HSE: EMSDP over UDP and TCP on the subscribers of the data folder, until Ctrl+C.");
        foreach (var option in new Option[] { dataDir, postgres, bind, udpPort, tcpPort, metricsPort })
        {
            command.Options.Add(option);
        }

        command.SetAction(async (result, cancel) =>
        {
            var output = result.InvocationConfiguration.Output;
            var address = IPAddress.Parse(result.GetValue(bind)!);

            // Bind first: a bad address or a busy port fails before anything is written to the data folder.
            var bearers = new List<IBearer>();
            var udp = UdpBearer.Bind(new IPEndPoint(address, result.GetValue(udpPort)));
            bearers.Add(udp);
            TcpBearer? tcp = null;
            try
            {
                if (result.GetValue(tcpPort) >= 0)
                {
                    tcp = TcpBearer.Listen(new IPEndPoint(address, result.GetValue(tcpPort)));
                    bearers.Add(tcp);
                }
            }
            catch
            {
                await udp.DisposeAsync();
                throw;
            }

            using var key = MasterKey.Load(result.GetValue(dataDir)!);
            using var store = StoreFactory.Open(result.GetValue(dataDir)!, result.GetValue(postgres), key);
            using var subscribers = new StoreSubscribers(store);
            var host = new HseHost(new HseEngine(subscribers), bearers);
            host.Start();
            using var metrics = new HseMetrics(host);
            Microsoft.AspNetCore.Builder.WebApplication? web = null;
            if (result.GetValue(metricsPort) >= 0)
            {
                web = await HseWeb.StartAsync(host, metrics, new IPEndPoint(address, result.GetValue(metricsPort)), cancel);
            }

            var webText = web is null ? string.Empty : $", metrics on {HseWeb.Address(web)}/metrics";
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"HSE listening on udp {udp.LocalEndPoint}{(tcp is null ? string.Empty : $" and tcp {tcp.LocalEndPoint}")}, {store.List().Count} subscriber(s) in {StoreFactory.Describe(result.GetValue(postgres))}{webText}; Ctrl+C stops it"));
            output.Flush();
            var events = 0L;
            try
            {
                await foreach (var e in host.Events.ReadAllAsync(cancel))
                {
                    events++;
                    metrics.Record(e);
                    // The EAS Id is the UE's text: printed as data, its control characters replaced.
                    if (e is SessionEstablished or SessionTerminated or SessionRejected)
                    {
                        output.WriteLine(new string([.. e.ToString().Select(ch => char.IsControl(ch) ? '?' : ch)]));
                        output.Flush();
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }

            // The host stops before its bearers close, so nothing is sent on a closed socket.
            if (web is not null)
            {
                await web.DisposeAsync();
            }

            await host.DisposeAsync();
            foreach (var bearer in bearers)
            {
                await bearer.DisposeAsync();
            }

            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"stopped: {host.Received} messages received, {host.Sent} sent, {host.Errors} errors, {events} events"));
            return ExitCodes.Success;
        });
        return command;
    }
}
