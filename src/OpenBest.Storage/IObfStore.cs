using OpenBest.Crypto;

namespace OpenBest.Storage;

/// <summary>A provider of the Open Bootstrap Framework (ITU-T Y.OBF_trust 6.3 a): an MNO, an M2M service provider or an application service provider.</summary>
/// <param name="Name">Its name, unique (the common name of its certificate when it has one).</param>
/// <param name="Roles">Its roles, comma separated: <c>mno</c>, <c>m2msp</c>, <c>asp</c>.</param>
/// <param name="CertificatePem">Its certificate (PEM, public), or null.</param>
/// <param name="Created">When it was registered.</param>
public sealed record ObfProvider(string Name, string Roles, string? CertificatePem, DateTimeOffset Created);

/// <summary>A secure element to register (Y.OBF_trust 6.3 b): K and OPc in clear only in memory, on their way to being sealed.</summary>
/// <param name="Impi">The IMPI: the identity bootstrapping uses, and the key of the record.</param>
/// <param name="K">K.</param>
/// <param name="Opc">OPc (computed from OP by the caller when OP was given).</param>
/// <param name="Iccid">The ICCID, or null (the primary identifier of a secure element that is not a USIM; appendix 2.1).</param>
/// <param name="Eid">The eUICC's EID, or null.</param>
/// <param name="Imsi">The IMSI, or null (needed when vectors come from the operator's HLR).</param>
/// <param name="Provider">The provider that registered it, or null.</param>
/// <param name="Amf">The AMF of its vectors.</param>
public sealed record NewSecureElement(string Impi, byte[] K, byte[] Opc, string? Iccid = null, string? Eid = null, string? Imsi = null, string? Provider = null, ushort Amf = 0x8000)
{
    /// <summary>Never shows K or OPc.</summary>
    public override string ToString() => $"NewSecureElement({Impi})";
}

/// <summary>A secure element as listed: never its keys.</summary>
/// <param name="Impi">The IMPI.</param>
/// <param name="Iccid">The ICCID, or null.</param>
/// <param name="Eid">The EID, or null.</param>
/// <param name="Imsi">The IMSI, or null.</param>
/// <param name="Provider">The provider, or null.</param>
/// <param name="HasKeys">Whether this server holds its K and OPc (false when its vectors come from the operator's HLR).</param>
/// <param name="SeqHe">SEQ_HE of the local AuC.</param>
public sealed record SecureElementInfo(string Impi, string? Iccid, string? Eid, string? Imsi, string? Provider, bool HasKeys, ulong SeqHe);

/// <summary>A device (IMEI or serial number) bound to the secure element it carries.</summary>
/// <param name="DeviceId">The IMEI or serial number.</param>
/// <param name="Impi">The secure element's IMPI.</param>
/// <param name="Created">When it was registered.</param>
public sealed record ObfDevice(string DeviceId, string Impi, DateTimeOffset Created);

/// <summary>An application (a NAF): its FQDN, its owner, its certificate, and whether it may learn IMPIs.</summary>
/// <param name="NafFqdn">The NAF's FQDN (its certificate's DNS name must be this).</param>
/// <param name="Owner">The provider that owns it, or null.</param>
/// <param name="CertificatePem">Its certificate (PEM), or null (any certificate of the CA naming the FQDN).</param>
/// <param name="ReleaseImpi">Whether key retrievals give it the device's IMPI (off by default: privacy).</param>
/// <param name="Created">When it was registered.</param>
public sealed record ObfApplication(string NafFqdn, string? Owner, string? CertificatePem, bool ReleaseImpi, DateTimeOffset Created);

/// <summary>A resource right (RPR): the application may receive keys for the device, for this data class.</summary>
/// <param name="Impi">The device's secure element.</param>
/// <param name="NafFqdn">The application.</param>
/// <param name="DataClass">The data class, e.g. "alarm", "position".</param>
/// <param name="Granted">When it was granted.</param>
public sealed record ResourceRight(string Impi, string NafFqdn, string DataClass, DateTimeOffset Granted);

/// <summary>A bootstrapping (RPB = Ub) that succeeded: the B-TID, its device, the RAND and the lifetime. Ks is kept sealed beside it.</summary>
/// <param name="Btid">The B-TID: base64(RAND)@server domain.</param>
/// <param name="Impi">The IMPI that bootstrapped.</param>
/// <param name="Rand">RAND of the AKA run.</param>
/// <param name="Created">When it was made.</param>
/// <param name="Expires">When Ks expires (local policy).</param>
public sealed record BootstrapRecord(string Btid, string Impi, byte[] Rand, DateTimeOffset Created, DateTimeOffset Expires);

/// <summary>An entry of the OBF audit log: who did what to which record (never a key).</summary>
/// <param name="Seq">Its sequence number.</param>
/// <param name="At">When.</param>
/// <param name="Event">What, e.g. <c>se-added</c>, <c>key-released</c>, <c>right-granted</c>.</param>
/// <param name="Actor">Who: <c>cli</c>, a provider, an application's FQDN.</param>
/// <param name="Subject">The record: an IMPI, a B-TID, a NAF FQDN.</param>
/// <param name="Detail">More, or empty.</param>
public sealed record ObfAuditEntry(long Seq, DateTimeOffset At, string Event, string Actor, string Subject, string Detail);

/// <summary>The contexts the OBF's secrets are sealed under (AES-256-GCM with the master key): a value moved to another row does not decrypt.</summary>
public static class ObfSealing
{
    /// <summary>The context of the Ks of a bootstrapping: bound to its B-TID.</summary>
    public static string KsContext(string btid) => $"openbest/obf/ks/v1|{btid}";

    /// <summary>The context of an imported transport key: bound to its identifier.</summary>
    public static string TransportContext(string id) => $"openbest/obf/transport-key/v1|{id}";
}

/// <summary>An audit entry to write.</summary>
/// <param name="Event">What.</param>
/// <param name="Actor">Who.</param>
/// <param name="Subject">The record.</param>
/// <param name="Detail">More, or empty.</param>
public sealed record ObfAuditRecord(string Event, string Actor, string Subject, string Detail = "");

/// <summary>What one group commit of the OBF server writes in one transaction: new bootstrappings (with their Ks) and audit entries.</summary>
public sealed class ObfBatch
{
    /// <summary>Bootstrappings with their Ks (in clear until sealed by the store; the writer zeroes them after the commit).</summary>
    public List<(BootstrapRecord Record, byte[] Ks)> Bootstraps { get; } = [];

    /// <summary>Audit entries.</summary>
    public List<ObfAuditRecord> Audit { get; } = [];

    /// <summary>Whether there is nothing to write.</summary>
    public bool IsEmpty => Bootstraps.Count == 0 && Audit.Count == 0;
}

/// <summary>
/// A transfer of a secure element between authentication servers (Y.OBF_trust 6.2 c, d, f; 7.5 b): on the old server
/// (<c>out</c>) its state goes prepared → delivered → done; on the new one (<c>in</c>) it is received.
/// </summary>
/// <param name="Impi">The secure element.</param>
/// <param name="Direction"><c>out</c> (this server hands it over) or <c>in</c> (this server took it over).</param>
/// <param name="Peer">The other server's Ub endpoint.</param>
/// <param name="State">prepared, delivered or done (out); received (in).</param>
/// <param name="Package">The transfer package (JSON: the signed record and the keys wrapped to the new server; no clear key).</param>
/// <param name="Updated">When the state last changed.</param>
public sealed record ObfTransfer(string Impi, string Direction, string Peer, string State, string Package, DateTimeOffset Updated);

/// <summary>Thrown when a registry record exists already.</summary>
public sealed class DuplicateRecordException(string what) : Exception($"{what} exists already.");

/// <summary>
/// The store of an Open Bootstrap Framework authentication server: the registry (providers, secure elements, devices,
/// applications), the resource rights, the bootstrappings (Ks sealed under the master key, bound to its B-TID), the
/// imported transport keys and the audit log. As an <see cref="ISubscriberStore"/> it is the local AuC of its secure
/// elements, keyed by IMPI: K and OPc sealed, SEQ_HE reserved in blocks.
/// </summary>
public interface IObfStore : ISubscriberStore
{
    /// <summary>Registers secure elements all or nothing.</summary>
    /// <exception cref="DuplicateSubscriberException">An IMPI exists already (nothing was added).</exception>
    /// <exception cref="DuplicateRecordException">An ICCID or EID is taken already (nothing was added).</exception>
    void AddSecureElements(IReadOnlyList<NewSecureElement> elements);

    /// <summary>A secure element by IMPI, or null.</summary>
    SecureElementInfo? SecureElement(string impi);

    /// <summary>A secure element by ICCID or by EID (whichever <paramref name="iccidOrEid"/> is), or null.</summary>
    SecureElementInfo? SecureElementByCardId(string iccidOrEid);

    /// <summary>Every secure element, by IMPI.</summary>
    IReadOnlyList<SecureElementInfo> SecureElements();

    /// <summary>Registers a provider.</summary>
    /// <exception cref="DuplicateRecordException">Its name is taken.</exception>
    void AddProvider(ObfProvider provider);

    /// <summary>Every provider, by name.</summary>
    IReadOnlyList<ObfProvider> Providers();

    /// <summary>Registers a device.</summary>
    /// <exception cref="DuplicateRecordException">Its id is taken.</exception>
    void AddDevice(ObfDevice device);

    /// <summary>Every device, by id.</summary>
    IReadOnlyList<ObfDevice> Devices();

    /// <summary>Registers an application.</summary>
    /// <exception cref="DuplicateRecordException">Its FQDN is taken.</exception>
    void AddApplication(ObfApplication application);

    /// <summary>An application by FQDN, or null.</summary>
    ObfApplication? Application(string nafFqdn);

    /// <summary>Every application, by FQDN.</summary>
    IReadOnlyList<ObfApplication> Applications();

    /// <summary>
    /// Writes (inserts or replaces) the transfer of <paramref name="transfer"/>'s secure element. An outgoing transfer that
    /// is done also forgets the element's K and OPc here: the keys moved to the new server.
    /// </summary>
    void SaveTransfer(ObfTransfer transfer);

    /// <summary>The transfer of <paramref name="impi"/>, or null.</summary>
    ObfTransfer? Transfer(string impi);

    /// <summary>Removes a registry record of <paramref name="kind"/> (<c>provider</c>, <c>device</c>, <c>app</c>); false when there was none. Removing an application revokes its rights.</summary>
    bool RemoveRecord(string kind, string id);

    /// <summary>Grants a right; false when it was granted already.</summary>
    bool Grant(ResourceRight right);

    /// <summary>Revokes a right; false when there was none.</summary>
    bool Revoke(string impi, string nafFqdn, string dataClass);

    /// <summary>The rights, optionally of one device and/or one application, ordered.</summary>
    IReadOnlyList<ResourceRight> Rights(string? impi = null, string? nafFqdn = null);

    /// <summary>Stores bootstrappings with their Ks (sealed, bound to the B-TID), all in one transaction (group commit).</summary>
    void SaveBootstraps(IReadOnlyList<(BootstrapRecord Record, byte[] Ks)> bootstraps);

    /// <summary>Writes a group commit: its bootstrappings and its audit entries, in one transaction.</summary>
    void Commit(ObfBatch batch);

    /// <summary>A bootstrapping by B-TID with its Ks (dispose it to zero it), or null.</summary>
    (BootstrapRecord Record, SecretBuffer Ks)? Bootstrap(string btid);

    /// <summary>Deletes bootstrappings that expired before <paramref name="now"/>; returns how many.</summary>
    int PurgeBootstraps(DateTimeOffset now);

    /// <summary>Keeps an imported transport key (sealed under the master key) under its identifier.</summary>
    void SaveTransportKey(string id, ReadOnlySpan<byte> key);

    /// <summary>A transport key by identifier (dispose to zero it), or null.</summary>
    SecretBuffer? TransportKey(string id);

    /// <summary>Appends to the audit log.</summary>
    void Audit(string eventName, string actor, string subject, string detail = "");

    /// <summary>The newest audit entries, newest first.</summary>
    IReadOnlyList<ObfAuditEntry> AuditLog(int limit);
}
