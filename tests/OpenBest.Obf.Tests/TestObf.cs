using System.Net.Http.Json;
using System.Security.Cryptography.X509Certificates;
using OpenBest.EasInterface;
using OpenBest.Obf.Server;
using OpenBest.Storage;

namespace OpenBest.Obf.Tests;

/// <summary>
/// A real OBF server for the tests, all on loopback: a development PKI with two applications' certificates, SQLite in a
/// temporary folder (or a PostgreSQL database), HTTPS on Ub and mutual TLS on the key service.
/// </summary>
internal sealed class TestObf : IAsyncDisposable
{
    public const string Domain = "bsf.example.org";
    public const string Vtams = "vtams.example.com";
    public const string Ers = "ers.example.gov";
    public const string Impi = "001010000000001@ims.mnc001.mcc001.3gppnetwork.org";
    public const string Iccid = "8991000000000000001";
    public static readonly byte[] K = Convert.FromHexString("465b5ce8b199b49faa5f0a2ee238a6bc");
    public static readonly byte[] Opc = Convert.FromHexString("cd63cb71954a9f4e48a5994e37a02baf");

    private readonly List<IDisposable> _owned = [];

    private TestObf(DirectoryInfo directory, ObfServer server, X509Certificate2 ca)
    {
        Directory = directory;
        Server = server;
        Ca = ca;
    }

    public DirectoryInfo Directory { get; }

    public ObfServer Server { get; }

    public X509Certificate2 Ca { get; }

    public IObfStore Store => Server.Store;

    /// <summary>Starts a server with one secure element (MILENAGE test set 1, ICCID), two applications and no rights yet.</summary>
    public static async Task<TestObf> StartAsync(string? postgres = null, bool insecureHttp = false, Gsup.GsupEndpoint? auc = null)
    {
        var directory = System.IO.Directory.CreateTempSubdirectory("openbest-obf-");
        DevelopmentPki.Init(directory.FullName, [ObfApi.Operator], [Vtams, Ers, "rogue.example.net"]);
        var settings = new ObfSettings { DataDir = directory.FullName, Postgres = postgres ?? string.Empty, UbPort = 0, RpoPort = 0, Domain = Domain, InsecureHttp = insecureHttp, Auc = auc };
        var server = await ObfServer.StartAsync(settings, cancellationToken: TestContext.Current.CancellationToken);
        server.Store.AddSecureElements([new NewSecureElement(Impi, K, Opc, Iccid: Iccid, Imsi: "001010000000001")]);
        server.Store.AddApplication(new ObfApplication(Vtams, null, null, ReleaseImpi: false, DateTimeOffset.UtcNow));
        server.Store.AddApplication(new ObfApplication(Ers, null, null, ReleaseImpi: true, DateTimeOffset.UtcNow));
        return new TestObf(directory, server, DevelopmentPki.LoadCertificate(DevelopmentPki.Ca(directory.FullName).Certificate));
    }

    /// <summary>A client of Ub that trusts only the development CA.</summary>
    public HttpClient Ub() => Client(null, Server.UbAddress);

    /// <summary>A client of the key service and the API with the certificate of <paramref name="name"/> (a NAF FQDN, or obf-admin).</summary>
    public HttpClient Rpo(string name)
    {
        var certificate = name.Contains('.', StringComparison.Ordinal)
            ? DevelopmentPki.LoadPair(DevelopmentPki.Naf(Directory.FullName, name))
            : DevelopmentPki.LoadPair(DevelopmentPki.Eas(Directory.FullName, name));
        _owned.Add(certificate);
        return Client(certificate, Server.RpoAddress);
    }

    /// <summary>Asks the key service for the key of <paramref name="btid"/> as <paramref name="naf"/> (its certificate), for the NAF FQDN <paramref name="askedFor"/>.</summary>
    public async Task<(int Status, System.Text.Json.JsonElement Body)> RetrieveAsync(string naf, string btid, string? askedFor = null, string ua = "0100000002")
    {
        using var client = Rpo(naf);
        using var response = await client.PostAsJsonAsync("/nbsp-gba/v1/bootstrapping-info-retrieval",
            new { btId = btid, nafId = new { nafFqdn = askedFor ?? naf, uaSecProtId = ua } }, TestContext.Current.CancellationToken);
        var text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        using var json = System.Text.Json.JsonDocument.Parse(text.Length == 0 ? "{}" : text);
        return ((int)response.StatusCode, json.RootElement.Clone());
    }

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        foreach (var owned in _owned)
        {
            owned.Dispose();
        }

        Ca.Dispose();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(recursive: true);
    }

    private HttpClient Client(X509Certificate2? certificate, string address)
    {
        var handler = new SocketsHttpHandler();
        DevelopmentPki.UseFor(handler.SslOptions, Ca, certificate);

        return new HttpClient(handler) { BaseAddress = new Uri(address) };
    }
}
