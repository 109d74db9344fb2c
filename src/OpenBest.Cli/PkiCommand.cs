using System.CommandLine;
using OpenBest.EasInterface;

namespace OpenBest.Cli;

/// <summary><c>best pki init</c>: the development PKI of the HSE–EAS interface (mutually authenticated TLS).</summary>
internal static class PkiCommand
{
    public static Command Create()
    {
        var command = new Command("pki", "Certificates for the HSE–EAS interface and the Open Bootstrap Framework (mutually authenticated TLS).");
        var dataDir = SubscriberCommand.DataDirOption();
        var eas = new Option<string[]>("--eas") { Description = "an EAS Id to issue a certificate for (common name = EAS Id); repeat for several", HelpName = "ID", AllowMultipleArgumentsPerToken = true, DefaultValueFactory = _ => [] };
        eas.Validators.Add(r =>
        {
            foreach (var id in r.GetValueOrDefault<string[]>() ?? [])
            {
                if (id.Length is 0 or > 253 || id.Any(char.IsWhiteSpace) || id.Any(char.IsControl))
                {
                    r.AddError($"--eas '{id}' is not an EAS Id (1..253 characters, no spaces)");
                }
            }
        });
        var naf = new Option<string[]>("--naf") { Description = "a NAF (application server) FQDN to issue a certificate for (pki/naf-FQDN.crt/.key; also issues the OBF server's pki/obf.crt); repeat for several", HelpName = "FQDN", AllowMultipleArgumentsPerToken = true, DefaultValueFactory = _ => [] };
        naf.Validators.Add(r =>
        {
            foreach (var fqdn in r.GetValueOrDefault<string[]>() ?? [])
            {
                if (Uri.CheckHostName(fqdn) != UriHostNameType.Dns || fqdn is "obf" or "hse" or "ca" or "localhost" || fqdn.Length > 253)
                {
                    r.AddError($"--naf '{fqdn}' is not a NAF FQDN (a DNS name, e.g. vtams.example.com)");
                }
            }
        });
        var operators = new Option<string[]>("--operator") { Description = "an operator user to issue a certificate for (common name operator:NAME, pki/operator-NAME.crt/.key): the northbound API's and dashboard's operator view; repeat for several", HelpName = "NAME", AllowMultipleArgumentsPerToken = true, DefaultValueFactory = _ => [] };
        operators.Validators.Add(r =>
        {
            foreach (var name in r.GetValueOrDefault<string[]>() ?? [])
            {
                if (name.Length is 0 or > 64 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
                {
                    r.AddError($"--operator '{name}' is not an operator name (1..64 letters, digits, '-', '_' or '.')");
                }
            }
        });
        var init = new Command("init", "Create a development CA and certificates in the data folder's pki/ (the HSE's, one per --eas, and with --naf the OBF server's and one per NAF). Existing files are kept; private keys get mode 0600.\nProduction points the HSE and the EAS at PEM files of its own PKI instead.");
        init.Options.Add(dataDir);
        init.Options.Add(eas);
        init.Options.Add(naf);
        init.Options.Add(operators);
        init.SetAction(result =>
        {
            var output = result.InvocationConfiguration.Output;
            var written = DevelopmentPki.Init(result.GetValue(dataDir)!, result.GetValue(eas) ?? [], result.GetValue(naf) ?? []).ToList();
            written.AddRange(DevelopmentPki.InitOperators(result.GetValue(dataDir)!, result.GetValue(operators) ?? []));
            foreach (var file in written.Where(f => f.EndsWith(".crt", StringComparison.Ordinal)))
            {
                output.WriteLine($"created {file} (and its key)");
            }

            output.WriteLine(written.Count == 0 ? "nothing to create: every certificate exists" : $"{written.Count / 2} certificate(s) created in {Path.Combine(result.GetValue(dataDir)!, DevelopmentPki.FolderName)}");
            return ExitCodes.Success;
        });
        command.Subcommands.Add(init);
        return command;
    }
}
