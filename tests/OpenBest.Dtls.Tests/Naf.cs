using System.Collections.Concurrent;
using System.Net;
using System.Text;

namespace OpenBest.Dtls.Tests;

/// <summary>
/// Our NAF (<see cref="GbaTlsPskServer"/>) on a loopback port for a test: its key lookup knows one B-TID
/// (<see cref="Bootstrap.BTid"/>, keyed by the test's own derivation) and records what it was asked; each connection
/// reads one line, answers "naf got: " and the line, then waits for the peer to close.
/// </summary>
internal sealed class Naf : IAsyncDisposable
{
    private int _served;

    private Naf(GbaTlsPskServerOptions options)
    {
        Server = new GbaTlsPskServer(new IPEndPoint(IPAddress.Loopback, 0), options, LookUpAsync, ServeAsync);
    }

    /// <summary>What the first connection brought.</summary>
    public sealed record Seen(string Line, string BTid, GbaMode Mode, string Protocol, int CipherSuite, string Ua);

    public GbaTlsPskServer Server { get; }

    /// <summary>The lookups asked for: B-TID and Ua security protocol identifier (hex).</summary>
    public ConcurrentQueue<(string BTid, string Ua)> Lookups { get; } = new();

    public TaskCompletionSource<Seen> First { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Connections handed to the handler (established).</summary>
    public int Served => Volatile.Read(ref _served);

    public string Address => "127.0.0.1:" + Server.LocalEndPoint.Port;

    public static Naf Start(TimeSpan? handshakeTimeout = null, bool allowTls13 = true) => new(new GbaTlsPskServerOptions
    {
        NafFqdn = Bootstrap.NafFqdn,
        AllowTls13 = allowTls13,
        HandshakeTimeout = handshakeTimeout ?? TimeSpan.FromSeconds(30),
    });

    public ValueTask DisposeAsync() => Server.DisposeAsync();

    private ValueTask<byte[]?> LookUpAsync(string bTid, byte[] ua, CancellationToken cancellationToken)
    {
        Lookups.Enqueue((bTid, Bootstrap.Hex(ua)));
        return ValueTask.FromResult(bTid == Bootstrap.BTid ? Bootstrap.KsNaf(Bootstrap.NafFqdn, ua) : null);
    }

    private async Task ServeAsync(GbaTlsPskStream stream, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _served);
        try
        {
            using var reader = new StreamReader(stream, Encoding.UTF8, leaveOpen: true);
            var line = await reader.ReadLineAsync(cancellationToken);
            if (line is null)
            {
                return;
            }

            First.TrySetResult(new Seen(line, stream.BTid, stream.Mode, stream.Protocol, stream.CipherSuite, Bootstrap.Hex(stream.UaSecurityProtocolId)));
            await stream.WriteAsync(Encoding.UTF8.GetBytes("naf got: " + line + "\n"), cancellationToken);
            var buffer = new byte[256];
            while (await stream.ReadAsync(buffer, cancellationToken) > 0)
            {
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException)
        {
            // The test's peer was killed, or the test ended.
        }
    }
}
