using System.CommandLine;
using OpenBest.EasInterface;
using OpenBest.Hse.Northbound;
using OpenBest.Storage;

namespace OpenBest.Cli;

/// <summary><c>best hse client</c>: the northbound API's OAuth 2.0 clients (client-credentials grant).</summary>
internal static class HseClientCommand
{
    public static Command Create()
    {
        var command = new Command("client", "Register, list and remove the northbound API's OAuth 2.0 clients: applications that cannot hold a client certificate get tokens at POST /oauth2/token (grant_type=client_credentials) on the HSE's --eas-port.");
        var dataDir = SubscriberCommand.DataDirOption();
        var postgres = StoreFactory.PostgresOption();
        var id = new Option<string>("--id") { Description = "the client_id", HelpName = "CLIENT_ID", Required = true };
        id.Validators.Add(r =>
        {
            var value = r.GetValueOrDefault<string>() ?? string.Empty;
            if (value.Length is 0 or > 128 || !value.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
            {
                r.AddError($"--id '{value}' is not a client_id (1..128 letters, digits, '-', '_' or '.')");
            }
        });
        var enterprise = new Option<string?>("--enterprise") { Description = "the enterprise (EAS Id) the client acts for: it sees and changes only that enterprise's devices and resources", HelpName = "EASID" };
        var operatorName = new Option<string?>("--operator") { Description = "or an operator user: reads every enterprise's resources and the whole dashboard, changes nothing", HelpName = "NAME" };

        var add = new Command("add", "Register a client and print its secret (shown once; only its hash is stored).");
        foreach (var option in new Option[] { dataDir, postgres, id, enterprise, operatorName })
        {
            add.Options.Add(option);
        }

        add.SetAction(result =>
        {
            var (name, isOperator) = (result.GetValue(enterprise), result.GetValue(operatorName)) switch
            {
                ({ } e, null) when DevelopmentPki.IsEasIdentity(e) && !e.StartsWith("urn:best:", StringComparison.Ordinal) => (e, false),
                ({ } e, null) => throw new CommandLineException($"--enterprise '{e}' cannot be an enterprise's EAS Id (reserved)"),
                (null, { } o) when o.Length > 0 => (o, true),
                _ => throw new CommandLineException("give exactly one of --enterprise EASID or --operator NAME"),
            };
            using var store = NorthboundStore.Open(result.GetValue(dataDir)!, result.GetValue(postgres));
            var secret = NorthboundTokens.Register(store, result.GetValue(id)!, name, isOperator);
            var output = result.InvocationConfiguration.Output;
            output.WriteLine($"client_id:     {result.GetValue(id)}");
            output.WriteLine($"client_secret: {secret}");
            output.WriteLine($"acts for:      {(isOperator ? "operator " : "enterprise ")}{name}");
            output.WriteLine("The secret is shown once. Tokens: POST https://HSE:EASPORT/oauth2/token with grant_type=client_credentials (client_id and client_secret in the form or HTTP Basic).");
            return ExitCodes.Success;
        });

        var list = new Command("list", "List the registered clients (never their secrets).");
        list.Options.Add(dataDir);
        list.Options.Add(postgres);
        list.SetAction(result =>
        {
            using var store = NorthboundStore.Open(result.GetValue(dataDir)!, result.GetValue(postgres));
            var output = result.InvocationConfiguration.Output;
            var clients = store.Clients();
            output.WriteLine($"{"CLIENT_ID",-24} {"ROLE",-10} {"ACTS FOR",-32} REGISTERED");
            foreach (var c in clients)
            {
                output.WriteLine($"{c.ClientId,-24} {(c.IsOperator ? "operator" : "enterprise"),-10} {c.Name,-32} {c.Created:yyyy-MM-dd HH:mm}");
            }

            output.WriteLine($"{clients.Count} client(s)");
            return ExitCodes.Success;
        });

        var remove = new Command("remove", "Remove a client: its tokens stop working at once.");
        remove.Options.Add(dataDir);
        remove.Options.Add(postgres);
        remove.Options.Add(id);
        remove.SetAction(result =>
        {
            using var store = NorthboundStore.Open(result.GetValue(dataDir)!, result.GetValue(postgres));
            if (!store.RemoveClient(result.GetValue(id)!))
            {
                result.InvocationConfiguration.Error.WriteLine($"best hse client remove: no client '{result.GetValue(id)}'");
                return ExitCodes.CheckFailed;
            }

            result.InvocationConfiguration.Output.WriteLine($"removed {result.GetValue(id)}");
            return ExitCodes.Success;
        });

        command.Subcommands.Add(add);
        command.Subcommands.Add(list);
        command.Subcommands.Add(remove);
        return command;
    }
}
