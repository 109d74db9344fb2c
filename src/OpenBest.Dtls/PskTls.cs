using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Org.BouncyCastle.Tls;
using Org.BouncyCastle.Tls.Crypto;

namespace OpenBest.Dtls;

/// <summary>The TLS versions a PSK connection may use.</summary>
public enum TlsPskVersion
{
    /// <summary>TLS 1.2 with a PSK cipher suite (RFC 4279, RFC 5487): TLS_PSK_WITH_AES_128_GCM_SHA256.</summary>
    Tls12,

    /// <summary>TLS 1.3 with an external PSK (RFC 8446 2.2, 4.2.11): TLS_AES_128_GCM_SHA256, psk_dhe_ke or psk_ke.</summary>
    Tls13,
}

/// <summary>
/// TLS over TCP with a pre-shared key for the key-agreement-only service: the device uses the K_EAS_PSK (or an endpoint's
/// key) its BEST session agreed, under the PSK identity <c>&lt;external id&gt;#&lt;key identifier&gt;</c>; the enterprise
/// server takes the same key from the HSE. TLS 1.2 (PSK cipher suite, no certificates) and TLS 1.3 (external PSK, SHA-256,
/// no certificates; the server accepts psk_ke and psk_dhe_ke, the client offers psk_dhe_ke for forward secrecy).
/// </summary>
public static class PskTls
{
    /// <summary>The TLS 1.2 cipher suite.</summary>
    public const int Tls12CipherSuite = CipherSuite.TLS_PSK_WITH_AES_128_GCM_SHA256;

    /// <summary>The TLS 1.3 cipher suite (its hash, SHA-256, is the external PSK's).</summary>
    public const int Tls13CipherSuite = CipherSuite.TLS_AES_128_GCM_SHA256;

    /// <summary>OpenSSL's name of <see cref="Tls12CipherSuite"/>.</summary>
    public const string OpenSslTls12Cipher = "PSK-AES128-GCM-SHA256";

    /// <summary>Runs the client handshake on <paramref name="transport"/> and returns the protected stream.</summary>
    /// <exception cref="IOException">The handshake failed (wrong key, unknown identity, no common version).</exception>
    public static Stream Connect(Stream transport, string identity, ReadOnlySpan<byte> psk, TlsPskVersion version)
    {
        ArgumentNullException.ThrowIfNull(transport);
        ArgumentException.ThrowIfNullOrEmpty(identity);
        var key = psk.ToArray();
        try
        {
            var protocol = new TlsClientProtocol(transport);
            protocol.Connect(new Client(Encoding.UTF8.GetBytes(identity), key, version));
            return new PskStream(protocol);
        }
        catch (Exception e) when (e is TlsFatalAlert or TlsFatalAlertReceived or TlsException or IOException)
        {
            throw new IOException($"TLS-PSK ({Name(version)}) handshake failed ({e.GetType().Name}: {e.Message})", e);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    /// <summary>Connects to <paramref name="server"/> over TCP and runs the client handshake.</summary>
    /// <exception cref="IOException">No connection, or the handshake failed.</exception>
    public static async Task<Stream> ConnectAsync(IPEndPoint server, string identity, ReadOnlyMemory<byte> psk, TlsPskVersion version, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(server);
        var client = new TcpClient(server.AddressFamily) { NoDelay = true };
        try
        {
            await client.ConnectAsync(server, cancellationToken).ConfigureAwait(false);
            var network = client.GetStream();
            network.ReadTimeout = 30_000;
            return await Task.Run(() => Connect(network, identity, psk.Span, version), cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException e)
        {
            client.Dispose();
            throw new IOException($"TLS-PSK: cannot connect to {server} ({e.SocketErrorCode})", e);
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Runs the server handshake on <paramref name="transport"/>: the client's identity names the key (<paramref name="keys"/>
    /// gives it, or null to refuse); TLS 1.3 or 1.2, whichever the client offers highest. Returns the stream and the identity.
    /// </summary>
    /// <exception cref="IOException">The handshake failed or the identity is unknown.</exception>
    public static (Stream Stream, string Identity) Accept(Stream transport, Func<string, byte[]?> keys)
    {
        ArgumentNullException.ThrowIfNull(transport);
        ArgumentNullException.ThrowIfNull(keys);
        var server = new Server(keys);
        try
        {
            var protocol = new TlsServerProtocol(transport);
            protocol.Accept(server);
            return (new PskStream(protocol), server.Identity ?? string.Empty);
        }
        catch (Exception e) when (e is TlsFatalAlert or TlsFatalAlertReceived or TlsException or IOException)
        {
            throw new IOException($"TLS-PSK handshake from a client failed ({e.GetType().Name}: {e.Message})", e);
        }
    }

    /// <summary>The version's name as people write it.</summary>
    public static string Name(TlsPskVersion version) => version == TlsPskVersion.Tls13 ? "TLS 1.3" : "TLS 1.2";

    private sealed class Client(byte[] identity, byte[] psk, TlsPskVersion version) : PskTlsClient(DtlsPsk.NewCrypto(), new BasicTlsPskIdentity(identity, psk))
    {
        private readonly byte[] _identity = identity;
        private readonly byte[] _psk = (byte[])psk.Clone();

        protected override ProtocolVersion[] GetSupportedVersions() => version == TlsPskVersion.Tls13 ? ProtocolVersion.TLSv13.Only() : ProtocolVersion.TLSv12.Only();

        protected override int[] GetSupportedCipherSuites() => version == TlsPskVersion.Tls13 ? [Tls13CipherSuite] : [Tls12CipherSuite];

        public override IList<TlsPskExternal>? GetExternalPsks()
        {
            if (version != TlsPskVersion.Tls13)
            {
                return null;
            }

            var secret = Crypto.CreateSecret(_psk);
            CryptographicOperations.ZeroMemory(_psk);
            return [new BasicTlsPskExternal(_identity, secret, PrfAlgorithm.tls13_hkdf_sha256)];
        }

        public override void NotifySelectedPsk(Org.BouncyCastle.Tls.TlsPsk? selectedPsk)
        {
            if (version == TlsPskVersion.Tls13 && selectedPsk is null)
            {
                // A TLS 1.3 server that did not take the key would authenticate by certificate: not this service.
                throw new TlsFatalAlert(AlertDescription.handshake_failure);
            }
        }
    }

    private sealed class Server(Func<string, byte[]?> keys) : PskTlsServer(DtlsPsk.NewCrypto(), new Keys(keys))
    {
        public string? Identity => ((Keys)m_pskIdentityManager).Seen;

        protected override ProtocolVersion[] GetSupportedVersions() => ProtocolVersion.TLSv13.DownTo(ProtocolVersion.TLSv12);

        protected override int[] GetSupportedCipherSuites() => [Tls13CipherSuite, Tls12CipherSuite];

        public override TlsPskExternal? GetExternalPsk(IList<PskIdentity> identities)
        {
            foreach (var offered in identities)
            {
                if (((Keys)m_pskIdentityManager).GetPsk(offered.Identity) is { } key)
                {
                    var secret = Crypto.CreateSecret(key);
                    CryptographicOperations.ZeroMemory(key);
                    return new BasicTlsPskExternal(offered.Identity, secret, PrfAlgorithm.tls13_hkdf_sha256);
                }

            }

            return null;
        }

        public override TlsCredentials GetCredentials()
        {
            // TLS 1.3 without a PSK the server knows would need a certificate: refuse instead.
            if (TlsUtilities.IsTlsV13(m_context))
            {
                throw new TlsFatalAlert(AlertDescription.unknown_psk_identity);
            }

            return base.GetCredentials();
        }
    }

    private sealed class Keys(Func<string, byte[]?> keys) : TlsPskIdentityManager
    {
        public string? Seen { get; private set; }

        public byte[] GetHint() => [];

        public byte[]? GetPsk(byte[] identity)
        {
            var name = Encoding.UTF8.GetString(identity);
            var key = keys(name);
            if (key is not null)
            {
                Seen = name;
            }

            return key;
        }
    }

    /// <summary>The protocol's stream, which also closes the connection under it.</summary>
    private sealed class PskStream(TlsProtocol protocol) : Stream
    {
        private readonly Stream _inner = protocol.Stream;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int ReadTimeout { get => _inner.ReadTimeout; set => _inner.ReadTimeout = value; }

        public override bool CanTimeout => true;

        public override void Flush() => _inner.Flush();

        public override int Read(byte[] buffer, int offset, int count)
        {
            try
            {
                return _inner.Read(buffer, offset, count);
            }
            catch (TlsNoCloseNotifyException)
            {
                return 0; // the peer closed the connection without close_notify: the end of what it sent
            }
            catch (TlsException e)
            {
                throw new IOException($"TLS-PSK: {e.Message}", e);
            }
        }

        public override void Write(byte[] buffer, int offset, int count)
        {
            try
            {
                _inner.Write(buffer, offset, count);
            }
            catch (TlsException e)
            {
                throw new IOException($"TLS-PSK: {e.Message}", e);
            }
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                try
                {
                    protocol.Close();
                }
                catch (IOException)
                {
                }
            }

            base.Dispose(disposing);
        }
    }
}

/// <summary>
/// A TLS-PSK server on one TCP port (<see cref="PskTls.Accept"/> per connection, TLS 1.3 or 1.2): the key of a client's
/// identity comes from <c>keys</c> (null refuses the handshake); each connection is handed to the handler with its identity.
/// A failed handshake or a failing handler ends only that connection, and is counted.
/// </summary>
public sealed class PskTlsListener : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly Func<string, IPEndPoint, byte[]?> _keys;
    private readonly Func<string, Stream, CancellationToken, Task> _handler;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private long _handshakes;
    private long _failures;

    /// <summary>Listens on <paramref name="endPoint"/> (port 0: any free one).</summary>
    public PskTlsListener(IPEndPoint endPoint, Func<string, byte[]?> keys, Func<string, Stream, CancellationToken, Task> handler)
        : this(endPoint, (identity, _) => keys(identity), handler)
    {
    }

    /// <summary>Listens on <paramref name="endPoint"/>; the key lookup also gets the client's address (to limit lookups per source).</summary>
    public PskTlsListener(IPEndPoint endPoint, Func<string, IPEndPoint, byte[]?> keys, Func<string, Stream, CancellationToken, Task> handler)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        _keys = keys;
        _handler = handler;
        _listener = new TcpListener(endPoint);
        _listener.Start();
        _loop = Task.Run(AcceptLoopAsync);
    }

    /// <summary>Where it listens.</summary>
    public IPEndPoint LocalEndPoint => (IPEndPoint)_listener.LocalEndpoint;

    /// <summary>Handshakes completed.</summary>
    public long Handshakes => Interlocked.Read(ref _handshakes);

    /// <summary>Connections that failed (handshake refused, or the handler failed).</summary>
    public long Failures => Interlocked.Read(ref _failures);

    /// <summary>Stops listening; connections in progress end with their handlers.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Stop();
        await _loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _stop.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            // BouncyCastle's handshake blocks: each connection on a thread of its own.
            _ = Task.Factory.StartNew(() => ServeAsync(client), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        using (client)
        {
            try
            {
                client.NoDelay = true;
                var network = client.GetStream();
                network.ReadTimeout = 30_000;
                var peer = (IPEndPoint)client.Client.RemoteEndPoint!;
                var (stream, identity) = PskTls.Accept(network, name => _keys(name, peer));
                Interlocked.Increment(ref _handshakes);
                await using (stream.ConfigureAwait(false))
                {
                    await _handler(identity, stream, _stop.Token).ConfigureAwait(false);
                }
            }
            catch (Exception)
            {
                // Whatever a peer or the handler does ends only that connection, never the server.
                Interlocked.Increment(ref _failures);
            }
        }
    }
}
