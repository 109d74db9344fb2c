using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using OpenBest.Client;
using OpenBest.Eas;
using OpenBest.EasInterface;
using OpenBest.Hse;
using OpenBest.Protocol;
using OpenBest.Sessions;
using OpenBest.Storage;

namespace OpenBest.Demo;

/// <summary>
/// The demo's enterprise share: a development PKI, the HSE–EAS interface, the reference EAS, devices in UE-to-EAS
/// mode (uplink to the EAS through the outbox, downlink back) and devices in key-agreement-only mode (DTLS-PSK with
/// the EAS on the key their BEST session agreed).
/// </summary>
internal sealed class DemoEnterprise : IAsyncDisposable
{
    public const string EasId = "demo.example.com";
    private readonly X509Certificate2 _ca;
    private readonly X509Certificate2 _hse;
    private readonly X509Certificate2 _eas;
    private readonly Microsoft.AspNetCore.Builder.WebApplication _api;
    private readonly EasDelivery _delivery;
    private readonly ReferenceEas _reference;
    private readonly Dtls.DtlsPskServer _dtls;
    private readonly ConcurrentDictionary<string, int> _received = new();
    private readonly ConcurrentDictionary<string, EnterpriseKey> _enterpriseKeys;
    private int _namedEnterpriseKeys;

    private DemoEnterprise(X509Certificate2 ca, X509Certificate2 hse, X509Certificate2 eas, Microsoft.AspNetCore.Builder.WebApplication api, EasDelivery delivery, ReferenceEas reference, ConcurrentDictionary<string, EnterpriseKey> enterpriseKeys)
    {
        _enterpriseKeys = enterpriseKeys;
        _ca = ca;
        _hse = hse;
        _eas = eas;
        _api = api;
        _delivery = delivery;
        _reference = reference;
        _dtls = reference.StartDtls(new IPEndPoint(IPAddress.Loopback, 0), (_, data) => [.. "ok:"u8, .. data]);
    }

    public int UplinkAtEas => _received.Values.Sum();

    public int DtlsHandshakes => (int)_dtls.Handshakes;

    /// <summary>UE-to-EAS devices whose keys came to use the Enterprise Key the EAS chose (named to them by the HSE).</summary>
    public int NamedEnterpriseKeys => _namedEnterpriseKeys;

    /// <summary>Starts the enterprise side; each UE-to-EAS device in <paramref name="endToEndDevices"/> shares a random Enterprise Key with the EAS.</summary>
    public static async Task<DemoEnterprise> StartAsync(string directory, HseHost host, IHseStateStore store, IEnumerable<string> endToEndDevices, CancellationToken cancel)
    {
        var enterpriseKeys = new ConcurrentDictionary<string, EnterpriseKey>(endToEndDevices.Select(d => KeyValuePair.Create(d, new EnterpriseKey("demo-key-1"u8.ToArray(), RandomNumberGenerator.GetBytes(16)))), StringComparer.Ordinal);
        DevelopmentPki.Init(directory, [EasId]);
        var ca = DevelopmentPki.LoadCertificate(DevelopmentPki.Ca(directory).Certificate);
        var hse = DevelopmentPki.LoadPair(DevelopmentPki.Hse(directory));
        var eas = DevelopmentPki.LoadPair(DevelopmentPki.Eas(directory, EasId));
        var api = await EasApi.StartAsync(host, store, hse, ca, new IPEndPoint(IPAddress.Loopback, 0), cancel);
        var delivery = new EasDelivery(host, store, hse, ca, TimeSpan.FromMilliseconds(50));
        var received = new ConcurrentDictionary<string, int>();
        DemoEnterprise? self = null;
        var reference = await ReferenceEas.StartAsync(new EasOptions
        {
            EasId = EasId,
            Hse = new Uri(HseWeb.Address(api) + "/"),
            Certificate = eas,
            Ca = ca,
            StateDirectory = Path.Combine(directory, "eas"),
            NamedEnterpriseKeys = enterpriseKeys.ToDictionary(e => e.Key, e => (IReadOnlyList<EnterpriseKey>)[e.Value], StringComparer.Ordinal),
        }, message =>
        {
            self!._received.AddOrUpdate(message.ExternalId, 1, (_, n) => n + 1);
            return Task.CompletedTask;
        }, cancel);
        self = new DemoEnterprise(ca, hse, eas, api, delivery, reference, enterpriseKeys);
        return self;
    }

    public void OnEvent(SessionEvent e) => _delivery.OnEvent(e);

    /// <summary>A UE-to-EAS device: <paramref name="messages"/> uplink to the EAS, then one downlink from it.</summary>
    public async Task RunEndToEndAsync(NewSubscriber subscriber, string externalId, IPEndPoint hse, int messages, CancellationToken cancel)
    {
        await using var client = await BestClient.CreateAsync(Options(subscriber, hse), cancel);
        var enterpriseKeys = _enterpriseKeys.TryGetValue(externalId, out var key) ? [key] : Array.Empty<EnterpriseKey>();
        var opened = await client.OpenAsync(new UeChannelOptions { EasId = EasId, Service = BestService.Confidential, UeToEasMode = true, ServingNetwork = Network, EnterpriseKeys = enterpriseKeys }, cancel);
        var channel = opened.Channel ?? throw new InvalidOperationException($"{externalId}: no session ({opened.Rejected})");
        for (var i = 0; i < messages; i++)
        {
            if (await channel.SendAsync(BitConverter.GetBytes(i), acknowledged: true, cancel) != SendStatus.Acknowledged)
            {
                throw new InvalidOperationException($"{externalId}: message {i} was not forwarded");
            }
        }

        for (var i = 0; i < 200 && _received.GetValueOrDefault(externalId) < messages; i++)
        {
            await Task.Delay(50, cancel);
        }

        if (!await _reference.SendDownlinkAsync(channel.SessionId, "from the enterprise"u8.ToArray(), cancel))
        {
            throw new InvalidOperationException($"{externalId}: the HSE refused the EAS's downlink");
        }

        await channel.Received.ReadAsync(cancel).AsTask().WaitAsync(TimeSpan.FromSeconds(20), cancel);

        // The EAS asked for the device's Enterprise Key in its answer to the key push: the HSE refreshes the keys naming it.
        for (var i = 0; i < 100 && channel.EnterpriseKeyIdentifier is null; i++)
        {
            await Task.Delay(50, cancel);
        }

        if (channel.EnterpriseKeyIdentifier is not null)
        {
            Interlocked.Increment(ref _namedEnterpriseKeys);
        }

        await channel.CloseAsync(cancel);
    }

    /// <summary>A key-agreement-only device: one DTLS-PSK exchange with the EAS on K_EAS_PSK.</summary>
    public async Task RunKeyAgreementOnlyAsync(NewSubscriber subscriber, string externalId, IPEndPoint hse, CancellationToken cancel)
    {
        await using var client = await BestClient.CreateAsync(Options(subscriber, hse), cancel);
        var opened = await client.OpenAsync(new UeChannelOptions { EasId = EasId, Service = BestService.KeyAgreementOnly, MinimumService = BestService.KeyAgreementOnly, ServingNetwork = Network }, cancel);
        var channel = opened.Channel ?? throw new InvalidOperationException($"{externalId}: no session ({opened.Rejected})");
        var psk = new byte[32];
        try
        {
            if (!channel.TryGetPsk(psk, out var keyIdentifier))
            {
                throw new InvalidOperationException($"{externalId}: no K_EAS_PSK");
            }

            // The HSE keeps the key once the confirmation arrived; a device that is faster than that tries again.
            for (var attempt = 0; ; attempt++)
            {
                try
                {
                    // BouncyCastle's DTLS calls block: each runs on a thread of its own, so dozens of devices never starve
                    // the thread pool that the HSE, the EAS and the other devices run on.
                    using var dtls = await Blocking(() => Dtls.DtlsPsk.Connect(_dtls.LocalEndPoint, BestChannel.PskIdentity(externalId, keyIdentifier), psk, TimeSpan.FromSeconds(5)), cancel);
                    dtls.Send("reading"u8);
                    if (await Blocking(() => dtls.Receive(TimeSpan.FromSeconds(10)), cancel) is null)
                    {
                        throw new InvalidOperationException($"{externalId}: no DTLS answer");
                    }

                    break;
                }
                catch (IOException) when (attempt < 5)
                {
                    await Task.Delay(1000, cancel); // the EAS keeps a refusal for 1 s
                }
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(psk);
        }

        await channel.CloseAsync(cancel);
    }

    private static Task<T> Blocking<T>(Func<T> call, CancellationToken cancel) =>
        Task.Factory.StartNew(call, cancel, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    public async ValueTask DisposeAsync()
    {
        _dtls.Dispose();
        await _reference.DisposeAsync();
        await _delivery.DisposeAsync();
        await _api.DisposeAsync();
        _ca.Dispose();
        _hse.Dispose();
        _eas.Dispose();
    }

    private static readonly ServingNetwork Network = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org");

    private static BestClientOptions Options(NewSubscriber subscriber, IPEndPoint hse) => new()
    {
        Imsi = subscriber.Imsi,
        K = subscriber.K,
        Opc = subscriber.Opc,
        Transport = new BestTransport.Udp(hse),
        TickInterval = TimeSpan.FromMilliseconds(100),
        OperationTimeout = TimeSpan.FromSeconds(30),
    };

    public static string ExternalId(int i) => string.Create(CultureInfo.InvariantCulture, $"device-{i}@demo");
}
