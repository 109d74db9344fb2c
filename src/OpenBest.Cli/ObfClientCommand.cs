using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using OpenBest.Client;
using OpenBest.Crypto;
using OpenBest.Crypto.Aka;
using OpenBest.EasInterface;
using OpenBest.Obf;
using OpenBest.Obf.Server;

namespace OpenBest.Cli;

/// <summary>
/// <c>best obf bootstrap</c> and <c>best obf key</c>: the two other ends of the OBF server from the command line. A device (a
/// software USIM, its SQN state in a file) bootstraps over Ub; an application fetches a device's key over Nbsp_GBA with its
/// certificate. Both print <c>NAME: value</c> lines, as <c>best aka</c> does.
/// </summary>
internal static class ObfClientCommand
{
    /// <summary>HTTP Digest over server-authenticated TLS (TS 33.222 5.3, TS 33.220 Annex H): the default Ua protocol.</summary>
    private const string DefaultUa = "0100000002";

    public static Command CreateBootstrap()
    {
        var impi = new Option<string>("--impi") { Description = "the card's IMPI (user@realm), the Digest username", HelpName = "IMPI" };
        impi.Validators.Add(r => { if (!Registry.IsImpi(r.GetValueOrDefault<string>())) { r.AddError("--impi must be an NAI, user@realm (3..255 printable characters, no spaces)"); } });
        var k = HexOption.Create("--k", 16, "the USIM's key K");
        var opc = HexOption.Create("--opc", 16, "the USIM's OPc (or --op)");
        var op = HexOption.Create("--op", 16, "the USIM's OP, from which OPc is computed (or --opc)");
        var server = ServerOption("https://127.0.0.1:8443/", "the OBF server's Ub (HTTPS; http:// only for a server run with --insecure-http)");
        var state = new Option<FileInfo>("--usim-state") { Description = "a file that keeps the USIM's SQN array between runs (created when missing, mode 0600)", HelpName = "FILE" };
        var naf = NafOption("also print Ks_NAF for this application (the key it will fetch), to check both ends agree; with --card, the card derives it (Ks_ext_NAF)");
        var ua = UaOption();
        var (dataDir, ca) = CaOptions();
        var card = CardOption.Create("GBA_U: the card (pcsc, pcsc:READER, at:DEVICE) runs AKA in the GBA context and keeps Ks; instead of --k, --opc and --usim-state");
        var seKeyIndex = new Option<int?>("--se-key-index") { Description = "with --card and --naf: the card puts Ks_int_NAF for --naf into this key index of its OBF secure element (nothing leaves the card)", HelpName = "N" };
        seKeyIndex.Validators.Add(r => { if (r.GetValueOrDefault<int?>() is not (>= 0 and <= 255)) { r.AddError("--se-key-index must be 0..255"); } });
        var trace = TraceOption();
        var command = new Command("bootstrap", "A device bootstraps with the OBF server (Ub: HTTP Digest AKA, TS 24.109): the USIM runs AKA, the server's rspauth is\n" +
            "checked, and the B-TID and the key's lifetime are printed. With --naf, Ks_NAF for that application too. With --card the card does GBA_U\n" +
            "and no key reaches this process. Exit 1 if the server or the card refuses.");
        foreach (var option in new Option[] { impi, k, opc, op, server, state, naf, ua, ca, dataDir, card, seKeyIndex, trace })
        {
            command.Options.Add(option);
        }

        command.Validators.Add(r =>
        {
            if (r.GetResult(card) is not null)
            {
                HexOption.Require(r, impi);
                if (r.GetResult(k) is not null || r.GetResult(opc) is not null || r.GetResult(op) is not null || r.GetResult(state) is not null)
                {
                    r.AddError("--card replaces --k, --opc, --op and --usim-state: the card keeps them");
                }

                if (r.GetResult(seKeyIndex) is not null && r.GetResult(naf) is null)
                {
                    r.AddError("--se-key-index needs --naf: the application whose key the card derives");
                }

                return;
            }

            if (r.GetResult(seKeyIndex) is not null || r.GetResult(trace) is not null)
            {
                r.AddError("--se-key-index and --trace need --card");
                return;
            }

            HexOption.Require(r, impi, k);
            if (r.GetResult(impi) is not null && r.GetResult(k) is not null && (r.GetResult(opc) is null) == (r.GetResult(op) is null))
            {
                r.AddError("give exactly one of --opc and --op (32 hex digits, 16 octets)");
            }
        });
        command.SetAction(async (result, cancel) =>
        {
            if (result.GetValue(card) is { } spec)
            {
                return await ObfCardCommand.BootstrapAsync(result, spec, result.GetValue(impi)!, new Uri(result.GetValue(server)!), result.GetValue(naf), UaOf(result, ua),
                    result.GetValue(seKeyIndex), result.GetValue(trace), () => CaOf(result, ca, dataDir), cancel);
            }

            var output = result.InvocationConfiguration.Output;
            var error = result.InvocationConfiguration.Error;
            var keyK = result.GetValue(k)!;
            var keyOpc = result.GetResult(opc) is not null ? result.GetValue(opc)! : ObfCommand.ComputeOpc(keyK, result.GetValue(op)!);
            var stateFile = result.GetValue(state)?.FullName;
            var address = new Uri(result.GetValue(server)!);
            using var milenage = new Milenage(keyK, keyOpc);
            CryptographicOperations.ZeroMemory(keyK);
            CryptographicOperations.ZeroMemory(keyOpc);
            var usim = new Usim(milenage, UsimStateFile.Load(stateFile)) { CommitState = s => UsimStateFile.Save(stateFile, s) };
            using var http = Http(address, address.Scheme == Uri.UriSchemeHttps ? CaOf(result, ca, dataDir) : null);
            GbaBootstrap bootstrap;
            try
            {
                bootstrap = await new GbaClient(http, usim).BootstrapAsync(result.GetValue(impi)!, cancel);
            }
            catch (HttpRequestException e)
            {
                await error.WriteLineAsync($"best obf bootstrap: --server {address}: {e.Message.ReplaceLineEndings(" ")}");
                return 1;
            }

            using (bootstrap)
            {
                if (bootstrap.Status != GbaBootstrapStatus.Bootstrapped)
                {
                    await error.WriteLineAsync($"best obf bootstrap: {bootstrap.Detail}");
                    return 1;
                }

                await output.WriteLineAsync($"B-TID: {bootstrap.BTid}");
                await output.WriteLineAsync(Invariant($"Lifetime: {bootstrap.Lifetime.UtcDateTime:yyyy-MM-dd'T'HH:mm:ss'Z'}"));
                if (bootstrap.Resynchronised)
                {
                    await output.WriteLineAsync("Resynchronised: yes");
                }

                if (result.GetValue(naf) is { } fqdn)
                {
                    var uaId = UaOf(result, ua);
                    using var ksNaf = new SecretBuffer(32);
                    bootstrap.DeriveKsNaf(result.GetValue(impi)!, fqdn, uaId, ksNaf.WritableSpan);
                    await output.WriteLineAsync($"Ks_NAF ({fqdn}, {Convert.ToHexStringLower(uaId)}): {Convert.ToHexStringLower(ksNaf.Span)}");
                }
            }

            return 0;
        });
        return command;
    }

    public static Command CreateKey()
    {
        var btid = new Option<string>("--btid") { Description = "the B-TID the device presented (base64(RAND)@domain)", HelpName = "B-TID" };
        btid.Validators.Add(r => { if (r.GetValueOrDefault<string>() is not { Length: > 2 and <= 255 } v || !v.Contains('@', StringComparison.Ordinal) || v.Any(char.IsWhiteSpace)) { r.AddError("--btid must be a B-TID, base64(RAND)@domain"); } });
        var naf = NafOption("the application asking: its certificate pki/naf-FQDN.crt (from 'best pki init --naf FQDN') is presented");
        var server = ServerOption("https://127.0.0.1:8444/", "the OBF server's key service (RPO, mutual TLS)");
        var certificate = new Option<FileInfo>("--certificate") { Description = "the application's certificate (PEM, with its key in a .key file beside it) [<data-dir>/pki/naf-FQDN.crt]", HelpName = "FILE" };
        var ua = UaOption();
        var (dataDir, ca) = CaOptions();
        var gbaU = new Option<bool>("--gba-u") { Description = "ask as a GBA_U aware application: also print Ks_int_NAF, the key the device's card keeps (its OBF secure-element key)" };
        var command = new Command("key", "An application fetches a device's key (Nbsp_GBA, TS 29.309) with its certificate: prints Ks_NAF, its expiry and the data classes\n" +
            "the device's rights grant it. Exit 1 if the key service refuses, with its cause (BTID_NOT_FOUND: the device must bootstrap again).");
        foreach (var option in new Option[] { btid, naf, server, certificate, ua, ca, dataDir, gbaU })
        {
            command.Options.Add(option);
        }

        command.Validators.Add(r => HexOption.Require(r, btid, naf));
        command.SetAction(async (result, cancel) =>
        {
            var output = result.InvocationConfiguration.Output;
            var error = result.InvocationConfiguration.Error;
            var fqdn = result.GetValue(naf)!;
            var pair = result.GetValue(certificate) is { } file
                ? new DevelopmentPki.Pair(file.FullName, Path.ChangeExtension(file.FullName, ".key"))
                : DevelopmentPki.Naf(result.GetValue(dataDir)!, fqdn);
            if (!File.Exists(pair.Certificate) || !File.Exists(pair.Key))
            {
                throw new CommandLineException($"--certificate: {pair.Certificate} and its .key are needed (best pki init --naf {fqdn})");
            }

            using var own = DevelopmentPki.LoadPair(pair);
            var address = new Uri(result.GetValue(server)!);
            using var client = new NafKeyClient(address, fqdn, own, CaOf(result, ca, dataDir));
            var uaId = UaOf(result, ua);
            NafKeyRetrieval retrieval;
            try
            {
                retrieval = await client.RetrieveAsync(result.GetValue(btid)!, uaId, result.GetValue(gbaU), cancel);
            }
            catch (HttpRequestException e)
            {
                await error.WriteLineAsync($"best obf key: --server {address}: {e.Message.ReplaceLineEndings(" ")}");
                return 1;
            }

            if (retrieval.Answer is not { } answer)
            {
                await error.WriteLineAsync(Invariant($"best obf key: refused ({retrieval.Status}{(retrieval.Cause is { } c ? " " + c : string.Empty)}): {retrieval.Detail}"));
                return 1;
            }

            await output.WriteLineAsync($"Ks_NAF ({fqdn}, {Convert.ToHexStringLower(uaId)}): {answer.MeKeyMaterial}");
            if (answer.UiccKeyMaterial is { } uicc)
            {
                await output.WriteLineAsync($"Ks_int_NAF (the card's key): {uicc}");
            }

            await output.WriteLineAsync(Invariant($"Expires: {answer.KeyExpiryTime.UtcDateTime:yyyy-MM-dd'T'HH:mm:ss'Z'}"));
            if (answer.Impi is { } impi)
            {
                await output.WriteLineAsync($"IMPI: {impi}");
            }

            var classes = answer.UssList?.SelectMany(u => u.Uss.Flags.Select(f => f.Flag)) ?? [];
            await output.WriteLineAsync($"Data classes: {string.Join(", ", classes)}");
            return 0;
        });
        return command;
    }

    /// <summary>--trace FILE: what the device received from its card and the server, for inspection.</summary>
    internal static Option<FileInfo> TraceOption() =>
        new("--trace") { Description = "append every APDU exchanged with the card and every answer of the server to FILE (hex), to see what entered the device", HelpName = "FILE" };

    internal static Option<string> ServerOption(string address, string description)
    {
        var server = new Option<string>("--server") { Description = description, HelpName = "URL", DefaultValueFactory = _ => address };
        server.Validators.Add(r =>
        {
            if (!Uri.TryCreate(r.GetValueOrDefault<string>(), UriKind.Absolute, out var uri) || uri.Scheme is not ("https" or "http") || uri.AbsolutePath != "/")
            {
                r.AddError("--server must be an https:// URL with no path, e.g. " + address);
            }
        });
        return server;
    }

    internal static Option<string> NafOption(string description)
    {
        var naf = new Option<string>("--naf") { Description = description, HelpName = "FQDN" };
        naf.Validators.Add(r => { if (!KeyService.IsFqdn(r.GetValueOrDefault<string>())) { r.AddError("--naf must be a DNS name, e.g. vtams.example.com"); } });
        return naf;
    }

    private static Option<byte[]> UaOption() =>
        HexOption.Create("--ua", 5, $"the Ua security protocol identifier of NAF_Id (TS 33.220 Annex H) [default {DefaultUa}: HTTP Digest over TLS]");

    /// <summary>The --ua given, or the default (an absent array option reads as empty, and a default value would print as 1|0|0|0|2 in the help).</summary>
    private static byte[] UaOf(ParseResult result, Option<byte[]> ua) => result.GetResult(ua) is not null ? result.GetValue(ua)! : Convert.FromHexString(DefaultUa);

    private static (Option<string> DataDir, Option<FileInfo> Ca) CaOptions()
    {
        var dataDir = SubscriberCommand.DataDirOption();
        dataDir.Description = "the data folder whose pki/ holds the development CA and certificates; $BEST_DATA_DIR when set";
        var ca = new Option<FileInfo>("--ca") { Description = "the CA the server's certificate chains to (PEM) [<data-dir>/pki/ca.crt]", HelpName = "FILE" };
        return (dataDir, ca);
    }

    internal static System.Security.Cryptography.X509Certificates.X509Certificate2 CaOf(ParseResult result, Option<FileInfo> ca, Option<string> dataDir)
    {
        var path = result.GetValue(ca)?.FullName ?? DevelopmentPki.Ca(result.GetValue(dataDir)!).Certificate;
        return File.Exists(path)
            ? DevelopmentPki.LoadCertificate(path)
            : throw new CommandLineException($"--ca: {path}: no such file (best pki init --naf FQDN writes it)");
    }

    internal static HttpClient Http(Uri address, System.Security.Cryptography.X509Certificates.X509Certificate2? ca, TextWriter? trace = null)
    {
        var handler = new SocketsHttpHandler();
        if (ca is not null)
        {
            DevelopmentPki.UseFor(handler.SslOptions, ca);
        }

        HttpMessageHandler pipeline = trace is null ? handler : new TracingHandler(trace) { InnerHandler = handler };
        return new HttpClient(pipeline) { BaseAddress = address, Timeout = TimeSpan.FromSeconds(30) };
    }

    /// <summary>Writes each answer the device received (status, headers, body in hex) to the trace.</summary>
    private sealed class TracingHandler(TextWriter trace) : DelegatingHandler
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var response = await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
            var body = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
            lock (trace)
            {
                trace.WriteLine(Invariant($"H: {(int)response.StatusCode} {string.Join("; ", response.Headers.Select(h => $"{h.Key}: {string.Join(",", h.Value)}"))} body {Convert.ToHexStringLower(body)}"));
                trace.Flush();
            }

            return response;
        }
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
