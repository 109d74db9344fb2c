using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using OpenBest.EasInterface;
using OpenBest.Storage;

namespace OpenBest.Obf.Server;

/// <summary>A right as the API carries it.</summary>
/// <param name="Impi">The device's secure element.</param>
/// <param name="Naf">The application's FQDN.</param>
/// <param name="DataClass">The data class.</param>
public sealed record RightBody(string? Impi, string? Naf, string? DataClass);

/// <summary>A stored transfer as <c>GET /obf/v1/transfers/{impi}</c> answers.</summary>
/// <param name="Impi">The secure element.</param>
/// <param name="Direction"><c>out</c> (to another server) or <c>in</c> (from one).</param>
/// <param name="Peer">The other server.</param>
/// <param name="State">prepared, delivered, done (out) or received (in).</param>
/// <param name="Package">Going out: the package, keys wrapped to the new server.</param>
public sealed record TransferStateBody(string Impi, string Direction, string Peer, string State, TransferPackage? Package);

/// <summary>The new server's receipt for a transfer package: hex of its ECDSA P-256 signature (see <see cref="ProviderTransfer.Receipt"/>).</summary>
/// <param name="Signature">64 octets, hex.</param>
public sealed record TransferReceiptBody(string? Signature);

/// <summary>An application as the API carries it.</summary>
/// <param name="Naf">Its FQDN.</param>
/// <param name="Owner">The provider that owns it.</param>
/// <param name="ReleaseImpi">Whether key retrievals give it IMPIs.</param>
public sealed record ApplicationBody(string? Naf, string? Owner, bool ReleaseImpi = false);

/// <summary>A provider as the API carries it.</summary>
/// <param name="Name">Its name (its certificate's common name).</param>
/// <param name="Roles">mno, m2msp and/or asp, comma separated.</param>
public sealed record ProviderBody(string? Name, string? Roles);

/// <summary>A device as the API carries it.</summary>
/// <param name="DeviceId">Its IMEI or serial number.</param>
/// <param name="Impi">The secure element it carries.</param>
public sealed record DeviceBody(string? DeviceId, string? Impi);

/// <summary>
/// The endpoints of the RPO port (mutual TLS, certificates of the CA): the Nbsp_GBA key service (TS 29.309) and the
/// registry and resource-rights API (RPR) of the resource server role. The caller is its certificate: an application
/// (a NAF) by its DNS name, a provider or the operator (<c>obf-admin</c>) by its common name. Least privilege: a NAF gets
/// only its own keys and sees only its own rights; a provider manages only its own applications and the rights of its
/// own secure elements; only the operator registers providers. Every change is audited.
/// </summary>
public static class ObfApi
{
    /// <summary>The operator's identity (a certificate whose common name is this may manage everything).</summary>
    public const string Operator = "obf-admin";

    /// <summary>Maps the endpoints onto <paramref name="app"/>.</summary>
    public static void Map(IEndpointRouteBuilder app, ObfServer server)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(server);
        var store = server.Store;

        app.MapPost("/nbsp-gba/v1/bootstrapping-info-retrieval", async (HttpContext context, BootstrappingInfoRequest? request) =>
        {
            var caller = await CallerAsync(context).ConfigureAwait(false);
            var result = await server.Keys.RetrieveAsync(request, caller.DnsNames, context.RequestAborted).ConfigureAwait(false);
            return result.Status == 200
                ? Results.Json(result.Response, statusCode: 200)
                : Problem(result.Status, result.Title!, result.Detail, result.Cause);
        }).WithName("BootstrappingInfoRetrieval").WithSummary("Nbsp_GBA (TS 29.309): Ks_NAF of a B-TID for the calling NAF, where the resource rights allow it.");

        var api = app.MapGroup("/obf/v1").WithTags("registry and rights (RPR)");
        api.MapGet("/server-key", async (HttpContext context) =>
        {
            _ = await CallerAsync(context).ConfigureAwait(false);
            return Results.Ok(new ServerKeyBody(Convert.ToHexStringLower(server.ServerKey.PublicKey), server.UbAddress));
        }).WithName("ServerKey").WithSummary("This server's public key (cards are personalised with it; transfer records are signed with it) and its Ub endpoint.");
        api.MapPost("/transfers", async (HttpContext context, TransferPackage? package) =>
        {
            var caller = await CallerAsync(context).ConfigureAwait(false);
            if (!caller.IsOperator)
            {
                return Problem(403, "not allowed", "only the operator takes a secure element over from another server");
            }

            var (status, detail) = ProviderTransfer.Receive(store, server.ServerKey, package, caller.Name);
            return status is 200 or 201 ? Results.Json(new { impi = package!.Impi, state = detail }, statusCode: status) : Problem(status, "transfer refused", detail);
        }).WithName("ReceiveTransfer").WithSummary("Takes over a secure element from another authentication server: its keys wrapped to this server's key, the record its card will verify, its rights.");
        api.MapGet("/transfers/{impi}", async (HttpContext context, string impi) =>
        {
            var caller = await CallerAsync(context).ConfigureAwait(false);
            if (!caller.IsOperator)
            {
                return Problem(403, "not allowed", "only the operator reads a transfer");
            }

            return store.Transfer(impi) is { } transfer
                ? Results.Ok(new TransferStateBody(transfer.Impi, transfer.Direction, transfer.Peer, transfer.State, transfer.Direction == "out" ? ProviderTransfer.PackageOf(transfer) : null))
                : Problem(404, "no transfer", "no transfer of this secure element is stored here");
        }).WithName("GetTransfer").WithSummary("A secure element's transfer: its direction, peer and step; going out, the package (keys wrapped to the new server only), so the new server can resume an interrupted transfer.");
        api.MapPost("/transfers/{impi}/receipt", async (HttpContext context, string impi, TransferReceiptBody? body) =>
        {
            var caller = await CallerAsync(context).ConfigureAwait(false);
            if (!caller.IsOperator)
            {
                return Problem(403, "not allowed", "only the operator finishes a transfer");
            }

            var (status, detail) = ProviderTransfer.Confirm(store, impi, body?.Signature, caller.Name);
            return status == 200 ? Results.Ok(new { impi, state = detail }) : Problem(status, "receipt refused", detail);
        }).WithName("TransferReceipt").WithSummary("The new server's signed receipt for a package: the transfer here becomes done, whatever step it stopped at.");
        api.MapGet("/rights", async (HttpContext context, string? impi, string? naf) =>
        {
            var caller = await CallerAsync(context).ConfigureAwait(false);
            var rights = store.Rights(impi, naf).Where(r => caller.MaySee(store, r)).Select(r => new RightBody(r.Impi, r.NafFqdn, r.DataClass)).ToList();
            return Results.Ok(rights);
        }).WithName("ListRights").WithSummary("The rights the caller may see: an application its own, a provider those of its secure elements, the operator all.");
        api.MapPost("/rights", async (HttpContext context, RightBody body) =>
        {
            var caller = await CallerAsync(context).ConfigureAwait(false);
            if (Validate(body) is { } bad)
            {
                return bad;
            }

            if (!caller.MayManageRights(store, body.Impi!))
            {
                return Problem(403, "not allowed", "only the operator or the secure element's provider grants its rights");
            }

            var granted = store.Grant(new ResourceRight(body.Impi!, body.Naf!.ToLowerInvariant(), body.DataClass!, DateTimeOffset.UtcNow));
            store.Audit("right-granted", caller.Name, body.Impi!, $"{body.Naf} {body.DataClass}");
            return granted ? Results.Created("/obf/v1/rights", body) : Results.Ok(body);
        }).WithName("GrantRight");
        api.MapDelete("/rights", async (HttpContext context, string? impi, string? naf, string? dataClass) =>
        {
            var caller = await CallerAsync(context).ConfigureAwait(false);
            if (Validate(new RightBody(impi, naf, dataClass)) is { } bad)
            {
                return bad;
            }

            if (!caller.MayManageRights(store, impi!))
            {
                return Problem(403, "not allowed", "only the operator or the secure element's provider revokes its rights");
            }

            var revoked = store.Revoke(impi!, naf!.ToLowerInvariant(), dataClass!);
            store.Audit("right-revoked", caller.Name, impi!, $"{naf} {dataClass}");
            return revoked ? Results.NoContent() : Problem(404, "no such right");
        }).WithName("RevokeRight");

        api.MapGet("/applications", async (HttpContext context) =>
        {
            var caller = await CallerAsync(context).ConfigureAwait(false);
            return Results.Ok(store.Applications().Where(a => caller.IsOperator || a.Owner == caller.Name || caller.DnsNames.Contains(a.NafFqdn, StringComparer.OrdinalIgnoreCase))
                .Select(a => new ApplicationBody(a.NafFqdn, a.Owner, a.ReleaseImpi)).ToList());
        }).WithName("ListApplications");
        api.MapPost("/applications", async (HttpContext context, ApplicationBody body) =>
        {
            var caller = await CallerAsync(context).ConfigureAwait(false);
            if (!KeyService.IsFqdn(body.Naf))
            {
                return Problem(400, "naf must be a DNS name");
            }

            // A provider registers applications it owns; the operator registers any.
            var owner = caller.IsOperator ? body.Owner : caller.Name;
            if (!caller.IsOperator && (store.Providers().All(p => p.Name != caller.Name) || (body.Owner is not null && body.Owner != caller.Name)))
            {
                return Problem(403, "not allowed", "only the operator or a registered provider (for itself) registers applications");
            }

            try
            {
                store.AddApplication(new ObfApplication(body.Naf!.ToLowerInvariant(), owner, null, body.ReleaseImpi, DateTimeOffset.UtcNow));
            }
            catch (DuplicateRecordException e)
            {
                return Problem(409, e.Message);
            }

            store.Audit("app-added", caller.Name, body.Naf!.ToLowerInvariant(), owner ?? string.Empty);
            return Results.Created($"/obf/v1/applications/{body.Naf}", body with { Owner = owner });
        }).WithName("AddApplication");

        api.MapGet("/providers", async (HttpContext context) =>
        {
            await CallerAsync(context).ConfigureAwait(false);
            return Results.Ok(store.Providers().Select(p => new ProviderBody(p.Name, p.Roles)).ToList());
        }).WithName("ListProviders");
        api.MapPost("/providers", async (HttpContext context, ProviderBody body) =>
        {
            var caller = await CallerAsync(context).ConfigureAwait(false);
            if (!caller.IsOperator)
            {
                return Problem(403, "not allowed", "only the operator registers providers");
            }

            if (body.Name is not { Length: > 0 and <= 128 } name || Registry.ParseRoles(body.Roles) is not { } roles)
            {
                return Problem(400, "name (1..128 characters) and roles (mno, m2msp, asp) are required");
            }

            try
            {
                store.AddProvider(new ObfProvider(name, roles, null, DateTimeOffset.UtcNow));
            }
            catch (DuplicateRecordException e)
            {
                return Problem(409, e.Message);
            }

            store.Audit("provider-added", caller.Name, name, roles);
            return Results.Created($"/obf/v1/providers/{name}", body with { Roles = roles });
        }).WithName("AddProvider");

        api.MapGet("/secure-elements", async (HttpContext context) =>
        {
            var caller = await CallerAsync(context).ConfigureAwait(false);
            // Never a key: what the registry knows of each, and only the caller's own unless it is the operator.
            return Results.Ok(store.SecureElements().Where(e => caller.IsOperator || e.Provider == caller.Name)
                .Select(e => new { e.Impi, e.Iccid, e.Eid, e.Imsi, e.Provider, keysHeldHere = e.HasKeys }).ToList());
        }).WithName("ListSecureElements");

        api.MapPost("/devices", async (HttpContext context, DeviceBody body) =>
        {
            var caller = await CallerAsync(context).ConfigureAwait(false);
            if (body.DeviceId is not { Length: >= 1 and <= 64 } id || body.Impi is null || store.SecureElement(body.Impi) is not { } element)
            {
                return Problem(400, "deviceId (1..64 characters) and the impi of a registered secure element are required");
            }

            if (!caller.IsOperator && element.Provider != caller.Name)
            {
                return Problem(403, "not allowed", "only the operator or the secure element's provider binds devices to it");
            }

            try
            {
                store.AddDevice(new ObfDevice(id, element.Impi, DateTimeOffset.UtcNow));
            }
            catch (DuplicateRecordException e)
            {
                return Problem(409, e.Message);
            }

            store.Audit("device-added", caller.Name, id, element.Impi);
            return Results.Created($"/obf/v1/devices/{id}", body);
        }).WithName("AddDevice");
    }

    private static IResult? Validate(RightBody body) =>
        body.Impi is not { Length: > 0 and <= 255 } || !KeyService.IsFqdn(body.Naf) || !Registry.IsDataClass(body.DataClass)
            ? Problem(400, "impi, naf (a DNS name) and dataClass (1..64 letters, digits, - _ .) are required")
            : null;

    private static IResult Problem(int status, string title, string? detail = null, string? cause = null)
    {
        var extensions = cause is null ? null : new Dictionary<string, object?> { ["cause"] = cause };
        return Results.Problem(title: title, detail: detail, statusCode: status, extensions: extensions);
    }

    private static async Task<Caller> CallerAsync(HttpContext context)
    {
        var certificate = await context.Connection.GetClientCertificateAsync(context.RequestAborted).ConfigureAwait(false)
            ?? throw new BadHttpRequestException("a client certificate is required", 401);
        // Read once per certificate (a TLS connection keeps its certificate object for all its requests).
        return Callers.GetValue(certificate, c => new Caller(DevelopmentPki.IdentityOf(c), DevelopmentPki.DnsNamesOf(c)));
    }

    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<X509Certificate2, Caller> Callers = [];

    /// <summary>Who calls: its certificate's common name and DNS names.</summary>
    private sealed record Caller(string Name, IReadOnlyList<string> DnsNames)
    {
        public bool IsOperator => Name == Operator;

        public bool MaySee(IObfStore store, ResourceRight right) =>
            IsOperator || DnsNames.Contains(right.NafFqdn, StringComparer.OrdinalIgnoreCase) || store.SecureElement(right.Impi)?.Provider is { } provider && provider == Name;

        public bool MayManageRights(IObfStore store, string impi) => IsOperator || store.SecureElement(impi)?.Provider is { } provider && provider == Name;
    }
}

/// <summary>Rules of the registry shared by the API and the command line.</summary>
public static class Registry
{
    /// <summary>The roles a provider may have (Y.OBF_trust 6.2 e).</summary>
    public static readonly IReadOnlyList<string> Roles = ["mno", "m2msp", "asp"];

    /// <summary>The roles in canonical form (comma separated, known ones, no repeats), or null when one is unknown or none given.</summary>
    public static string? ParseRoles(string? roles)
    {
        var parts = (roles ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(r => r.ToLowerInvariant()).Distinct().ToList();
        return parts.Count > 0 && parts.All(Roles.Contains) ? string.Join(",", parts) : null;
    }

    /// <summary>Whether <paramref name="name"/> can name a data class: 1..64 letters, digits, '-', '_' or '.'.</summary>
    public static bool IsDataClass(string? name) => name is { Length: >= 1 and <= 64 } && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.');

    /// <summary>Whether <paramref name="text"/> is an ICCID: 18..22 decimal digits (ITU-T E.118; some cards end in a letter F, not accepted here).</summary>
    public static bool IsIccid(string? text) => text is { Length: >= 18 and <= 22 } && text.All(char.IsAsciiDigit);

    /// <summary>Whether <paramref name="text"/> is an EID: 32 decimal digits (GSMA SGP.02).</summary>
    public static bool IsEid(string? text) => text is { Length: 32 } && text.All(char.IsAsciiDigit);

    /// <summary>Whether <paramref name="text"/> can be an IMPI: a NAI user@realm of 3..255 printable ASCII characters without spaces.</summary>
    public static bool IsImpi(string? text) => text is { Length: >= 3 and <= 255 } && text.All(c => c > 0x20 && c < 0x7F) && text.IndexOf('@', StringComparison.Ordinal) is > 0 && text[^1] != '@';
}
