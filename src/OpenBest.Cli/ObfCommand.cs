using System.CommandLine;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;
using OpenBest.Crypto;
using OpenBest.Crypto.Kdf;
using OpenBest.Obf;
using OpenBest.Obf.Server;
using OpenBest.Storage;
using OpenBest.Storage.Postgres;

namespace OpenBest.Cli;

/// <summary>
/// <c>best obf</c>: the Open Bootstrap Framework's authentication server (<c>serve</c>), its registry (<c>provider</c>,
/// <c>se</c>, <c>device</c>, <c>app</c>), resource rights (<c>rights</c>), key import (<c>transport-key</c>, <c>se import</c>)
/// and <c>bench</c>. Every registry command is audited (actor <c>cli</c>); bad input is one line naming the field, exit
/// code 2, nothing written.
/// </summary>
internal static class ObfCommand
{
    private static readonly Option<string> Postgres = StoreFactory.PostgresOption();

    public static Command Create()
    {
        var command = new Command("obf", "The Open Bootstrap Framework: a GBA-compatible authentication server any provider can run (ITU-T Y.OBF_trust).\n" +
            "Register providers, secure elements, devices and applications, grant resource rights, import keys, and serve bootstrapping (Ub) and keys (Nbsp_GBA).");
        command.Subcommands.Add(CreateServe());
        command.Subcommands.Add(CreateProvider());
        command.Subcommands.Add(CreateSe());
        command.Subcommands.Add(CreateDevice());
        command.Subcommands.Add(CreateApp());
        command.Subcommands.Add(CreateRights());
        command.Subcommands.Add(CreateTransportKey());
        command.Subcommands.Add(ObfClientCommand.CreateBootstrap());
        command.Subcommands.Add(ObfClientCommand.CreateKey());
        command.Subcommands.Add(ObfCardCommand.CreateSeal());
        command.Subcommands.Add(ObfTransferCommand.CreateTransfer());
        command.Subcommands.Add(ObfTransferCommand.CreateServerKey());
        command.Subcommands.Add(ObfDemoCommand.Create());
        command.Subcommands.Add(ObfCardCommand.CreateOpen());
        command.Subcommands.Add(ObfBenchCommand.Create());
        return command;
    }

    private static Command CreateServe()
    {
        var config = new Option<string?>("--config") { Description = "an appsettings.json to read (section \"Obf\"); ./appsettings.json when present", HelpName = "FILE" };
        var dataDir = new Option<string?>("--data-dir") { Description = "the data folder (obf.db, master key, pki/) [DataDir, $BEST_DATA_DIR; openbest-data]", HelpName = "DIR" };
        var ubPort = new Option<string?>("--ub-port") { Description = "the port of Ub (bootstrapping, HTTPS, at /) [UbPort, $BEST_OBF_UB_PORT; 8443]", HelpName = "P" };
        var rpoPort = new Option<string?>("--rpo-port") { Description = "the port of the key service (Nbsp_GBA) and the registry API, mutual TLS [RpoPort, $BEST_OBF_RPO_PORT; 8444]", HelpName = "Q" };
        var domain = new Option<string?>("--domain") { Description = "the server's domain: the realm, and the part of B-TIDs after @ [Domain; bsf.obf.local]", HelpName = "NAME" };
        var insecure = new Option<bool>("--insecure-http") { Description = "serve Ub over plain HTTP (loopback tests only)" };
        var postgres = new Option<string?>("--postgres") { Description = "a PostgreSQL connection string instead of SQLite [Postgres, $BEST_POSTGRES]", HelpName = "CONNECTION" };
        var auc = new Option<string?>("--auc") { Description = "gsup://HOST:PORT: vectors from the operator's HLR for secure elements whose keys this server does not hold [Auc]", HelpName = "URL" };
        var bind = new Option<string?>("--bind") { Description = "the address to listen on [Bind; 127.0.0.1]", HelpName = "ADDRESS" };
        var metricsPort = new Option<string?>("--metrics-port") { Description = "serve /metrics and /health over HTTP on this port, -1 for none [MetricsPort; -1]", HelpName = "N" };
        var logFormat = new Option<string?>("--log-format") { Description = "text or json [LogFormat; text]", HelpName = "FORMAT" };
        var options = new (Option<string?> Option, string Setting)[]
        {
            (dataDir, "DataDir"), (ubPort, "UbPort"), (rpoPort, "RpoPort"), (domain, "Domain"), (postgres, "Postgres"), (auc, "Auc"), (bind, "Bind"), (metricsPort, "MetricsPort"), (logFormat, "LogFormat"),
        };
        var command = new Command("serve", "Run the authentication server until Ctrl+C or SIGTERM: Ub (RPB) over HTTPS on the server's certificate, and the key service (RPO, Nbsp_GBA)\n" +
            "with the registry and rights API (RPR) over mutual TLS, both with the development PKI of 'best pki init --naf FQDN'.");
        command.Options.Add(config);
        command.Options.Add(insecure);
        foreach (var (option, _) in options)
        {
            command.Options.Add(option);
        }

        command.SetAction(async (result, cancel) =>
        {
            var commandLine = options.Where(o => result.GetValue(o.Option) is not null).ToDictionary(o => o.Setting, o => result.GetValue(o.Option));
            if (result.GetValue(insecure))
            {
                commandLine["InsecureHttp"] = "true";
            }

            var settings = ObfSettings.Load(result.GetValue(config), commandLine);
            var output = result.InvocationConfiguration.Output;
            return await ServiceRunner.RunAsync(settings.JsonLogs, settings.LogLevel, "OpenBest.Obf", async (log, stopping) =>
            {
                await using var server = await ObfServer.StartAsync(settings, log, cancel);
                var elements = server.Store.SecureElements().Count;
                output.WriteLine($"OBF server: Ub on {server.UbAddress}, keys (Nbsp_GBA) and registry on {server.RpoAddress}{(server.MetricsAddress.Length > 0 ? $", metrics on {server.MetricsAddress}/metrics" : string.Empty)}; " +
                    $"domain {settings.Domain}; {(string.IsNullOrWhiteSpace(settings.Postgres) ? "SQLite" : "PostgreSQL")} with {elements} secure element(s){(settings.Auc is { } a ? $"; vectors of the others from the HLR at {a.Host}:{a.Port}" : string.Empty)}");
                output.Flush();
                await stopping.ConfigureAwait(false);
                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"stopped: bootstrappings {server.Ub.Bootstrapped}, keys released {server.Keys.Released}, key retrievals refused {server.Keys.Refused}"));
                output.Flush();
                return ExitCodes.Success;
            });
        });
        return command;
    }

    private static Command CreateProvider()
    {
        var command = new Command("provider", "The providers (Y.OBF_trust 6.3 a): MNOs, M2M service providers and application service providers.");
        var name = new Option<string>("--name") { Description = "the provider's name (its certificate's common name), 1..128 characters", HelpName = "NAME" };
        name.Validators.Add(r => { if (r.GetValueOrDefault<string>() is not { Length: > 0 and <= 128 } v || v.Any(char.IsControl)) { r.AddError("--name must be 1..128 characters"); } });
        var roles = new Option<string>("--role") { Description = "mno, m2msp or asp; comma separated for several", HelpName = "ROLES" };
        roles.Validators.Add(r => { if (Registry.ParseRoles(r.GetValueOrDefault<string>()) is null) { r.AddError("--role must be mno, m2msp and/or asp, comma separated"); } });
        var certificate = new Option<FileInfo?>("--certificate") { Description = "the provider's certificate (PEM)", HelpName = "FILE" };
        var add = Leaf("add", "Register a provider.", name, roles, certificate);
        add.Validators.Add(r => HexOption.Require(r, name, roles));
        add.SetAction(result => WithStore(result, "add", store =>
        {
            var pem = ReadPem(result.GetValue(certificate));
            store.AddProvider(new ObfProvider(result.GetValue(name)!, Registry.ParseRoles(result.GetValue(roles))!, pem, DateTimeOffset.UtcNow));
            store.Audit("provider-added", "cli", result.GetValue(name)!, Registry.ParseRoles(result.GetValue(roles))!);
            result.InvocationConfiguration.Output.WriteLine($"provider {result.GetValue(name)} ({Registry.ParseRoles(result.GetValue(roles))})");
            return ExitCodes.Success;
        }));
        var list = Leaf("list", "List the providers.");
        list.SetAction(result => WithStore(result, "list", store =>
        {
            foreach (var p in store.Providers())
            {
                result.InvocationConfiguration.Output.WriteLine($"{p.Name}\t{p.Roles}\t{(p.CertificatePem is null ? "no certificate" : "certificate")}");
            }

            return ExitCodes.Success;
        }));
        command.Subcommands.Add(add);
        command.Subcommands.Add(list);
        return command;
    }

    private static Command CreateSe()
    {
        var command = new Command("se", "The secure elements (Y.OBF_trust 6.3 b): USIMs and other cards, by IMPI, ICCID or EID; K and OPc sealed at rest, never printed.");
        var impi = ImpiOption();
        var k = HexOption.Create("--k", 16, "the secure element's key K");
        var opc = HexOption.Create("--opc", 16, "OPc (or --op)");
        var op = HexOption.Create("--op", 16, "OP, from which OPc is computed (or --opc)");
        var iccid = new Option<string>("--iccid") { Description = "the ICCID, 18..22 digits (the primary identifier of a card that is not a USIM)", HelpName = "ICCID" };
        iccid.Validators.Add(r => { if (!Registry.IsIccid(r.GetValueOrDefault<string>())) { r.AddError("--iccid must be 18..22 decimal digits"); } });
        var eid = new Option<string>("--eid") { Description = "the eUICC's EID, 32 digits", HelpName = "EID" };
        eid.Validators.Add(r => { if (!Registry.IsEid(r.GetValueOrDefault<string>())) { r.AddError("--eid must be 32 decimal digits"); } });
        var imsi = new Option<string>("--imsi") { Description = "the IMSI (for vectors from the operator's HLR); taken from an IMPI of the form IMSI@ims.mncXXX.mccYYY.3gppnetwork.org when not given", HelpName = "DIGITS" };
        imsi.Validators.Add(r => { if (r.GetValueOrDefault<string>() is not { Length: >= 6 and <= 15 } v || !v.All(char.IsAsciiDigit)) { r.AddError("--imsi must be 6..15 decimal digits"); } });
        var provider = new Option<string>("--provider") { Description = "the provider that registers it (must be registered)", HelpName = "NAME" };
        var noKeys = new Option<bool>("--keys-at-hlr") { Description = "this server holds no K: its vectors come from the operator's HLR (serve --auc gsup://…), by IMSI" };
        var add = Leaf("add", "Register one secure element.", impi, k, opc, op, iccid, eid, imsi, provider, noKeys);
        add.Validators.Add(r =>
        {
            HexOption.Require(r, impi);
            var atHlr = r.GetValue(noKeys);
            if (atHlr && (r.GetResult(k) is not null || r.GetResult(opc) is not null || r.GetResult(op) is not null))
            {
                r.AddError("--keys-at-hlr takes no --k, --opc or --op: the HLR holds them");
            }
            else if (!atHlr && r.GetResult(k) is null)
            {
                r.AddError("--k is required: the secure element's key K [32 hex digits] (or --keys-at-hlr)");
            }
            else if (!atHlr && (r.GetResult(opc) is null) == (r.GetResult(op) is null))
            {
                r.AddError("give exactly one of --opc and --op (32 hex digits, 16 octets)");
            }
        });
        add.SetAction(result => WithStore(result, "add", store =>
        {
            var impiValue = result.GetValue(impi)!;
            var imsiValue = result.GetValue(imsi) ?? ImsiOf(impiValue);
            if (result.GetValue(noKeys) && imsiValue is null)
            {
                throw new CommandLineException("--imsi is required with --keys-at-hlr (the HLR is asked by IMSI)");
            }

            if (result.GetValue(provider) is { } p && store.Providers().All(x => x.Name != p))
            {
                throw new CommandLineException($"--provider: no provider {p} (add it with 'best obf provider add')");
            }

            var kValue = result.GetValue(k) ?? [];
            var opcValue = result.GetValue(noKeys) ? [] : result.GetResult(opc) is not null ? result.GetValue(opc)! : ComputeOpc(kValue, result.GetValue(op)!);
            store.AddSecureElements([new NewSecureElement(impiValue, kValue, opcValue, result.GetValue(iccid), result.GetValue(eid), imsiValue, result.GetValue(provider))]);
            store.Audit("se-added", "cli", impiValue, result.GetValue(noKeys) ? "keys at the HLR" : string.Empty);
            result.InvocationConfiguration.Output.WriteLine($"added {impiValue}{(result.GetValue(iccid) is { } c ? $" (ICCID {c})" : string.Empty)}");
            return ExitCodes.Success;
        }));

        var list = Leaf("list", "List the secure elements (never their keys).");
        list.SetAction(result => WithStore(result, "list", store =>
        {
            foreach (var e in store.SecureElements())
            {
                result.InvocationConfiguration.Output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{e.Impi}\ticcid {e.Iccid ?? "-"}\teid {e.Eid ?? "-"}\timsi {e.Imsi ?? "-"}\tprovider {e.Provider ?? "-"}\t{(e.HasKeys ? $"keys here, SEQ {e.SeqHe}" : "keys at the HLR")}"));
            }

            return ExitCodes.Success;
        }));

        var removeImpi = ImpiOption();
        var remove = Leaf("remove", "Remove a secure element with its rights, devices and bootstrappings.", removeImpi);
        remove.Validators.Add(r => HexOption.Require(r, removeImpi));
        remove.SetAction(result => WithStore(result, "remove", store =>
        {
            if (!store.Remove(result.GetValue(removeImpi)!))
            {
                result.InvocationConfiguration.Error.WriteLine($"best obf se remove: no secure element {result.GetValue(removeImpi)}");
                return ExitCodes.CheckFailed;
            }

            store.Audit("se-removed", "cli", result.GetValue(removeImpi)!);
            result.InvocationConfiguration.Output.WriteLine($"removed {result.GetValue(removeImpi)}");
            return ExitCodes.Success;
        }));

        command.Subcommands.Add(add);
        command.Subcommands.Add(list);
        command.Subcommands.Add(remove);
        command.Subcommands.Add(CreateSeImport());
        return command;
    }

    private static Command CreateSeImport()
    {
        var file = new Argument<FileInfo>("FILE") { Description = "a key-import batch (docs/obf-key-import.md), wrapped under an imported transport key" };
        var plainCsv = new Option<bool>("--plain-csv-for-development") { Description = "FILE is a CSV of keys in clear (header impi,k,opc or impi,k,op; optional iccid, eid, imsi): for development only, never for real cards" };
        var mncLength = new Option<int>("--mnc-length") { Description = "MNC digits of the IMSIs, to name records without an IMPI IMSI@ims.mncXXX.mccYYY.3gppnetwork.org (TS 23.003), 2 or 3", DefaultValueFactory = _ => 2, HelpName = "N" };
        mncLength.Validators.Add(r => { if (r.GetValueOrDefault<int>() is not (2 or 3)) { r.AddError("--mnc-length must be 2 or 3"); } });
        var provider = new Option<string>("--provider") { Description = "the provider the secure elements belong to (must be registered)", HelpName = "NAME" };
        var command = Leaf("import", "Import secure elements from a trusted source: a batch whose records are wrapped (RFC 5649) under a transport key imported\n" +
            "before with 'best obf transport-key import'. Everything is checked first: a wrong key or a tampered record imports nothing and names the record.", plainCsv, mncLength, provider);
        command.Arguments.Add(file);
        command.SetAction(result => WithStore(result, "import", store =>
        {
            var path = result.GetValue(file)!;
            if (!path.Exists)
            {
                throw new CommandLineException($"{path.FullName}: no such file");
            }

            if (result.GetValue(provider) is { } p && store.Providers().All(x => x.Name != p))
            {
                throw new CommandLineException($"--provider: no provider {p}");
            }

            var elements = result.GetValue(plainCsv)
                ? ReadPlainCsv(path, result.GetValue(provider), result.InvocationConfiguration.Error)
                : ReadBatch(store, path, result.GetValue(mncLength), result.GetValue(provider));
            try
            {
                store.AddSecureElements(elements);
            }
            finally
            {
                foreach (var e in elements)
                {
                    System.Security.Cryptography.CryptographicOperations.ZeroMemory(e.K);
                    System.Security.Cryptography.CryptographicOperations.ZeroMemory(e.Opc);
                }
            }

            store.Audit("se-imported", "cli", path.Name, string.Create(CultureInfo.InvariantCulture, $"{elements.Count} secure element(s){(result.GetValue(plainCsv) ? ", plain CSV (development)" : string.Empty)}"));
            result.InvocationConfiguration.Output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"imported {elements.Count} secure element(s) from {path.Name}"));
            return ExitCodes.Success;
        }));
        return command;
    }

    private static Command CreateDevice()
    {
        var command = new Command("device", "The devices (IMEI or serial number), each bound to the secure element it carries.");
        var imei = new Option<string>("--imei") { Description = "the device's IMEI, 14..16 digits", HelpName = "DIGITS" };
        imei.Validators.Add(r => { if (r.GetValueOrDefault<string>() is not { Length: >= 14 and <= 16 } v || !v.All(char.IsAsciiDigit)) { r.AddError("--imei must be 14..16 decimal digits"); } });
        var serial = new Option<string>("--serial") { Description = "the device's serial number (when it has no IMEI), 1..64 characters", HelpName = "TEXT" };
        serial.Validators.Add(r => { if (r.GetValueOrDefault<string>() is not { Length: >= 1 and <= 64 } v || v.Any(char.IsWhiteSpace)) { r.AddError("--serial must be 1..64 characters without spaces"); } });
        var impi = ImpiOption();
        var add = Leaf("add", "Bind a device to its secure element.", imei, serial, impi);
        add.Validators.Add(r =>
        {
            HexOption.Require(r, impi);
            if ((r.GetResult(imei) is null) == (r.GetResult(serial) is null))
            {
                r.AddError("give exactly one of --imei and --serial");
            }
        });
        add.SetAction(result => WithStore(result, "add", store =>
        {
            var id = result.GetValue(imei) ?? result.GetValue(serial)!;
            if (store.SecureElement(result.GetValue(impi)!) is null)
            {
                throw new CommandLineException($"--impi: no secure element {result.GetValue(impi)} (add it with 'best obf se add')");
            }

            store.AddDevice(new ObfDevice(id, result.GetValue(impi)!, DateTimeOffset.UtcNow));
            store.Audit("device-added", "cli", id, result.GetValue(impi)!);
            result.InvocationConfiguration.Output.WriteLine($"device {id} carries {result.GetValue(impi)}");
            return ExitCodes.Success;
        }));
        var list = Leaf("list", "List the devices.");
        list.SetAction(result => WithStore(result, "list", store =>
        {
            foreach (var d in store.Devices())
            {
                result.InvocationConfiguration.Output.WriteLine($"{d.DeviceId}\t{d.Impi}");
            }

            return ExitCodes.Success;
        }));
        command.Subcommands.Add(add);
        command.Subcommands.Add(list);
        return command;
    }

    private static Command CreateApp()
    {
        var command = new Command("app", "The applications (NAFs): their FQDN, owner and certificate; keys go only to them, and only where rights allow.");
        var naf = NafOption();
        var owner = new Option<string>("--owner") { Description = "the provider that owns the application (must be registered)", HelpName = "PROVIDER" };
        var certificate = new Option<FileInfo?>("--certificate") { Description = "the application's certificate (PEM)", HelpName = "FILE" };
        var releaseImpi = new Option<bool>("--release-impi") { Description = "key retrievals give this application the device's IMPI (off: it sees only the B-TID)" };
        var add = Leaf("add", "Register an application.", naf, owner, certificate, releaseImpi);
        add.Validators.Add(r => HexOption.Require(r, naf));
        add.SetAction(result => WithStore(result, "add", store =>
        {
            if (result.GetValue(owner) is { } p && store.Providers().All(x => x.Name != p))
            {
                throw new CommandLineException($"--owner: no provider {p} (add it with 'best obf provider add')");
            }

            var fqdn = result.GetValue(naf)!.ToLowerInvariant();
            store.AddApplication(new ObfApplication(fqdn, result.GetValue(owner), ReadPem(result.GetValue(certificate)), result.GetValue(releaseImpi), DateTimeOffset.UtcNow));
            store.Audit("app-added", "cli", fqdn, result.GetValue(owner) ?? string.Empty);
            result.InvocationConfiguration.Output.WriteLine($"application {fqdn}{(result.GetValue(owner) is { } o ? $" of {o}" : string.Empty)}");
            return ExitCodes.Success;
        }));
        var list = Leaf("list", "List the applications.");
        list.SetAction(result => WithStore(result, "list", store =>
        {
            foreach (var a in store.Applications())
            {
                result.InvocationConfiguration.Output.WriteLine($"{a.NafFqdn}\towner {a.Owner ?? "-"}\t{(a.ReleaseImpi ? "IMPI released" : "IMPI withheld")}");
            }

            return ExitCodes.Success;
        }));
        var removeNaf = NafOption();
        var remove = Leaf("remove", "Remove an application and its rights.", removeNaf);
        remove.Validators.Add(r => HexOption.Require(r, removeNaf));
        remove.SetAction(result => WithStore(result, "remove", store =>
        {
            var fqdn = result.GetValue(removeNaf)!.ToLowerInvariant();
            if (!store.RemoveRecord("app", fqdn))
            {
                result.InvocationConfiguration.Error.WriteLine($"best obf app remove: no application {fqdn}");
                return ExitCodes.CheckFailed;
            }

            store.Audit("app-removed", "cli", fqdn);
            result.InvocationConfiguration.Output.WriteLine($"removed {fqdn} and its rights");
            return ExitCodes.Success;
        }));
        command.Subcommands.Add(add);
        command.Subcommands.Add(list);
        command.Subcommands.Add(remove);
        return command;
    }

    private static Command CreateRights()
    {
        var command = new Command("rights", "Resource rights (RPR): which application may get keys of which device, for which data class (e.g. alarm → emergency response only).");
        (Option<string> Impi, Option<string> Naf, Option<string> Class) Triple()
        {
            var dataClass = new Option<string>("--class") { Description = "the data class, e.g. alarm, position, health (1..64 letters, digits, - _ .)", HelpName = "NAME" };
            dataClass.Validators.Add(r => { if (!Registry.IsDataClass(r.GetValueOrDefault<string>())) { r.AddError("--class must be 1..64 letters, digits, '-', '_' or '.'"); } });
            return (ImpiOption(), NafOption(), dataClass);
        }

        var g = Triple();
        var grant = Leaf("grant", "Grant an application a data class of a device.", g.Impi, g.Naf, g.Class);
        grant.Validators.Add(r => HexOption.Require(r, g.Impi, g.Naf, g.Class));
        grant.SetAction(result => WithStore(result, "grant", store =>
        {
            var (impi, fqdn, dataClass) = (result.GetValue(g.Impi)!, result.GetValue(g.Naf)!.ToLowerInvariant(), result.GetValue(g.Class)!);
            if (store.SecureElement(impi) is null)
            {
                throw new CommandLineException($"--impi: no secure element {impi}");
            }

            if (store.Application(fqdn) is null)
            {
                throw new CommandLineException($"--naf: no application {fqdn} (add it with 'best obf app add')");
            }

            var granted = store.Grant(new ResourceRight(impi, fqdn, dataClass, DateTimeOffset.UtcNow));
            store.Audit("right-granted", "cli", impi, $"{fqdn} {dataClass}");
            result.InvocationConfiguration.Output.WriteLine(granted ? $"granted {fqdn} {dataClass} of {impi}" : $"{fqdn} had {dataClass} of {impi} already");
            return ExitCodes.Success;
        }));
        var rv = Triple();
        var revoke = Leaf("revoke", "Revoke a right: no new key for it from now on.", rv.Impi, rv.Naf, rv.Class);
        revoke.Validators.Add(r => HexOption.Require(r, rv.Impi, rv.Naf, rv.Class));
        revoke.SetAction(result => WithStore(result, "revoke", store =>
        {
            var (impi, fqdn, dataClass) = (result.GetValue(rv.Impi)!, result.GetValue(rv.Naf)!.ToLowerInvariant(), result.GetValue(rv.Class)!);
            if (!store.Revoke(impi, fqdn, dataClass))
            {
                result.InvocationConfiguration.Error.WriteLine($"best obf rights revoke: {fqdn} has no {dataClass} of {impi}");
                return ExitCodes.CheckFailed;
            }

            store.Audit("right-revoked", "cli", impi, $"{fqdn} {dataClass}");
            result.InvocationConfiguration.Output.WriteLine($"revoked {fqdn} {dataClass} of {impi}");
            return ExitCodes.Success;
        }));
        var listImpi = new Option<string>("--impi") { Description = "only this secure element's", HelpName = "IMPI" };
        var listNaf = new Option<string>("--naf") { Description = "only this application's", HelpName = "FQDN" };
        var list = Leaf("list", "List rights.", listImpi, listNaf);
        list.SetAction(result => WithStore(result, "list", store =>
        {
            foreach (var r in store.Rights(result.GetValue(listImpi), result.GetValue(listNaf)?.ToLowerInvariant()))
            {
                result.InvocationConfiguration.Output.WriteLine($"{r.Impi}\t{r.NafFqdn}\t{r.DataClass}");
            }

            return ExitCodes.Success;
        }));
        command.Subcommands.Add(grant);
        command.Subcommands.Add(revoke);
        command.Subcommands.Add(list);
        return command;
    }

    private static Command CreateTransportKey()
    {
        var command = new Command("transport-key", "Transport keys that wrap key-import batches from a trusted source (RFC 5649).");
        var keyFile = new Option<FileInfo>("--key-file") { Description = "a file holding the transport key as hex (32, 48 or 64 hex digits: AES-128/192/256)", HelpName = "FILE" };
        var import = Leaf("import", "Import a transport key once: it is sealed under the master key and named by its identifier (the batch header's kek-id).", keyFile);
        import.Validators.Add(r => HexOption.Require(r, keyFile));
        import.SetAction(result => WithStore(result, "import", store =>
        {
            var path = result.GetValue(keyFile)!;
            if (!path.Exists)
            {
                throw new CommandLineException($"--key-file: {path.FullName}: no such file");
            }

            var text = File.ReadAllText(path.FullName).Trim();
            byte[] key;
            try
            {
                key = Convert.FromHexString(text);
            }
            catch (FormatException)
            {
                throw new CommandLineException($"--key-file: {path.Name} does not hold hex digits");
            }

            try
            {
                if (key.Length is not (16 or 24 or 32))
                {
                    throw new CommandLineException($"--key-file: {path.Name} holds {key.Length} octets; a transport key has 16, 24 or 32");
                }

                var id = KeyImportBatch.KekId(key);
                store.SaveTransportKey(id, key);
                store.Audit("transport-key-imported", "cli", id);
                result.InvocationConfiguration.Output.WriteLine($"transport key {id} imported (sealed under the master key)");
                return ExitCodes.Success;
            }
            finally
            {
                System.Security.Cryptography.CryptographicOperations.ZeroMemory(key);
            }
        }));
        command.Subcommands.Add(import);
        return command;
    }

    private static List<NewSecureElement> ReadBatch(IObfStore store, FileInfo path, int mncLength, string? provider)
    {
        var bytes = File.ReadAllBytes(path.FullName);
        var header = Encoding.UTF8.GetString(bytes).Split('\n').Select(l => l.Trim('\r', ' ', '\uFEFF')).FirstOrDefault(l => l.Length > 0 && !l.StartsWith('#')) ?? string.Empty;
        var kekId = header.Split(' ', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault(f => f.StartsWith("kek-id=", StringComparison.Ordinal))?["kek-id=".Length..].ToLowerInvariant();
        if (!header.StartsWith(KeyImportBatch.Magic, StringComparison.Ordinal) || kekId is not { Length: 16 })
        {
            throw new CommandLineException($"{path.Name}: line 1 is not a key-import batch header (obf-key-import version=1 kek-id=…)");
        }

        using var transport = store.TransportKey(kekId) ?? throw new CommandLineException($"{path.Name}: transport key {kekId} was never imported ('best obf transport-key import --key-file …')");
        if (!KeyImportBatch.TryRead(bytes, transport.Span, out var records, out var error))
        {
            throw new CommandLineException($"{path.Name}: {(error.Record is { } r ? string.Create(CultureInfo.InvariantCulture, $"record {r} (line {error.Line})") : string.Create(CultureInfo.InvariantCulture, $"line {error.Line}"))}: {error.Message}; nothing was imported");
        }

        var elements = new List<NewSecureElement>();
        foreach (var record in records)
        {
            using (record)
            {
                var opc = record.Type == SubscriberKeyType.MilenageKOpc ? record.OpOrOpc.ToArray() : ComputeOpc(record.K.ToArray(), record.OpOrOpc.ToArray());
                elements.Add(new NewSecureElement(record.Impi ?? Gba.ImpiFromImsi(record.Imsi, mncLength), record.K.ToArray(), opc, record.Iccid, record.Eid, record.Imsi, provider));
            }
        }

        return elements;
    }

    private static List<NewSecureElement> ReadPlainCsv(FileInfo path, string? provider, TextWriter error)
    {
        error.WriteLine("best obf se import: --plain-csv-for-development: keys in clear text; for development only, never for real cards");
        var lines = File.ReadAllLines(path.FullName);
        var header = lines.FirstOrDefault()?.Split(',').Select(h => h.Trim().ToLowerInvariant()).ToList() ?? [];
        int Column(string name) => header.IndexOf(name);
        if (Column("impi") < 0 || Column("k") < 0 || (Column("opc") < 0 && Column("op") < 0))
        {
            throw new CommandLineException($"{path.Name}: line 1 must be a header with impi, k and opc (or op), and optionally iccid, eid, imsi");
        }

        var elements = new List<NewSecureElement>();
        for (var i = 1; i < lines.Length; i++)
        {
            if (string.IsNullOrWhiteSpace(lines[i]))
            {
                continue;
            }

            var cells = lines[i].Split(',').Select(c => c.Trim()).ToArray();
            string? Cell(string name) => Column(name) is var c and >= 0 && c < cells.Length && cells[c].Length > 0 ? cells[c] : null;
            byte[] Key(string name) => Cell(name) is { Length: 32 } hex && hex.All(char.IsAsciiHexDigit) ? Convert.FromHexString(hex) : throw new CommandLineException(string.Create(CultureInfo.InvariantCulture, $"{path.Name}: line {i + 1}: {name} must be 32 hex digits; nothing was imported"));
            var impi = Cell("impi");
            if (!Registry.IsImpi(impi))
            {
                throw new CommandLineException(string.Create(CultureInfo.InvariantCulture, $"{path.Name}: line {i + 1}: impi must be user@realm; nothing was imported"));
            }

            var k = Key("k");
            var opc = Column("opc") >= 0 ? Key("opc") : ComputeOpc(k, Key("op"));
            elements.Add(new NewSecureElement(impi!, k, opc, Cell("iccid"), Cell("eid"), Cell("imsi") ?? ImsiOf(impi!), provider));
        }

        return elements;
    }

    internal static Command Leaf(string name, string description, params Option[] options)
    {
        var command = new Command(name, description);
        foreach (var option in options.Append(SubscriberCommand.DataDirOption()).Append(Postgres))
        {
            command.Options.Add(option);
        }

        return command;
    }

    internal static Option<string> ImpiOption()
    {
        var impi = new Option<string>("--impi") { Description = "the secure element's IMPI (user@realm, e.g. 001010000000001@ims.mnc001.mcc001.3gppnetwork.org)", HelpName = "IMPI" };
        impi.Validators.Add(r => { if (!Registry.IsImpi(r.GetValueOrDefault<string>())) { r.AddError("--impi must be an NAI, user@realm (3..255 printable characters, no spaces)"); } });
        return impi;
    }

    private static Option<string> NafOption()
    {
        var naf = new Option<string>("--naf") { Description = "the application's FQDN (its certificate's DNS name)", HelpName = "FQDN" };
        naf.Validators.Add(r => { if (!KeyService.IsFqdn(r.GetValueOrDefault<string>())) { r.AddError("--naf must be a DNS name, e.g. vtams.example.com"); } });
        return naf;
    }

    private static string? ImsiOf(string impi)
    {
        // TS 23.003 13.3: IMSI@ims.mnc<MNC>.mcc<MCC>.3gppnetwork.org.
        var user = impi.Split('@')[0];
        return impi.Contains("@ims.mnc", StringComparison.Ordinal) && user.Length is >= 6 and <= 15 && user.All(char.IsAsciiDigit) ? user : null;
    }

    internal static byte[] ComputeOpc(byte[] k, byte[] op)
    {
        var opc = new byte[16];
        Milenage.ComputeOpc(k, op, opc);
        return opc;
    }

    private static string? ReadPem(FileInfo? file)
    {
        if (file is null)
        {
            return null;
        }

        if (!file.Exists)
        {
            throw new CommandLineException($"--certificate: {file.FullName}: no such file");
        }

        var text = File.ReadAllText(file.FullName);
        return text.Contains("-----BEGIN CERTIFICATE-----", StringComparison.Ordinal) ? text : throw new CommandLineException($"--certificate: {file.Name} is not a PEM certificate");
    }

    internal static int WithStore(ParseResult result, string verb, Func<IObfStore, int> action)
    {
        var dataDir = result.GetValue<string>("--data-dir")!;
        var group = result.CommandResult.Parent is System.CommandLine.Parsing.CommandResult parent ? parent.Command.Name + " " : string.Empty;
        var name = $"best obf {group}{verb}";
        try
        {
            using var key = MasterKey.Load(dataDir);
            var postgres = result.GetValue(Postgres);
            using IObfStore store = string.IsNullOrWhiteSpace(postgres) ? SqliteObfStore.Open(dataDir, key) : PostgresObfStore.Open(postgres, key);
            return action(store);
        }
        catch (Exception e) when (e is DuplicateSubscriberException or DuplicateRecordException)
        {
            result.InvocationConfiguration.Error.WriteLine($"{name}: {e.Message} Nothing was added.");
            return ExitCodes.BadInput;
        }
        catch (Exception e) when (e is CommandLineException or InvalidOperationException or ArgumentException or Npgsql.NpgsqlException)
        {
            result.InvocationConfiguration.Error.WriteLine($"{name}: {e.Message.ReplaceLineEndings(" ")}");
            return ExitCodes.BadInput;
        }
    }
}
