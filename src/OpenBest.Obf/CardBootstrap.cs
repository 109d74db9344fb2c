using OpenBest.Card;
using OpenBest.Crypto.Aka;

namespace OpenBest.Obf;

/// <summary>What <see cref="CardBootstrap.RunAsync"/> ended with.</summary>
/// <param name="Bootstrap">The last bootstrap's outcome (the caller disposes it).</param>
/// <param name="Server">The Ub endpoint it ran at: the one given, or the one a transfer record the card verified names.</param>
/// <param name="Transferred">Whether the device followed a transfer record.</param>
/// <param name="RecordRefused">The card's status word when it refused a transfer record (then <paramref name="Bootstrap"/> is the Transferred answer); else null.</param>
public sealed record CardBootstrapResult(GbaBootstrap Bootstrap, Uri Server, bool Transferred, ushort? RecordRefused);

/// <summary>
/// A crypto-less device's GBA_U bootstrap through its card, following a transfer of provider (Y.OBF_trust 7.5 b): when the
/// server answers TRANSFERRED, the card checks the record with the server key it trusts (Verify-and-Store), and only then
/// does the device bootstrap at the endpoint the record names, never at one the old server merely says.
/// </summary>
public static class CardBootstrap
{
    /// <summary>Bootstraps <paramref name="impi"/> at <paramref name="server"/>, following at most one transfer.</summary>
    /// <param name="ub">Makes the Ub client of a server.</param>
    /// <param name="card">The card's GBA context.</param>
    /// <param name="verifyRecord">Hands a transfer record to the card's secure element (Verify-and-Store).</param>
    /// <param name="server">The provider the device knows.</param>
    /// <param name="impi">The card's IMPI.</param>
    /// <param name="cancellationToken">Cancels the exchanges.</param>
    /// <exception cref="HttpRequestException">A server cannot be reached.</exception>
    public static async Task<CardBootstrapResult> RunAsync(Func<Uri, HttpClient> ub, IGbaUicc card, Func<byte[], SecureElementResult> verifyRecord, Uri server, string impi,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ub);
        ArgumentNullException.ThrowIfNull(verifyRecord);
        var bootstrap = await OnceAsync(ub, card, server, impi, cancellationToken).ConfigureAwait(false);
        if (bootstrap.Status != GbaBootstrapStatus.Transferred)
        {
            return new CardBootstrapResult(bootstrap, server, false, null);
        }

        var stored = verifyRecord(bootstrap.TransferRecord);
        if (!stored.Ok || !ServerKeyRecord.TryParse(bootstrap.TransferRecord, out _, out var endpoint, out _, out _, out _) || !Uri.TryCreate(endpoint, UriKind.Absolute, out var next))
        {
            return new CardBootstrapResult(bootstrap, server, false, stored.Sw);
        }

        bootstrap.Dispose();
        return new CardBootstrapResult(await OnceAsync(ub, card, next, impi, cancellationToken).ConfigureAwait(false), next, true, null);
    }

    private static async Task<GbaBootstrap> OnceAsync(Func<Uri, HttpClient> ub, IGbaUicc card, Uri server, string impi, CancellationToken cancellationToken)
    {
        using var http = ub(server);
        return await new GbaClient(http, card).BootstrapAsync(impi, cancellationToken).ConfigureAwait(false);
    }
}
