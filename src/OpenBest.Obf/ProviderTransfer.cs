using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using OpenBest.Card;
using OpenBest.Crypto;
using OpenBest.Storage;

namespace OpenBest.Obf;

/// <summary>A device's right as a transfer package carries it.</summary>
/// <param name="Naf">The application's FQDN.</param>
/// <param name="DataClass">The data class.</param>
public sealed record TransferRight(string Naf, string DataClass);

/// <summary>
/// What the old authentication server hands the new one for one secure element (Y.OBF_trust 6.2 c, d, f; 7.5 b; 8.2;
/// format in docs/protocol.md "Transfer of the authentication provider"): the record the card will verify, and K ‖ OPc
/// wrapped to the new server (ECDH-ES on P-256 with an ephemeral key, HKDF-SHA-256, RFC 3394 AES-256 key wrap). No key
/// is in clear; only the holder of the new server's private key unwraps it.
/// </summary>
/// <param name="Impi">The secure element.</param>
/// <param name="Iccid">Its ICCID (the identity the record names).</param>
/// <param name="Imsi">Its IMSI, when it has one.</param>
/// <param name="Amf">The AMF of its vectors.</param>
/// <param name="From">The old server's Ub endpoint.</param>
/// <param name="Record">The <see cref="ServerKeyRecord"/>, hex, signed by the old server.</param>
/// <param name="EphemeralKey">The ephemeral P-256 public key, hex (65 octets).</param>
/// <param name="WrappedKeys">K ‖ OPc wrapped, hex (40 octets).</param>
/// <param name="Rights">The device's resource rights.</param>
public sealed record TransferPackage(string Impi, string Iccid, string? Imsi, ushort Amf, string From, string Record, string EphemeralKey, string WrappedKeys, IReadOnlyList<TransferRight> Rights)
{
    /// <summary>Never shows the wrapped keys.</summary>
    public override string ToString() => $"TransferPackage({Impi} from {From})";
}

/// <summary>An authentication server's public key and where devices reach it, as <c>GET /obf/v1/server-key</c> answers.</summary>
/// <param name="PublicKey">The uncompressed P-256 point, hex.</param>
/// <param name="Ub">The Ub endpoint.</param>
public sealed record ServerKeyBody(string PublicKey, string Ub);

/// <summary>
/// The server's own P-256 key pair: it signs transfer records (ECDSA) and receives transferred keys (ECDH). Kept sealed
/// under the data folder's master key in the store, made on first use.
/// </summary>
public sealed class ObfServerKey : IDisposable
{
    private const string StoreId = "obf-server-key";
    private readonly ECDsa _signer;
    private readonly ECDiffieHellman _agreement;

    private ObfServerKey(ECParameters parameters)
    {
        _signer = ECDsa.Create(parameters);
        _agreement = ECDiffieHellman.Create(parameters);
        PublicKey = ServerKeyRecord.PublicKey(_signer);
        CryptographicOperations.ZeroMemory(parameters.D);
    }

    /// <summary>The uncompressed public point (65 octets): what cards are personalised with.</summary>
    public byte[] PublicKey { get; }

    /// <summary>The signing key.</summary>
    public ECDsa Signer => _signer;

    /// <summary>A server key from its private scalar (32 octets): for fixed inputs such as interop vectors.</summary>
    public static ObfServerKey FromPrivateKey(ReadOnlySpan<byte> d) => FromPrivate(d);

    /// <summary>Reads the server's key, or makes and stores one.</summary>
    public static ObfServerKey LoadOrCreate(IObfStore store)
    {
        ArgumentNullException.ThrowIfNull(store);
        using var existing = store.TransportKey(StoreId);
        if (existing is not null)
        {
            return FromPrivate(existing.Span);
        }

        using var fresh = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var d = fresh.ExportParameters(true).D!;
        try
        {
            store.SaveTransportKey(StoreId, d);
            store.Audit("server-key-created", "obf", StoreId);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(d);
        }

        using var saved = store.TransportKey(StoreId)!;
        return FromPrivate(saved.Span);
    }

    /// <summary>K ‖ OPc unwrapped from a package made for this server; null when it was not made for it.</summary>
    public SecretBuffer? Unwrap(TransferPackage package)
    {
        ArgumentNullException.ThrowIfNull(package);
        if (!TryHex(package.EphemeralKey, 65, out var ephemeral) || ephemeral[0] != 0x04 || !TryHex(package.WrappedKeys, 40, out var wrapped))
        {
            return null;
        }

        try
        {
            using var peer = ECDiffieHellman.Create(new ECParameters { Curve = ECCurve.NamedCurves.nistP256, Q = new ECPoint { X = ephemeral[1..33], Y = ephemeral[33..] } });
            var kek = Kek(_agreement.DeriveRawSecretAgreement(peer.PublicKey), package.Impi);
            try
            {
                using var wrap = new AesKeyWrap(kek);
                var keys = new SecretBuffer(32);
                if (wrap.TryUnwrap(wrapped, keys.WritableSpan, out var written) && written == 32)
                {
                    return keys;
                }

                keys.Dispose();
                return null;
            }
            finally
            {
                CryptographicOperations.ZeroMemory(kek);
            }
        }
        catch (CryptographicException)
        {
            return null; // not a point on the curve
        }
    }

    /// <summary>Wraps K ‖ OPc to <paramref name="recipient"/> (ECDH-ES): the ephemeral public key and the wrapped keys.</summary>
    public static (byte[] Ephemeral, byte[] Wrapped) WrapTo(ReadOnlySpan<byte> recipient, string impi, ReadOnlySpan<byte> k, ReadOnlySpan<byte> opc)
    {
        using var ephemeral = ECDiffieHellman.Create(ECCurve.NamedCurves.nistP256);
        return WrapTo(recipient, impi, k, opc, ephemeral);
    }

    /// <summary>As <see cref="WrapTo(ReadOnlySpan{byte}, string, ReadOnlySpan{byte}, ReadOnlySpan{byte})"/> with a given ephemeral key (fixed inputs for interop vectors).</summary>
    public static (byte[] Ephemeral, byte[] Wrapped) WrapTo(ReadOnlySpan<byte> recipient, string impi, ReadOnlySpan<byte> k, ReadOnlySpan<byte> opc, ECDiffieHellman ephemeral)
    {
        ArgumentNullException.ThrowIfNull(ephemeral);
        using var peer = ECDiffieHellman.Create(new ECParameters { Curve = ECCurve.NamedCurves.nistP256, Q = new ECPoint { X = recipient.Slice(1, 32).ToArray(), Y = recipient.Slice(33, 32).ToArray() } });
        var kek = Kek(ephemeral.DeriveRawSecretAgreement(peer.PublicKey), impi);
        Span<byte> keys = stackalloc byte[32];
        try
        {
            k.CopyTo(keys);
            opc.CopyTo(keys[16..]);
            using var wrap = new AesKeyWrap(kek);
            var wrapped = new byte[40];
            wrap.Wrap(keys, wrapped);
            var q = ephemeral.ExportParameters(false).Q;
            return ([0x04, .. q.X!, .. q.Y!], wrapped);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(keys);
            CryptographicOperations.ZeroMemory(kek);
        }
    }

    /// <summary>Zeroes the key.</summary>
    public void Dispose()
    {
        _signer.Dispose();
        _agreement.Dispose();
    }

    private static ObfServerKey FromPrivate(ReadOnlySpan<byte> d)
    {
        var scalar = d.ToArray();
        try
        {
            using var probe = ECDsa.Create(new ECParameters { Curve = ECCurve.NamedCurves.nistP256, D = scalar });
            return new ObfServerKey(probe.ExportParameters(true));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(scalar);
        }
    }

    /// <summary>KEK = HKDF-SHA-256(Z, salt = none, info = "OpenBest OBF transfer v1|" IMPI), 32 octets.</summary>
    private static byte[] Kek(byte[] z, string impi)
    {
        try
        {
            return HKDF.DeriveKey(HashAlgorithmName.SHA256, z, 32, [], Encoding.UTF8.GetBytes("OpenBest OBF transfer v1|" + impi));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(z);
        }
    }

    internal static bool TryHex(string? hex, int octets, out byte[] value)
    {
        value = [];
        if (hex is null || hex.Length != octets * 2 || !hex.All(char.IsAsciiHexDigit))
        {
            return false;
        }

        value = Convert.FromHexString(hex);
        return true;
    }
}

/// <summary>
/// The two ends of a transfer of a secure element to another authentication server. The old server prepares a package
/// once (kept, so a resumed transfer sends the same one), delivers it, then marks the element done and from then on
/// answers its bootstrap attempts with the record; the new server receives a package idempotently. Until the new server
/// holds the keys the old one serves the device, so a device always has a working provider. Every step is audited.
/// </summary>
public static class ProviderTransfer
{
    /// <summary>States of an outgoing transfer.</summary>
    public const string Prepared = "prepared", Delivered = "delivered", Done = "done", Received = "received";

    /// <summary>The package a stored transfer carries (null when it is not one).</summary>
    public static TransferPackage? PackageOf(ObfTransfer transfer)
    {
        ArgumentNullException.ThrowIfNull(transfer);
        return JsonSerializer.Deserialize<TransferPackage>(transfer.Package, JsonSerializerOptions.Web);
    }

    /// <summary>The old server: the package for <paramref name="impi"/> to the server with <paramref name="target"/>'s key and Ub (made once, then reused).</summary>
    /// <exception cref="InvalidOperationException">The element is unknown, has no keys here, has no ICCID, or goes elsewhere already.</exception>
    public static (ObfTransfer Transfer, TransferPackage Package) Prepare(IObfStore store, ObfServerKey own, string ownUb, string impi, ServerKeyBody target, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(own);
        ArgumentNullException.ThrowIfNull(target);
        if (store.Transfer(impi) is { Direction: "out" } existing)
        {
            if (existing.Peer != target.Ub)
            {
                throw new InvalidOperationException($"{impi} is being transferred to {existing.Peer} already.");
            }

            return (existing, PackageOf(existing)!);
        }

        var element = store.SecureElement(impi) ?? throw new InvalidOperationException($"{impi} is not a secure element of this server.");
        if (element.Iccid is not { } iccid)
        {
            throw new InvalidOperationException($"{impi} has no ICCID: a card verifies the transfer record by its ICCID.");
        }

        if (!ObfServerKey.TryHex(target.PublicKey, 65, out var targetKey) || targetKey[0] != 0x04)
        {
            throw new InvalidOperationException("the new server's key is not an uncompressed P-256 point.");
        }

        using var keys = store.GetSecrets(impi) ?? throw new InvalidOperationException($"{impi} has no K and OPc here (its vectors come from an HLR): transfer it at the HLR's operator.");
        var now = (time ?? TimeProvider.System).GetUtcNow();
        // The sequence must exceed the card's: the time in milliseconds, and above the record that brought the card here
        // (whose server's clock may be ahead of this one).
        var sequence = (ulong)now.ToUnixTimeMilliseconds();
        if (store.Transfer(impi) is { Direction: "in" } arrival && PackageOf(arrival) is { } previous
            && ObfServerKey.TryHex(previous.Record, previous.Record.Length / 2, out var previousRecord) && ServerKeyRecord.TryParse(previousRecord, out var previousSequence, out _, out _, out _, out _))
        {
            sequence = Math.Max(sequence, previousSequence + 1);
        }

        var record = ServerKeyRecord.Create(own.Signer, sequence, target.Ub, iccid, targetKey);
        var (ephemeral, wrapped) = ObfServerKey.WrapTo(targetKey, impi, keys.K, keys.Opc);
        var package = new TransferPackage(impi, iccid, element.Imsi, keys.Amf, ownUb, Convert.ToHexStringLower(record), Convert.ToHexStringLower(ephemeral), Convert.ToHexStringLower(wrapped),
            [.. store.Rights(impi).Select(r => new TransferRight(r.NafFqdn, r.DataClass))]);
        var transfer = new ObfTransfer(impi, "out", target.Ub, Prepared, JsonSerializer.Serialize(package, JsonSerializerOptions.Web), now);
        store.SaveTransfer(transfer);
        store.Audit("transfer-prepared", "obf", impi, $"to {target.Ub}");
        return (transfer, package);
    }

    /// <summary>The old server: records a step (delivered, done) and audits it.</summary>
    public static ObfTransfer Advance(IObfStore store, ObfTransfer transfer, string state, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(transfer);
        var next = transfer with { State = state, Updated = (time ?? TimeProvider.System).GetUtcNow() };
        store.SaveTransfer(next);
        store.Audit("transfer-" + state, "obf", transfer.Impi, $"to {transfer.Peer}");
        return next;
    }

    /// <summary>
    /// The new server: its receipt for a package it took, an ECDSA P-256 signature (IEEE P1363, 64 octets) with its server key
    /// over <c>"OpenBest OBF transfer receipt v1" ‖ 0x00 ‖ record</c>. The old server checks it with the key its own record
    /// names, so only the holder of the new server's private key, which unwrapped K and OPc, can finish a transfer.
    /// </summary>
    public static byte[] Receipt(ObfServerKey own, TransferPackage package)
    {
        ArgumentNullException.ThrowIfNull(own);
        ArgumentNullException.ThrowIfNull(package);
        var record = Convert.FromHexString(package.Record);
        return own.Signer.SignData(ReceiptMessage(record), HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
    }

    /// <summary>
    /// The old server: a receipt from the new one (<see cref="Receipt"/>) finishes an outgoing transfer in any step: prepared
    /// and delivered become done, each step audited. Returns 200 with the state, 404 when no transfer of the element goes
    /// out, 403 when the signature is not the new server's.
    /// </summary>
    public static (int Status, string Detail) Confirm(IObfStore store, string impi, string? signatureHex, string actor, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        if (store.Transfer(impi) is not { Direction: "out" } transfer || PackageOf(transfer) is not { } package
            || !ObfServerKey.TryHex(package.Record, package.Record.Length / 2, out var record) || !ServerKeyRecord.TryParse(record, out _, out _, out _, out var newKey, out _))
        {
            return (404, "no transfer of this secure element goes out from here");
        }

        if (!ObfServerKey.TryHex(signatureHex, 64, out var signature) || !VerifyReceipt(newKey, record, signature))
        {
            return (403, "the receipt is not signed by the key the transfer record names");
        }

        if (transfer.State == Prepared)
        {
            transfer = Advance(store, transfer, Delivered, time);
        }

        if (transfer.State == Delivered)
        {
            store.Audit("transfer-receipt", actor, impi, $"signed by {transfer.Peer}");
            transfer = Advance(store, transfer, Done, time);
        }

        return (200, transfer.State);
    }

    private static bool VerifyReceipt(byte[] publicKey, byte[] record, byte[] signature)
    {
        try
        {
            using var key = ECDsa.Create(new ECParameters { Curve = ECCurve.NamedCurves.nistP256, Q = new ECPoint { X = publicKey[1..33], Y = publicKey[33..] } });
            return key.VerifyData(ReceiptMessage(record), signature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
        }
        catch (CryptographicException)
        {
            return false;
        }
    }

    private static byte[] ReceiptMessage(byte[] record) => [.. "OpenBest OBF transfer receipt v1"u8, 0x00, .. record];

    /// <summary>
    /// The new server: takes a package (again, when a transfer resumes): unwraps the keys with its own key, registers the
    /// element (and the rights whose application it knows). Returns 201 (taken), 200 (taken before) or 400/409 with why.
    /// </summary>
    public static (int Status, string Detail) Receive(IObfStore store, ObfServerKey own, TransferPackage? package, string actor, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(own);
        if (package is null || package.Impi is not { Length: >= 3 and <= 255 } || !package.Impi.Contains('@', StringComparison.Ordinal) || package.Iccid is not { Length: 19 or 20 } || package.From is not { Length: > 0 }
            || !ObfServerKey.TryHex(package.Record, package.Record?.Length / 2 ?? 0, out var record) || !ServerKeyRecord.TryParse(record, out _, out _, out var iccid, out var newKey, out _))
        {
            return (400, "a transfer package with impi, iccid, from and a transfer record is required");
        }

        if (iccid != package.Iccid || !newKey.AsSpan().SequenceEqual(own.PublicKey))
        {
            return (400, "the record does not name this server's key and the package's ICCID");
        }

        using var keys = own.Unwrap(package);
        if (keys is null)
        {
            return (400, "the keys are not wrapped to this server's key");
        }

        if (store.Transfer(package.Impi) is { Direction: "in" })
        {
            return (200, "received before");
        }

        var rights = package.Rights ?? [];
        if (rights.Any(r => r is not { Naf.Length: > 0 and <= 253, DataClass.Length: > 0 and <= 64 }))
        {
            return (400, "every right has a naf and a dataClass");
        }

        if (store.SecureElement(package.Impi) is { } known)
        {
            // Taken before a crash, but not yet recorded as received: the same card resumes; another one is a conflict.
            using var held = store.GetSecrets(package.Impi);
            if (known.Iccid != package.Iccid || held is null || !CryptographicOperations.FixedTimeEquals(held.K, keys.Span[..16]) || !CryptographicOperations.FixedTimeEquals(held.Opc, keys.Span[16..]))
            {
                return (409, "a secure element with this IMPI is registered here already");
            }
        }
        else
        {
            var (k, opc) = (keys.Span[..16].ToArray(), keys.Span[16..].ToArray());
            try
            {
                store.AddSecureElements([new NewSecureElement(package.Impi, k, opc, package.Iccid, Imsi: package.Imsi, Amf: package.Amf)]);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(k);
                CryptographicOperations.ZeroMemory(opc);
            }
        }

        var granted = 0;
        foreach (var right in rights)
        {
            if (store.Application(right.Naf) is not null && (store.Grant(new ResourceRight(package.Impi, right.Naf, right.DataClass, DateTimeOffset.UtcNow))
                || store.Rights(package.Impi, right.Naf).Any(r => r.DataClass == right.DataClass)))
            {
                granted++;
            }
        }

        store.SaveTransfer(new ObfTransfer(package.Impi, "in", package.From, Received, JsonSerializer.Serialize(package with { WrappedKeys = string.Empty }, JsonSerializerOptions.Web), (time ?? TimeProvider.System).GetUtcNow()));
        store.Audit("transfer-received", actor, package.Impi, $"from {package.From}; {granted} of {package.Rights?.Count ?? 0} rights");
        return (201, "received");
    }
}
