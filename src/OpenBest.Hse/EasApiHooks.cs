using Microsoft.AspNetCore.Builder;

namespace OpenBest.Hse;

/// <summary>What the HSE adds to the HSE–EAS interface's web application.</summary>
public sealed record EasApiHooks
{
    /// <summary>Whether a client may connect without a certificate (to present a bearer token instead).</summary>
    public bool CertificateOptional { get; init; }

    /// <summary>
    /// Whether an EAS may bind a device's end-to-end keys to an Enterprise Key the operator never sees (seed 002's
    /// lawful-interception caveat): false refuses the EAS's choice of one (403, saying why).
    /// </summary>
    public bool EnterpriseKeysAllowed { get; init; } = true;

    /// <summary>Adds services before the application is built.</summary>
    public Action<WebApplicationBuilder>? ConfigureServices { get; init; }

    /// <summary>Adds middleware and endpoints before the EAS interface's own.</summary>
    public Action<WebApplication>? Configure { get; init; }
}
