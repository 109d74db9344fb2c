using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using OpenBest.Client;
using OpenBest.EasInterface;
using OpenBest.Hse;
using OpenBest.Protocol;
using OpenBest.Sessions;
using OpenBest.Storage;
using OpenBest.Testing;

namespace OpenBest.Eas.Tests;

/// <summary>
/// UE-to-EAS mode end to end, all real on loopback: a device (BestClient over UDP), the HSE (host, SQLite, the EAS
/// interface over mutual TLS, key push and the outbox) and the reference EAS.
/// </summary>
public sealed class EndToEndTests : IAsyncLifetime
{
    private const string Imsi = "001010000000654";
    private const string EasId = "eas.example.com";
    private static readonly byte[] K = TestHse.K;
    private static readonly byte[] Opc = TestHse.Opc;
    private readonly ConcurrentQueue<EasReceived> _application = new();
    private TestHse _hse = null!;
    private EasDelivery _delivery = null!;
    private X509Certificate2 _easCertificate = null!;
    private Task _events = Task.CompletedTask;

    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    private SqliteSubscriberStore Store => _hse.Store;

    public async ValueTask InitializeAsync()
    {
        _hse = await TestHse.StartAsync("openbest-e2e-", Imsi, "meter-9@acme", [EasId], store => new HseOptions { EnterpriseKeyIdentifier = store.EnterpriseKeyIdentifierOf }, Cancel);
        _easCertificate = _hse.EasCertificate(EasId);
        _delivery = new EasDelivery(_hse.Host, Store, _hse.Certificate, _hse.Ca, TimeSpan.FromMilliseconds(50));
        _events = Task.Run(async () =>
        {
            await foreach (var e in _hse.Host.Events.ReadAllAsync())
            {
                _delivery.OnEvent(e);
            }
        });
    }

    public async ValueTask DisposeAsync()
    {
        await _delivery.DisposeAsync();
        await _hse.DisposeAsync();
        await _events;
        _easCertificate.Dispose();
    }

    private Task<ReferenceEas> StartEasAsync(IReadOnlyDictionary<string, byte[]>? enterpriseKeys = null, IReadOnlyDictionary<string, IReadOnlyList<EnterpriseKey>>? named = null) => ReferenceEas.StartAsync(new EasOptions
    {
        EasId = EasId,
        EnterpriseKeys = enterpriseKeys ?? new Dictionary<string, byte[]>(),
        NamedEnterpriseKeys = named ?? new Dictionary<string, IReadOnlyList<EnterpriseKey>>(),
        Hse = new Uri(HseWeb.Address(_hse.Api) + "/"),
        Certificate = _easCertificate,
        Ca = _hse.Ca,
        StateDirectory = Path.Combine(_hse.Directory.FullName, "eas-state"),
    }, received =>
    {
        _application.Enqueue(received);
        return Task.CompletedTask;
    }, Cancel);

    private static Task WaitForAsync(Func<bool> condition, string what) => Eventually.True(condition, what);

    private IReadOnlyList<OutboxEntry> Outbox() => Store.DueOutbox(EasId, DateTimeOffset.UtcNow.AddHours(1), 10);

    private static async Task<BestMessage> NextDownlinkAsync(BestChannel channel) => await channel.Received.ReadAsync(Cancel).AsTask().WaitAsync(Eventually.Deadline, Cancel);

    private static string Text(EasReceived r) => System.Text.Encoding.UTF8.GetString(r.Payload);

    [Fact]
    public async Task DataBothWays_AndAnEasRestart_LosesNothing_AndDeliversNothingTwice()
    {
        var eas = await StartEasAsync();
        await using var device = await BestClient.CreateAsync(new BestClientOptions { Imsi = Imsi, K = K, Opc = Opc, Transport = new BestTransport.Udp(_hse.Udp.LocalEndPoint), TickInterval = TimeSpan.FromMilliseconds(50) }, Cancel);
        var opened = await device.OpenAsync(new UeChannelOptions { EasId = EasId, Service = BestService.Confidential, UeToEasMode = true, ServingNetwork = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org") }, Cancel);
        var channel = opened.Channel!;

        // Uplink: the HSE forwards through the outbox; the EAS opens with K_E2E and delivers once, in order.
        foreach (var text in new[] { "m1", "m2", "m3" })
        {
            Assert.Equal(SendStatus.Acknowledged, await channel.SendAsync(System.Text.Encoding.UTF8.GetBytes(text), acknowledged: true, Cancel));
        }

        await WaitForAsync(() => _application.Count >= 3, "three uplink messages reach the EAS application");
        Assert.Equal(["m1", "m2", "m3"], _application.Select(Text));
        Assert.All(_application, r => Assert.Equal("meter-9@acme", r.ExternalId));

        // Downlink: sealed by the EAS, carried unmodified by the HSE, opened by the device.
        Assert.True(await eas.SendDownlinkAsync(channel.SessionId, "valve open"u8.ToArray(), Cancel));
        var down = await NextDownlinkAsync(channel);
        Assert.Equal("valve open"u8.ToArray(), down.Payload.ToArray());

        // The EAS goes down once the HSE has marked m1..m3 delivered (each is, when the EAS's answer is back); the device
        // goes on; the outbox keeps what the EAS cannot take. An uplink is acknowledged only once it and its outbox entry
        // are committed, so both are there at once.
        await WaitForAsync(() => Outbox().Count == 0, "m1..m3 are marked delivered");
        await eas.DisposeAsync();
        foreach (var text in new[] { "m4", "m5" })
        {
            Assert.Equal(SendStatus.Acknowledged, await channel.SendAsync(System.Text.Encoding.UTF8.GetBytes(text), acknowledged: true, Cancel));
        }

        Assert.Equal(2, Outbox().Count);

        // Back up, on the same state: it registers its new endpoint, gets m4 and m5 once, and nothing twice. Once the
        // outbox is empty nothing is left that could be delivered again (checked once more after the downlink below).
        await using var again = await StartEasAsync();
        await WaitForAsync(() => _application.Count >= 5, "the waiting messages reach the restarted EAS");
        await WaitForAsync(() => Outbox().Count == 0, "m4 and m5 are marked delivered");
        Assert.Equal(["m1", "m2", "m3", "m4", "m5"], _application.Select(Text));

        // The restarted EAS still seals downlink without reusing a counter: the device accepts it.
        Assert.True(await again.SendDownlinkAsync(channel.SessionId, "after restart"u8.ToArray(), Cancel));
        var later = await NextDownlinkAsync(channel);
        Assert.Equal("after restart"u8.ToArray(), later.Payload.ToArray());
        Assert.Equal(0, again.Dropped);
        Assert.Equal(["m1", "m2", "m3", "m4", "m5"], _application.Select(Text));
    }

    [Fact]
    public async Task EasTriggeredRefresh_ReachesTheDevice_AndDataGoesOnUnderTheNewKeys()
    {
        await using var eas = await StartEasAsync();
        await using var device = await BestClient.CreateAsync(new BestClientOptions { Imsi = Imsi, K = K, Opc = Opc, Transport = new BestTransport.Udp(_hse.Udp.LocalEndPoint), TickInterval = TimeSpan.FromMilliseconds(50) }, Cancel);
        var channel = (await device.OpenAsync(new UeChannelOptions { EasId = EasId, Service = BestService.Integrity, UeToEasMode = true, ServingNetwork = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org") }, Cancel)).Channel!;
        Assert.Equal(SendStatus.Acknowledged, await channel.SendAsync("before"u8.ToArray(), true, Cancel));
        await WaitForAsync(() => Store.Psks(Imsi, EasId).Count == 1, "the first key is kept");
        Assert.True(await eas.RequestRefreshAsync("meter-9@acme", Cancel));
        await WaitForAsync(() => Store.Psks(Imsi, EasId).Count == 2, "the refresh reaches the device and the new key is kept");
        Assert.Equal(SendStatus.Acknowledged, await channel.SendAsync("after"u8.ToArray(), true, Cancel));
        await WaitForAsync(() => _application.Count >= 2, "both messages reach the EAS");
        Assert.Equal(["before", "after"], _application.Select(Text));
    }

    [Fact]
    public async Task WithAnEnterpriseKey_DataFlowsBothWays_AndTheKeysWerePushed()
    {
        var enterpriseKey = Convert.FromHexString("00112233445566778899aabbccddeeff");
        await using var eas = await StartEasAsync(new Dictionary<string, byte[]> { ["meter-9@acme"] = enterpriseKey });
        await using var device = await BestClient.CreateAsync(new BestClientOptions { Imsi = Imsi, K = K, Opc = Opc, Transport = new BestTransport.Udp(_hse.Udp.LocalEndPoint), TickInterval = TimeSpan.FromMilliseconds(50) }, Cancel);
        var channel = (await device.OpenAsync(new UeChannelOptions { EasId = EasId, Service = BestService.Confidential, UeToEasMode = true, EnterpriseKey = enterpriseKey, ServingNetwork = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org") }, Cancel)).Channel!;
        await WaitForAsync(() => Store.AuditLog(50).Any(a => a.Event == "key-pushed"), "the HSE pushes the keys to the registered EAS");
        Assert.Equal(SendStatus.Acknowledged, await channel.SendAsync("secret reading"u8.ToArray(), true, Cancel));
        await WaitForAsync(() => !_application.IsEmpty, "the uplink reaches the EAS");
        Assert.Equal("secret reading", Text(Assert.Single(_application)));
        Assert.True(await eas.SendDownlinkAsync(channel.SessionId, "ack from the enterprise"u8.ToArray(), Cancel));
        var down = await NextDownlinkAsync(channel);
        Assert.Equal("ack from the enterprise"u8.ToArray(), down.Payload.ToArray());
    }

    /// <summary>
    /// Profile 5 and 6.2: the EAS answers EAS Session Start with an Enterprise Key Identifier; the HSE keeps it, refreshes the
    /// session's keys naming it (TLV 0x0E), and names it in the device's next Session Start. Data under the new keys
    /// flows both ways with that Enterprise Key.
    /// </summary>
    [Fact]
    public async Task TheEasChoosesAnEnterpriseKey_TheHseCarriesItsIdentifierToTheDevice()
    {
        var first = new EnterpriseKey("acme-2026"u8.ToArray(), Convert.FromHexString("00112233445566778899aabbccddeeff"));
        await using var eas = await StartEasAsync(named: new Dictionary<string, IReadOnlyList<EnterpriseKey>> { ["meter-9@acme"] = [first] });
        await using var device = await BestClient.CreateAsync(new BestClientOptions { Imsi = Imsi, K = K, Opc = Opc, Transport = new BestTransport.Udp(_hse.Udp.LocalEndPoint), TickInterval = TimeSpan.FromMilliseconds(50) }, Cancel);
        var options = new UeChannelOptions { EasId = EasId, Service = BestService.Confidential, UeToEasMode = true, EnterpriseKeys = [first], ServingNetwork = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org") };
        var channel = (await device.OpenAsync(options, Cancel)).Channel!;

        // The first key set named none, so the EAS refused it and the device keeps its data back; the EAS's answer makes
        // the HSE refresh, naming the EAS's key.
        await WaitForAsync(() => channel.EnterpriseKeyIdentifier is { } named && named.AsSpan().SequenceEqual(first.Identifier), "the refresh names the EAS's Enterprise Key to the device");
        Assert.Equal(first.Identifier, Store.EnterpriseKeyIdentifierOf(Imsi, EasId));
        Assert.Contains(Store.AuditLog(50), a => a.Event == "enterprise-key-chosen");
        await WaitForAsync(() => Store.Psks(Imsi, EasId).Any(p => p.EnterpriseKeyIdentifier is { } e && e.AsSpan().SequenceEqual(first.Identifier)), "the new key set is kept with its identifier");
        Assert.Equal(SendStatus.Acknowledged, await channel.SendAsync("under the enterprise key"u8.ToArray(), true, Cancel));
        await WaitForAsync(() => !_application.IsEmpty, "the uplink reaches the EAS");
        Assert.Equal("under the enterprise key", Text(Assert.Single(_application)));
        Assert.Equal(0, eas.Dropped);
        Assert.True(eas.RefusedKeySets >= 1);
        Assert.True(await eas.SendDownlinkAsync(channel.SessionId, "downlink under it"u8.ToArray(), Cancel));
        Assert.Equal("downlink under it"u8.ToArray(), (await NextDownlinkAsync(channel)).Payload.ToArray());

        // The device's next session: the HSE names the key at key confirmation, without waiting for the EAS.
        Assert.True(await channel.CloseAsync(Cancel));
        var refreshes = _delivery.EnterpriseKeyRefreshes;
        var next = (await device.OpenAsync(options, Cancel)).Channel!;
        var sent = next.SendAsync("second session"u8.ToArray(), true, Cancel); // waits for the named key set
        await WaitForAsync(() => next.EnterpriseKeyIdentifier is { } named && named.AsSpan().SequenceEqual(first.Identifier), "the HSE names the key at once");
        Assert.Equal(SendStatus.Acknowledged, await sent);
        await WaitForAsync(() => _application.Count == 2, "the second session's uplink reaches the EAS");
        Assert.Equal("second session", Text(_application.Last()));
        Assert.Equal(refreshes, _delivery.EnterpriseKeyRefreshes);
    }

    [Fact]
    public async Task ASecondEas_OnTheSameStateFolder_IsRefused_UntilTheFirstStops()
    {
        var first = await StartEasAsync();
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => StartEasAsync());
        Assert.Contains("another EAS is running on the state folder", refused.Message, StringComparison.Ordinal);
        await first.DisposeAsync();
        await using var second = await StartEasAsync();
        Assert.NotNull(second.RegistrationId);
    }

    /// <summary>The EAS chooses the Enterprise Key before the device's first session (EasKeyRefresh with an identifier and no live session).</summary>
    [Fact]
    public async Task TheEasChoosesAnEnterpriseKey_BeforeTheFirstSession()
    {
        var key = new EnterpriseKey([0x01, 0x02], Convert.FromHexString("ffeeddccbbaa99887766554433221100"));
        await using var eas = await StartEasAsync(named: new Dictionary<string, IReadOnlyList<EnterpriseKey>> { ["meter-9@acme"] = [key] });
        Assert.True(await eas.RequestRefreshAsync("meter-9@acme", Cancel)); // 202: kept, no session to refresh
        Assert.Equal(key.Identifier, Store.EnterpriseKeyIdentifierOf(Imsi, EasId));
        await using var device = await BestClient.CreateAsync(new BestClientOptions { Imsi = Imsi, K = K, Opc = Opc, Transport = new BestTransport.Udp(_hse.Udp.LocalEndPoint), TickInterval = TimeSpan.FromMilliseconds(50) }, Cancel);
        var channel = (await device.OpenAsync(new UeChannelOptions { EasId = EasId, UeToEasMode = true, EnterpriseKeys = [key], ServingNetwork = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org") }, Cancel)).Channel!;
        Assert.Equal(SendStatus.Acknowledged, await channel.SendAsync("first session, enterprise key"u8.ToArray(), true, Cancel));
        await WaitForAsync(() => !_application.IsEmpty, "the uplink reaches the EAS");
        Assert.Equal("first session, enterprise key", Text(Assert.Single(_application)));
        Assert.Equal(key.Identifier, channel.EnterpriseKeyIdentifier);
        Assert.Equal(0, eas.Dropped);
    }

    [Fact]
    public async Task WithoutTheEnterpriseKey_TheEasCannotOpen_AndCountsTheDrop()
    {
        await using var eas = await StartEasAsync();
        await using var device = await BestClient.CreateAsync(new BestClientOptions { Imsi = Imsi, K = K, Opc = Opc, Transport = new BestTransport.Udp(_hse.Udp.LocalEndPoint), TickInterval = TimeSpan.FromMilliseconds(50) }, Cancel);
        var channel = (await device.OpenAsync(new UeChannelOptions { EasId = EasId, Service = BestService.Confidential, UeToEasMode = true, EnterpriseKey = new byte[16], ServingNetwork = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org") }, Cancel)).Channel!;
        Assert.Equal(SendStatus.Acknowledged, await channel.SendAsync("not for the operator"u8.ToArray(), true, Cancel));
        await WaitForAsync(() => eas.Dropped == 1, "the EAS drops what it cannot open");
        Assert.Empty(_application);
    }

    [Fact]
    public async Task KeyAgreementOnly_TheDevicesPsk_RunsDtlsWithTheEas_AndWithOpenSsl()
    {
        await using var eas = await StartEasAsync();
        await using var device = await BestClient.CreateAsync(new BestClientOptions { Imsi = Imsi, K = K, Opc = Opc, Transport = new BestTransport.Udp(_hse.Udp.LocalEndPoint), TickInterval = TimeSpan.FromMilliseconds(50) }, Cancel);
        var channel = (await device.OpenAsync(new UeChannelOptions { EasId = EasId, Service = BestService.KeyAgreementOnly, MinimumService = BestService.KeyAgreementOnly, ServingNetwork = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org") }, Cancel)).Channel!;
        var psk = new byte[32];
        Assert.True(channel.TryGetPsk(psk, out var keyIdentifier));
        var identity = BestChannel.PskIdentity("meter-9@acme", keyIdentifier);
        await WaitForAsync(() => Store.Psks(Imsi, EasId).Count == 1, "the HSE keeps the key at confirmation");

        // The EAS's DTLS server takes the key from the HSE by the identity; the device's DTLS client brings its own.
        using var dtls = eas.StartDtls(new IPEndPoint(IPAddress.Loopback, 0), (_, data) => [.. "ok:"u8, .. data]);
        using (var connection = await Task.Run(() => OpenBest.Dtls.DtlsPsk.Connect(dtls.LocalEndPoint, identity, psk), Cancel))
        {
            connection.Send("reading=7"u8);
            Assert.Equal("ok:reading=7"u8.ToArray(), await Task.Run(() => connection.Receive(Eventually.Deadline), Cancel));
        }

        // OpenSSL as the device, with the PSK the BEST session agreed. s_client reads its input only once the handshake
        // is done, so the line can be written at once.
        using var openssl = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("openssl",
            ["s_client", "-dtls1_2", "-connect", $"127.0.0.1:{dtls.LocalEndPoint.Port}", "-psk", Convert.ToHexString(psk).ToLowerInvariant(), "-psk_identity", identity, "-cipher", OpenBest.Dtls.DtlsPsk.OpenSslCipher, "-quiet"])
            { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true })!;
        try
        {
            await openssl.StandardInput.WriteLineAsync("from openssl".AsMemory(), Cancel);
            await openssl.StandardInput.FlushAsync(Cancel);
            var line = await openssl.StandardOutput.ReadLineAsync(Cancel).AsTask().WaitAsync(Eventually.Deadline, Cancel);
            Assert.Equal("ok:from openssl", line);
        }
        finally
        {
            openssl.Kill(entireProcessTree: true);
            await openssl.WaitForExitAsync(CancellationToken.None);
        }

        // Both handshakes named one identity: one key request reached the HSE, and it delivered that key once.
        Assert.Equal(1, eas.PskRequests);

        // An unknown identity, twice: both handshakes are refused (the server answers an unknown identity with an alert at
        // once; the long timeout only matters on a machine too busy to answer within seconds).
        var unknown = keyIdentifier ^ 1;
        for (var i = 0; i < 2; i++)
        {
            await Assert.ThrowsAsync<IOException>(() => Task.Run(() => OpenBest.Dtls.DtlsPsk.Connect(dtls.LocalEndPoint, BestChannel.PskIdentity("meter-9@acme", unknown), psk, Eventually.Deadline), Cancel));
        }

        // The EAS keeps a refusal for 1 s (PskCacheTests proves the window with a fake clock), so the second handshake asks
        // the HSE again only when its lookup came more than 1 s after the first: one or two requests (one lookup each
        // handshake), never more. However many, each was refused and audited as refused for that identity, and no key
        // ever left for it: the EAS has only the device's own key, delivered once.
        int Refused() => Store.AuditLog(100).Count(a => a.Event == "key-refused");
        await WaitForAsync(() => Refused() >= 1 && Refused() == eas.PskRequests - 1, "each key request for the unknown identity is audited as refused");
        Assert.InRange(eas.PskRequests, 2, 3);
        var audit = Store.AuditLog(100);
        Assert.All(audit.Where(a => a.Event == "key-refused"), a => Assert.Equal((EasId, "meter-9@acme", unknown), (a.EasId, a.Subject, a.KeyIdentifier)));
        Assert.Equal([keyIdentifier], audit.Where(a => a.Event == "key-delivered").Select(a => a.KeyIdentifier));

        // A wrong key identifier, or another EAS's device, gets no key: the handshake fails.
        Assert.Null(await eas.FetchPskAsync(BestChannel.PskIdentity("meter-9@acme", keyIdentifier ^ 1)));
        Assert.Null(await eas.FetchPskAsync("not an identity"));
        Assert.Equal(2, dtls.Handshakes);
        Assert.True(dtls.CookieChallenges >= 2); // each new source returned a HelloVerifyRequest cookie first
    }
}
