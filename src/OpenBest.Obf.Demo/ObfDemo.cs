using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using OpenBest.Card;
using OpenBest.Card.Virtual;
using OpenBest.EasInterface;
using OpenBest.Obf.Server;
using OpenBest.Storage;

namespace OpenBest.Obf.Demo;

/// <summary>How <see cref="ObfDemo"/> runs.</summary>
public sealed record ObfDemoOptions
{
    /// <summary>Vehicle devices (20).</summary>
    public int Devices { get; init; } = 20;

    /// <summary>Reach each card over PC/SC (a pcscd of the demo's own with vpcd readers), or in process.</summary>
    public bool Pcsc { get; init; } = true;

    /// <summary>The first authentication server's PostgreSQL database, or null for SQLite (the second server uses SQLite).</summary>
    public string? Postgres { get; init; }

    /// <summary>Packets per device in the measured phase (10).</summary>
    public int PacketsPerDevice { get; init; } = 10;

    /// <summary>Phase names as the demo goes.</summary>
    public IProgress<string>? Progress { get; init; }
}

/// <summary>One check of the demo: what it is, whether it held, what was seen.</summary>
public sealed record ObfDemoCheck(string Name, bool Held, string Detail);

/// <summary>The demo's outcome.</summary>
/// <param name="Checks">Every check, in order.</param>
/// <param name="PacketsPerSecond">Sealed by the cards and verified by the servers, all devices at once.</param>
/// <param name="TransferMillisecondsPerDevice">Prepare, deliver and finish one device's transfer, on average.</param>
/// <param name="Reader">How the cards were reached.</param>
public sealed record ObfDemoResult(IReadOnlyList<ObfDemoCheck> Checks, double PacketsPerSecond, double TransferMillisecondsPerDevice, string Reader)
{
    /// <summary>Whether every check held.</summary>
    public bool AllHeld => Checks.All(c => c.Held);
}

/// <summary>
/// AIS140 end to end (Y.OBF_trust appendix): two authentication servers, the resource server (rights), VTAMS and emergency
/// response as application servers over TCP, and N crypto-less vehicle devices whose cards bootstrap GBA_U and hold one key
/// per beneficiary. It checks the four properties both ways, that each beneficiary controls its own data classes only,
/// commands with TRUST data, the transfer of every device to the second provider midway, and that a revoked right stops
/// new keys at once.
/// </summary>
public static class ObfDemo
{
    /// <summary>The fleet operator's tracking and alarm server.</summary>
    public const string Vtams = "vtams.transport.example.gov";

    /// <summary>The emergency response server.</summary>
    public const string Ers = "ers.emergency.example.gov";

    private const byte VtamsIndex = 1;
    private const byte ErsIndex = 2;

    /// <summary>Runs the demo on loopback and returns its checks and figures.</summary>
    public static async Task<ObfDemoResult> RunAsync(ObfDemoOptions options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        var checks = new List<ObfDemoCheck>();
        var root = Directory.CreateTempSubdirectory("openbest-obf-demo-");
        var (dirA, dirB) = (Path.Combine(root.FullName, "provider-a"), Path.Combine(root.FullName, "provider-b"));
        DevelopmentPki.Init(dirA, [ObfApi.Operator], [Vtams, Ers]);
        CopyFolder(Path.Combine(dirA, "pki"), Path.Combine(dirB, "pki"));
        var owned = new List<IDisposable>();
        var asyncOwned = new List<IAsyncDisposable>();
        try
        {
            options.Progress?.Report("authentication servers");
            var a = await ObfServer.StartAsync(new ObfSettings { DataDir = dirA, Postgres = options.Postgres ?? string.Empty, UbPort = 0, RpoPort = 0, Domain = "bsf.a.obf.local" }, cancellationToken: cancellationToken).ConfigureAwait(false);
            asyncOwned.Add(a);
            var b = await ObfServer.StartAsync(new ObfSettings { DataDir = dirB, UbPort = 0, RpoPort = 0, Domain = "bsf.b.obf.local" }, cancellationToken: cancellationToken).ConfigureAwait(false);
            asyncOwned.Add(b);
            var ca = DevelopmentPki.LoadCertificate(DevelopmentPki.Ca(dirA).Certificate);
            owned.Add(ca);

            if (a.Store.Providers().Count > 0 || a.Store.SecureElements().Count > 0)
            {
                throw new InvalidOperationException("--postgres: the database holds an OBF registry already; the demo needs an empty database");
            }

            // The resource server's registry on both providers: the transport department's two applications, their rights.
            foreach (var server in new[] { a, b })
            {
                server.Store.AddProvider(new ObfProvider("transport-dept", "asp", null, DateTimeOffset.UtcNow));
                server.Store.AddApplication(new ObfApplication(Vtams, "transport-dept", null, ReleaseImpi: false, DateTimeOffset.UtcNow));
                server.Store.AddApplication(new ObfApplication(Ers, "transport-dept", null, ReleaseImpi: false, DateTimeOffset.UtcNow));
            }

            var cards = new List<(string Impi, string Iccid, VirtualUicc Card)>();
            for (var i = 0; i < options.Devices; i++)
            {
                var imsi = string.Create(CultureInfo.InvariantCulture, $"0010114{i:D8}");
                var impi = $"{imsi}@ims.mnc001.mcc001.3gppnetwork.org";
                var (k, opc) = (RandomNumberGenerator.GetBytes(16), RandomNumberGenerator.GetBytes(16));
                var iccid = VirtualUicc.IccidFromImsi(imsi);
                a.Store.AddSecureElements([new NewSecureElement(impi, k, opc, iccid, Imsi: imsi, Provider: "transport-dept")]);
                foreach (var (naf, dataClass) in new[] { (Vtams, "position"), (Vtams, "health"), (Vtams, "alarm"), (Ers, "alarm") })
                {
                    a.Store.Grant(new ResourceRight(impi, naf, dataClass, DateTimeOffset.UtcNow));
                }

                var card = new VirtualUicc(new VirtualUiccOptions { Imsi = imsi, Iccid = iccid, K = k, Opc = opc, ServerPublicKey = a.ServerKey.PublicKey, ServerEndpoint = a.UbAddress });
                owned.Add(card);
                cards.Add((impi, iccid, card));
                CryptographicOperations.ZeroMemory(k);
                CryptographicOperations.ZeroMemory(opc);
            }

            // The cards: behind a real pcscd (vpcd readers), or in this process.
            options.Progress?.Report("cards");
            var channels = new List<IApduChannel>();
            string reader;
            if (options.Pcsc)
            {
                // One pcscd serves 16 cards. As root, each daemon runs in a mount namespace of its own (beside the machine's
                // pcscd, if any), as many as the cards need; otherwise one daemon on the machine's socket takes the first 16
                // cards and the others stay in process, on the same device code.
                var privateDaemons = PcscdHost.PrivateSupported;
                var overPcsc = privateDaemons ? options.Devices : Math.Min(options.Devices, PcscdHost.MaxCards);
                var stop = new CancellationTokenSource();
                owned.Add(stop);
                var connections = new List<Task>();
                asyncOwned.Insert(0, new Stopper(stop, connections));
                var daemons = 0;
                for (var from = 0; from < overPcsc; from += PcscdHost.MaxCards)
                {
                    var count = Math.Min(PcscdHost.MaxCards, overPcsc - from);
                    var pcscd = await PcscdHost.StartAsync(count, cancellationToken, privateDaemons).ConfigureAwait(false);
                    owned.Add(pcscd);
                    daemons++;
                    for (var i = 0; i < count; i++)
                    {
                        var vpcd = new VpcdConnection(cards[from + i].Card, "127.0.0.1", pcscd.Slots[i].Port);
                        connections.Add(Task.Run(() => vpcd.RunAsync(stop.Token), CancellationToken.None));
                    }

                    foreach (var slot in pcscd.Slots)
                    {
                        channels.Add(await ConnectAsync(slot.Reader, pcscd.Library, cancellationToken).ConfigureAwait(false));
                    }
                }

                channels.AddRange(cards.Skip(overPcsc).Select(c => (IApduChannel)new VirtualUiccChannel(c.Card)));
                reader = overPcsc == options.Devices
                    ? string.Create(CultureInfo.InvariantCulture, $"over PC/SC ({daemons} pcscd, {overPcsc} vpcd slots)")
                    : string.Create(CultureInfo.InvariantCulture, $"over PC/SC for {overPcsc} (one pcscd; more need root for private daemons) and in process for {options.Devices - overPcsc}");
            }
            else
            {
                channels.AddRange(cards.Select(c => (IApduChannel)new VirtualUiccChannel(c.Card)));
                reader = "in process (--no-pcsc)";
            }

            // The application servers, each a NAF of both providers' key services.
            var keyServices = new Dictionary<string, Dictionary<string, NafKeyClient>>();
            foreach (var naf in new[] { Vtams, Ers })
            {
                var certificate = DevelopmentPki.LoadPair(DevelopmentPki.Naf(dirA, naf));
                owned.Add(certificate);
                var byDomain = new Dictionary<string, NafKeyClient>(StringComparer.Ordinal)
                {
                    ["bsf.a.obf.local"] = new NafKeyClient(new Uri(a.RpoAddress), naf, certificate, ca),
                    ["bsf.b.obf.local"] = new NafKeyClient(new Uri(b.RpoAddress), naf, certificate, ca),
                };
                owned.AddRange(byDomain.Values);
                keyServices[naf] = byDomain;
            }

            var vtams = new Ais140Server(Vtams, VtamsIndex, keyServices[Vtams]);
            var ers = new Ais140Server(Ers, ErsIndex, keyServices[Ers]);
            asyncOwned.Insert(0, vtams);
            asyncOwned.Insert(0, ers);
            vtams.Start(2);
            ers.Start(1);
            var servers = new Dictionary<string, (Ais140Server Server, byte Index)> { [Vtams] = (vtams, VtamsIndex), [Ers] = (ers, ErsIndex) };
            var beneficiaries = new Dictionary<string, byte> { [Vtams] = VtamsIndex, [Ers] = ErsIndex };
            HttpClient Ub(Uri server)
            {
                var handler = new SocketsHttpHandler();
                DevelopmentPki.UseFor(handler.SslOptions, ca);
                return new HttpClient(handler) { BaseAddress = server, Timeout = TimeSpan.FromSeconds(30) };
            }

            var devices = cards.Select((c, i) => new Ais140Device(c.Impi, c.Iccid, channels[i], new Uri(a.UbAddress), Ub)).ToList();
            asyncOwned.InsertRange(0, devices);

            // Round 1 with provider A.
            options.Progress?.Report("bootstrap (GBA_U) and keys per beneficiary");
            await EachAsync(devices, d => d.BootstrapAsync(beneficiaries, cancellationToken), cancellationToken).ConfigureAwait(false);
            checks.Add(new ObfDemoCheck("devices bootstrapped with provider A (GBA_U, Ks in the card)", devices.All(d => d.BTid!.EndsWith("@bsf.a.obf.local", StringComparison.Ordinal)), Of(devices.Count(d => d.BTid is not null), devices.Count)));
            var hellos = new ConcurrentBag<Ais140Status>();
            await EachAsync(devices, async d =>
            {
                hellos.Add(await d.ConnectAsync(Vtams, VtamsIndex, new IPEndPoint(IPAddress.Loopback, vtams.Ports[0]), cancellationToken).ConfigureAwait(false));
                hellos.Add(await d.ConnectAsync(Ers, ErsIndex, new IPEndPoint(IPAddress.Loopback, ers.Ports[0]), cancellationToken).ConfigureAwait(false));
            }, cancellationToken).ConfigureAwait(false);
            checks.Add(new ObfDemoCheck("beneficiaries fetched each device's key from A (RPO, rights)", hellos.All(s => s == Ais140Status.Ok), Of(hellos.Count(s => s == Ais140Status.Ok), hellos.Count)));

            options.Progress?.Report("PVT, health and panic packets");
            var (round1, asRights) = await RoundAsync(devices, cancellationToken).ConfigureAwait(false);
            checks.Add(new ObfDemoCheck("rights from the bootstrap decide the keys: PVT and health to VTAMS, alarms to VTAMS and ERS", asRights && devices.All(d => d.Rights.Count == 4), "each class under its beneficiaries' keys only"));
            checks.Add(new ObfDemoCheck("PVT, health, panic sealed by the cards, verified by VTAMS and ERS", round1.All(s => s == Ais140Status.Ok), Of(round1.Count(s => s == Ais140Status.Ok), round1.Count)));
            var first = devices[0];
            checks.Add(new ObfDemoCheck("confidentiality: no packet text on the wire", !Contains(first.LastFrames[Vtams], "PVT"u8) && !Contains(first.LastFrames[Ers], "PANIC"u8), "the frames carry only ciphertext"));

            // Attacks on the servers from another connection: each is refused and counted.
            options.Progress?.Report("replayed, altered and foreign packets");
            var vtamsFrame = first.LastFrames[Vtams];
            var replay = await AttackAsync(vtams.Ports[0], vtamsFrame, cancellationToken).ConfigureAwait(false);
            var altered = (byte[])vtamsFrame.Clone();
            altered[^20] ^= 0x01;
            var alter = await AttackAsync(vtams.Ports[0], altered, cancellationToken).ConfigureAwait(false);
            var stolenIdentity = await AttackAsync(vtams.Ports[0], Ais140Wire.Data(Ais140Class.Alarm, devices[^1].Iccid, Packet(vtamsFrame)), cancellationToken).ConfigureAwait(false);
            var foreign = await AttackAsync(ers.Ports[0], Ais140Wire.Data(Ais140Class.Alarm, first.Iccid, Packet(vtamsFrame)), cancellationToken).ConfigureAwait(false);
            var wrongClass = await first.SendAsync(Ers, Ais140Class.Position, "PVT,to the wrong beneficiary", cancellationToken).ConfigureAwait(false);
            checks.Add(new ObfDemoCheck("replay: a captured packet sent again is refused", replay == Ais140Status.Replay, replay.ToString()));
            checks.Add(new ObfDemoCheck("integrity: an altered packet is refused", alter == Ais140Status.NotAuthentic, alter.ToString()));
            checks.Add(new ObfDemoCheck("identity: a packet claimed for another card is refused", stolenIdentity is Ais140Status.NotAuthentic or Ais140Status.Refused, stolenIdentity.ToString()));
            checks.Add(new ObfDemoCheck("beneficiaries: ERS cannot read or take VTAMS's packet, nor a class it holds no right to", foreign == Ais140Status.NotAuthentic && wrongClass == Ais140Status.Refused, $"{foreign}, {wrongClass}"));

            // Commands with TRUST data: VTAMS moves every device to its second address; the cards check them first.
            options.Progress?.Report("commands with TRUST data");
            var newAddress = new IPEndPoint(IPAddress.Loopback, vtams.Ports[1]);
            var commands = devices.ToDictionary(d => d, d => vtams.QueueCommand(d.Iccid, $"SET SERVER {newAddress}")!);
            var verdicts = new ConcurrentBag<Ais140Status?>();
            await EachAsync(devices, async d => verdicts.Add(await d.PollAsync(Vtams, cancellationToken).ConfigureAwait(false)), cancellationToken).ConfigureAwait(false);
            var moved = devices.Count(d => d.ServerOf(Vtams).Equals(newAddress));
            checks.Add(new ObfDemoCheck("a configuration command (new server address) verified by each card, then acted on", moved == devices.Count && verdicts.All(v => v == Ais140Status.Ok), Of(moved, devices.Count)));
            var replayedCommand = first.Handle(VtamsIndex, commands[first], out _);
            var alteredCommand = (byte[])commands[first].Clone();
            alteredCommand[^1] ^= 0x01;
            var alteredVerdict = first.Handle(VtamsIndex, alteredCommand, out _);
            var forged = first.Handle(VtamsIndex, SealedData.Seal(RandomNumberGenerator.GetBytes(32), SealDirection.ServerToDevice, VtamsIndex, 99, Iccid.Encode(first.Iccid), "SET SERVER 203.0.113.9:5001"u8), out _);
            checks.Add(new ObfDemoCheck("commands replayed, altered or forged are refused by the card", replayedCommand == Ais140Status.Replay && alteredVerdict == Ais140Status.NotAuthentic && forged == Ais140Status.NotAuthentic,
                $"{replayedCommand}, {alteredVerdict}, {forged}; {first.RefusedCommands} refused on the device"));

            // Midway: every device goes to provider B.
            options.Progress?.Report("transfer to provider B");
            var durations = new ConcurrentBag<double>();
            var target = new ServerKeyBody(Convert.ToHexStringLower(b.ServerKey.PublicKey), b.UbAddress);
            var operatorCertificate = DevelopmentPki.LoadPair(DevelopmentPki.Eas(dirA, ObfApi.Operator));
            owned.Add(operatorCertificate);
            using var toB = Client(new Uri(b.RpoAddress), operatorCertificate, ca);
            var transferred = 0;
            await EachAsync(devices, async d =>
            {
                var started = Stopwatch.GetTimestamp();
                var (transfer, package) = ProviderTransfer.Prepare(a.Store, a.ServerKey, a.UbAddress, d.Impi, target);
                using var answer = await toB.PostAsJsonAsync("/obf/v1/transfers", package, JsonSerializerOptions.Web, cancellationToken).ConfigureAwait(false);
                if (answer.IsSuccessStatusCode)
                {
                    transfer = ProviderTransfer.Advance(a.Store, transfer, ProviderTransfer.Delivered);
                    ProviderTransfer.Advance(a.Store, transfer, ProviderTransfer.Done);
                    Interlocked.Increment(ref transferred);
                }

                durations.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            }, cancellationToken).ConfigureAwait(false);
            checks.Add(new ObfDemoCheck("devices transferred to provider B (record signed by A, keys wrapped to B)", transferred == devices.Count, Of(transferred, devices.Count)));

            options.Progress?.Report("devices follow the record their cards verified");
            await EachAsync(devices, async d =>
            {
                await d.BootstrapAsync(beneficiaries, cancellationToken).ConfigureAwait(false);
                await d.ConnectAsync(Vtams, VtamsIndex, d.ServerOf(Vtams), cancellationToken).ConfigureAwait(false);
                await d.ConnectAsync(Ers, ErsIndex, d.ServerOf(Ers), cancellationToken).ConfigureAwait(false);
            }, cancellationToken).ConfigureAwait(false);
            checks.Add(new ObfDemoCheck("A refused them; each card verified A's record and the device bootstrapped with B", devices.All(d => d.Transferred && d.BTid!.EndsWith("@bsf.b.obf.local", StringComparison.Ordinal)),
                Of(devices.Count(d => d.Transferred), devices.Count)));

            options.Progress?.Report("packets after the transfer (measured)");
            var started = Stopwatch.GetTimestamp();
            var round2 = new ConcurrentBag<Ais140Status>();
            await EachAsync(devices, async d =>
            {
                for (var n = 0; n < options.PacketsPerDevice; n++)
                {
                    round2.Add(await d.SendAsync(Vtams, Ais140Class.Position, PvtText(d, n), cancellationToken).ConfigureAwait(false));
                }
            }, cancellationToken).ConfigureAwait(false);
            var elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
            var (after, _) = await RoundAsync(devices, cancellationToken).ConfigureAwait(false);
            checks.Add(new ObfDemoCheck("packets after the transfer, with keys from B", round2.All(s => s == Ais140Status.Ok) && after.All(s => s == Ais140Status.Ok),
                Of(round2.Count(s => s == Ais140Status.Ok) + after.Count(s => s == Ais140Status.Ok), round2.Count + after.Count)));

            // A device that cannot bootstrap: its card got one key per beneficiary at personalisation, and the servers the same
            // keys from the trusted source (Key Import, appendix 2.2.3.1). The same device code, the same checks.
            options.Progress?.Report("a device with imported keys");
            var (vtamsImported, ersImported) = (RandomNumberGenerator.GetBytes(32), RandomNumberGenerator.GetBytes(32));
            var importedImsi = "001011499999999";
            using var importedCard = new VirtualUicc(new VirtualUiccOptions
            {
                Imsi = importedImsi, K = RandomNumberGenerator.GetBytes(16), Opc = RandomNumberGenerator.GetBytes(16),
                PersonalisedKeys = new Dictionary<byte, ReadOnlyMemory<byte>> { [VtamsIndex] = vtamsImported, [ErsIndex] = ersImported },
            });
            await using (var imported = new Ais140Device($"{importedImsi}@ims.mnc001.mcc001.3gppnetwork.org", importedCard.Iccid, new VirtualUiccChannel(importedCard), new Uri(b.UbAddress), Ub))
            {
                vtams.ImportKey(imported.Iccid, vtamsImported, ["position", "health"]);
                ers.ImportKey(imported.Iccid, ersImported, ["alarm"]);
                await imported.ConnectImportedAsync(Vtams, VtamsIndex, new IPEndPoint(IPAddress.Loopback, vtams.Ports[0]), cancellationToken).ConfigureAwait(false);
                await imported.ConnectImportedAsync(Ers, ErsIndex, new IPEndPoint(IPAddress.Loopback, ers.Ports[0]), cancellationToken).ConfigureAwait(false);
                var importedResults = new[]
                {
                    await imported.SendAsync(Vtams, Ais140Class.Position, PvtText(imported, 0), cancellationToken).ConfigureAwait(false),
                    await imported.SendAsync(Ers, Ais140Class.Alarm, $"PANIC,{imported.Iccid},imported keys", cancellationToken).ConfigureAwait(false),
                    await imported.SendAsync(Vtams, Ais140Class.Alarm, $"PANIC,{imported.Iccid},no right for this class here", cancellationToken).ConfigureAwait(false),
                };
                checks.Add(new ObfDemoCheck("a device that cannot bootstrap: keys imported into its card and to each beneficiary", importedResults[0] == Ais140Status.Ok && importedResults[1] == Ais140Status.Ok && importedResults[2] == Ais140Status.Refused,
                    string.Join(", ", importedResults)));
            }

            CryptographicOperations.ZeroMemory(vtamsImported);
            CryptographicOperations.ZeroMemory(ersImported);

            // A revoked right stops new keys at once.
            options.Progress?.Report("revocation");
            b.Store.Revoke(first.Impi, Ers, "alarm");
            var afterRevocation = await first.ConnectAsync(Ers, ErsIndex, new IPEndPoint(IPAddress.Loopback, ers.Ports[0]), cancellationToken).ConfigureAwait(false);
            var alarmAfter = await first.SendAsync(Ers, Ais140Class.Alarm, "PANIC,after the revocation", cancellationToken).ConfigureAwait(false);
            await first.BootstrapAsync(beneficiaries, cancellationToken).ConfigureAwait(false);
            await first.ConnectAsync(Vtams, VtamsIndex, first.ServerOf(Vtams), cancellationToken).ConfigureAwait(false);
            var alarmRouted = await first.ReportAsync(Ais140Class.Alarm, "PANIC,after the revocation, as the rights say", cancellationToken).ConfigureAwait(false);
            checks.Add(new ObfDemoCheck("a revoked right: ERS gets no new key for the device and takes nothing more; the next bootstrap no longer lists it",
                afterRevocation == Ais140Status.UnknownDevice && alarmAfter == Ais140Status.Refused && alarmRouted is [(Vtams, Ais140Status.Ok)],
                $"{afterRevocation}, {alarmAfter}; alarms to {string.Join(" and ", alarmRouted.Select(v => v.Naf == Vtams ? "VTAMS" : "ERS"))}"));
            checks.Add(new ObfDemoCheck("refused and counted at the servers / at the devices",
                vtams.Refused(Ais140Status.Replay) + vtams.Refused(Ais140Status.NotAuthentic) > 0 && ers.Refused(Ais140Status.NotAuthentic) > 0 && first.RefusedCommands >= 3,
                $"VTAMS {vtams.Refused(Ais140Status.Replay)} replayed, {vtams.Refused(Ais140Status.NotAuthentic)} not authentic; ERS {ers.Refused(Ais140Status.NotAuthentic) + ers.Refused(Ais140Status.Refused) + ers.Refused(Ais140Status.UnknownDevice)}; devices {devices.Sum(d => d.RefusedCommands)} commands"));
            return new ObfDemoResult(checks, round2.Count / Math.Max(elapsed, 1e-6), durations.IsEmpty ? 0 : durations.Average(), reader);
        }
        finally
        {
            foreach (var item in asyncOwned)
            {
                await item.DisposeAsync().ConfigureAwait(false);
            }

            for (var i = owned.Count - 1; i >= 0; i--)
            {
                owned[i].Dispose();
            }

            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            root.Delete(recursive: true);
        }
    }

    /// <summary>
    /// Each device sends a PVT, a health and a panic packet as its rights decide; the verdicts, and whether every class went
    /// exactly where the rights say (position and health to VTAMS, alarms to VTAMS and ERS).
    /// </summary>
    private static async Task<(List<Ais140Status> Verdicts, bool AsRights)> RoundAsync(List<Ais140Device> devices, CancellationToken cancellationToken)
    {
        var results = new ConcurrentBag<Ais140Status>();
        var asRights = true;
        await EachAsync(devices, async d =>
        {
            var position = await d.ReportAsync(Ais140Class.Position, PvtText(d, 0), cancellationToken).ConfigureAwait(false);
            var health = await d.ReportAsync(Ais140Class.Health, $"HEALTH,{d.Iccid},battery 87%,gps ok,gsm -71dBm", cancellationToken).ConfigureAwait(false);
            var alarm = await d.ReportAsync(Ais140Class.Alarm, $"PANIC,{d.Iccid},28.6139N,77.2090E,emergency button", cancellationToken).ConfigureAwait(false);
            foreach (var (_, status) in position.Concat(health).Concat(alarm))
            {
                results.Add(status);
            }

            if (!position.Select(v => v.Naf).SequenceEqual([Vtams]) || !health.Select(v => v.Naf).SequenceEqual([Vtams]) || !alarm.Select(v => v.Naf).Order(StringComparer.Ordinal).SequenceEqual([Ers, Vtams]))
            {
                asRights = false;
            }
        }, cancellationToken).ConfigureAwait(false);
        return ([.. results], asRights);
    }

    private static string PvtText(Ais140Device device, int n) => string.Create(CultureInfo.InvariantCulture, $"PVT,{device.Iccid},28.{6139 + n}N,77.2090E,42.5km/h,{DateTime.UtcNow:HHmmss}");

    private static async Task<Ais140Status> AttackAsync(int port, byte[] frame, CancellationToken cancellationToken)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, port, cancellationToken).ConfigureAwait(false);
        var stream = client.GetStream();
        await Ais140Wire.WriteAsync(stream, frame, cancellationToken).ConfigureAwait(false);
        return await Ais140Wire.ReadAsync(stream, cancellationToken).ConfigureAwait(false) is [_, var status] ? (Ais140Status)status : Ais140Status.Refused;
    }

    /// <summary>The sealed packet inside a DATA frame.</summary>
    private static byte[] Packet(byte[] dataFrame) => dataFrame[(3 + dataFrame[2])..];

    private static bool Contains(byte[] haystack, ReadOnlySpan<byte> needle) => haystack.AsSpan().IndexOf(needle) >= 0;

    private static string Of(int done, int all) => string.Create(CultureInfo.InvariantCulture, $"{done} of {all}");

    private static Task EachAsync<T>(IEnumerable<T> items, Func<T, Task> work, CancellationToken cancellationToken) =>
        Parallel.ForEachAsync(items, new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = cancellationToken }, async (item, _) => await work(item).ConfigureAwait(false));

    private static async Task<IApduChannel> ConnectAsync(string reader, PcscLibrary? library, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            if (PcscdHost.TryConnect(reader, library) is { } channel)
            {
                return channel;
            }

            if (DateTime.UtcNow >= deadline)
            {
                throw new InvalidOperationException($"no card answered in the PC/SC reader {reader} within 60 s");
            }

            await Task.Delay(100, cancellationToken).ConfigureAwait(false);
        }
    }

    private static HttpClient Client(Uri address, X509Certificate2 certificate, X509Certificate2 ca)
    {
        var handler = new SocketsHttpHandler();
        DevelopmentPki.UseFor(handler.SslOptions, ca, certificate);
        return new HttpClient(handler) { BaseAddress = address, Timeout = TimeSpan.FromSeconds(30) };
    }

    private static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from))
        {
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        }
    }

    private sealed class Stopper(CancellationTokenSource stop, List<Task> tasks) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await stop.CancelAsync().ConfigureAwait(false);
            await Task.WhenAll(tasks).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }
}
