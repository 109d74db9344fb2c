using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Org.BouncyCastle.Tls;

namespace OpenBest.Dtls;

/// <summary>Settings of a <see cref="GbaTlsPskServer"/>.</summary>
public sealed record GbaTlsPskServerOptions
{
    /// <summary>The NAF's FQDN: the first part of NAF_Id, and the only server_name a device may ask for.</summary>
    public required string NafFqdn { get; init; }

    /// <summary>The TLS 1.2 PSK identity hint (TS 33.222 5.4): "3GPP-bootstrapping" by default.</summary>
    public string IdentityHint { get; init; } = GbaTlsPsk.PrefixMe;

    /// <summary>Whether identities of GBA_U devices ("3GPP-bootstrapping-uicc", keyed by Ks_ext_NAF) are accepted (yes by default).</summary>
    public bool AcceptUicc { get; init; } = true;

    /// <summary>Whether TLS 1.3 with the device's external PSK (TS 33.222 5.4.0.2) is accepted besides TLS 1.2 (yes by default).</summary>
    public bool AllowTls13 { get; init; } = true;

    /// <summary>The TLS 1.2 cipher suites, in order of preference (default <see cref="GbaTlsPsk.Tls12CipherSuites"/>).</summary>
    public IReadOnlyList<int> Tls12CipherSuites { get; init; } = GbaTlsPsk.Tls12CipherSuites;

    /// <summary>A connection whose handshake (key lookup included) is not done within this time is closed and forgotten (10 s).</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Connections (handshakes and established) at most at once; more are closed at once (256).</summary>
    public int MaxConnections { get; init; } = 256;
}

/// <summary>
/// The NAF side of GBA shared-key TLS (TS 33.222 5.4) over TCP: sends the identity hint, reads the B-TID from the
/// device's PSK identity, asks <see cref="GbaKsNafLookup"/> for Ks_(ext)_NAF for the negotiated protocol, refuses an
/// unknown B-TID with the alert unknown_psk_identity (RFC 4279 2), and hands each established connection to the handler,
/// which owns it until it returns (the connection is then closed with close_notify).
/// </summary>
public sealed class GbaTlsPskServer : IAsyncDisposable
{
    private readonly Socket _listener;
    private readonly GbaTlsPskServerOptions _options;
    private readonly GbaKsNafLookup _keys;
    private readonly Func<GbaTlsPskStream, CancellationToken, Task> _handler;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<long, Task> _running = new();
    private readonly Task _accepting;
    private long _next;
    private int _connections;
    private long _handshakes;
    private long _refusals;
    private long _failures;

    /// <summary>Listens on <paramref name="endPoint"/> (port 0: any free one) at once.</summary>
    /// <param name="endPoint">Where to listen.</param>
    /// <param name="options">The NAF's FQDN and the profile.</param>
    /// <param name="keys">The key lookup (the OBF server's RPO API in production).</param>
    /// <param name="handler">Serves one established connection; its token is cancelled when the server stops.</param>
    public GbaTlsPskServer(IPEndPoint endPoint, GbaTlsPskServerOptions options, GbaKsNafLookup keys, Func<GbaTlsPskStream, CancellationToken, Task> handler)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(options.NafFqdn);
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(handler);
        _options = options;
        _keys = keys;
        _handler = handler;
        _listener = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            _listener.Bind(endPoint);
            _listener.Listen(128);
        }
        catch
        {
            _listener.Dispose();
            throw;
        }

        _accepting = Task.Run(AcceptAsync);
    }

    /// <summary>The address it listens on.</summary>
    public IPEndPoint LocalEndPoint => (IPEndPoint)_listener.LocalEndPoint!;

    /// <summary>Connections with state: handshakes in progress and established connections.</summary>
    public int Connections => Volatile.Read(ref _connections);

    /// <summary>Handshakes completed.</summary>
    public long Handshakes => Interlocked.Read(ref _handshakes);

    /// <summary>Handshakes refused because the key lookup did not know the B-TID (or the identity was not a GBA one).</summary>
    public long Refusals => Interlocked.Read(ref _refusals);

    /// <summary>Connections that failed otherwise: wrong key, timeout, protocol error, too many connections, a handler that threw.</summary>
    public long Failures => Interlocked.Read(ref _failures);

    /// <summary>Stops listening, cancels the handlers and waits (a few seconds at most) for the connections to close.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_stop.IsCancellationRequested)
        {
            return;
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        await _accepting.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        var connections = Task.WhenAll(_running.Values);
        await connections.WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        if (connections.IsCompleted)
        {
            _stop.Dispose(); // else a connection still closing may read its token
        }
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptAsync(_stop.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (_stop.IsCancellationRequested)
                {
                    return;
                }

                continue;
            }

            if (Interlocked.Increment(ref _connections) > _options.MaxConnections)
            {
                Interlocked.Decrement(ref _connections);
                Interlocked.Increment(ref _failures);
                socket.Dispose();
                continue;
            }

            var id = Interlocked.Increment(ref _next);
            var serving = Task.Run(() => ServeAsync(socket));
            _running[id] = serving;
            _ = serving.ContinueWith(_ => _running.TryRemove(id, out Task? _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }

    private async Task ServeAsync(Socket socket)
    {
        GbaTlsPskStream? stream = null;
        try
        {
            var peer = new Peer(this);
            socket.NoDelay = true;
            var protocol = new TlsServerProtocol();
            stream = new GbaTlsPskStream(new NetworkStream(socket, ownsSocket: true), protocol, peer.InspectAsync);
            using (var deadline = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token))
            {
                deadline.CancelAfter(_options.HandshakeTimeout);
                try
                {
                    protocol.Accept(peer);
                    await stream.HandshakeAsync(deadline.Token).ConfigureAwait(false);
                }
                catch (Exception)
                {
                    // Whatever a peer does ends only its connection: a refusal (unknown B-TID), a wrong key, a timeout.
                    Interlocked.Increment(ref peer.Refused ? ref _refusals : ref _failures);
                    return;
                }
                finally
                {
                    peer.ZeroKeys();
                }
            }

            if (peer.Selected is not { } selected)
            {
                Interlocked.Increment(ref _failures);
                return;
            }

            stream.Established(peer.Context, selected.BTid, selected.Mode, selected.Ua);
            Interlocked.Increment(ref _handshakes);
            await _handler(stream, _stop.Token).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Whatever the handler does (or a socket that broke before the handshake) ends only its connection.
            Interlocked.Increment(ref _failures);
        }
        finally
        {
            if (stream is not null)
            {
                await stream.DisposeAsync().ConfigureAwait(false);
            }
            else
            {
                socket.Dispose();
            }

            Interlocked.Decrement(ref _connections);
        }
    }

    /// <summary>A key the lookup returned (or refused) for one identity of one connection.</summary>
    private sealed record Entry(GbaMode Mode, string BTid, byte[] Ua, byte[]? Key, bool Failed);

    /// <summary>One connection's BouncyCastle server: the identity hint, the identities it looked up, the key it selected.</summary>
    private sealed class Peer : PskTlsServer, TlsPskIdentityManager
    {
        private readonly GbaTlsPskServer _owner;
        private readonly HandshakeReader _reader = new();
        private readonly Dictionary<(string Identity, bool Tls13), Entry> _entries = [];

        public Peer(GbaTlsPskServer owner)
            : base(DtlsPsk.NewCrypto(), null)
        {
            _owner = owner;
        }

        /// <summary>Whether the handshake failed because no key was found for the identity.</summary>
        public bool Refused { get; private set; }

        /// <summary>The key the handshake used.</summary>
        public Entry? Selected { get; private set; }

        private GbaTlsPskServerOptions Options => _owner._options;

        public TlsContext Context => m_context;

        public override TlsPskIdentityManager GetPskIdentityManager() => this;

        protected override ProtocolVersion[] GetSupportedVersions()
            => Options.AllowTls13 ? ProtocolVersion.TLSv13.DownTo(ProtocolVersion.TLSv12) : ProtocolVersion.TLSv12.Only();

        protected override int[] GetSupportedCipherSuites()
            => TlsUtilities.GetSupportedCipherSuites(Crypto, [.. Options.AllowTls13 ? GbaTlsPsk.Tls13CipherSuites : [], .. Options.Tls12CipherSuites]);

        protected override bool PreferLocalCipherSuites() => true;

        public override void ProcessClientExtensions(IDictionary<int, byte[]> clientExtensions)
        {
            base.ProcessClientExtensions(clientExtensions);

            // 24.109 5.3.3.1: the ClientHello names the NAF's host; the device derives its key with that name, so another
            // name cannot succeed: say so now (RFC 6066 3) rather than fail at Finished.
            var names = TlsExtensionsUtilities.GetServerNameExtensionClient(clientExtensions);
            if (names is { Count: > 0 } && !names.Any(n => n.NameType == NameType.host_name
                && string.Equals(System.Text.Encoding.ASCII.GetString(n.NameData), Options.NafFqdn, StringComparison.OrdinalIgnoreCase)))
            {
                throw new TlsFatalAlert(AlertDescription.unrecognized_name);
            }
        }

        public override TlsCredentials GetCredentials()
        {
            if (TlsUtilities.IsTlsV13(m_context.ServerVersion))
            {
                // TLS 1.3 without an accepted PSK would need a certificate, which a shared-key NAF does not have.
                throw new TlsFatalAlert(AlertDescription.handshake_failure);
            }

            return base.GetCredentials();
        }

        public byte[] GetHint() => GbaTlsPsk.Encode(Options.IdentityHint);

        public byte[]? GetPsk(byte[] identity)
        {
            if (!_entries.TryGetValue((GbaTlsPsk.Decode(identity), false), out var entry))
            {
                Refused = true;
                return null;
            }

            return Use(entry);
        }

        public override TlsPskExternal? GetExternalPsk(IList<PskIdentity> identities)
        {
            foreach (var identity in identities)
            {
                if (_entries.TryGetValue((GbaTlsPsk.Decode(identity.Identity), true), out var entry) && Use(entry) is { } key)
                {
                    return new BasicTlsPskExternal(identity.Identity, Crypto.CreateSecret(key), PrfAlgorithm.tls13_hkdf_sha256);
                }
            }

            // RFC 8446 6.2: unknown_psk_identity, "sent by servers when PSK key establishment is desired but no acceptable
            // PSK identity is provided by the client".
            Refused = true;
            throw new TlsFatalAlert(AlertDescription.unknown_psk_identity);
        }

        private byte[]? Use(Entry entry)
        {
            if (entry.Failed)
            {
                throw new TlsFatalAlert(AlertDescription.internal_error);
            }

            if (entry.Key is null)
            {
                Refused = true;
                return null;
            }

            Selected = entry;
            return entry.Key;
        }

        /// <summary>Reads each record the client sends before the engine does, and looks up the keys of the identities it presents.</summary>
        public async ValueTask InspectAsync(ReadOnlyMemory<byte> record, CancellationToken cancellationToken)
        {
            foreach (var (identityBytes, tls13) in _reader.Feed(record.Span))
            {
                if (tls13 && !Options.AllowTls13)
                {
                    continue;
                }

                var identity = GbaTlsPsk.Decode(identityBytes);
                if (_entries.ContainsKey((identity, tls13)) || _entries.Keys.Any(k => k.Tls13 == tls13))
                {
                    continue; // one lookup per protocol and connection: the first identity is the device's
                }

                if (!GbaTlsPsk.TryParseIdentity(identity, out var mode, out var bTid) || mode == GbaMode.Digest || (mode == GbaMode.Uicc && !Options.AcceptUicc))
                {
                    _entries[(identity, tls13)] = new Entry(mode, bTid, [], null, false);
                    continue;
                }

                var suite = m_context?.SecurityParameters?.CipherSuite ?? -1;
                if (!tls13 && !Options.Tls12CipherSuites.Contains(suite))
                {
                    continue; // a ClientKeyExchange before the suite was chosen: the engine refuses it
                }

                var ua = tls13 ? GbaTlsPsk.UaTls13.ToArray() : GbaTlsPsk.UaTls12(suite);
                _entries[(identity, tls13)] = await LookUpAsync(mode, bTid, ua, cancellationToken).ConfigureAwait(false);
            }
        }

        private async Task<Entry> LookUpAsync(GbaMode mode, string bTid, byte[] ua, CancellationToken cancellationToken)
        {
            byte[]? key;
            try
            {
                key = await _owner._keys(bTid, ua.ToArray(), cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                throw;
            }
            catch (Exception)
            {
                return new Entry(mode, bTid, ua, null, Failed: true);
            }

            if (key is not null && key.Length != GbaTlsPsk.KeySize)
            {
                CryptographicOperations.ZeroMemory(key);
                return new Entry(mode, bTid, ua, null, Failed: true);
            }

            return new Entry(mode, bTid, ua, key, Failed: false);
        }

        /// <summary>Zeroes every key this connection looked up (the engine has its own copies of what it needs).</summary>
        public void ZeroKeys()
        {
            foreach (var entry in _entries.Values)
            {
                if (entry.Key is { } key)
                {
                    CryptographicOperations.ZeroMemory(key);
                }
            }
        }
    }
}
