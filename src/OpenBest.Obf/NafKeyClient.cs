using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace OpenBest.Obf;

/// <summary>What the key service answered: <paramref name="Answer"/> on 200, else the status and the problem's cause.</summary>
/// <param name="Status">The HTTP status.</param>
/// <param name="Answer">The BootstrappingInfoResponse (Ks_NAF, expiry, USS), on 200.</param>
/// <param name="Cause">The problem's cause (TS 29.309 and the OBF profile), e.g. BTID_NOT_FOUND or NO_RESOURCE_RIGHTS.</param>
/// <param name="Detail">The problem's detail or title.</param>
public sealed record NafKeyRetrieval(int Status, BootstrappingInfoResponse? Answer, string? Cause, string? Detail);

/// <summary>
/// An application server's (a NAF's) side of RPO: fetches Ks_NAF of a B-TID from the OBF server's key service (Nbsp_GBA,
/// TS 29.309) over mutual TLS with the NAF's own certificate. A NAF that speaks GBA shared-key TLS (TS 33.222) gives
/// <see cref="KsNafAsync"/> to its TLS-PSK server as the key lookup.
/// </summary>
public sealed class NafKeyClient : IDisposable
{
    private readonly HttpClient _http;

    /// <summary>A client of the key service at <paramref name="keyService"/> for the NAF <paramref name="nafFqdn"/>.</summary>
    /// <param name="keyService">The OBF server's RPO address, e.g. https://obf.example.org:8444.</param>
    /// <param name="nafFqdn">This NAF's FQDN (its certificate names it).</param>
    /// <param name="certificate">This NAF's certificate with its key.</param>
    /// <param name="ca">The CA the key service's certificate chains to.</param>
    public NafKeyClient(Uri keyService, string nafFqdn, X509Certificate2 certificate, X509Certificate2 ca)
    {
        ArgumentNullException.ThrowIfNull(keyService);
        ArgumentException.ThrowIfNullOrEmpty(nafFqdn);
        ArgumentNullException.ThrowIfNull(certificate);
        ArgumentNullException.ThrowIfNull(ca);
        NafFqdn = nafFqdn;
        var handler = new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(10) };
        EasInterface.DevelopmentPki.UseFor(handler.SslOptions, ca, certificate);
        _http = new HttpClient(handler) { BaseAddress = keyService, Timeout = TimeSpan.FromSeconds(10), DefaultRequestVersion = HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionOrLower };
    }

    /// <summary>This NAF's FQDN.</summary>
    public string NafFqdn { get; }

    /// <summary>
    /// Ks_NAF of <paramref name="bTid"/> for NAF_Id = this NAF's FQDN ‖ <paramref name="uaSecurityProtocolId"/>, or null when
    /// the key service does not know the B-TID (the device must bootstrap again) or refuses (no rights).
    /// </summary>
    /// <exception cref="HttpRequestException">The key service cannot be reached, or failed.</exception>
    public async ValueTask<byte[]?> KsNafAsync(string bTid, byte[] uaSecurityProtocolId, CancellationToken cancellationToken = default)
    {
        var retrieval = await RetrieveAsync(bTid, uaSecurityProtocolId, cancellationToken).ConfigureAwait(false);
        return retrieval.Answer is { } answer ? Convert.FromHexString(answer.MeKeyMaterial) : null;
    }

    /// <summary>
    /// The key service's whole answer for <paramref name="bTid"/>: the BootstrappingInfoResponse on 200, or the status and the
    /// problem's cause (BTID_NOT_FOUND, NO_RESOURCE_RIGHTS, …) when it refuses.
    /// </summary>
    /// <exception cref="HttpRequestException">The key service cannot be reached, failed (5xx), or answered 200 without a 32-octet key.</exception>
    public Task<NafKeyRetrieval> RetrieveAsync(string bTid, byte[] uaSecurityProtocolId, CancellationToken cancellationToken = default) =>
        RetrieveAsync(bTid, uaSecurityProtocolId, gbaUAware: false, cancellationToken);

    /// <summary>As the other overload; a GBA_U aware NAF (<paramref name="gbaUAware"/>) also gets Ks_int_NAF, the key a card keeps (<c>uiccKeyMaterial</c>).</summary>
    /// <exception cref="HttpRequestException">The key service cannot be reached, failed (5xx), or answered 200 without the keys asked for.</exception>
    public async Task<NafKeyRetrieval> RetrieveAsync(string bTid, byte[] uaSecurityProtocolId, bool gbaUAware, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(uaSecurityProtocolId);
        using var response = await _http.PostAsJsonAsync("/nbsp-gba/v1/bootstrapping-info-retrieval",
            new BootstrappingInfoRequest(bTid, new NafIdentifier(NafFqdn, Convert.ToHexStringLower(uaSecurityProtocolId)), gbaUAware), cancellationToken).ConfigureAwait(false);
        if ((int)response.StatusCode is >= 400 and < 500)
        {
            ProblemBody? problem = null;
            try
            {
                problem = await response.Content.ReadFromJsonAsync<ProblemBody>(cancellationToken).ConfigureAwait(false);
            }
            catch (System.Text.Json.JsonException)
            {
            }
            catch (NotSupportedException)
            {
            }

            return new NafKeyRetrieval((int)response.StatusCode, null, problem?.Cause, problem?.Detail ?? problem?.Title);
        }

        response.EnsureSuccessStatusCode();
        var answer = await response.Content.ReadFromJsonAsync<BootstrappingInfoResponse>(cancellationToken).ConfigureAwait(false);
        if (answer?.MeKeyMaterial is not { Length: 64 } hex || !hex.All(char.IsAsciiHexDigit))
        {
            throw new HttpRequestException("the key service answered without a 32-octet meKeyMaterial");
        }

        if (gbaUAware && (answer.UiccKeyMaterial is not { Length: 64 } uicc || !uicc.All(char.IsAsciiHexDigit)))
        {
            throw new HttpRequestException("the key service answered a GBA_U aware request without a 32-octet uiccKeyMaterial");
        }

        return new NafKeyRetrieval(200, answer, null, null);
    }

    private sealed record ProblemBody(string? Title, string? Detail, string? Cause);

    /// <summary>Closes the connections.</summary>
    public void Dispose() => _http.Dispose();
}
