using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace OpenBest.EasInterface;

/// <summary>
/// The certificates of the HSE–EAS interface (mutually authenticated TLS). <c>best pki init</c> creates a development
/// CA and certificates in the data folder's <c>pki/</c>; production points at PEM files of its own PKI. An EAS is
/// identified by its certificate's common name, which must be its EAS Id.
/// </summary>
public static class DevelopmentPki
{
    /// <summary>The folder under the data folder.</summary>
    public const string FolderName = "pki";

    /// <summary>The paths of one certificate and its key.</summary>
    public sealed record Pair(string Certificate, string Key);

    /// <summary>The CA's files in <paramref name="dataDirectory"/>.</summary>
    public static Pair Ca(string dataDirectory) => Files(dataDirectory, "ca");

    /// <summary>The HSE's files.</summary>
    public static Pair Hse(string dataDirectory) => Files(dataDirectory, "hse");

    /// <summary>The files of the EAS <paramref name="easId"/>.</summary>
    public static Pair Eas(string dataDirectory, string easId) => Files(dataDirectory, "eas-" + SafeName(easId));

    /// <summary>The files of the NAF (application server) <paramref name="fqdn"/>: pki/naf-FQDN.crt and .key.</summary>
    public static Pair Naf(string dataDirectory, string fqdn) => Files(dataDirectory, "naf-" + SafeName(fqdn));

    /// <summary>The files of the operator user <paramref name="name"/> (northbound API and dashboard): pki/operator-NAME.crt and .key.</summary>
    public static Pair Operator(string dataDirectory, string name) => Files(dataDirectory, "operator-" + SafeName(name));

    /// <summary>The common-name prefix of an operator user's certificate ("operator:NAME"); no EAS Id starts with it.</summary>
    public const string OperatorPrefix = "operator:";

    /// <summary>The Open Bootstrap Framework server's files: pki/obf.crt and .key.</summary>
    public static Pair Obf(string dataDirectory) => Files(dataDirectory, "obf");

    /// <summary>The OBF server's identity; no NAF or EAS may use it.</summary>
    public const string ObfIdentity = "obf";

    /// <summary>
    /// Creates what is missing: as <see cref="Init(string, IEnumerable{string}, TimeSpan?)"/>, and also the OBF server's
    /// certificate and one certificate per NAF FQDN (server and client; common name and DNS name = the FQDN).
    /// </summary>
    /// <returns>The files written.</returns>
    public static IReadOnlyList<string> Init(string dataDirectory, IEnumerable<string> easIds, IEnumerable<string> nafFqdns, TimeSpan? validity = null)
    {
        ArgumentNullException.ThrowIfNull(nafFqdns);
        var written = new List<string>(Init(dataDirectory, easIds, validity));
        var naf = nafFqdns.ToList();
        var lifetime = validity ?? TimeSpan.FromDays(365);
        using var caCertificate = LoadPair(Ca(dataDirectory));
        if (naf.Count > 0 && !File.Exists(Obf(dataDirectory).Certificate))
        {
            Issue(caCertificate, ObfIdentity, Obf(dataDirectory), lifetime, written);
        }

        foreach (var fqdn in naf)
        {
            if (Uri.CheckHostName(fqdn) != UriHostNameType.Dns || fqdn is ObfIdentity or HseIdentity or "ca" or "localhost")
            {
                throw new ArgumentException($"'{fqdn}' is not a NAF FQDN", nameof(nafFqdns));
            }

            if (!File.Exists(Naf(dataDirectory, fqdn).Certificate))
            {
                Issue(caCertificate, fqdn, Naf(dataDirectory, fqdn), lifetime, written);
            }
        }

        return written;
    }

    /// <summary>The DNS names a certificate proves (its subject alternative names, without localhost).</summary>
    public static IReadOnlyList<string> DnsNamesOf(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        var san = certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>().FirstOrDefault();
        return san is null ? [] : [.. san.EnumerateDnsNames().Where(n => !string.Equals(n, "localhost", StringComparison.OrdinalIgnoreCase))];
    }

    /// <summary>
    /// Creates what is missing: the CA, the HSE's certificate (server and client, for 127.0.0.1, ::1 and localhost)
    /// and one certificate per EAS Id (server and client, common name = EAS Id). Existing files are kept.
    /// Private keys are written with mode 0600.
    /// </summary>
    /// <returns>The files written.</returns>
    public static IReadOnlyList<string> Init(string dataDirectory, IEnumerable<string> easIds, TimeSpan? validity = null)
    {
        ArgumentNullException.ThrowIfNull(easIds);
        Directory.CreateDirectory(Path.Combine(dataDirectory, FolderName));
        var written = new List<string>();
        var lifetime = validity ?? TimeSpan.FromDays(365);
        var ca = Ca(dataDirectory);
        if (!File.Exists(ca.Certificate))
        {
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var request = new CertificateRequest("CN=OpenBest development CA", key, HashAlgorithmName.SHA256);
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
            request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
            request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
            using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow + lifetime);
            Write(ca, certificate, key, written);
        }

        using var caCertificate = LoadPair(ca);
        if (!File.Exists(Hse(dataDirectory).Certificate))
        {
            Issue(caCertificate, "hse", Hse(dataDirectory), lifetime, written);
        }

        foreach (var easId in easIds)
        {
            if (!IsEasIdentity(easId))
            {
                throw new ArgumentException($"'{easId}' cannot be an EAS Id (reserved)", nameof(easIds));
            }

            if (!File.Exists(Eas(dataDirectory, easId).Certificate))
            {
                Issue(caCertificate, easId, Eas(dataDirectory, easId), lifetime, written);
            }
        }

        return written;
    }

    /// <summary>Loads a certificate with its private key from PEM files, usable by TLS.</summary>
    /// <exception cref="InvalidOperationException">A file is missing or not PEM; the message names it.</exception>
    public static X509Certificate2 LoadPair(Pair pair)
    {
        ArgumentNullException.ThrowIfNull(pair);
        foreach (var path in new[] { pair.Certificate, pair.Key })
        {
            if (!File.Exists(path))
            {
                throw new InvalidOperationException($"{path} does not exist (run 'best pki init', or point at your own PEM files)");
            }
        }

        try
        {
            using var pem = X509Certificate2.CreateFromPemFile(pair.Certificate, pair.Key);
            // A key loaded from PEM is ephemeral; TLS on some platforms wants a persisted one: go through PKCS#12.
            return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
        }
        catch (CryptographicException e)
        {
            throw new InvalidOperationException($"{pair.Certificate}: not a PEM certificate with its key ({e.Message.ReplaceLineEndings(" ")})");
        }
    }

    /// <summary>Loads a CA certificate (no key).</summary>
    public static X509Certificate2 LoadCertificate(string path)
    {
        if (!File.Exists(path))
        {
            throw new InvalidOperationException($"{path} does not exist (run 'best pki init', or point at your own PEM files)");
        }

        return X509CertificateLoader.LoadCertificateFromFile(path);
    }

    /// <summary>
    /// TLS client settings for this PKI: trust only servers whose certificate <paramref name="ca"/> issued (<see cref="IsIssuedBy"/>)
    /// and, when <paramref name="client"/> is given, present it (mutual TLS).
    /// </summary>
    public static void UseFor(System.Net.Security.SslClientAuthenticationOptions ssl, X509Certificate2 ca, X509Certificate2? client = null)
    {
        ArgumentNullException.ThrowIfNull(ssl);
        ArgumentNullException.ThrowIfNull(ca);
        ssl.RemoteCertificateValidationCallback = (_, server, _, _) => IsIssuedBy(server as X509Certificate2, ca);
        if (client is not null)
        {
            ssl.ClientCertificates = [client];
            ssl.LocalCertificateSelectionCallback = (_, _, _, _, _) => client;
        }
    }

    /// <summary>
    /// Whether <paramref name="certificate"/> chains to <paramref name="ca"/> (and only to it), is in its validity
    /// period and may authenticate a TLS client.
    /// </summary>
    public static bool IsIssuedBy(X509Certificate2? certificate, X509Certificate2 ca)
    {
        ArgumentNullException.ThrowIfNull(ca);
        if (certificate is null)
        {
            return false;
        }

        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.DisableCertificateDownloads = true;
        return chain.Build(certificate);
    }

    /// <summary>The HSE's identity; no EAS may use it.</summary>
    public const string HseIdentity = "hse";

    /// <summary>The identity a certificate proves: its common name (an EAS Id, or "hse"); empty when it has none.</summary>
    public static string IdentityOf(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        var names = certificate.SubjectName.EnumerateRelativeDistinguishedNames().Where(n => n.GetSingleElementType().Value == "2.5.4.3").ToList();
        return names.Count == 1 ? names[0].GetSingleElementValue() ?? string.Empty : string.Empty; // exactly one CN, or none
    }

    /// <summary>Whether <paramref name="identity"/> may be an EAS: not empty, not the HSE's.</summary>
    public static bool IsEasIdentity(string identity) => !string.IsNullOrWhiteSpace(identity) && identity != HseIdentity && identity != ObfIdentity && identity != "ca"
        && !identity.StartsWith(OperatorPrefix, StringComparison.Ordinal);

    /// <summary>
    /// The prefix of the HSE's own channels' EAS Ids (urn:best:push, urn:best:mgmt, urn:best:ota). A certificate may name
    /// one (the OTA server reaches the OTA channels as urn:best:ota), but such a caller is no enterprise: it owns no
    /// northbound resources and no dashboard view.
    /// </summary>
    public const string ReservedPrefix = "urn:best:";

    /// <summary>Issues what is missing of the operator users' certificates (common name "operator:NAME"), after <see cref="Init(string, IEnumerable{string}, TimeSpan?)"/>.</summary>
    public static IReadOnlyList<string> InitOperators(string dataDirectory, IEnumerable<string> names, TimeSpan? validity = null)
    {
        ArgumentNullException.ThrowIfNull(names);
        var written = new List<string>();
        using var caCertificate = LoadPair(Ca(dataDirectory));
        foreach (var name in names)
        {
            if (!File.Exists(Operator(dataDirectory, name).Certificate))
            {
                Issue(caCertificate, OperatorPrefix + name, Operator(dataDirectory, name), validity ?? TimeSpan.FromDays(365), written);
            }
        }

        return written;
    }

    private static void Issue(X509Certificate2 ca, string name, Pair files, TimeSpan lifetime, List<string> written)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest(new X500DistinguishedName($"CN={name.Replace(",", "\\,", StringComparison.Ordinal)}"), key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("localhost");
        san.AddIpAddress(System.Net.IPAddress.Loopback);
        san.AddIpAddress(System.Net.IPAddress.IPv6Loopback);
        if (Uri.CheckHostName(name) == UriHostNameType.Dns)
        {
            san.AddDnsName(name);
        }

        request.CertificateExtensions.Add(san.Build());
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7F;
        var notAfter = DateTimeOffset.UtcNow + lifetime;
        var caNotAfter = new DateTimeOffset(ca.NotAfter.ToUniversalTime(), TimeSpan.Zero);
        using var certificate = request.Create(ca, DateTimeOffset.UtcNow.AddMinutes(-5), notAfter < caNotAfter ? notAfter : caNotAfter, serial);
        using var withKey = certificate.CopyWithPrivateKey(key);
        Write(files, withKey, key, written);
    }

    private static void Write(Pair files, X509Certificate2 certificate, ECDsa key, List<string> written)
    {
        File.WriteAllText(files.Certificate, certificate.ExportCertificatePem());
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var stream = new FileStream(files.Key + ".tmp", options))
        using (var writer = new StreamWriter(stream))
        {
            writer.Write(key.ExportPkcs8PrivateKeyPem());
        }

        File.Move(files.Key + ".tmp", files.Key, overwrite: true);
        written.Add(files.Certificate);
        written.Add(files.Key);
    }

    private static Pair Files(string dataDirectory, string name) =>
        new(Path.Combine(dataDirectory, FolderName, name + ".crt"), Path.Combine(dataDirectory, FolderName, name + ".key"));

    private static string SafeName(string easId) => new([.. easId.Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' ? c : '_')]);
}
