using System.Net;
using System.Net.Sockets;
using System.Text;
using OpenBest.Card;
using OpenBest.Crypto.Aka;
using OpenBest.Crypto.Kdf;

namespace OpenBest.Obf.Demo;

/// <summary>
/// A crypto-less AIS140 vehicle device (seed 003 appendix 2.2.1): it carries bytes between the network and its card and
/// computes nothing. Bootstrapping is GBA_U through the card; the card derives one key per beneficiary (a key index each),
/// seals PVT, health and panic packets, checks commands' TRUST data, and verifies a transfer record before the device
/// follows it to another provider.
/// </summary>
public sealed class Ais140Device : IAsyncDisposable
{
    private readonly IApduChannel _channel;
    private readonly CardUsim _usim;
    private readonly ObfSecureElement _se;
    private readonly Func<Uri, HttpClient> _ub;
    private readonly Dictionary<string, Link> _links = new(StringComparer.Ordinal);

    /// <summary>A device on the card behind <paramref name="channel"/>.</summary>
    public Ais140Device(string impi, string iccid, IApduChannel channel, Uri provider, Func<Uri, HttpClient> ub)
    {
        Impi = impi;
        Iccid = iccid;
        _channel = channel;
        _usim = new CardUsim(channel, ownsChannel: false);
        _se = ObfSecureElement.Open(channel);
        Provider = provider;
        _ub = ub;
    }

    /// <summary>The card's IMPI.</summary>
    public string Impi { get; }

    /// <summary>The card's ICCID (its identity on the wire).</summary>
    public string Iccid { get; }

    /// <summary>The authentication server the device bootstraps with.</summary>
    public Uri Provider { get; private set; }

    /// <summary>The B-TID of the last bootstrap.</summary>
    public string? BTid { get; private set; }

    /// <summary>Whether the last bootstrap followed a transfer record the card verified.</summary>
    public bool Transferred { get; private set; }

    /// <summary>The last frame sent to each server (for the demo's replay and tamper checks).</summary>
    public Dictionary<string, byte[]> LastFrames { get; } = new(StringComparer.Ordinal);

    /// <summary>Commands the card accepted, and what they said.</summary>
    public List<string> Commands { get; } = [];

    /// <summary>Commands the card refused (replayed, altered, forged).</summary>
    public int RefusedCommands { get; private set; }

    /// <summary>The device's resource rights as its last bootstrap listed them: which data class goes to which beneficiary.</summary>
    public IReadOnlyList<BootstrapRight> Rights { get; private set; } = [];

    /// <summary>
    /// Bootstraps (following a transfer when the server answers with one) and puts the key of each beneficiary that holds a
    /// right into that beneficiary's index; a beneficiary with no right gets no key.
    /// </summary>
    /// <exception cref="InvalidOperationException">The bootstrap failed or the card refused.</exception>
    public async Task BootstrapAsync(IReadOnlyDictionary<string, byte> beneficiaries, CancellationToken cancellationToken)
    {
        var ran = await CardBootstrap.RunAsync(_ub, _usim, record => _se.VerifyAndStoreServerKey(record), Provider, Impi, cancellationToken).ConfigureAwait(false);
        using var bootstrap = ran.Bootstrap;
        if (ran.RecordRefused is { } sw)
        {
            throw new InvalidOperationException($"{Iccid}: the card refused the transfer record ({StatusWord.Describe(sw)})");
        }

        Provider = ran.Server;
        Transferred |= ran.Transferred;
        if (bootstrap.Status != GbaBootstrapStatus.Bootstrapped)
        {
            throw new InvalidOperationException($"{Iccid}: {bootstrap.Detail}");
        }

        BTid = bootstrap.BTid;
        Rights = bootstrap.Rights;
        foreach (var (naf, index) in beneficiaries.Where(b => Rights.Any(r => r.Naf == b.Key)))
        {
            var derived = _se.DeriveKey(index, Gba.NafId(naf, Gba.UaHttpDigest), Impi);
            if (!derived.Ok)
            {
                throw new InvalidOperationException($"{Iccid}: the card refused key index {index}: {StatusWord.Describe(derived.Sw)}");
            }
        }
    }

    /// <summary>Connects to a beneficiary's server without HELLO: for a device whose keys were imported (it cannot bootstrap).</summary>
    public async Task ConnectImportedAsync(string naf, byte keyIndex, IPEndPoint server, CancellationToken cancellationToken)
    {
        var client = new TcpClient { NoDelay = true };
        await client.ConnectAsync(server, cancellationToken).ConfigureAwait(false);
        _links[naf] = new Link(client, keyIndex, server);
    }

    /// <summary>Connects to a beneficiary's server (again, after a move) and says HELLO with the current B-TID.</summary>
    public async Task<Ais140Status> ConnectAsync(string naf, byte keyIndex, IPEndPoint server, CancellationToken cancellationToken)
    {
        if (_links.Remove(naf, out var old))
        {
            old.Dispose();
        }

        var client = new TcpClient { NoDelay = true };
        await client.ConnectAsync(server, cancellationToken).ConfigureAwait(false);
        var link = new Link(client, keyIndex, server);
        _links[naf] = link;
        return await link.AskAsync(Ais140Wire.Hello(Iccid, BTid!), cancellationToken).ConfigureAwait(false) is [(byte)'b', var status] ? (Ais140Status)status : Ais140Status.Refused;
    }

    /// <summary>The server a beneficiary's link goes to.</summary>
    public IPEndPoint ServerOf(string naf) => _links[naf].Server;

    /// <summary>
    /// Sends a packet of <paramref name="dataClass"/> as the rights decide: sealed by the card under the key of each
    /// beneficiary that holds a right to the class (and only those), one verdict per beneficiary.
    /// </summary>
    public async Task<IReadOnlyList<(string Naf, Ais140Status Status)>> ReportAsync(Ais140Class dataClass, string text, CancellationToken cancellationToken)
    {
        var name = Ais140Server.ClassName(dataClass);
        var verdicts = new List<(string, Ais140Status)>();
        foreach (var naf in Rights.Where(r => r.DataClass == name).Select(r => r.Naf).Distinct().Where(_links.ContainsKey))
        {
            verdicts.Add((naf, await SendAsync(naf, dataClass, text, cancellationToken).ConfigureAwait(false)));
        }

        return verdicts;
    }

    /// <summary>
    /// Has the card seal <paramref name="text"/> under the beneficiary's key and sends it, whatever the rights say (a device
    /// that does not follow them: the server still refuses a class the beneficiary holds no right to); the server's verdict.
    /// </summary>
    public async Task<Ais140Status> SendAsync(string naf, Ais140Class dataClass, string text, CancellationToken cancellationToken)
    {
        var link = _links[naf];
        var sealedData = _se.EncryptDeviceData(link.KeyIndex, Encoding.UTF8.GetBytes(text));
        if (!sealedData.Ok)
        {
            throw new InvalidOperationException($"{Iccid}: the card refused to seal: {StatusWord.Describe(sealedData.Sw)}");
        }

        var frame = Ais140Wire.Data(dataClass, Iccid, sealedData.Data);
        LastFrames[naf] = frame;
        return await link.AskAsync(frame, cancellationToken).ConfigureAwait(false) is [(byte)'d', var status] ? (Ais140Status)status : Ais140Status.Refused;
    }

    /// <summary>Asks a beneficiary for a command; the card checks it; an accepted "SET SERVER host:port" moves the link. Returns the card's verdict, or null when none waited.</summary>
    public async Task<Ais140Status?> PollAsync(string naf, CancellationToken cancellationToken)
    {
        var link = _links[naf];
        var answer = await link.AskAsync(Ais140Wire.Poll(Iccid), cancellationToken).ConfigureAwait(false);
        if (answer is not [(byte)'C', ..])
        {
            return null;
        }

        var status = Handle(link.KeyIndex, answer[1..], out var command);
        await link.AskAsync(Ais140Wire.Result(Iccid, status), cancellationToken).ConfigureAwait(false);
        if (status == Ais140Status.Ok && command.StartsWith("SET SERVER ", StringComparison.Ordinal) && IPEndPoint.TryParse(command[11..], out var moved))
        {
            await ConnectAsync(naf, link.KeyIndex, moved, cancellationToken).ConfigureAwait(false);
        }

        return status;
    }

    /// <summary>Hands a server packet to the card (Decrypt Data); the device acts only on what the card accepted.</summary>
    public Ais140Status Handle(byte keyIndex, byte[] packet, out string command)
    {
        command = string.Empty;
        if (packet.Length is < SealedData.Overhead or > 255)
        {
            RefusedCommands++;
            return Ais140Status.Refused;
        }

        var opened = _se.DecryptData(keyIndex, packet);
        if (!opened.Ok)
        {
            RefusedCommands++;
            return opened.Sw == StatusWord.ConditionsNotSatisfied ? Ais140Status.Replay : Ais140Status.NotAuthentic;
        }

        command = Encoding.UTF8.GetString(opened.Data);
        Commands.Add(command);
        return Ais140Status.Ok;
    }

    /// <summary>Closes the links and the card's channel.</summary>
    public ValueTask DisposeAsync()
    {
        foreach (var link in _links.Values)
        {
            link.Dispose();
        }

        _se.Dispose();
        _channel.Dispose();
        return ValueTask.CompletedTask;
    }

    private sealed class Link(TcpClient client, byte keyIndex, IPEndPoint server) : IDisposable
    {
        public byte KeyIndex => keyIndex;

        public IPEndPoint Server => server;

        public async Task<byte[]> AskAsync(byte[] body, CancellationToken cancellationToken)
        {
            var stream = client.GetStream();
            await Ais140Wire.WriteAsync(stream, body, cancellationToken).ConfigureAwait(false);
            return await Ais140Wire.ReadAsync(stream, cancellationToken).ConfigureAwait(false) ?? [];
        }

        public void Dispose() => client.Dispose();
    }
}
