using OpenBest.Crypto;

namespace OpenBest.Storage;

/// <summary>A subscriber as listed: never its keys.</summary>
/// <param name="Imsi">The IMSI.</param>
/// <param name="Amf">The AMF of its vectors.</param>
/// <param name="SeqHe">The AuC's SEQ_HE: the SEQ of the last vector issued.</param>
public sealed record SubscriberInfo(string Imsi, ushort Amf, ulong SeqHe);

/// <summary>A subscriber to add: K and OPc in clear only in memory, on their way to being encrypted.</summary>
public sealed record NewSubscriber(string Imsi, byte[] K, byte[] Opc, ushort Amf = 0x8000)
{
    /// <summary>Never shows K or OPc.</summary>
    public override string ToString() => $"NewSubscriber({Imsi}, AMF {Amf:x4})";
}

/// <summary>The decrypted secrets of one subscriber; dispose to zero them.</summary>
public sealed class SubscriberSecrets(SecretBuffer k, SecretBuffer opc, ushort amf) : IDisposable
{
    /// <summary>K.</summary>
    public ReadOnlySpan<byte> K => k.Span;

    /// <summary>OPc.</summary>
    public ReadOnlySpan<byte> Opc => opc.Span;

    /// <summary>The AMF.</summary>
    public ushort Amf { get; } = amf;

    /// <summary>Zeroes K and OPc.</summary>
    public void Dispose()
    {
        k.Dispose();
        opc.Dispose();
    }
}

/// <summary>
/// How every provider seals a subscriber's K and OPc at rest: AES-256-GCM under the master key, bound to the
/// IMSI and the field, so a value moved to another row or column does not decrypt.
/// </summary>
public static class SubscriberSealing
{
    /// <summary>Seals K (<paramref name="field"/> "k") or OPc ("opc") of <paramref name="imsi"/>.</summary>
    public static byte[] Seal(MasterKey key, string imsi, string field, ReadOnlySpan<byte> secret)
    {
        ArgumentNullException.ThrowIfNull(key);
        return key.Seal(secret, Context(imsi, field));
    }

    /// <summary>Opens a row's sealed K and OPc.</summary>
    /// <exception cref="InvalidOperationException">They do not decrypt: another master key, or an altered row.</exception>
    public static SubscriberSecrets Open(MasterKey key, string imsi, byte[] kSealed, byte[] opcSealed, ushort amf)
    {
        ArgumentNullException.ThrowIfNull(key);
        var k = key.Open(kSealed, Context(imsi, "k"));
        var opc = key.Open(opcSealed, Context(imsi, "opc"));
        if (k is null || opc is null)
        {
            k?.Dispose();
            opc?.Dispose();
            throw new InvalidOperationException($"The secrets of subscriber {imsi} do not decrypt: wrong master key, or the row was altered.");
        }

        return new SubscriberSecrets(k, opc, amf);
    }

    private static string Context(string imsi, string field) => $"openbest/subscriber/v1|{imsi}|{field}";
}

/// <summary>Thrown when a subscriber exists already.</summary>
public sealed class DuplicateSubscriberException(string imsi) : Exception($"Subscriber {imsi} exists already.")
{
    /// <summary>The IMSI.</summary>
    public string Imsi { get; } = imsi;
}

/// <summary>
/// The subscriber database of an HSE: K and OPc encrypted at rest, and the AuC's sequence number,
/// allocated atomically so that several HSE workers never issue the same SQN.
/// </summary>
public interface ISubscriberStore : IDisposable
{
    /// <summary>Adds subscribers all or nothing.</summary>
    /// <exception cref="DuplicateSubscriberException">One exists already (nothing was added).</exception>
    void Add(IReadOnlyList<NewSubscriber> subscribers);

    /// <summary>Removes a subscriber; false when there was none.</summary>
    bool Remove(string imsi);

    /// <summary>Every subscriber, by IMSI.</summary>
    IReadOnlyList<SubscriberInfo> List();

    /// <summary>The decrypted secrets, or null for an unknown subscriber.</summary>
    /// <exception cref="InvalidOperationException">The stored secrets do not decrypt under this master key.</exception>
    SubscriberSecrets? GetSecrets(string imsi);

    /// <summary>Atomically increments SEQ_HE and returns the new value, or null for an unknown subscriber.</summary>
    ulong? NextSeq(string imsi);

    /// <summary>Atomically adds <paramref name="count"/> to SEQ_HE and returns the new value (the last SEQ of the block reserved), or null for an unknown subscriber.</summary>
    ulong? ReserveSeq(string imsi, int count);

    /// <summary>SEQ_HE of a subscriber, or null for an unknown one.</summary>
    ulong? SeqHe(string imsi);

    /// <summary>
    /// Sets SEQ_HE after a verified resynchronisation, only if it still is <paramref name="expected"/>
    /// (compare and set: another HSE worker may have issued a vector meanwhile); false when it moved.
    /// </summary>
    bool TrySetSeqHe(string imsi, ulong expected, ulong seqHe);
}
