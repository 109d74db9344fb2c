using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using OpenBest.Testing;

namespace OpenBest.Dtls.Tests;

/// <summary>
/// TLS 1.2 PSK and TLS 1.3 external PSK over TCP for the key-agreement-only service (<see cref="PskTls"/>), with OpenSSL and
/// GnuTLS as the real peer in both roles: their clients against our server, our client against their servers. The key and
/// identity are written out here as a device and an enterprise server would get them (K_EAS_PSK, external id # key id).
/// DTLS 1.3 is not among them: neither BouncyCastle 2.7 nor Debian 12's OpenSSL 3.0 and GnuTLS 3.7 speak it.
/// </summary>
public sealed class PskTlsTests
{
    private const string Identity = "meter-7@acme#0a0b0c0d";
    private static readonly byte[] Psk = Convert.FromHexString("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    private static readonly string PskHex = Convert.ToHexString(Psk).ToLowerInvariant();

    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    public static TheoryData<TlsPskVersion> Versions => new() { TlsPskVersion.Tls12, TlsPskVersion.Tls13 };

    /// <summary>Our server (<see cref="PskTlsListener"/>) on a free loopback port: each connection's first line comes back as "server got: LINE".</summary>
    private sealed class EchoServer : IAsyncDisposable
    {
        private readonly PskTlsListener _listener;

        public EchoServer(Func<string, byte[]?> keys) => _listener = new PskTlsListener(new IPEndPoint(IPAddress.Loopback, 0), keys, async (identity, stream, cancel) =>
        {
            var line = await new StreamReader(stream, Encoding.UTF8, leaveOpen: true).ReadLineAsync(cancel) ?? string.Empty;
            await stream.WriteAsync(Encoding.UTF8.GetBytes("server got: " + line + "\n"), cancel);
            await stream.FlushAsync(cancel);
            First.TrySetResult((identity, line));
        });

        public int Port => _listener.LocalEndPoint.Port;

        public long Refused => _listener.Failures;

        public TaskCompletionSource<(string Identity, string Line)> First { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public ValueTask DisposeAsync() => _listener.DisposeAsync();
    }

    private static byte[]? Keys(string identity) => identity == Identity ? (byte[])Psk.Clone() : null;

    private static async Task<string?> ReadLineAsync(Stream stream)
    {
        using var reader = new StreamReader(stream, Encoding.UTF8, leaveOpen: true);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(Cancel);
        limit.CancelAfter(Eventually.Deadline);
        return await reader.ReadLineAsync(limit.Token);
    }

    [Theory]
    [MemberData(nameof(Versions))]
    public async Task OurClient_AgainstOurServer(TlsPskVersion version)
    {
        await using var server = new EchoServer(Keys);
        await using var stream = await PskTls.ConnectAsync(new IPEndPoint(IPAddress.Loopback, server.Port), Identity, Psk, version, Cancel);
        await stream.WriteAsync("reading 42\n"u8.ToArray(), Cancel);
        Assert.Equal("server got: reading 42", await ReadLineAsync(stream));
        Assert.Equal((Identity, "reading 42"), await server.First.Task.WaitAsync(Eventually.Deadline, Cancel));
    }

    [Theory]
    [MemberData(nameof(Versions))]
    public async Task AWrongKey_OrAnUnknownIdentity_FailsTheHandshake_AndTheServerGoesOn(TlsPskVersion version)
    {
        await using var server = new EchoServer(Keys);
        var endpoint = new IPEndPoint(IPAddress.Loopback, server.Port);
        var wrong = (byte[])Psk.Clone();
        wrong[0] ^= 1;
        await Assert.ThrowsAsync<IOException>(() => PskTls.ConnectAsync(endpoint, Identity, wrong, version, Cancel));
        await Assert.ThrowsAsync<IOException>(() => PskTls.ConnectAsync(endpoint, "someone-else#00000001", Psk, version, Cancel));
        await Eventually.True(() => server.Refused == 2, "the server counts both refusals");
        await using var stream = await PskTls.ConnectAsync(endpoint, Identity, Psk, version, Cancel);
        await stream.WriteAsync("still here\n"u8.ToArray(), Cancel);
        Assert.Equal("server got: still here", await ReadLineAsync(stream));
    }

    [Theory]
    [MemberData(nameof(Versions))]
    public async Task OpenSslClient_AgainstOurServer(TlsPskVersion version)
    {
        await using var server = new EchoServer(Keys);
        string[] versionArgs = version == TlsPskVersion.Tls13 ? ["-tls1_3"] : ["-tls1_2", "-cipher", PskTls.OpenSslTls12Cipher];
        await using var client = OpenSslProcess.Start(["s_client", "-connect", "127.0.0.1:" + server.Port.ToString(CultureInfo.InvariantCulture), .. versionArgs, "-psk", PskHex, "-psk_identity", Identity]);
        await client.WaitForAsync(version == TlsPskVersion.Tls13 ? "Cipher is TLS_AES_128_GCM_SHA256" : "Cipher is " + PskTls.OpenSslTls12Cipher);
        await client.WriteLineAsync("reading from openssl");
        await client.WaitForAsync("server got: reading from openssl");
        Assert.Equal((Identity, "reading from openssl"), await server.First.Task.WaitAsync(Eventually.Deadline, Cancel));
    }

    [Theory]
    [MemberData(nameof(Versions))]
    public async Task OurClient_AgainstOpenSslServer(TlsPskVersion version)
    {
        string[] versionArgs = version == TlsPskVersion.Tls13 ? ["-tls1_3"] : ["-tls1_2", "-cipher", PskTls.OpenSslTls12Cipher];
        var (server, port) = await OpenSslProcess.StartServerAsync(["-nocert", .. versionArgs, "-psk", PskHex, "-psk_identity", Identity]);
        await using var _ = server;
        await using var stream = await PskTls.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), Identity, Psk, version, Cancel);
        await stream.WriteAsync("reading to openssl\n"u8.ToArray(), Cancel);
        await server.WaitForAsync("reading to openssl");
        Assert.DoesNotContain("PSK warning", server.Output, StringComparison.Ordinal);
        await server.WriteLineAsync("openssl answers");
        Assert.Equal("openssl answers", await ReadLineAsync(stream));
    }

    [Theory]
    [MemberData(nameof(Versions))]
    public async Task GnuTlsClient_AgainstOurServer(TlsPskVersion version)
    {
        RequireGnuTls();
        await using var server = new EchoServer(Keys);
        await using var client = PeerProcess.Start("gnutls-cli", "--port", server.Port.ToString(CultureInfo.InvariantCulture), "--pskusername", Identity, "--pskkey", PskHex, "--priority", GnuTlsPriority(version), "127.0.0.1");
        await client.WaitForAsync("Handshake was completed");
        Assert.Contains(version == TlsPskVersion.Tls13 ? "TLS1.3" : "TLS1.2", client.Output, StringComparison.Ordinal);
        await client.WriteLineAsync("reading from gnutls");
        await client.WaitForAsync("server got: reading from gnutls");
        Assert.Equal((Identity, "reading from gnutls"), await server.First.Task.WaitAsync(Eventually.Deadline, Cancel));
    }

    [Theory]
    [MemberData(nameof(Versions))]
    public async Task OurClient_AgainstGnuTlsServer(TlsPskVersion version)
    {
        RequireGnuTls();
        var directory = Directory.CreateTempSubdirectory("openbest-gnutls-");
        try
        {
            // gnutls-serv's PSK file: one "username:hex key" line per identity.
            var passwd = Path.Combine(directory.FullName, "psk.txt");
            await File.WriteAllTextAsync(passwd, $"{Identity}:{PskHex}\n", Cancel);
            var port = FreeTcpPort();
            await using var server = PeerProcess.Start("gnutls-serv", "--port", port.ToString(CultureInfo.InvariantCulture), "--pskpasswd", passwd, "--priority", GnuTlsPriority(version), "--echo");
            await server.WaitForAsync("listening");
            await using var stream = await ConnectWhenListeningAsync(port, version);
            await stream.WriteAsync("echo me\n"u8.ToArray(), Cancel);
            Assert.Equal("echo me", await ReadLineAsync(stream));
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    private static async Task<Stream> ConnectWhenListeningAsync(int port, TlsPskVersion version)
    {
        var started = Stopwatch.GetTimestamp();
        while (true)
        {
            try
            {
                return await PskTls.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), Identity, Psk, version, Cancel);
            }
            catch (IOException e) when (e.InnerException is SocketException && Stopwatch.GetElapsedTime(started) < Eventually.Deadline)
            {
                await Task.Delay(100, Cancel);
            }
        }
    }

    /// <summary>GnuTLS priority strings: PSK key exchange only, one version.</summary>
    private static string GnuTlsPriority(TlsPskVersion version) => version == TlsPskVersion.Tls13
        ? "NORMAL:-VERS-ALL:+VERS-TLS1.3:-KX-ALL:+PSK:+DHE-PSK:+ECDHE-PSK"
        : "NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+PSK:-CIPHER-ALL:+AES-128-GCM";

    private static void RequireGnuTls()
    {
        if (!File.Exists("/usr/bin/gnutls-cli") || !File.Exists("/usr/bin/gnutls-serv"))
        {
            Assert.True(Environment.GetEnvironmentVariable("CI") is null, "CI installs gnutls-bin");
            Assert.Skip("gnutls-bin is not installed");
        }
    }

    private static int FreeTcpPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
