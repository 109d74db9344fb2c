using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using OpenBest.Protocol;
using OpenBest.Sessions;

namespace OpenBest.Hse;

/// <summary>
/// The converter the other way (seed 000 section 2, "and vice versa"): the HSE accepts TLS from an unchanged client on a
/// port of its own, with its own certificate, and relays the connection to a device. The client names the device in SNI:
/// the device's external identifier for the listener's EAS Id (<c>best subscriber external-id</c>); the device has a
/// channel open that names that EAS Id and carries the stream (<c>best ue stream --eas ID</c>). A name that is no
/// device's, or a device without such a channel, gets the handshake refused (unrecognized_name).
/// </summary>
public sealed partial class TlsInbound : IAsyncDisposable
{
    private readonly TlsConverter _converter;
    private readonly string _easId;
    private readonly Func<string, string, string?> _imsiOf;
    private readonly X509Certificate2 _certificate;
    private readonly ILogger _log;
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;
    private long _accepted;
    private long _refused;

    /// <summary>
    /// Listens on <paramref name="endPoint"/> for TLS clients of devices whose channels name <paramref name="easId"/>; the
    /// device's channel is found among the converter's sessions (one host's, or a cluster's shards') when a client names it.
    /// </summary>
    public TlsInbound(TlsConverter converter, IPEndPoint endPoint, string easId, X509Certificate2 certificate, Func<string, string, string?> imsiOf, ILogger? log = null)
    {
        ArgumentNullException.ThrowIfNull(converter);
        _converter = converter;
        _easId = easId;
        _certificate = certificate;
        _imsiOf = imsiOf;
        _log = log ?? Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        _listener = new TcpListener(endPoint);
        _listener.Start();
        _accepting = Task.Run(AcceptAsync);
    }

    /// <summary>Where it listens.</summary>
    public IPEndPoint LocalEndPoint => (IPEndPoint)_listener.LocalEndpoint;

    /// <summary>The EAS Id the devices' channels name.</summary>
    public string EasId => _easId;

    /// <summary>Connections relayed to a device.</summary>
    public long Accepted => Interlocked.Read(ref _accepted);

    /// <summary>Connections refused (no such device, no channel, a failed handshake).</summary>
    public long Refused => Interlocked.Read(ref _refused);

    /// <summary>Stops listening.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Stop();
        await _accepting.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _stop.Dispose();
    }

    private async Task AcceptAsync()
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

            _ = Task.Run(() => ServeAsync(client));
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        client.NoDelay = true;
        var tls = new SslStream(client.GetStream(), leaveInnerStreamOpen: false);
        uint session = 0;
        try
        {
            using var handshake = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            handshake.CancelAfter(TimeSpan.FromSeconds(30));
            await tls.AuthenticateAsServerAsync(async (_, hello, _, _) =>
            {
                // The device, by the name the client asked for: refused before any key exchange when it is no device's.
                session = await ChannelOfAsync(hello.ServerName).ConfigureAwait(false);
                if (session == 0)
                {
                    throw new AuthenticationException("no device by that name has a channel for " + _easId);
                }

                // On a cluster the session's shard may run on another node: it sends the stream's frames here.
                if (_converter.Follow is { } follow)
                {
                    await follow(session).ConfigureAwait(false);
                }

                return new SslServerAuthenticationOptions { EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13, ServerCertificate = _certificate };
            }, null, handshake.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A failed handshake, a name that is no device's channel, or (on a cluster) a shard that did not answer.
            Interlocked.Increment(ref _refused);
            LogRefused(_log, _easId, e.GetType().Name);
            await tls.DisposeAsync().ConfigureAwait(false);
            client.Dispose();
            return;
        }

        try
        {
            _converter.Relay(session, _easId + " (inbound)", _ => Task.FromResult<Stream>(tls), followed: _converter.Follow is not null);
            Interlocked.Increment(ref _accepted);
            LogAccepted(_log, session, _easId, tls.SslProtocol);
        }
        catch (InvalidOperationException)
        {
            Interlocked.Increment(ref _refused); // the device's channel carries a stream already
            await tls.DisposeAsync().ConfigureAwait(false);
            client.Dispose();
        }
    }

    /// <summary>The newest channel of the device named <paramref name="name"/> that names this listener's EAS Id and carries a stream, or 0.</summary>
    private async Task<uint> ChannelOfAsync(string? name)
    {
        if (name is not { Length: > 0 } || _imsiOf(_easId, name) is not { } imsi)
        {
            return 0;
        }

        foreach (var (id, mode) in (await _converter.Sessions.SessionsOfAsync(imsi, _easId).ConfigureAwait(false)).OrderByDescending(s => s.SessionId))
        {
            if (mode == SessionMode.UeToHse && await _converter.Sessions.DescribeAsync(id).ConfigureAwait(false) is { Overview.Service: BestService.Confidential or BestService.Integrity })
            {
                return id;
            }
        }

        return 0;
    }

    [LoggerMessage(30, LogLevel.Information, "session {SessionId}: a TLS client of {EasId} relayed to the device ({Protocol})")]
    private static partial void LogAccepted(ILogger log, uint sessionId, string easId, SslProtocols protocol);

    [LoggerMessage(31, LogLevel.Information, "a TLS client of {EasId} refused ({Error})")]
    private static partial void LogRefused(ILogger log, string easId, string error);

    /// <summary>Parses <c>PORT=EASID</c>.</summary>
    public static bool TryParse(string text, out (int Port, string EasId) inbound, out string why)
    {
        inbound = default;
        why = string.Empty;
        var equals = text.IndexOf('=', StringComparison.Ordinal);
        if (equals <= 0 || !int.TryParse(text.AsSpan(0, equals), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port > 65535 || text.Length == equals + 1)
        {
            why = "expected PORT=EASID with a port 0..65535";
            return false;
        }

        inbound = (port, text[(equals + 1)..]);
        return true;
    }
}
