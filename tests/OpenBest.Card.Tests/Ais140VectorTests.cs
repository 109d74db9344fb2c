using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using OpenBest.Card.Virtual;
using OpenBest.Crypto.Kdf;
using OpenBest.Obf;
using OpenBest.Obf.Demo;

namespace OpenBest.Card.Tests;

/// <summary>
/// The interop vectors of <c>testvectors/obf-ais140.json</c>: for fixed inputs, every key and the exact bytes of each APDU, packet
/// type, frame and the transfer record, produced by the real card, secure element and wire code. The test regenerates the
/// file and compares, so it never drifts from the code; set OPENBEST_UPDATE_VECTORS=1 to rewrite it after a deliberate change.
/// </summary>
public sealed class Ais140VectorTests
{
    // MILENAGE test set 19 with the reference's GBA vectors (TS 33.220 B.3 inputs).
    private const string Imsi = "208930000000001";
    private const string Impi = "208930000000001@ims.mnc093.mcc208.3gppnetwork.org";
    private static readonly byte[] K = Convert.FromHexString("5122250214c33e723a5dd523fc145fc0");
    private static readonly byte[] Opc = Convert.FromHexString("981d464c7c52eb6e5036234984ad0bcf");
    private static readonly byte[] Rand = Convert.FromHexString("81e92b6c0ee0e12ebceba8d92a99dfa5");
    private static readonly byte[] Autn = Convert.FromHexString("bb52e91c747ac3ab2a5c23d15ee351d5");
    private const string Domain = "bsf.a.obf.local";
    private static readonly DateTimeOffset Lifetime = new(2026, 12, 5, 0, 0, 0, TimeSpan.Zero);

    [Fact]
    public void TheCommittedFile_IsWhatTheCodeProduces()
    {
        var generated = Generate();
        var path = Path.Combine(OpenBest.Testing.TestPaths.RepositoryRoot(), "testvectors", "obf-ais140.json");
        if (Environment.GetEnvironmentVariable("OPENBEST_UPDATE_VECTORS") == "1")
        {
            File.WriteAllText(path, generated);
        }

        Assert.True(File.Exists(path), $"{path} is missing: run the tests once with OPENBEST_UPDATE_VECTORS=1");
        Assert.Equal(File.ReadAllText(path).ReplaceLineEndings("\n"), generated);
    }

    [Fact]
    public void Generation_IsDeterministic() => Assert.Equal(Generate(), Generate());

    private static string Generate()
    {
        var iccid = VirtualUicc.IccidFromImsi(Imsi);
        using var card = new VirtualUicc(new VirtualUiccOptions { Imsi = Imsi, Iccid = iccid, K = K, Opc = Opc, InitialSqnMs = 0x16f3b3f70f82 });
        var apdus = new List<(string Step, byte[] Command, byte[] Response)>();
        var step = string.Empty;
        var channel = new Recording(new VirtualUiccChannel(card), (c, r) => apdus.Add((step, c, r)));
        var usim = new CardUsim(channel, ownsChannel: false);

        step = "GBA_U bootstrap (TS 31.102 7.1.2, tag DD)";
        using (var answer = usim.BootstrapGba(Rand, Autn))
        {
            Assert.Equal("28d7b0f2a2ec3de5", Convert.ToHexStringLower(answer.Res));
        }

        var btid = Gba.BTid(Rand, Domain);
        step = "EF_GBABP written by the ME";
        usim.StoreBootstrappingParameters(Rand, btid, Lifetime);
        using var se = ObfSecureElement.Open(channel);
        var beneficiaries = new[] { (ObfDemo.Vtams, (byte)1), (ObfDemo.Ers, (byte)2) };
        foreach (var (naf, index) in beneficiaries)
        {
            step = $"DERIVE KEY {index} ({naf})";
            Assert.True(se.DeriveKey(index, Gba.NafId(naf, Gba.UaHttpDigest), Impi).Ok);
        }

        var packets = new List<(string Name, Ais140Class Class, byte Index, string Text, byte[] Packet)>();
        foreach (var (name, dataClass, index, text) in new[]
        {
            ("PVT to VTAMS", Ais140Class.Position, (byte)1, $"PVT,{iccid},28.6139N,77.2090E,42.5km/h,120000"),
            ("health to VTAMS", Ais140Class.Health, (byte)1, $"HEALTH,{iccid},battery 87%,gps ok,gsm -71dBm"),
            ("panic to ERS", Ais140Class.Alarm, (byte)2, $"PANIC,{iccid},28.6139N,77.2090E,emergency button"),
        })
        {
            step = $"ENCRYPT DEVICE DATA ({name})";
            packets.Add((name, dataClass, index, text, se.EncryptDeviceData(index, Encoding.UTF8.GetBytes(text)).Data));
        }

        // What the servers hold: CK, IK from MILENAGE; the NAF keys from TS 33.220 B.3.
        using var milenage = new OpenBest.Crypto.Milenage(K, Opc);
        var (ck, ik) = (new byte[16], new byte[16]);
        milenage.F2345(Rand, default, ck, ik, default);
        var vtamsKey = new byte[32];
        Gba.KsIntNaf(ck, ik, Rand, Impi, Gba.NafId(ObfDemo.Vtams, Gba.UaHttpDigest), vtamsKey);
        var command = SealedData.Seal(vtamsKey, SealDirection.ServerToDevice, 1, 1, Iccid.Encode(iccid), "SET SERVER 127.0.0.1:5001"u8);
        step = "DECRYPT DATA (the VTAMS command)";
        Assert.True(se.DecryptData(1, command).Ok);

        // The transfer: server keys from fixed scalars, a deterministic (RFC 6979) record, keys wrapped with a fixed ephemeral key.
        using var serverA = ObfServerKey.FromPrivateKey(SHA256.HashData("OpenBest vector: authentication server A"u8));
        using var serverB = ObfServerKey.FromPrivateKey(SHA256.HashData("OpenBest vector: authentication server B"u8));
        var record = ServerKeyRecord.Create(serverA.Signer, 1, "https://obf-b.example.org:8443/", iccid, serverB.PublicKey);
        using var ephemeral = ECDiffieHellman.Create(new ECParameters { Curve = ECCurve.NamedCurves.nistP256, D = SHA256.HashData("OpenBest vector: ephemeral"u8) });
        var (ephemeralPublic, wrapped) = ObfServerKey.WrapTo(serverB.PublicKey, Impi, K, Opc, ephemeral);

        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteString("profile", "OBF secure element and AIS140 demo transport, version 1 (docs/protocol.md)");
            json.WriteString("generator", "OpenBest tests/OpenBest.Card.Tests/Ais140VectorTests.cs (the virtual UICC through the device-side card client)");
            json.WriteString("note", "All values hex unless stated. APDUs as a T=0 reader carries them (case 4 sent without Le, then GET RESPONSE).");
            json.WriteStartObject("inputs");
            json.WriteString("K", Hex(K));
            json.WriteString("OPc", Hex(Opc));
            json.WriteString("IMSI", Imsi);
            json.WriteString("IMPI", Impi);
            json.WriteString("ICCID", iccid);
            json.WriteString("RAND", Hex(Rand));
            json.WriteString("AUTN", Hex(Autn));
            json.WriteString("BSF domain", Domain);
            json.WriteString("key lifetime", "2026-12-05T00:00:00Z");
            json.WriteString("Ua security protocol id", Hex(Gba.UaHttpDigest));
            json.WriteString("server A private key", "SHA-256(\"OpenBest vector: authentication server A\")");
            json.WriteString("server B private key", "SHA-256(\"OpenBest vector: authentication server B\")");
            json.WriteString("ephemeral private key", "SHA-256(\"OpenBest vector: ephemeral\")");
            json.WriteEndObject();
            json.WriteStartObject("keys");
            json.WriteString("CK", Hex(ck));
            json.WriteString("IK", Hex(ik));
            json.WriteString("B-TID", btid);
            foreach (var (naf, index) in beneficiaries)
            {
                var (ext, intern) = (new byte[32], new byte[32]);
                Gba.KsNaf(ck, ik, Rand, Impi, Gba.NafId(naf, Gba.UaHttpDigest), ext);
                Gba.KsIntNaf(ck, ik, Rand, Impi, Gba.NafId(naf, Gba.UaHttpDigest), intern);
                json.WriteString($"Ks_ext_NAF {naf}", Hex(ext));
                json.WriteString($"Ks_int_NAF {naf} (secure element key index {index})", Hex(intern));
            }

            json.WriteEndObject();
            json.WriteStartArray("apdus");
            foreach (var (name, c, r) in apdus)
            {
                json.WriteStartObject();
                json.WriteString("step", name);
                json.WriteString("C", Hex(c));
                json.WriteString("R", Hex(r));
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteStartArray("packets");
            foreach (var (name, dataClass, index, text, packet) in packets)
            {
                json.WriteStartObject();
                json.WriteString("packet", name);
                json.WriteString("key index", index.ToString(System.Globalization.CultureInfo.InvariantCulture));
                json.WriteString("plaintext (UTF-8)", text);
                json.WriteString("sealed", Hex(packet));
                json.WriteString("AIS140 DATA frame body", Hex(Ais140Wire.Data(dataClass, iccid, packet)));
                json.WriteEndObject();
            }

            json.WriteStartObject();
            json.WriteString("packet", "VTAMS command with TRUST data (server counter 1)");
            json.WriteString("key index", "1");
            json.WriteString("plaintext (UTF-8)", "SET SERVER 127.0.0.1:5001");
            json.WriteString("sealed", Hex(command));
            json.WriteString("AIS140 COMMAND frame body", Hex([(byte)'C', .. command]));
            json.WriteEndObject();
            json.WriteStartObject();
            json.WriteString("packet", "HELLO frame body");
            json.WriteString("AIS140 HELLO frame body", Hex(Ais140Wire.Hello(iccid, btid)));
            json.WriteEndObject();
            json.WriteEndArray();
            json.WriteStartObject("transfer");
            json.WriteString("server A public key", Hex(serverA.PublicKey));
            json.WriteString("server B public key", Hex(serverB.PublicKey));
            json.WriteString("record (sequence 1, endpoint https://obf-b.example.org:8443/, signed by A, RFC 6979)", Hex(record));
            json.WriteString("ephemeral public key", Hex(ephemeralPublic));
            json.WriteString("K || OPc wrapped to B (ECDH-ES, HKDF-SHA-256, AES-256 key wrap)", Hex(wrapped));
            json.WriteEndObject();
            json.WriteEndObject();
        }

        Assert.True(ServerKeyRecord.Verify(serverA.PublicKey, record));
        return Encoding.UTF8.GetString(stream.ToArray()).ReplaceLineEndings("\n") + "\n";
    }

    private static string Hex(ReadOnlySpan<byte> bytes) => Convert.ToHexStringLower(bytes);

    private sealed class Recording(IApduChannel inner, Action<byte[], byte[]> record) : IApduChannel
    {
        public string Name => inner.Name;

        public byte[] Transmit(ReadOnlySpan<byte> command)
        {
            var response = inner.Transmit(command);
            record(command.ToArray(), (byte[])response.Clone()); // the client zeroes what it read
            return response;
        }

        public void Dispose() => inner.Dispose();
    }
}
