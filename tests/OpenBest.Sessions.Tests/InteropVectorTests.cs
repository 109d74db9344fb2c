using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using OpenBest.Crypto;
using OpenBest.Crypto.Aead;
using OpenBest.Crypto.Aka;
using OpenBest.Crypto.Kdf;
using OpenBest.Protocol;
using OpenBest.Sessions;

namespace OpenBest.Sessions.Tests;

/// <summary>
/// The interop vectors of <c>testvectors/emsdp-profile1.json</c>: for fixed inputs, every intermediate key and
/// the exact bytes of every message of complete sessions, produced by the real UE and HSE state machines.
/// The test regenerates the file and compares, so it never drifts from the code; set
/// OPENBEST_UPDATE_VECTORS=1 to rewrite it after a deliberate change.
/// </summary>
public sealed class InteropVectorTests
{
    private const string Imsi = "208930000000001";
    private static readonly byte[] K = Convert.FromHexString("465b5ce8b199b49faa5f0a2ee238a6bc");
    private static readonly byte[] Opc = Convert.FromHexString("cd63cb71954a9f4e48a5994e37a02baf");
    private const ushort Amf = 0x8000;
    private static readonly ServingNetwork Snn = ServingNetwork.FromName("5G:mnc093.mcc208.3gppnetwork.org");
    private const string EasId = "eas.example.com";

    private static readonly byte[][] Rands =
    [
        Convert.FromHexString("23553cbe9637a89d218ae64dae47bf35"),
        Convert.FromHexString("81e92b6c0ee0e12ebceba8d92a99dfa5"),
        Convert.FromHexString("9f7c8d021accf4db213ccff0c7f71a6a"),
    ];

    [Fact]
    public void TheCommittedFile_IsWhatTheCodeProduces()
    {
        var generated = Generate();
        var path = Path.Combine(OpenBest.Testing.TestPaths.RepositoryRoot(), "testvectors", "emsdp-profile1.json");
        if (Environment.GetEnvironmentVariable("OPENBEST_UPDATE_VECTORS") == "1")
        {
            File.WriteAllText(path, generated);
        }

        Assert.True(File.Exists(path), $"{path} is missing: run the tests once with OPENBEST_UPDATE_VECTORS=1");
        Assert.Equal(File.ReadAllText(path).ReplaceLineEndings("\n"), generated);
    }

    [Fact]
    public void Generation_IsDeterministic()
    {
        Assert.Equal(Generate(), Generate());
    }

    private static string Generate()
    {
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteString("profile", "EMSDP wire profile 1, revision 2");
            json.WriteString("generator", "OpenBest tests/OpenBest.Sessions.Tests/InteropVectorTests.cs (real UE and HSE state machines, in-memory bearer)");
            json.WriteString("note", "All values hex unless stated. Messages are EMSDP messages without bearer framing. 'uplink' = UE to HSE.");
            json.WriteStartObject("inputs");
            json.WriteString("K", Hex(K));
            json.WriteString("OPc", Hex(Opc));
            json.WriteString("AMF", Amf.ToString("x4", System.Globalization.CultureInfo.InvariantCulture));
            json.WriteString("IMSI", Imsi);
            json.WriteString("servingNetworkName", Snn.Name);
            json.WriteString("easId", EasId);
            json.WriteString("enterpriseKey (UTF-8)", "enterprise-secret");
            json.WriteString("ueNonce", "0001020304050607 (the first session attempt of each scenario; +1 in the last octet per later attempt)");
            json.WriteString("SQN", "SEQ = 1, 2, … with IND 31 (SQN = SEQ << 5 | 31), one per vector");
            json.WriteStartArray("RAND (in the order vectors are issued)");
            foreach (var rand in Rands)
            {
                json.WriteStringValue(Hex(rand));
            }

            json.WriteEndArray();
            json.WriteEndObject();

            json.WriteStartArray("scenarios");
            Scenario(json, "confidential, suite 1 (AES-128-CCM-8), n = 2, UE-to-HSE: start, uplink with Ack, downlink with Ack, HSE key refresh, suspend/resume with a queued downlink, terminate",
                new UeChannelOptions { EasId = EasId, ServingNetwork = Snn }, suite: 1, n: 2, run: FullSession);
            Scenario(json, "integrity, suite 2 (AES-128-CCM-4/8), n = 1, UE-to-HSE: start, uplink, UE-triggered key refresh, uplink under key set 2",
                new UeChannelOptions { EasId = EasId, Service = BestService.Integrity, ServingNetwork = Snn }, suite: 2, n: 1, run: UeRefresh);
            Scenario(json, "confidential, suite 3 (AES-128-GCM), n = 4, UE-to-EAS mode with an Enterprise Key: start, uplink forwarded with Acked tag",
                new UeChannelOptions { EasId = EasId, UeToEasMode = true, ServingNetwork = Snn, EnterpriseKey = Encoding.UTF8.GetBytes("enterprise-secret") }, suite: 3, n: 4, run: UplinkWithAck);
            Scenario(json, "key agreement only, suite 4 (ChaCha20-Poly1305), n = 2: start with confirmation required, Session Start Confirmation",
                new UeChannelOptions { EasId = EasId, Service = BestService.KeyAgreementOnly, ServingNetwork = Snn }, suite: 4, n: 2, run: (_, _, _) => { });
            Scenario(json, "synchronisation failure: Reject 0x03 with AUTS, resynchronisation, fresh Session Start (USIM at SEQ 1000)",
                new UeChannelOptions { EasId = EasId, ServingNetwork = Snn }, suite: 1, n: 2, run: (_, _, _) => { }, usimSeq: 1000);
            Scenario(json, "MAC failure: the USIM holds another K; Reject 0x02, the HSE drops the session",
                new UeChannelOptions { EasId = EasId, ServingNetwork = Snn }, suite: 1, n: 2, run: (_, _, _) => { }, otherK: true);
            Scenario(json, "no common suite: the UE offers suite 1 only, the HSE allows suite 3 only; unprotected Reject 0x08 echoing the checksum",
                new UeChannelOptions { EasId = EasId, ServingNetwork = Snn, Suites = 0x01 }, suite: 3, n: 2, run: (_, _, _) => { });
            Scenario(json, "cookie required: Reject 0x11 with a cookie (server secret = 32 zero octets, source path \"ue\"), the request again with the cookie, then the session",
                new UeChannelOptions { EasId = EasId, ServingNetwork = Snn }, suite: 1, n: 2, run: (_, _, _) => { }, requireCookie: true);
            Scenario(json, "unknown subscriber with hiding switched off: unprotected Reject 0x01 echoing the checksum",
                new UeChannelOptions { EasId = EasId, ServingNetwork = Snn }, suite: 1, n: 2, run: (_, _, _) => { }, imsi: "208930000000999");
            json.WriteEndArray();
            json.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray()).ReplaceLineEndings("\n") + "\n";
    }

    private delegate void Script(Driver driver, int channel, uint sessionId);

    private static void FullSession(Driver d, int channel, uint sid)
    {
        d.Pump("uplink UP (confidential, A set)", d.Ue.Send(channel, "temperature=21.5"u8, ackRequested: true), true);
        d.Pump("downlink UP (confidential, A set)", d.Hse.SendDownlink(sid, "set interval=60"u8, ackRequested: true), false);
        d.Pump("HSE-triggered key refresh", d.Hse.RefreshKeys(sid), false);
        d.Pump("uplink UP under key set 2", d.Ue.Send(channel, "after refresh"u8), true);
        d.Pump("Session Suspend (UE)", d.Ue.Suspend(channel), true);
        d.Pump("downlink queued while suspended", d.Hse.SendDownlink(sid, "queued"u8), false);
        d.Pump("Session Resume delivers the queue", d.Ue.Resume(channel), true);
        d.Pump("Session Terminate (UE)", d.Ue.Terminate(channel), true);
    }

    private static void UeRefresh(Driver d, int channel, uint sid)
    {
        d.Pump("uplink UP (integrity)", d.Ue.Send(channel, "door=closed"u8), true);
        d.Pump("UE-triggered key refresh", d.Ue.RequestKeyRefresh(channel), true);
        d.Pump("uplink UP under key set 2", d.Ue.Send(channel, "door=open"u8), true);
    }

    private static void UplinkWithAck(Driver d, int channel, uint sid) =>
        d.Pump("uplink UP end to end (A set), forwarded by the HSE", d.Ue.Send(channel, "for the enterprise only"u8, ackRequested: true), true);

    private static void Scenario(Utf8JsonWriter json, string name, UeChannelOptions channelOptions, byte suite, byte n, Script run, ulong usimSeq = 0, bool otherK = false, bool requireCookie = false, string imsi = Imsi)
    {
        json.WriteStartObject();
        json.WriteString("scenario", name);
        var driver = new Driver(suite, n, usimSeq, otherK, requireCookie, imsi);
        using (driver)
        {
            var step = driver.Ue.Open(channelOptions, out var channel);
            driver.Pump("session start", step, true);
            var sid = driver.Ue.IsEstablished(channel) ? driver.Ue.SessionIdOf(channel) : 0u;
            if (sid != 0)
            {
                run(driver, channel, sid);
            }

            json.WriteNumber("sessionId", sid);
            json.WriteStartArray("keySets");
            foreach (var (keyId, rand, sqn) in driver.Subscribers.Issued)
            {
                WriteKeys(json, keyId, rand, sqn, sid, suite, channelOptions, driver.NonceFor(rand));
            }

            json.WriteEndArray();
            json.WriteStartArray("messages");
            foreach (var (step2, direction, bytes) in driver.Log)
            {
                json.WriteStartObject();
                json.WriteString("step", step2);
                json.WriteString("direction", direction);
                json.WriteString("hex", Hex(bytes));
                json.WriteEndObject();
            }

            json.WriteEndArray();
        }

        json.WriteEndObject();
    }

    private static void WriteKeys(Utf8JsonWriter json, byte keyId, byte[] rand, ulong sqn, uint sessionId, byte suiteId, UeChannelOptions options, byte[] ueNonce)
    {
        CipherSuite.TryGet(suiteId, out var suite);
        using var milenage = new Milenage(K, Opc);
        using var vector = AuthenticationCentre.Generate(milenage, sqn, Amf, rand, AkaContext.FiveG);
        json.WriteStartObject();
        json.WriteNumber("keyId (when used)", keyId);
        json.WriteString("RAND", Hex(vector.Rand));
        json.WriteString("SQN", sqn.ToString("x12", System.Globalization.CultureInfo.InvariantCulture));
        json.WriteString("AUTN", Hex(vector.Autn));
        json.WriteString("XRES", Hex(vector.Xres));
        json.WriteString("CK", Hex(vector.Ck));
        json.WriteString("IK", Hex(vector.Ik));
        json.WriteString("AK", Hex(vector.Ak));
        var kRoot = SessionKeyRoot.Derive(KeyAgreements.FiveGAka, vector.Ck, vector.Ik, vector.SqnXorAk, Snn);
        json.WriteString("K_root = K_HSE (FC 0x63)", Hex(kRoot));
        json.WriteString("ueNonce", Hex(ueNonce));
        var key = new byte[32];
        BestKeys.KE2MInt(kRoot, suite, sessionId == 0 ? 1 : sessionId, keyId, rand, ueNonce, key);
        json.WriteString("K_E2Mint", Hex(key.AsSpan(0, suite.KeySize)));
        BestKeys.KE2MEnc(kRoot, suite, sessionId == 0 ? 1 : sessionId, keyId, rand, ueNonce, key);
        json.WriteString("K_E2Menc", Hex(key.AsSpan(0, suite.KeySize)));
        var intermediate = new byte[32];
        BestKeys.KIntermediate(kRoot, sessionId == 0 ? 1 : sessionId, keyId, rand, ueNonce, intermediate);
        json.WriteString("K_Intermediate", Hex(intermediate));
        var psk = new byte[32];
        BestKeys.KEasPsk(intermediate, EasId, psk);
        json.WriteString("K_EAS_PSK", Hex(psk));
        BestKeys.KE2EInt(psk, suite, options.EnterpriseKey.Span, key);
        json.WriteString("K_E2Eint", Hex(key.AsSpan(0, suite.KeySize)));
        BestKeys.KE2EEnc(psk, suite, options.EnterpriseKey.Span, key);
        json.WriteString("K_E2Eenc", Hex(key.AsSpan(0, suite.KeySize)));
        json.WriteString("EAS key identifier", BestKeys.EasKeyIdentifier(rand).ToString("x8", System.Globalization.CultureInfo.InvariantCulture));
        json.WriteEndObject();
    }

    private static string Hex(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(bytes);

    /// <summary>Vectors from a fixed list of RANDs with SEQ 1, 2, … and IND 31; remembers what it issued.</summary>
    private sealed class ScriptedSubscribers : IHseSubscribers, IDisposable
    {
        private readonly Milenage _milenage = new(K, Opc);
        private ulong _seqHe;
        private bool _afterResync;

        public List<(byte KeyId, byte[] Rand, ulong Sqn)> Issued { get; } = [];

        public AuthenticationVector? CreateVector(string imsi, AkaContext context)
        {
            if (imsi != Imsi || Issued.Count >= Rands.Length)
            {
                return null;
            }

            var sqn = SqnScheme.Default.Next(_seqHe++, 31);
            var rand = Rands[Issued.Count];
            // Key set 1 for the Session Start (again after a resynchronisation), then the next Key ID per refresh.
            var keyId = Issued.Count == 0 ? (byte)1 : _afterResync ? Issued[^1].KeyId : Wire.NextKeyId(Issued[^1].KeyId);
            _afterResync = false;
            Issued.Add((keyId, rand, sqn));
            return AuthenticationCentre.Generate(_milenage, sqn, Amf, rand, context);
        }

        public bool Resynchronise(string imsi, ReadOnlySpan<byte> rand, ReadOnlySpan<byte> auts)
        {
            var result = AuthenticationCentre.Resynchronise(_milenage, rand, auts, _seqHe, SqnScheme.Default);
            if (result.Outcome != ResynchronisationOutcome.Resynchronised)
            {
                return false;
            }

            _seqHe = result.SeqHe;
            _afterResync = true;
            return true;
        }

        public void Dispose() => _milenage.Dispose();
    }

    private sealed class Driver : IDisposable
    {
        private readonly Milenage _ueMilenage;
        private readonly List<byte[]> _nonces = [];
        private byte _nonceCounter;

        public Driver(byte suite, byte n, ulong usimSeq, bool otherK, bool requireCookie, string imsi)
        {
            var hide = imsi == Imsi;
            Hse = new HseEngine(Subscribers, new HseOptions { SuitePreference = [suite], CounterLengthPreference = [n], ServerSecret = new byte[32], RequireCookie = requireCookie, HideUnknownSubscribers = hide }, Time);
            _ueMilenage = new Milenage(otherK ? Convert.FromHexString("000102030405060708090a0b0c0d0e0f") : K, Opc);
            var state = UsimSequenceState.FromSqnMs(SqnScheme.Default.Compose(usimSeq, 0), SqnScheme.Default);
            Ue = new UeEndpoint(new Usim(_ueMilenage, state), new UeOptions { Imsi = imsi, UeNonceSource = NextNonce }, Time);
        }

        public ManualTime Time { get; } = new();

        public ScriptedSubscribers Subscribers { get; } = new();

        public HseEngine Hse { get; }

        public UeEndpoint Ue { get; }

        public List<(string Step, string Direction, byte[] Bytes)> Log { get; } = [];

        public byte[] NonceFor(byte[] rand) => _nonces[^1];

        public void Pump(string step, StepResult first, bool uplink)
        {
            var queue = new Queue<(bool Uplink, byte[] Message)>();
            foreach (var s in first.Send)
            {
                queue.Enqueue((uplink, s.Message.ToArray()));
            }

            while (queue.TryDequeue(out var item))
            {
                Log.Add((step, item.Uplink ? "uplink" : "downlink", item.Message));
                var next = item.Uplink ? Hse.Receive(item.Message, "ue") : Ue.Receive(item.Message);
                foreach (var s in next.Send)
                {
                    queue.Enqueue((!item.Uplink, s.Message.ToArray()));
                }
            }
        }

        public void Dispose()
        {
            Hse.Dispose();
            Ue.Dispose();
            Subscribers.Dispose();
            _ueMilenage.Dispose();
        }

        private byte[] NextNonce()
        {
            var nonce = new byte[] { 0, 1, 2, 3, 4, 5, 6, (byte)(7 + _nonceCounter++) };
            _nonces.Add(nonce);
            return nonce;
        }
    }
}
