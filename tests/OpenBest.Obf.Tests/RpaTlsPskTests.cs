using System.Globalization;
using System.Net;
using System.Text;
using OpenBest.Crypto;
using OpenBest.Crypto.Aka;
using OpenBest.Crypto.Kdf;
using OpenBest.Dtls;
using OpenBest.Dtls.Tests;
using OpenBest.EasInterface;
using OpenBest.Storage;
using OpenBest.Testing;

namespace OpenBest.Obf.Tests;

/// <summary>
/// RPA (Y.OBF_trust 7.3) as GBA shared-key TLS (TS 33.222): a device bootstraps with the OBF server, and the application
/// server (a NAF) takes its TLS-PSK key from the OBF key service by the B-TID the device presents; OpenSSL's s_client is
/// the device's TLS stack, given Ks_NAF computed from the bootstrap (TS 33.220 B.3, NAF_Id with the suite's Ua id).
/// </summary>
public sealed class RpaTlsPskTests : IAsyncLifetime
{
    private TestObf _obf = null!;

    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync() => _obf = await TestObf.StartAsync();

    public async ValueTask DisposeAsync() => await _obf.DisposeAsync();

    [Fact]
    public async Task OpenSslAsTheDevice_TalksToANafWhoseKeyComesFromTheObfServer()
    {
        // The device bootstraps (RPB) and the application has a right to its data (RPR).
        using var milenage = new Milenage(TestObf.K, TestObf.Opc);
        using var ub = _obf.Ub();
        var device = new GbaMeClient(ub, TestObf.Impi, new Usim(milenage, new UsimSequenceState(SqnScheme.Default)), new GbaMeClientOptions { Realm = TestObf.Domain });
        using var bootstrap = await device.RunAsync(Cancel);
        Assert.True(bootstrap.Succeeded, bootstrap.ToString());
        _obf.Store.Grant(new ResourceRight(TestObf.Impi, TestObf.Vtams, "position", DateTimeOffset.UtcNow));

        // The NAF: a TLS-PSK server whose keys come from the OBF server over mutual TLS with its own certificate (RPO).
        using var nafCertificate = DevelopmentPki.LoadPair(DevelopmentPki.Naf(_obf.Directory.FullName, TestObf.Vtams));
        using var keys = new NafKeyClient(new Uri(_obf.Server.RpoAddress), TestObf.Vtams, nafCertificate, _obf.Ca);
        var received = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var naf = new GbaTlsPskServer(new IPEndPoint(IPAddress.Loopback, 0), new GbaTlsPskServerOptions { NafFqdn = TestObf.Vtams }, keys.KsNafAsync, async (stream, cancel) =>
        {
            using var reader = new StreamReader(stream, Encoding.UTF8, leaveOpen: true);
            var line = await reader.ReadLineAsync(cancel);
            received.TrySetResult(line ?? string.Empty);
            await stream.WriteAsync(Encoding.UTF8.GetBytes($"naf got: {line}\n"), cancel);
            await stream.FlushAsync(cancel);
        });

        // PSK-AES128-GCM-SHA256 is 0x00A8: NAF_Id = FQDN ‖ 01 00 01 00 A8 (TS 33.220 H.3).
        var ksNaf = device.DeriveKsNaf(TestObf.Vtams, [0x01, 0x00, 0x01, 0x00, 0xA8]);
        await using var client = OpenSslProcess.Start("s_client", "-connect", "127.0.0.1:" + naf.LocalEndPoint.Port.ToString(CultureInfo.InvariantCulture), "-tls1_2",
            "-cipher", "PSK-AES128-GCM-SHA256", "-psk", Convert.ToHexStringLower(ksNaf), "-psk_identity", "3GPP-bootstrapping." + bootstrap.BTid, "-servername", TestObf.Vtams);
        await client.WaitForAsync("Cipher is PSK-AES128-GCM-SHA256");
        await client.WriteLineAsync("position 28.61N 77.21E");
        await client.WaitForAsync("naf got: position 28.61N 77.21E");
        Assert.Equal("position 28.61N 77.21E", await received.Task.WaitAsync(Eventually.Deadline, Cancel));
        Assert.Contains(_obf.Store.AuditLog(20), a => a.Event == "key-released" && a.Actor == TestObf.Vtams && a.Detail.Contains("ua 01000100a8", StringComparison.Ordinal));

        // Our own device client reaches the same NAF on the same bootstrap (TLS 1.3 external PSK, Ua 01 00 00 00 07).
        using var ks = new GbaKs(bootstrap.Ks.ToArray(), bootstrap.Rand!, TestObf.Impi);
        await using var stream = await GbaTlsPskClient.ConnectAsync(naf.LocalEndPoint, new GbaTlsPskClientOptions { NafFqdn = TestObf.Vtams, BTid = bootstrap.BTid!, KsNaf = ks.ForNaf(TestObf.Vtams) }, Cancel);
        await stream.WriteAsync("health ok\n"u8.ToArray(), Cancel);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        Assert.Equal("naf got: health ok", await reader.ReadLineAsync(Cancel));
    }

    [Fact]
    public async Task AnUnknownBtid_IsRefusedByTheNaf_WithUnknownPskIdentity()
    {
        using var nafCertificate = DevelopmentPki.LoadPair(DevelopmentPki.Naf(_obf.Directory.FullName, TestObf.Vtams));
        using var keys = new NafKeyClient(new Uri(_obf.Server.RpoAddress), TestObf.Vtams, nafCertificate, _obf.Ca);
        await using var naf = new GbaTlsPskServer(new IPEndPoint(IPAddress.Loopback, 0), new GbaTlsPskServerOptions { NafFqdn = TestObf.Vtams }, keys.KsNafAsync, (_, _) => Task.CompletedTask);
        await using var client = OpenSslProcess.Start("s_client", "-connect", "127.0.0.1:" + naf.LocalEndPoint.Port.ToString(CultureInfo.InvariantCulture), "-tls1_2",
            "-cipher", "PSK-AES128-GCM-SHA256", "-psk", new string('0', 64), "-psk_identity", "3GPP-bootstrapping.AAAAAAAAAAAAAAAAAAAAAA==@" + TestObf.Domain, "-servername", TestObf.Vtams);
        await client.WaitForAsync("unknown psk identity");
    }
}
