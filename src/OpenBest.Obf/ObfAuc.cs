using OpenBest.Crypto.Aka;
using OpenBest.Sessions;
using OpenBest.Storage;

namespace OpenBest.Obf;

/// <summary>
/// Where an OBF server's authentication vectors come from (Y.OBF_trust 6.2 a/e: the provider may or may not be the card
/// issuer): its own store, which holds the secure element's K and OPc, or the operator's AuC (an HLR over GSUP), which is
/// asked by IMSI and never gives K away. GBA uses UMTS AKA vectors (TS 33.220 4.5.2).
/// </summary>
public interface IObfAuc
{
    /// <summary>A fresh vector for <paramref name="element"/>, or null when its AuC does not know it.</summary>
    AuthenticationVector? CreateVector(SecureElementInfo element);

    /// <summary>Resynchronises its SQN from RAND and AUTS (TS 33.102 6.3.5); false when AUTS does not verify.</summary>
    bool Resynchronise(SecureElementInfo element, ReadOnlySpan<byte> rand, ReadOnlySpan<byte> auts);
}

/// <summary>
/// The AuC of an OBF server: secure elements whose keys it holds get vectors from its store (SEQ reserved in blocks,
/// TS 33.102 Annex C, its own IND); the others from <paramref name="remote"/> by IMSI, when there is one.
/// </summary>
/// <param name="store">The OBF store (the local AuC, keyed by IMPI).</param>
/// <param name="remote">The operator's AuC keyed by IMSI (e.g. GSUP), or null.</param>
/// <param name="ind">The IND of this server's vectors (a value of its own, so the USIM keeps them apart from the network's).</param>
public sealed class ObfAuc(IObfStore store, IHseSubscribers? remote = null, int ind = 30) : IObfAuc, IDisposable
{
    private readonly StoreSubscribers _local = new(store, ind);

    /// <inheritdoc/>
    public AuthenticationVector? CreateVector(SecureElementInfo element)
    {
        ArgumentNullException.ThrowIfNull(element);
        if (element.HasKeys)
        {
            return _local.CreateVector(element.Impi, AkaContext.Umts);
        }

        return remote is not null && element.Imsi is { } imsi ? remote.CreateVector(imsi, AkaContext.Umts) : null;
    }

    /// <inheritdoc/>
    public bool Resynchronise(SecureElementInfo element, ReadOnlySpan<byte> rand, ReadOnlySpan<byte> auts)
    {
        ArgumentNullException.ThrowIfNull(element);
        if (element.HasKeys)
        {
            return _local.Resynchronise(element.Impi, rand, auts);
        }

        return remote is not null && element.Imsi is { } imsi && remote.Resynchronise(imsi, rand, auts);
    }

    /// <summary>Zeroes the keys held in memory.</summary>
    public void Dispose() => _local.Dispose();
}
