using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using OpenBest.Client;
using OpenBest.EasInterface;
using OpenBest.Hse;
using OpenBest.Protocol;
using OpenBest.Sessions;

namespace OpenBest.Eas.Tests;

/// <summary>
/// Which sessions each enterprise call reaches, by mode (TS 33.163 4.4.4 as amended by seed 001, seed 004 "key refresh"):
/// an EAS-triggered refresh reaches UE-to-EAS sessions only, and is refused for key agreement only; the northbound API
/// lists and sends downlink to UE-to-HSE sessions only. One device holds a session of each mode with the same EAS, over
/// one bearer, against a real HSE over mutual TLS.
/// </summary>
public sealed class SessionModeTests : IAsyncLifetime
{
    private const string Imsi = "001010000000654";
    private const string EasId = "eas.example.com";
    private const string ExternalId = "tracker-9@acme";
    private static readonly ServingNetwork Network = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org");
    private TestHse _hse = null!;

    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        _hse = await TestHse.StartAsync("openbest-modes-", Imsi, ExternalId, [EasId], null, Cancel);
        _ = Task.Run(async () => { await foreach (var _ in _hse.Host.Events.ReadAllAsync()) { } });
    }

    public async ValueTask DisposeAsync() => await _hse.DisposeAsync();

    [Fact]
    public async Task EasRefresh_IsRefusedForKeyAgreementOnly_AndReachesOnlyUeToEasSessions()
    {
        await using var device = await DeviceAsync();
        var keyAgreementOnly = await OpenAsync(device, BestService.KeyAgreementOnly, ueToEas: false);
        using var eas = Client();

        // Only a key-agreement-only session is live: 409 with the reason, nothing refreshed, nothing rate limited.
        var (status, problem) = await RefreshAsync(eas);
        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Contains("key agreement only", problem, StringComparison.Ordinal);
        Assert.Equal(1, await KeyIdOf(keyAgreementOnly));
        Assert.Contains(_hse.Store.AuditLog(50), a => a.Event == "refresh-refused" && a.Subject == ExternalId);

        // With a UE-to-EAS session beside it: 202, and only that one moves to new keys.
        var endToEnd = await OpenAsync(device, BestService.Confidential, ueToEas: true);
        (status, _) = await RefreshAsync(eas);
        Assert.Equal(HttpStatusCode.Accepted, status);
        await OpenBest.Testing.Eventually.True(async () => await KeyIdOf(endToEnd) == 2, "the UE-to-EAS session uses key set 2");
        Assert.Equal(1, await KeyIdOf(keyAgreementOnly));
    }

    [Fact]
    public async Task EasRefresh_OfUeToHseSessionsOnly_IsRefusedWithItsReason()
    {
        await using var device = await DeviceAsync();
        var ueToHse = await OpenAsync(device, BestService.Integrity, ueToEas: false);
        using var eas = Client();
        var (status, problem) = await RefreshAsync(eas);
        Assert.Equal(HttpStatusCode.Conflict, status);
        Assert.Contains("UE-to-HSE", problem, StringComparison.Ordinal);
        Assert.Equal(1, await KeyIdOf(ueToHse));
    }

    [Fact]
    public async Task Northbound_ListsAndReachesOnlyUeToHseSessions()
    {
        await using var device = await DeviceAsync();
        var ueToHse = await OpenAsync(device, BestService.Confidential, ueToEas: false);
        var endToEnd = await OpenAsync(device, BestService.Confidential, ueToEas: true);
        var keyAgreementOnly = await OpenAsync(device, BestService.KeyAgreementOnly, ueToEas: false);
        using var api = Client();

        var listed = await api.GetStringAsync(new Uri("/api/v1/sessions", UriKind.Relative), Cancel);
        using (var json = System.Text.Json.JsonDocument.Parse(listed))
        {
            var only = Assert.Single(json.RootElement.EnumerateArray().ToList());
            Assert.Equal(ueToHse.SessionId, only.GetProperty("sessionId").GetUInt32());
            Assert.Equal("confidential", only.GetProperty("service").GetString());
            Assert.Equal(ExternalId, only.GetProperty("externalId").GetString());
        }

        // Downlink: the listed session takes it; the others are not this API's sessions (404, nothing sent).
        Assert.Equal(HttpStatusCode.Accepted, await DownlinkAsync(api, ueToHse.SessionId));
        Assert.Equal(HttpStatusCode.NotFound, await DownlinkAsync(api, endToEnd.SessionId));
        Assert.Equal(HttpStatusCode.NotFound, await DownlinkAsync(api, keyAgreementOnly.SessionId));
        var received = await ueToHse.Received.ReadAsync(Cancel).AsTask().WaitAsync(TimeSpan.FromSeconds(30), Cancel);
        Assert.Equal("setpoint"u8.ToArray(), received.Payload.ToArray());
        Assert.False(endToEnd.Received.TryRead(out _));
    }

    private async Task<BestClient> DeviceAsync() => await BestClient.CreateAsync(new BestClientOptions
    {
        Imsi = Imsi, K = TestHse.K, Opc = TestHse.Opc, Transport = new BestTransport.Udp(_hse.Udp.LocalEndPoint),
        TickInterval = TimeSpan.FromMilliseconds(50), OperationTimeout = TimeSpan.FromSeconds(30),
    }, Cancel);

    private async Task<BestChannel> OpenAsync(BestClient device, BestService service, bool ueToEas)
    {
        var opened = await device.OpenAsync(new UeChannelOptions { EasId = EasId, Service = service, UeToEasMode = ueToEas, ServingNetwork = Network }, Cancel);
        Assert.True(opened.Established, $"{service} (UE-to-EAS: {ueToEas}) did not open");
        var channel = opened.Channel!;
        // Established at the HSE too (the UE's confirmation is on its way).
        await OpenBest.Testing.Eventually.True(async () => await _hse.Host.QueryAsync(engine => engine.StateOf(channel.SessionId)) == "Established", "the session is established at the HSE");
        return channel;
    }

    private Task<byte> KeyIdOf(BestChannel channel) => _hse.Host.QueryAsync(engine => engine.CurrentKeyIdOf(channel.SessionId));

    private HttpClient Client()
    {
        var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, _) => DevelopmentPki.IsIssuedBy(certificate as X509Certificate2, _hse.Ca);
        var certificate = _hse.EasCertificate(EasId);
        handler.SslOptions.ClientCertificates = [certificate];
        handler.SslOptions.LocalCertificateSelectionCallback = (_, _, _, _, _) => certificate;
        return new HttpClient(handler) { BaseAddress = new Uri(HseWeb.Address(_hse.Api)) };
    }

    private static async Task<(HttpStatusCode Status, string Body)> RefreshAsync(HttpClient eas)
    {
        using var content = new ByteArrayContent(EasXml.Write(new EasKeyRefresh(ExternalId)));
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(EasXml.MediaType);
        using var response = await eas.PostAsync(new Uri("/eas/v1/refresh", UriKind.Relative), content, Cancel);
        return (response.StatusCode, await response.Content.ReadAsStringAsync(Cancel));
    }

    private static async Task<HttpStatusCode> DownlinkAsync(HttpClient api, uint sessionId)
    {
        using var body = new StringContent("{\"payload\":\"" + Convert.ToBase64String("setpoint"u8.ToArray()) + "\"}", Encoding.UTF8, "application/json");
        using var response = await api.PostAsync(new Uri($"/api/v1/sessions/{sessionId}/downlink", UriKind.Relative), body, Cancel);
        return response.StatusCode;
    }
}
