using System.CommandLine;
using System.Net;
using OpenBest.Hse.Cluster;

namespace OpenBest.Cli;

/// <summary><c>best cluster</c>: several HSE nodes as one.</summary>
internal static class ClusterCommand
{
    public static Command Create()
    {
        var command = new Command("cluster", "Run several HSE nodes as one: the load balancer in front of them.");
        var nodes = new Option<string>("--nodes") { Description = "the HSE nodes, HOST:PORT separated by commas (each node's UDP and TCP port)", HelpName = "HOST:PORT,…", Required = true };
        var listen = new Option<int>("--listen") { Description = "the port devices reach, UDP and TCP, 1..65535", HelpName = "PORT", DefaultValueFactory = _ => 3163 };
        nodes.Validators.Add(r =>
        {
            foreach (var node in (r.GetValueOrDefault<string>() ?? string.Empty).Split(',', StringSplitOptions.TrimEntries))
            {
                if (!IPEndPoint.TryParse(node, out var endPoint) || endPoint.Port == 0)
                {
                    r.AddError($"--nodes: '{node}' is not HOST:PORT with an IP address, e.g. 10.0.0.5:3163");
                    return;
                }
            }
        });
        listen.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 1 or > 65_535) { r.AddError("--listen must be 1..65535"); } });
        var nginx = new Command("nginx-config", "Print an nginx.conf (stream module: Debian's nginx and libnginx-mod-stream) that spreads devices over the nodes, UDP and TCP on --listen.");
        nginx.Options.Add(nodes);
        nginx.Options.Add(listen);
        nginx.SetAction(result =>
        {
            var endPoints = result.GetValue(nodes)!.Split(',', StringSplitOptions.TrimEntries).Select(IPEndPoint.Parse).ToList();
            result.InvocationConfiguration.Output.Write(NginxFront.Render(endPoints, result.GetValue(listen)));
            return ExitCodes.Success;
        });
        command.Subcommands.Add(nginx);
        return command;
    }
}
