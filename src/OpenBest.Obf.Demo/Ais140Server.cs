using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using OpenBest.Card;
using OpenBest.Crypto.Kdf;

namespace OpenBest.Obf.Demo;

/// <summary>
/// An AIS140 application server (VTAMS, emergency response) as a NAF of the OBF (seed 003 appendix 2.2.3): it fetches each
/// device's key (Ks_int_NAF, the key the device's card keeps) from the key service of the provider the B-TID names, takes
/// only the data classes the device's rights grant it, checks identity (the ICCID in the tag), integrity (the tag), replay
/// (the counter) and confidentiality (GCM) of every packet, and seals commands with TRUST data for the device's card.
/// </summary>
public sealed class Ais140Server : IAsyncDisposable
{
    private readonly IReadOnlyDictionary<string, NafKeyClient> _keyServices;
    private readonly byte _keyIndex;
    private readonly List<TcpListener> _listeners = [];
    private readonly List<Task> _loops = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<string, DeviceState> _devices = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<(int Port, Ais140Class Class), long> _accepted = new();
    private readonly ConcurrentDictionary<Ais140Status, long> _refused = new();

    /// <summary>A server named <paramref name="nafFqdn"/> that fetches keys from the key services by B-TID domain.</summary>
    public Ais140Server(string nafFqdn, byte keyIndex, IReadOnlyDictionary<string, NafKeyClient> keyServicesByDomain)
    {
        NafFqdn = nafFqdn;
        _keyIndex = keyIndex;
        _keyServices = keyServicesByDomain;
    }

    /// <summary>The application's FQDN (its NAF_Id).</summary>
    public string NafFqdn { get; }

    /// <summary>The ports it listens on (the first is the primary; a command moves devices to the second).</summary>
    public IReadOnlyList<int> Ports => [.. _listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port)];

    /// <summary>Packets taken, by listening port and class.</summary>
    public long Accepted(int? port = null, Ais140Class? dataClass = null) => _accepted.Where(e => (port is null || e.Key.Port == port) && (dataClass is null || e.Key.Class == dataClass)).Sum(e => e.Value);

    /// <summary>Packets and frames refused, by why.</summary>
    public long Refused(Ais140Status why) => _refused.GetValueOrDefault(why);

    /// <summary>Command results the devices reported (their cards' verdicts), by status.</summary>
    public ConcurrentDictionary<Ais140Status, long> CommandResults { get; } = new();

    /// <summary>Starts listening on <paramref name="listeners"/> loopback ports.</summary>
    public void Start(int listeners = 2)
    {
        for (var i = 0; i < listeners; i++)
        {
            var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            _listeners.Add(listener);
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            _loops.Add(Task.Run(() => AcceptAsync(listener, port)));
        }
    }

    /// <summary>
    /// Key Import (seed 003 appendix 2.2.3.1): the key of a device that cannot bootstrap, from a trusted source, with the data
    /// classes it may send here. Replaces what a HELLO gave.
    /// </summary>
    public void ImportKey(string iccid, ReadOnlySpan<byte> key, IEnumerable<string> classes) => Keep(iccid, key.ToArray(), null, classes.ToHashSet(StringComparer.Ordinal));

    /// <summary>The data classes the key service granted for <paramref name="iccid"/> (empty when unknown).</summary>
    public IReadOnlyCollection<string> ClassesOf(string iccid)
    {
        if (!_devices.TryGetValue(iccid, out var device))
        {
            return [];
        }

        lock (device)
        {
            return [.. device.Classes];
        }
    }

    /// <summary>Queues a command for the device: sealed under its key with the next server counter (the TRUST data).</summary>
    /// <returns>The packet, or null when the device is unknown.</returns>
    public byte[]? QueueCommand(string iccid, string command)
    {
        if (!_devices.TryGetValue(iccid, out var device))
        {
            return null;
        }

        lock (device)
        {
            device.ServerCounter++;
            var packet = SealedData.Seal(device.Key, SealDirection.ServerToDevice, _keyIndex, device.ServerCounter, Iccid.Encode(iccid), System.Text.Encoding.UTF8.GetBytes(command));
            device.Pending.Enqueue(packet);
            return packet;
        }
    }

    /// <summary>Stops listening and closes the connections.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        foreach (var listener in _listeners)
        {
            listener.Stop();
        }

        await Task.WhenAll(_loops).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        foreach (var device in _devices.Values)
        {
            CryptographicOperations.ZeroMemory(device.Key);
        }

        _stop.Dispose();
    }

    private async Task AcceptAsync(TcpListener listener, int port)
    {
        var connections = new List<Task>();
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var client = await listener.AcceptTcpClientAsync(_stop.Token).ConfigureAwait(false);
                connections.Add(Task.Run(() => ServeAsync(client, port)));
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }

        await Task.WhenAll(connections).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    private async Task ServeAsync(TcpClient client, int port)
    {
        using (client)
        {
            var stream = client.GetStream();
            try
            {
                while (await Ais140Wire.ReadAsync(stream, _stop.Token).ConfigureAwait(false) is { } body)
                {
                    await Ais140Wire.WriteAsync(stream, await AnswerAsync(body, port).ConfigureAwait(false), _stop.Token).ConfigureAwait(false);
                }
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
            {
                // The device went away.
            }
        }
    }

    private async Task<byte[]> AnswerAsync(byte[] body, int port)
    {
        var at = 1;
        switch ((char)body[0])
        {
            case 'B' when Ais140Wire.TryText(body, ref at, out var iccid) && Ais140Wire.TryText(body, ref at, out var btid) && at == body.Length:
                return Ais140Wire.Answer('b', await HelloAsync(iccid, btid).ConfigureAwait(false));
            case 'D' when body.Length > 2 && Enum.IsDefined((Ais140Class)body[1]) && TryData(body, out var dataClass, out var iccid, out var packet):
                var status = Open(iccid, dataClass, packet);
                if (status == Ais140Status.Ok)
                {
                    _accepted.AddOrUpdate((port, dataClass), 1, (_, n) => n + 1);
                }
                else
                {
                    _refused.AddOrUpdate(status, 1, (_, n) => n + 1);
                }

                return Ais140Wire.Answer('d', status);
            case 'Q' when Ais140Wire.TryText(body, ref at, out var iccid) && at == body.Length:
                return _devices.TryGetValue(iccid, out var device) && device.Pending.TryDequeue(out var command) ? [(byte)'C', .. command] : [(byte)'n'];
            case 'R' when Ais140Wire.TryText(body, ref at, out _) && at == body.Length - 1 && Enum.IsDefined((Ais140Status)body[^1]):
                CommandResults.AddOrUpdate((Ais140Status)body[^1], 1, (_, n) => n + 1);
                return [(byte)'r'];
            default:
                _refused.AddOrUpdate(Ais140Status.Refused, 1, (_, n) => n + 1);
                return Ais140Wire.Answer('e', Ais140Status.Refused);
        }
    }

    private static bool TryData(byte[] body, out Ais140Class dataClass, out string iccid, out byte[] packet)
    {
        dataClass = (Ais140Class)body[1];
        packet = [];
        var at = 2;
        if (!Ais140Wire.TryText(body, ref at, out iccid) || body.Length - at < SealedData.Overhead)
        {
            return false;
        }

        packet = body[at..];
        return true;
    }

    private async Task<Ais140Status> HelloAsync(string iccid, string btid)
    {
        var domain = btid[(btid.LastIndexOf('@') + 1)..];
        if (iccid.Length is not (19 or 20) || !iccid.All(char.IsAsciiDigit) || !_keyServices.TryGetValue(domain, out var keys))
        {
            return Ais140Status.UnknownDevice;
        }

        NafKeyRetrieval retrieval;
        try
        {
            retrieval = await keys.RetrieveAsync(btid, Gba.UaHttpDigest.ToArray(), gbaUAware: true, _stop.Token).ConfigureAwait(false);
        }
        catch (HttpRequestException)
        {
            return Ais140Status.UnknownDevice;
        }

        if (retrieval.Answer?.UiccKeyMaterial is not { Length: 64 } hex || !hex.All(char.IsAsciiHexDigit))
        {
            // The key service refused the very bootstrap this server's key came from: its rights were revoked, so it takes
            // nothing more from the device (the key and its counters stay, so nothing captured can be replayed later).
            if (_devices.TryGetValue(iccid, out var known))
            {
                lock (known)
                {
                    if (known.BTid == btid)
                    {
                        known.Classes = [];
                    }
                }
            }

            return Ais140Status.UnknownDevice; // no rights (any more), or an unknown B-TID: the device bootstraps again
        }

        var classes = retrieval.Answer.UssList?.SelectMany(u => u.Uss.Flags.Select(f => f.Flag)).ToHashSet(StringComparer.Ordinal) ?? [];
        Keep(iccid, Convert.FromHexString(hex), btid, classes);
        return Ais140Status.Ok;
    }

    /// <summary>
    /// A device's key: the same key keeps its counters and only its classes change (a key is never used twice from zero); a
    /// new key (a new bootstrap) starts its counters afresh.
    /// </summary>
    private void Keep(string iccid, byte[] key, string? btid, HashSet<string> classes)
    {
        var fresh = new DeviceState(key) { Classes = classes, BTid = btid };
        while (true)
        {
            var current = _devices.GetOrAdd(iccid, fresh);
            if (ReferenceEquals(current, fresh))
            {
                return;
            }

            lock (current)
            {
                if (CryptographicOperations.FixedTimeEquals(current.Key, key))
                {
                    current.Classes = classes;
                    current.BTid = btid ?? current.BTid;
                    return;
                }
            }

            if (_devices.TryUpdate(iccid, fresh, current))
            {
                return;
            }
        }
    }

    private Ais140Status Open(string iccid, Ais140Class dataClass, byte[] packet)
    {
        if (!_devices.TryGetValue(iccid, out var device))
        {
            return Ais140Status.UnknownDevice;
        }

        // Each beneficiary controls its own data classes only (Y.OBF_trust 6.2 g, i): the rights decide.
        lock (device)
        {
            if (!device.Classes.Contains(ClassName(dataClass)))
            {
                return Ais140Status.Refused;
            }
        }

        if (!SealedData.TryHeader(packet, out var keyIndex, out var counter) || keyIndex != _keyIndex)
        {
            return Ais140Status.NotAuthentic;
        }

        var plain = new byte[packet.Length - SealedData.Overhead];
        if (!SealedData.TryOpen(device.Key, SealDirection.DeviceToServer, Iccid.Encode(iccid), packet, plain))
        {
            return Ais140Status.NotAuthentic;
        }

        lock (device)
        {
            if (counter <= device.DeviceCounter)
            {
                return Ais140Status.Replay;
            }

            device.DeviceCounter = counter;
        }

        return Ais140Status.Ok;
    }

    /// <summary>The OBF data-class name of an AIS140 class.</summary>
    public static string ClassName(Ais140Class dataClass) => dataClass switch
    {
        Ais140Class.Position => "position",
        Ais140Class.Health => "health",
        _ => "alarm",
    };

    private sealed class DeviceState(byte[] key)
    {
        public byte[] Key { get; } = key;

        public HashSet<string> Classes { get; set; } = [];

        public string? BTid { get; set; }

        public ulong DeviceCounter { get; set; }

        public ulong ServerCounter { get; set; }

        public ConcurrentQueue<byte[]> Pending { get; } = new();
    }
}
