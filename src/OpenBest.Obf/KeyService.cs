using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json.Serialization;
using OpenBest.Crypto;
using OpenBest.Crypto.Kdf;
using OpenBest.Storage;

namespace OpenBest.Obf;

/// <summary>NAF_Id in Nbsp_GBA (TS 29.309): the NAF's FQDN and the Ua security protocol identifier (10 hex digits, TS 33.220 H.3).</summary>
/// <param name="NafFqdn">The NAF's FQDN.</param>
/// <param name="UaSecProtId">The Ua security protocol identifier, e.g. <c>0100000002</c>.</param>
public sealed record NafIdentifier(string NafFqdn, string UaSecProtId);

/// <summary>Nbsp_GBA BootstrappingInfoRequest (TS 29.309): what a NAF sends to get the key of a B-TID.</summary>
/// <param name="BtId">The B-TID the device presented.</param>
/// <param name="NafId">The NAF_Id.</param>
/// <param name="GbaUAware">Whether the NAF is GBA_U aware: the answer then also carries Ks_int_NAF as <c>uiccKeyMaterial</c>.</param>
/// <param name="GsIds">The GBA user security settings the NAF asks for (ignored: the granted data classes are listed).</param>
public sealed record BootstrappingInfoRequest(string? BtId, NafIdentifier? NafId, bool GbaUAware = false, IReadOnlyList<uint>? GsIds = null);

/// <summary>A user identity in a USS.</summary>
/// <param name="UeId">The identity (the IMPI, only where policy allows).</param>
public sealed record UeIdentity(string UeId);

/// <summary>A flag of a USS: here, a data class the application is granted for the device (resource rights, RPR).</summary>
/// <param name="Flag">The data class.</param>
public sealed record UssFlag(string Flag);

/// <summary>A GBA user security setting (TS 29.309 Uss), in the OBF's profile: one per granted data class.</summary>
/// <param name="GsId">Its number within the answer.</param>
/// <param name="GsType">Always <c>obf-data-class</c>.</param>
/// <param name="UeIds">The device's identity, only where policy releases it.</param>
/// <param name="NafGroup">The application's FQDN.</param>
/// <param name="Flags">The granted data class.</param>
public sealed record Uss(uint GsId, string GsType, [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<UeIdentity>? UeIds, string NafGroup, IReadOnlyList<UssFlag> Flags);

/// <summary>An item of <c>ussList</c>.</summary>
/// <param name="Uss">The setting.</param>
public sealed record UssItem(Uss Uss);

/// <summary>Nbsp_GBA BootstrappingInfoResponse (TS 29.309): Ks_NAF and what goes with it.</summary>
/// <param name="MeKeyMaterial">Ks_NAF (GBA_ME), 64 hex digits.</param>
/// <param name="KeyExpiryTime">When Ks (and so Ks_NAF) expires.</param>
/// <param name="BootstrappingInfoCreationTime">When the device bootstrapped.</param>
/// <param name="Impi">The device's IMPI, only where policy allows (null otherwise, and then absent).</param>
/// <param name="UssList">The data classes the application is granted for the device.</param>
/// <param name="GbaType">Always <c>3G_GBA</c>.</param>
/// <param name="UiccKeyMaterial">Ks_int_NAF = KDF(Ks, "gba-u", …) (TS 33.220 B.3), 64 hex digits, for a GBA_U aware NAF only:
/// the key a card that bootstrapped in the GBA context keeps (the OBF secure element's key from the bootstrap).</param>
public sealed record BootstrappingInfoResponse(
    string MeKeyMaterial,
    DateTimeOffset KeyExpiryTime,
    DateTimeOffset BootstrappingInfoCreationTime,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Impi,
    IReadOnlyList<UssItem> UssList,
    string GbaType = "3G_GBA",
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? UiccKeyMaterial = null)
{
    /// <summary>Never shows the key.</summary>
    public override string ToString() => $"BootstrappingInfoResponse(expires {KeyExpiryTime:O}, {UssList.Count} USS)";
}

/// <summary>The outcome of a key retrieval: 200 with the answer, or a problem (status, title, detail, cause).</summary>
/// <param name="Status">The HTTP status.</param>
/// <param name="Response">The answer of a 200.</param>
/// <param name="Title">The problem's title.</param>
/// <param name="Detail">The problem's detail.</param>
/// <param name="Cause">The problem's application cause (TS 29.309 style), e.g. <c>BTID_NOT_FOUND</c>.</param>
public sealed record KeyRetrieval(int Status, BootstrappingInfoResponse? Response, string? Title = null, string? Detail = null, string? Cause = null);

/// <summary>The bootstrappings of this server, kept in memory once made or read (Ks in pinned memory, zeroed when dropped), in front of the store.</summary>
public sealed class BootstrapCache(IObfStore store, int capacity = 1_000_000) : IDisposable
{
    private readonly ConcurrentDictionary<string, (BootstrapRecord Record, SecretBuffer Ks)> _entries = new(StringComparer.Ordinal);

    /// <summary>Keeps a new bootstrapping (its Ks is copied).</summary>
    public void Add(BootstrapRecord record, ReadOnlySpan<byte> ks)
    {
        ArgumentNullException.ThrowIfNull(record);
        if (_entries.Count >= capacity)
        {
            return; // the store has it
        }

        var copy = new SecretBuffer(ks);
        if (_entries.TryGetValue(record.Btid, out var old) && _entries.TryUpdate(record.Btid, (record, copy), old))
        {
            old.Ks.Dispose();
        }
        else if (!_entries.TryAdd(record.Btid, (record, copy)))
        {
            copy.Dispose();
        }
    }

    /// <summary>The bootstrapping of <paramref name="btid"/>, from memory or the store; null when unknown. The Ks is a copy the caller disposes.</summary>
    public (BootstrapRecord Record, SecretBuffer Ks)? Find(string btid)
    {
        if (_entries.TryGetValue(btid, out var entry))
        {
            return (entry.Record, new SecretBuffer(entry.Ks.Span));
        }

        if (store.Bootstrap(btid) is not { } stored)
        {
            return null;
        }

        Add(stored.Record, stored.Ks.Span);
        return stored;
    }

    /// <summary>Forgets bootstrappings that expired before <paramref name="now"/>; returns how many.</summary>
    public int Expire(DateTimeOffset now)
    {
        var removed = 0;
        foreach (var (btid, entry) in _entries)
        {
            if (entry.Record.Expires < now && _entries.TryRemove(btid, out var gone))
            {
                gone.Ks.Dispose();
                removed++;
            }
        }

        return removed;
    }

    /// <summary>Zeroes every Ks held.</summary>
    public void Dispose()
    {
        foreach (var entry in _entries.Values)
        {
            entry.Ks.Dispose();
        }

        _entries.Clear();
    }
}

/// <summary>
/// RPO, the application key service in the Nbsp_GBA form (TS 29.309 bootstrapping-info-retrieval): a NAF presents a
/// B-TID and its NAF_Id and gets Ks_NAF = KDF(Ks, "gba-me", RAND, IMPI, NAF_Id) (TS 33.220 B.3) — only for itself (its
/// client certificate's DNS name must be the NAF FQDN), only for a registered application, and only where the resource
/// rights (RPR) grant it at least one data class of that device; the USS list names exactly the granted classes. Every
/// release and every refusal is audited before the answer leaves.
/// </summary>
public sealed class KeyService(IObfStore store, BootstrapCache cache, ObfWriter writer, TimeProvider? time = null)
{
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private long _released;
    private long _refused;

    /// <summary>Keys released.</summary>
    public long Released => Interlocked.Read(ref _released);

    /// <summary>Retrievals refused (unknown B-TID, another NAF's key, no rights, bad request).</summary>
    public long Refused => Interlocked.Read(ref _refused);

    /// <summary>Answers one retrieval by the NAF whose certificate names <paramref name="callerDnsNames"/>.</summary>
    public async Task<KeyRetrieval> RetrieveAsync(BootstrappingInfoRequest? request, IReadOnlyCollection<string> callerDnsNames, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(callerDnsNames);
        if (request?.BtId is not { Length: > 0 and <= 255 } btid || request.NafId is not { } nafId || !IsFqdn(nafId.NafFqdn)
            || nafId.UaSecProtId is not { Length: 10 } uaHex || !uaHex.All(char.IsAsciiHexDigit))
        {
            Interlocked.Increment(ref _refused);
            return new KeyRetrieval(400, null, "malformed request", "btId, nafId.nafFqdn (a DNS name) and nafId.uaSecProtId (10 hex digits) are required", "MANDATORY_IE_INCORRECT");
        }

        var fqdn = nafId.NafFqdn.ToLowerInvariant();
        if (!callerDnsNames.Any(n => string.Equals(n, fqdn, StringComparison.OrdinalIgnoreCase)))
        {
            return await RefuseAsync(403, "not this NAF's key", "the client certificate does not name the NAF FQDN asked for: a NAF gets only its own keys", "NAF_MISMATCH", fqdn, btid, cancellationToken).ConfigureAwait(false);
        }

        if (store.Application(fqdn) is not { } application)
        {
            return await RefuseAsync(403, "not a registered application", $"{fqdn} is not registered with this server", "APPLICATION_NOT_REGISTERED", fqdn, btid, cancellationToken).ConfigureAwait(false);
        }

        var found = cache.Find(btid);
        if (found is not { } bootstrap || bootstrap.Record.Expires <= _time.GetUtcNow())
        {
            found?.Ks.Dispose();
            return await RefuseAsync(404, "unknown or expired B-TID", "make the device bootstrap again (TS 33.220 4.5.3)", "BTID_NOT_FOUND", fqdn, btid, cancellationToken).ConfigureAwait(false);
        }

        using var ks = bootstrap.Ks;
        var record = bootstrap.Record;
        var rights = store.Rights(record.Impi, fqdn);
        if (rights.Count == 0)
        {
            return await RefuseAsync(403, "no resource rights", "the device grants this application no data class", "NO_RESOURCE_RIGHTS", fqdn, btid, cancellationToken).ConfigureAwait(false);
        }

        var ksNaf = new byte[32];
        var ksIntNaf = new byte[32];
        try
        {
            var nafIdOctets = Gba.NafId(fqdn, Convert.FromHexString(uaHex));
            Gba.KsNaf(ks.Span[..16], ks.Span[16..], record.Rand, record.Impi, nafIdOctets, ksNaf);
            if (request.GbaUAware)
            {
                Gba.KsIntNaf(ks.Span[..16], ks.Span[16..], record.Rand, record.Impi, nafIdOctets, ksIntNaf);
            }

            var classes = string.Join(",", rights.Select(r => r.DataClass));
            await writer.AuditAsync(new ObfAuditRecord("key-released", fqdn, btid, $"ua {uaHex}; classes {classes}{(request.GbaUAware ? "; GBA_U (Ks_int_NAF too)" : string.Empty)}"), cancellationToken).ConfigureAwait(false);
            Interlocked.Increment(ref _released);
            var ueIds = application.ReleaseImpi ? new[] { new UeIdentity(record.Impi) } : null;
            var uss = rights.Select((r, i) => new UssItem(new Uss((uint)(i + 1), "obf-data-class", ueIds, fqdn, [new UssFlag(r.DataClass)]))).ToList();
            // The hex string is the answer's (System.Text.Json writes it out); the octets are zeroed here.
            return new KeyRetrieval(200, new BootstrappingInfoResponse(Convert.ToHexStringLower(ksNaf), record.Expires, record.Created, application.ReleaseImpi ? record.Impi : null, uss,
                UiccKeyMaterial: request.GbaUAware ? Convert.ToHexStringLower(ksIntNaf) : null));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(ksNaf);
            CryptographicOperations.ZeroMemory(ksIntNaf);
        }
    }

    private async Task<KeyRetrieval> RefuseAsync(int status, string title, string detail, string cause, string naf, string btid, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _refused);
        await writer.AuditAsync(new ObfAuditRecord("key-refused", naf, btid, cause), cancellationToken).ConfigureAwait(false);
        return new KeyRetrieval(status, null, title, detail, cause);
    }

    /// <summary>Whether <paramref name="name"/> is a DNS name (letters, digits, hyphens, dots; 1..253 characters).</summary>
    public static bool IsFqdn(string? name) =>
        name is { Length: >= 1 and <= 253 } && Uri.CheckHostName(name) == UriHostNameType.Dns && name.Split('.').All(l => l.Length is >= 1 and <= 63)
        && !name.Contains(' ', StringComparison.Ordinal) && string.Create(CultureInfo.InvariantCulture, $"{name}").All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.');
}
