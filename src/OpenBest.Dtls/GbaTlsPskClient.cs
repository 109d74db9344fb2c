using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using OpenBest.Crypto.Kdf;
using Org.BouncyCastle.Tls;

namespace OpenBest.Dtls;

/// <summary>Settings of a device's connection to a NAF (<see cref="GbaTlsPskClient"/>).</summary>
public sealed record GbaTlsPskClientOptions
{
    /// <summary>The NAF's FQDN: sent as server_name, and the first part of NAF_Id.</summary>
    public required string NafFqdn { get; init; }

    /// <summary>The B-TID of the device's bootstrapping.</summary>
    public required string BTid { get; init; }

    /// <summary>
    /// Ks_(ext)_NAF for NAF_Id = <see cref="NafFqdn"/> ‖ the given Ua security protocol identifier (see
    /// <see cref="GbaKs.KsNaf"/>). Called when the engine needs the key: with 01 00 00 00 07 when TLS 1.3 is offered,
    /// and with 01 00 01 yy zz once the NAF chose the TLS 1.2 suite yy zz. The array returned is zeroed after use.
    /// </summary>
    public required Func<byte[], byte[]> KsNaf { get; init; }

    /// <summary>The GBA mode of the bootstrapping (the identity prefix): GBA_ME by default.</summary>
    public GbaMode Mode { get; init; } = GbaMode.Me;

    /// <summary>Whether TLS 1.3 with the external PSK is offered besides TLS 1.2 (yes by default).</summary>
    public bool OfferTls13 { get; init; } = true;

    /// <summary>Whether a TLS 1.2 NAF must send an identity hint naming <see cref="Mode"/> (yes by default, TS 33.222 5.4).</summary>
    public bool RequireHint { get; init; } = true;

    /// <summary>The TLS 1.2 cipher suites offered, in order of preference (default <see cref="GbaTlsPsk.Tls12CipherSuites"/>).</summary>
    public IReadOnlyList<int> Tls12CipherSuites { get; init; } = GbaTlsPsk.Tls12CipherSuites;

    /// <summary>The handshake (connecting included) must be done within this time (10 s).</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);
}

/// <summary>A GBA shared-key TLS handshake that failed: the TLS alert, if one was sent or received, says why.</summary>
public sealed class GbaTlsPskException(string message, short? alert, bool alertReceived, Exception? innerException)
    : IOException(message, innerException)
{
    /// <summary>The TLS AlertDescription code (RFC 8446 6), or null when the connection just broke or timed out.</summary>
    public short? Alert { get; } = alert;

    /// <summary>Whether the NAF sent the alert (else this side raised it).</summary>
    public bool AlertReceived { get; } = alertReceived;

    /// <summary>
    /// Whether the NAF refused the B-TID (unknown_psk_identity): the device should bootstrap again and retry with the
    /// new B-TID (TS 24.109 5.3.3.3, bootstrapping required).
    /// </summary>
    public bool BootstrappingRequired => AlertReceived && Alert == AlertDescription.unknown_psk_identity;
}

/// <summary>
/// The device side of GBA shared-key TLS (TS 33.222 5.4): connects to a NAF, checks the identity hint, presents
/// "3GPP-bootstrapping" "." B-TID, and keys the connection with Ks_(ext)_NAF for the NAF's FQDN and the negotiated
/// protocol (TLS 1.3, or the TLS 1.2 suite the NAF chose).
/// </summary>
public static class GbaTlsPskClient
{
    /// <summary>Connects over TCP to <paramref name="host"/>:<paramref name="port"/> and runs the handshake.</summary>
    /// <exception cref="GbaTlsPskException">The handshake failed (see its alert), or did not finish in time.</exception>
    /// <exception cref="SocketException">The connection could not be opened.</exception>
    public static async Task<GbaTlsPskStream> ConnectAsync(string host, int port, GbaTlsPskClientOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(options.HandshakeTimeout);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(host, port, deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            throw new GbaTlsPskException($"no connection to {host}:{port} within {options.HandshakeTimeout.TotalSeconds:0} s", null, false, e);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        return await AuthenticateAsync(new NetworkStream(socket, ownsSocket: true), options, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Connects over TCP to <paramref name="endPoint"/> and runs the handshake.</summary>
    /// <exception cref="GbaTlsPskException">The handshake failed (see its alert), or did not finish in time.</exception>
    /// <exception cref="SocketException">The connection could not be opened.</exception>
    public static Task<GbaTlsPskStream> ConnectAsync(IPEndPoint endPoint, GbaTlsPskClientOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        return ConnectAsync(endPoint.Address.ToString(), endPoint.Port, options, cancellationToken);
    }

    /// <summary>Runs the handshake over an open transport, which the returned stream then owns (it is disposed on failure).</summary>
    /// <exception cref="GbaTlsPskException">The handshake failed (see its alert), or did not finish in time.</exception>
    public static async Task<GbaTlsPskStream> AuthenticateAsync(Stream transport, GbaTlsPskClientOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(transport);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(options.NafFqdn);
        ArgumentException.ThrowIfNullOrEmpty(options.BTid);
        ArgumentNullException.ThrowIfNull(options.KsNaf);
        if (options.Mode == GbaMode.Digest)
        {
            throw new ArgumentException("GBA_Digest is not supported.", nameof(options));
        }

        var client = new Client(options);
        var protocol = new TlsClientProtocol();
        var stream = new GbaTlsPskStream(transport, protocol, inspect: null);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(options.HandshakeTimeout);
        try
        {
            protocol.Connect(client);
            await stream.HandshakeAsync(deadline.Token).ConfigureAwait(false);
            stream.Established(client.Context, options.BTid, options.Mode, client.Ua ?? []);
            return stream;
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or SocketException or ObjectDisposedException)
        {
            await stream.DisposeAsync().ConfigureAwait(false);
            if (e is OperationCanceledException && cancellationToken.IsCancellationRequested)
            {
                throw;
            }

            throw Describe(e, options);
        }
        finally
        {
            client.ZeroKeys();
        }
    }

    private static GbaTlsPskException Describe(Exception e, GbaTlsPskClientOptions options) => e switch
    {
        TlsFatalAlertReceived received => new GbaTlsPskException(
            $"the NAF {options.NafFqdn} refused the handshake ({AlertDescription.GetText(received.AlertDescription)})", received.AlertDescription, true, e),
        TlsFatalAlert raised => new GbaTlsPskException(
            $"the handshake with the NAF {options.NafFqdn} failed here ({AlertDescription.GetText(raised.AlertDescription)}{(raised.Message is { Length: > 0 } m ? ": " + m : string.Empty)})", raised.AlertDescription, false, e),
        OperationCanceledException => new GbaTlsPskException(
            $"no handshake with the NAF {options.NafFqdn} within {options.HandshakeTimeout.TotalSeconds:0} s", null, false, e),
        _ => new GbaTlsPskException($"the handshake with the NAF {options.NafFqdn} broke off ({e.GetType().Name}: {e.Message})", null, false, e),
    };

    /// <summary>The BouncyCastle client: versions and suites of the profile, server_name, identity hint check, keys per protocol.</summary>
    private sealed class Client : PskTlsClient
    {
        private readonly GbaTlsPskClientOptions _options;
        private readonly byte[] _identity;
        private readonly List<byte[]> _keys = [];

        public Client(GbaTlsPskClientOptions options)
            : base(DtlsPsk.NewCrypto(), null)
        {
            _options = options;
            _identity = GbaTlsPsk.Encode(GbaTlsPsk.Identity(options.BTid, options.Mode));
        }

        public TlsContext Context => m_context;

        /// <summary>The Ua security protocol identifier of the key the handshake used.</summary>
        public byte[]? Ua { get; private set; }

        public override TlsPskIdentity GetPskIdentity() => new Identity(this);

        protected override ProtocolVersion[] GetSupportedVersions()
            => _options.OfferTls13 ? ProtocolVersion.TLSv13.DownTo(ProtocolVersion.TLSv12) : ProtocolVersion.TLSv12.Only();

        protected override int[] GetSupportedCipherSuites()
            => TlsUtilities.GetSupportedCipherSuites(Crypto, [.. _options.OfferTls13 ? GbaTlsPsk.Tls13CipherSuites : [], .. _options.Tls12CipherSuites]);

        protected override IList<ServerName> GetSniServerNames() => [new ServerName(NameType.host_name, Encoding.ASCII.GetBytes(_options.NafFqdn))];

        /// <summary>TS 33.222 5.4.0.2: in TLS 1.3 the device offers its B-TID identity as an external PSK keyed for Ua 01 00 00 00 07.</summary>
        public override IList<TlsPskExternal>? GetExternalPsks()
        {
            if (!_options.OfferTls13)
            {
                return null;
            }

            var key = Derive(GbaTlsPsk.UaTls13.ToArray());
            return [new BasicTlsPskExternal(_identity, Crypto.CreateSecret(key), PrfAlgorithm.tls13_hkdf_sha256)];
        }

        public override void NotifySelectedPsk(TlsPsk selectedPsk)
        {
            base.NotifySelectedPsk(selectedPsk);
            Ua = GbaTlsPsk.UaTls13.ToArray();
        }

        public override TlsAuthentication GetAuthentication()
        {
            // Only a NAF that did not accept the PSK would authenticate with a certificate (TLS 1.3 without PSK, or RSA_PSK).
            throw new TlsFatalAlert(AlertDescription.handshake_failure, "the NAF did not accept the GBA PSK");
        }

        /// <summary>TS 33.222 5.4 (TLS 1.2): the hint, the identity, and the key for the suite the NAF chose.</summary>
        private sealed class Identity(Client client) : TlsPskIdentity
        {
            private string? _hint;
            private bool _hintSeen;

            public void SkipIdentityHint() => _hintSeen = false;

            public void NotifyIdentityHint(byte[] psk_identity_hint)
            {
                _hintSeen = true;
                _hint = psk_identity_hint is null ? null : Encoding.UTF8.GetString(psk_identity_hint);
            }

            public byte[] GetPskIdentity()
            {
                // The NAF signals GBA with the hint "3GPP-bootstrapping" (or -uicc); another hint names another key.
                var options = client._options;
                if (options.RequireHint && !(_hintSeen && GbaTlsPsk.HintNames(_hint, options.Mode)))
                {
                    throw new TlsFatalAlert(AlertDescription.handshake_failure, _hintSeen
                        ? $"the NAF's identity hint does not name {GbaTlsPsk.Prefix(options.Mode)}"
                        : "the NAF sent no identity hint");
                }

                return client._identity;
            }

            public byte[] GetPsk()
            {
                client.Ua = GbaTlsPsk.UaTls12(client.m_context.SecurityParameters.CipherSuite);
                return client.Derive(client.Ua);
            }
        }

        private byte[] Derive(byte[] ua)
        {
            var key = _options.KsNaf(ua) ?? throw new TlsFatalAlert(AlertDescription.internal_error, "no key for this NAF");
            _keys.Add(key);
            return key;
        }

        public void ZeroKeys()
        {
            foreach (var key in _keys)
            {
                CryptographicOperations.ZeroMemory(key);
            }
        }
    }
}

/// <summary>
/// A device's GBA key material after bootstrapping: Ks = CK ‖ IK, RAND and IMPI (TS 33.220 4.5.2), from which it derives
/// Ks_NAF per NAF (TS 33.220 B.3). Holds its own copies, zeroed on <see cref="Dispose"/>.
/// </summary>
public sealed class GbaKs : IDisposable
{
    private readonly byte[] _ks;
    private readonly byte[] _rand;
    private readonly string _impi;
    private bool _disposed;

    /// <summary>Keeps copies of the bootstrapped material.</summary>
    /// <param name="ks">Ks = CK ‖ IK (32 octets).</param>
    /// <param name="rand">The RAND of the bootstrapping (16 octets).</param>
    /// <param name="impi">The IMPI.</param>
    public GbaKs(ReadOnlySpan<byte> ks, ReadOnlySpan<byte> rand, string impi)
    {
        if (ks.Length != 32 || rand.Length != 16)
        {
            throw new ArgumentException("Ks is 32 octets (CK ‖ IK) and RAND 16.");
        }

        ArgumentException.ThrowIfNullOrEmpty(impi);
        _ks = ks.ToArray();
        _rand = rand.ToArray();
        _impi = impi;
    }

    /// <summary>Ks_NAF = KDF(Ks, "gba-me", RAND, IMPI, NAF_Id), NAF_Id = <paramref name="nafFqdn"/> ‖ <paramref name="uaSecurityProtocolId"/>.</summary>
    public byte[] KsNaf(string nafFqdn, ReadOnlySpan<byte> uaSecurityProtocolId)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var key = new byte[GbaTlsPsk.KeySize];
        Gba.KsNaf(_ks.AsSpan(0, 16), _ks.AsSpan(16, 16), _rand, _impi, Gba.NafId(nafFqdn, uaSecurityProtocolId), key);
        return key;
    }

    /// <summary>The key provider of <see cref="GbaTlsPskClientOptions.KsNaf"/> for <paramref name="nafFqdn"/>.</summary>
    public Func<byte[], byte[]> ForNaf(string nafFqdn) => ua => KsNaf(nafFqdn, ua);

    /// <summary>Zeroes the copy of Ks.</summary>
    public void Dispose()
    {
        CryptographicOperations.ZeroMemory(_ks);
        _disposed = true;
    }
}
