using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using OpenBest.Eas;
using OpenBest.EasInterface;

namespace OpenBest.Hse.Cluster.Demo;

/// <summary>
/// The demo's enterprise: the reference EAS, registered with one node's HSE–EAS interface, taking the UE-to-EAS devices'
/// messages from whichever node delivers its outbox, and checking that each device's messages arrive once and in order.
/// </summary>
internal sealed class DemoEas : IAsyncDisposable
{
    private readonly ReferenceEas _eas;
    private readonly ConcurrentQueue<string> _received;
    private readonly IDisposable[] _owned;

    private DemoEas(ReferenceEas eas, ConcurrentQueue<string> received, IDisposable[] owned)
    {
        _eas = eas;
        _received = received;
        _owned = owned;
    }

    /// <summary>Messages the application got, in the order it got them.</summary>
    public IReadOnlyList<string> Received => [.. _received];

    /// <summary>Starts the EAS <paramref name="easId"/> (certificates from <paramref name="directory"/>'s pki) and registers it with the interface on <paramref name="hsePort"/>.</summary>
    public static async Task<DemoEas> StartAsync(string directory, string easId, int hsePort, CancellationToken cancellationToken)
    {
        var certificate = DevelopmentPki.LoadPair(DevelopmentPki.Eas(directory, easId));
        var ca = DevelopmentPki.LoadCertificate(DevelopmentPki.Ca(directory).Certificate);
        var received = new ConcurrentQueue<string>();
        try
        {
            var eas = await ReferenceEas.StartAsync(new EasOptions
            {
                EasId = easId,
                Hse = new Uri(string.Create(CultureInfo.InvariantCulture, $"https://127.0.0.1:{hsePort}/")),
                Certificate = certificate,
                Ca = ca,
                StateDirectory = Path.Combine(directory, "eas-state"),
            }, r =>
            {
                received.Enqueue(Encoding.UTF8.GetString(r.Payload));
                return Task.CompletedTask;
            }, cancellationToken).ConfigureAwait(false);
            return new DemoEas(eas, received, [certificate, ca]);
        }
        catch
        {
            certificate.Dispose();
            ca.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Of <paramref name="acknowledged"/> (messages "d-SESSION-m-N" the HSE acknowledged as forwarded), how many the application
    /// got, and how many of its devices' messages came out of order (a device's N must only grow).
    /// </summary>
    public (int Delivered, int OutOfOrder) Check(IReadOnlySet<string> acknowledged)
    {
        var received = Received;
        var outOfOrder = received.Select(Parse).Where(m => m.Device is not null).GroupBy(m => m.Device)
            .Sum(g => g.Zip(g.Skip(1)).Count(p => p.Second.N <= p.First.N));
        return (received.Distinct(StringComparer.Ordinal).Count(acknowledged.Contains), outOfOrder);
    }

    public async ValueTask DisposeAsync()
    {
        await _eas.DisposeAsync().ConfigureAwait(false);
        foreach (var owned in _owned)
        {
            owned.Dispose();
        }
    }

    private static (string? Device, int N) Parse(string message)
    {
        var at = message.LastIndexOf("-m-", StringComparison.Ordinal);
        return at > 0 && int.TryParse(message.AsSpan(at + 3), NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? (message[..at], n) : (null, 0);
    }
}
