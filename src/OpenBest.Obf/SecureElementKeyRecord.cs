using System.Text;
using OpenBest.Crypto;

namespace OpenBest.Obf;

/// <summary>What the secret of a key-import record is.</summary>
public enum SubscriberKeyType
{
    /// <summary>MILENAGE subscriber key K and the operator variant OPc (16 octets each): batch token <c>k-opc</c>.</summary>
    MilenageKOpc,

    /// <summary>MILENAGE subscriber key K and the operator variant OP (16 octets each), OPc to be computed: batch token <c>k-op</c>.</summary>
    MilenageKOp,
}

/// <summary>
/// One secure element's identity and subscriber secret, as imported from a trusted source (ITU-T draft
/// Y.OBF_trust 6.3 c, key import function): ICCID, optional EID, IMSI, optional IMPI, and K ‖ OPc or K ‖ OP.
/// </summary>
/// <remarks>The secret lives in a pinned buffer that <see cref="Dispose"/> zeroes; <see cref="ToString"/> never shows it.</remarks>
public sealed class SecureElementKeyRecord : IDisposable
{
    /// <summary>The length of K and of OP/OPc in octets.</summary>
    public const int KeyLength = 16;

    private readonly SecretBuffer _secret;

    /// <summary>Creates a record; the identity fields are checked and the secret copied.</summary>
    /// <param name="iccid">The ICCID: 18 to 20 decimal digits (ITU-T E.118).</param>
    /// <param name="eid">The eUICC identifier: 32 decimal digits, or null for a removable UICC.</param>
    /// <param name="imsi">The IMSI: 6 to 15 decimal digits.</param>
    /// <param name="impi">The IMS private identity (an NAI, user@realm), or null.</param>
    /// <param name="type">What <paramref name="opOrOpc"/> is.</param>
    /// <param name="k">The subscriber key K (16 octets).</param>
    /// <param name="opOrOpc">OPc or OP (16 octets).</param>
    /// <exception cref="ArgumentException">A field does not follow its rule; the message names the field, never a key.</exception>
    public SecureElementKeyRecord(string iccid, string? eid, string imsi, string? impi, SubscriberKeyType type, ReadOnlySpan<byte> k, ReadOnlySpan<byte> opOrOpc)
    {
        if (CheckIdentity(iccid, eid, imsi, impi) is { } problem)
        {
            throw new ArgumentException(problem);
        }

        if (!Enum.IsDefined(type))
        {
            throw new ArgumentException("Unknown key type.", nameof(type));
        }

        if (k.Length != KeyLength || opOrOpc.Length != KeyLength)
        {
            throw new ArgumentException($"K and OP/OPc are {KeyLength} octets each.");
        }

        Iccid = iccid;
        Eid = eid;
        Imsi = imsi;
        Impi = impi;
        Type = type;
        _secret = new SecretBuffer(2 * KeyLength);
        k.CopyTo(_secret.WritableSpan);
        opOrOpc.CopyTo(_secret.WritableSpan[KeyLength..]);
    }

    /// <summary>The ICCID (decimal digits).</summary>
    public string Iccid { get; }

    /// <summary>The EID (32 decimal digits), or null.</summary>
    public string? Eid { get; }

    /// <summary>The IMSI (decimal digits).</summary>
    public string Imsi { get; }

    /// <summary>The IMPI, or null.</summary>
    public string? Impi { get; }

    /// <summary>Whether the second key is OPc or OP.</summary>
    public SubscriberKeyType Type { get; }

    /// <summary>K.</summary>
    /// <exception cref="ObjectDisposedException">The record was disposed.</exception>
    public ReadOnlySpan<byte> K => _secret.Span[..KeyLength];

    /// <summary>OPc (<see cref="SubscriberKeyType.MilenageKOpc"/>) or OP (<see cref="SubscriberKeyType.MilenageKOp"/>).</summary>
    /// <exception cref="ObjectDisposedException">The record was disposed.</exception>
    public ReadOnlySpan<byte> OpOrOpc => _secret.Span[KeyLength..];

    /// <summary>A MILENAGE instance for this subscriber (computing OPc from OP when needed).</summary>
    public Milenage CreateMilenage() => Type == SubscriberKeyType.MilenageKOpc ? new Milenage(K, OpOrOpc) : Milenage.FromOp(K, OpOrOpc);

    /// <summary>Zeroes K and OP/OPc.</summary>
    public void Dispose() => _secret.Dispose();

    /// <summary>The identity only.</summary>
    public override string ToString() => $"SecureElementKeyRecord(ICCID {Iccid}, IMSI {Imsi}, {Type})";

    /// <summary>Null if the identity fields follow their rules, else what is wrong (naming the field, never echoing it).</summary>
    internal static string? CheckIdentity(string? iccid, string? eid, string? imsi, string? impi)
    {
        if (iccid is null || iccid.Length is < 18 or > 20 || !iccid.All(char.IsAsciiDigit))
        {
            return "iccid must be 18 to 20 decimal digits";
        }

        if (eid is not null && (eid.Length != 32 || !eid.All(char.IsAsciiDigit)))
        {
            return "eid must be 32 decimal digits";
        }

        if (imsi is null || imsi.Length is < 6 or > 15 || !imsi.All(char.IsAsciiDigit))
        {
            return "imsi must be 6 to 15 decimal digits";
        }

        if (impi is not null)
        {
            var at = impi.LastIndexOf('@');
            if (impi.Length > 255 || at <= 0 || at == impi.Length - 1 || !impi.All(c => c is > ' ' and <= '~'))
            {
                return "impi must be an NAI (user@realm) of printable ASCII without spaces, at most 255 characters";
            }
        }

        return null;
    }

    /// <summary>
    /// The identity binding wrapped with the secret: the first 16 octets of SHA-256 over
    /// "obf-key-import/1" and, each preceded by its 2-octet big-endian length, the ICCID, EID, IMSI,
    /// IMPI and type token (absent fields have length 0).
    /// </summary>
    internal static void IdentityBinding(string iccid, string? eid, string imsi, string? impi, string typeToken, Span<byte> binding)
    {
        var buffer = new List<byte>(128);
        buffer.AddRange("obf-key-import/1"u8.ToArray());
        foreach (var field in new[] { iccid, eid ?? string.Empty, imsi, impi ?? string.Empty, typeToken })
        {
            var bytes = Encoding.UTF8.GetBytes(field);
            buffer.Add((byte)(bytes.Length >> 8));
            buffer.Add((byte)bytes.Length);
            buffer.AddRange(bytes);
        }

        Span<byte> digest = stackalloc byte[32];
        System.Security.Cryptography.SHA256.HashData(buffer.ToArray(), digest);
        digest[..binding.Length].CopyTo(binding);
    }
}
