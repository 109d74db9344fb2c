using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using OpenBest.Bearers;
using OpenBest.EasInterface;
using OpenBest.Hse;
using OpenBest.Sessions;
using OpenBest.Storage;

namespace OpenBest.Eas.Tests;

/// <summary>
/// A real HSE for the enterprise tests, all on loopback: a development PKI, a SQLite store with one subscriber known to
/// the first EAS by an external id, a UDP bearer, the host, and the HSE–EAS interface over mutual TLS. Its events are
/// left to the test to read.
/// </summary>
internal sealed class TestHse : IAsyncDisposable
{
    public static readonly byte[] K = Convert.FromHexString("465b5ce8b199b49faa5f0a2ee238a6bc");
    public static readonly byte[] Opc = Convert.FromHexString("cd63cb71954a9f4e48a5994e37a02baf");
    private readonly MasterKey _key = MasterKey.FromBytes(new byte[32]);
    private StoreSubscribers _subscribers = null!;

    private TestHse(string prefix) => Directory = System.IO.Directory.CreateTempSubdirectory(prefix);

    public DirectoryInfo Directory { get; }

    public SqliteSubscriberStore Store { get; private set; } = null!;

    public UdpBearer Udp { get; private set; } = null!;

    public HseHost Host { get; private set; } = null!;

    public WebApplication Api { get; private set; } = null!;

    public X509Certificate2 Ca { get; private set; } = null!;

    /// <summary>The HSE's certificate (Kestrel uses it for every handshake: it lives as long as the interface).</summary>
    public X509Certificate2 Certificate { get; private set; } = null!;

    /// <summary>Starts it; <paramref name="easIds"/> get certificates, the first knows <paramref name="imsi"/> as <paramref name="externalId"/>, and <paramref name="options"/> (given the store) sets the engine's policy.</summary>
    public static async Task<TestHse> StartAsync(string prefix, string imsi, string externalId, string[] easIds, Func<IHseStateStore, HseOptions>? options, CancellationToken cancellationToken)
    {
        var hse = new TestHse(prefix);
        DevelopmentPki.Init(hse.Directory.FullName, easIds);
        hse.Ca = DevelopmentPki.LoadCertificate(DevelopmentPki.Ca(hse.Directory.FullName).Certificate);
        hse.Certificate = DevelopmentPki.LoadPair(DevelopmentPki.Hse(hse.Directory.FullName));
        hse.Store = SqliteSubscriberStore.Open(hse.Directory.FullName, hse._key);
        hse.Store.Add([new NewSubscriber(imsi, K, Opc)]);
        hse.Store.SetExternalId(easIds[0], externalId, imsi);
        hse._subscribers = new StoreSubscribers(hse.Store);
        hse.Udp = UdpBearer.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        hse.Host = new HseHost(new HseEngine(hse._subscribers, options?.Invoke(hse.Store)), [hse.Udp], TimeSpan.FromMilliseconds(100), state: hse.Store);
        hse.Host.Start();
        hse.Api = await EasApi.StartAsync(hse.Host, hse.Store, hse.Certificate, hse.Ca, new IPEndPoint(IPAddress.Loopback, 0), cancellationToken);
        return hse;
    }

    /// <summary>The certificate and key of an EAS the PKI was made for (the caller disposes it).</summary>
    public X509Certificate2 EasCertificate(string easId) => DevelopmentPki.LoadPair(DevelopmentPki.Eas(Directory.FullName, easId));

    public async ValueTask DisposeAsync()
    {
        await Api.DisposeAsync();
        await Host.DisposeAsync();
        await Udp.DisposeAsync();
        _subscribers.Dispose();
        Store.Dispose();
        _key.Dispose();
        Ca.Dispose();
        Certificate.Dispose();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        Directory.Delete(recursive: true);
    }
}
