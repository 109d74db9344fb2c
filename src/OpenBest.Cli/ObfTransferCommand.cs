using System.CommandLine;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using OpenBest.EasInterface;
using OpenBest.Obf;
using OpenBest.Obf.Server;
using OpenBest.Storage;

namespace OpenBest.Cli;

/// <summary>
/// <c>best obf transfer</c> and <c>best obf server-key</c>: hand a secure element to another authentication server (Y.OBF_trust
/// 6.2 c, d, f; 7.5 b; 8.2), and print this server's public key for personalising cards.
/// </summary>
internal static class ObfTransferCommand
{
    /// <summary>A fault-injection setting for tests: the process ends (exit 137, as after kill -9) right after this step is stored.</summary>
    public const string StopAfterVariable = "BEST_OBF_TRANSFER_STOP_AFTER";

    public static Command CreateServerKey()
    {
        var command = ObfCommand.Leaf("server-key", "Print this server's public key (uncompressed P-256, hex): personalise cards with it (best card --obf-key). Made on first use.");
        command.SetAction(result => ObfCommand.WithStore(result, "server-key", store =>
        {
            using var key = ObfServerKey.LoadOrCreate(store);
            result.InvocationConfiguration.Output.WriteLine(Convert.ToHexStringLower(key.PublicKey));
            return ExitCodes.Success;
        }));
        return command;
    }

    public static Command CreateTransfer()
    {
        var impi = ObfCommand.ImpiOption();
        var to = new Option<string>("--to") { Description = "the new server's registry API (its RPO port), e.g. https://obf-b.example.org:8444/", HelpName = "URL" };
        to.Validators.Add(r => { if (!Uri.TryCreate(r.GetValueOrDefault<string>(), UriKind.Absolute, out var uri) || uri.Scheme != "https" || uri.AbsolutePath != "/") { r.AddError("--to must be an https:// URL with no path"); } });
        var certificate = new Option<FileInfo>("--certificate") { Description = "the certificate the new server knows as its operator (PEM, key in a .key file beside it) [<data-dir>/pki/eas-obf-admin.crt]", HelpName = "FILE" };
        var ca = new Option<FileInfo>("--ca") { Description = "the CA of the new server's certificate [<data-dir>/pki/ca.crt]", HelpName = "FILE" };
        var command = ObfCommand.Leaf("transfer", "Hand a secure element to another authentication server: sign the new server's key, endpoint and the card's ICCID (the record\n" +
            "the card verifies), wrap K and OPc to the new server (ECDH-ES + AES key wrap), deliver them with the device's rights, then answer the\n" +
            "device's next bootstrap here with the record. Each step is stored and audited; run it again to resume an interrupted transfer.", impi, to, certificate, ca);
        command.Validators.Add(r => HexOption.Require(r, impi, to));
        command.SetAction(async (result, cancel) =>
        {
            var output = result.InvocationConfiguration.Output;
            var error = result.InvocationConfiguration.Error;
            var dataDir = result.GetValue<string>("--data-dir")!;
            var pair = result.GetValue(certificate) is { } file ? new DevelopmentPki.Pair(file.FullName, Path.ChangeExtension(file.FullName, ".key")) : DevelopmentPki.Eas(dataDir, ObfApi.Operator);
            var caPath = result.GetValue(ca)?.FullName ?? DevelopmentPki.Ca(dataDir).Certificate;
            if (!File.Exists(pair.Certificate) || !File.Exists(caPath))
            {
                throw new CommandLineException($"--certificate and --ca: {pair.Certificate} and {caPath} are needed");
            }

            using var own = DevelopmentPki.LoadPair(pair);
            using var anchor = DevelopmentPki.LoadCertificate(caPath);
            var handler = new SocketsHttpHandler();
            DevelopmentPki.UseFor(handler.SslOptions, anchor, own);
            using var http = new HttpClient(handler) { BaseAddress = new Uri(result.GetValue(to)!), Timeout = TimeSpan.FromSeconds(30) };
            var target = result.GetValue(to)!;
            var element = result.GetValue(impi)!;
            try
            {
                // 1. The new server's key and Ub; the package (made once and kept, so a resumed transfer sends the same one).
                var body = await http.GetFromJsonAsync<ServerKeyBody>("/obf/v1/server-key", cancel) ?? throw new HttpRequestException("no server key in the answer");
                var code = ObfCommand.WithStore(result, "transfer", store =>
                {
                    using var key = ObfServerKey.LoadOrCreate(store);
                    var (transfer, _) = ProviderTransfer.Prepare(store, key, "key:" + Convert.ToHexStringLower(key.PublicKey)[..16], element, body);
                    output.WriteLine($"{element}: {transfer.State} (to {transfer.Peer})");
                    return ExitCodes.Success;
                });
                if (code != ExitCodes.Success)
                {
                    return code;
                }

                StopAfter(ProviderTransfer.Prepared);

                // 2. Delivered: the new server holds the keys (it answers 200 when it took them before).
                ObfTransfer? current = null;
                ObfCommand.WithStore(result, "transfer", store => { current = store.Transfer(element); return 0; });
                if (current!.State == ProviderTransfer.Prepared)
                {
                    var package = ProviderTransfer.PackageOf(current)!;
                    using var answer = await http.PostAsJsonAsync("/obf/v1/transfers", package, JsonSerializerOptions.Web, cancel);
                    if (!answer.IsSuccessStatusCode)
                    {
                        var why = await answer.Content.ReadAsStringAsync(cancel);
                        await error.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"best obf transfer: {target} refused ({(int)answer.StatusCode}): {why}"));
                        return ExitCodes.CheckFailed;
                    }

                    ObfCommand.WithStore(result, "transfer", store => { current = ProviderTransfer.Advance(store, current, ProviderTransfer.Delivered); return 0; });
                    output.WriteLine($"{element}: delivered (the new server holds its keys)");
                }

                StopAfter(ProviderTransfer.Delivered);

                // 3. Done: this server no longer bootstraps the element; its next attempt gets the record.
                if (current.State == ProviderTransfer.Delivered)
                {
                    ObfCommand.WithStore(result, "transfer", store => { current = ProviderTransfer.Advance(store, current, ProviderTransfer.Done); return 0; });
                }

                output.WriteLine($"{element}: done (its card moves to {current.Peer} at its next bootstrap)");
                return ExitCodes.Success;
            }
            catch (HttpRequestException e)
            {
                await error.WriteLineAsync($"best obf transfer: --to {target}: {e.Message.ReplaceLineEndings(" ")} (the transfer is kept; run the command again to resume)");
                return ExitCodes.CheckFailed;
            }
        });
        return command;
    }

    private static void StopAfter(string state)
    {
        if (Environment.GetEnvironmentVariable(StopAfterVariable) == state)
        {
            Environment.Exit(137);
        }
    }
}
