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
        var from = new Option<string>("--from") { Description = "on the new server: resume a transfer from this side; the old server's registry API (its RPO port)", HelpName = "URL" };
        from.Validators.Add(r => { if (!Uri.TryCreate(r.GetValueOrDefault<string>(), UriKind.Absolute, out var uri) || uri.Scheme != "https" || uri.AbsolutePath != "/") { r.AddError("--from must be an https:// URL with no path"); } });
        var certificate = new Option<FileInfo>("--certificate") { Description = "the certificate the other server knows as its operator (PEM, key in a .key file beside it) [<data-dir>/pki/eas-obf-admin.crt]", HelpName = "FILE" };
        var ca = new Option<FileInfo>("--ca") { Description = "the CA of the other server's certificate [<data-dir>/pki/ca.crt]", HelpName = "FILE" };
        var command = ObfCommand.Leaf("transfer", "Hand a secure element to another authentication server: sign the new server's key, endpoint and the card's ICCID (the record\n" +
            "the card verifies), wrap K and OPc to the new server (ECDH-ES + AES key wrap), deliver them with the device's rights, then answer the\n" +
            "device's next bootstrap here with the record. Each step is stored and audited; run it again to resume an interrupted transfer.\n" +
            "On the new server, --from resumes it from that side: fetch the package, take the keys, and send the old server a signed receipt.", impi, to, from, certificate, ca);
        command.Validators.Add(r =>
        {
            HexOption.Require(r, impi);
            if ((r.GetResult(to) is null) == (r.GetResult(from) is null))
            {
                r.AddError("give --to URL (on the old server) or --from URL (on the new server)");
            }
        });
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
            var target = result.GetValue(to) ?? result.GetValue(from)!;
            using var http = new HttpClient(handler) { BaseAddress = new Uri(target), Timeout = TimeSpan.FromSeconds(30) };
            var element = result.GetValue(impi)!;
            if (result.GetResult(from) is not null)
            {
                return await ResumeAtNewServerAsync(result, http, element, target, cancel);
            }

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

    /// <summary>
    /// The new server's side: the old server's stored package, taken here (idempotently), then the receipt signed with this
    /// server's key, on which the old server marks the transfer done.
    /// </summary>
    private static async Task<int> ResumeAtNewServerAsync(System.CommandLine.ParseResult result, HttpClient http, string element, string source, CancellationToken cancel)
    {
        var output = result.InvocationConfiguration.Output;
        var error = result.InvocationConfiguration.Error;
        try
        {
            using var answer = await http.GetAsync(new Uri("/obf/v1/transfers/" + Uri.EscapeDataString(element), UriKind.Relative), cancel);
            if (!answer.IsSuccessStatusCode)
            {
                await error.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"best obf transfer: --from {source}: no transfer of {element} there ({(int)answer.StatusCode})"));
                return ExitCodes.CheckFailed;
            }

            var state = await answer.Content.ReadFromJsonAsync<TransferStateBody>(JsonSerializerOptions.Web, cancel);
            if (state is not { Direction: "out", Package: { } package })
            {
                await error.WriteLineAsync($"best obf transfer: --from {source}: {element} does not go out from there");
                return ExitCodes.CheckFailed;
            }

            string? receipt = null;
            var code = ObfCommand.WithStore(result, "transfer", store =>
            {
                using var key = ObfServerKey.LoadOrCreate(store);
                var (status, detail) = ProviderTransfer.Receive(store, key, package, "operator");
                if (status is not (200 or 201))
                {
                    error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"best obf transfer: the package from {source} is refused here ({status}): {detail}"));
                    return ExitCodes.CheckFailed;
                }

                receipt = Convert.ToHexStringLower(ProviderTransfer.Receipt(key, package));
                output.WriteLine($"{element}: {detail} (this server holds its keys)");
                return ExitCodes.Success;
            });
            if (code != ExitCodes.Success)
            {
                return code;
            }

            StopAfter(ProviderTransfer.Received);
            using var confirmed = await http.PostAsJsonAsync(new Uri("/obf/v1/transfers/" + Uri.EscapeDataString(element) + "/receipt", UriKind.Relative), new TransferReceiptBody(receipt), JsonSerializerOptions.Web, cancel);
            if (!confirmed.IsSuccessStatusCode)
            {
                var why = await confirmed.Content.ReadAsStringAsync(cancel);
                await error.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"best obf transfer: {source} refused the receipt ({(int)confirmed.StatusCode}): {why}"));
                return ExitCodes.CheckFailed;
            }

            output.WriteLine($"{element}: done (the old server answers its card with the record; its next bootstrap is here)");
            return ExitCodes.Success;
        }
        catch (HttpRequestException e)
        {
            await error.WriteLineAsync($"best obf transfer: --from {source}: {e.Message.ReplaceLineEndings(" ")} (the old server still serves the device; run the command again to resume)");
            return ExitCodes.CheckFailed;
        }
    }

    private static void StopAfter(string state)
    {
        if (Environment.GetEnvironmentVariable(StopAfterVariable) == state)
        {
            Environment.Exit(137);
        }
    }
}
