using OpenBest.Card.Virtual;
using OpenBest.Crypto;
using OpenBest.Crypto.Aka;
using OpenBest.Crypto.Kdf;

namespace OpenBest.Card.Tests;

/// <summary>
/// The virtual UICC answered APDU by APDU, with the command and response bytes written from TS 31.102 7.1.2, ETSI TS 102 221 and
/// ISO 7816-4 (not from our client): the worked MILENAGE vectors of the reference, the GBA context against the TS 33.220 vectors,
/// T=0 GET RESPONSE, logical channels, and bad APDUs that get their status word and change nothing.
/// </summary>
public sealed class VirtualUiccTests : IDisposable
{
    // MILENAGE test set 1 (TS 35.207/35.208): K, OPc, RAND, SQN ff9bb4d0b607, AUTN.
    private static readonly byte[] K1 = Convert.FromHexString("465b5ce8b199b49faa5f0a2ee238a6bc");
    private static readonly byte[] Opc1 = Convert.FromHexString("cd63cb71954a9f4e48a5994e37a02baf");
    private const string Rand1 = "23553CBE9637A89D218AE64DAE47BF35";
    private const string Autn1 = "55F328B43577B9B94A9FFAC354DFAFB3";

    // MILENAGE test set 19 and the GBA vectors of the reference (TS 33.220 B.3 over set 19).
    private static readonly byte[] K19 = Convert.FromHexString("5122250214c33e723a5dd523fc145fc0");
    private static readonly byte[] Opc19 = Convert.FromHexString("981d464c7c52eb6e5036234984ad0bcf");
    private const string Rand19 = "81e92b6c0ee0e12ebceba8d92a99dfa5";
    private const string Autn19 = "bb52e91c747ac3ab2a5c23d15ee351d5";
    private const string Impi19 = "208930000000001@ims.mnc093.mcc208.3gppnetwork.org";

    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-card-");

    public void Dispose() => _directory.Delete(recursive: true);

    [Fact]
    public void Authenticate3G_MilenageSet1_AnswersTheReferenceRApdu()
    {
        // TS 31.102 7.1.2 with the card's SQN_MS below the vector's SQN ff9bb4d0b607 (same IND, smaller SEQ).
        using var card = Card(K1, Opc1, sqnMs: 0xff9bb4d0b5e0);
        // SELECT with P2 = 04 and no Le (T=0): the FCP waits behind '61xx'.
        Assert.Equal("611C", Hex(card.Process(Apdu("00A4040407A0000000871002"))));
        var response = card.Process(Apdu($"0088008122 10{Rand1} 10{Autn1} 00"));
        Assert.Equal("DB08A54211D5E3BA50BF10B40BA9A3C58B2A05BBF0D987B21BF8CB10F769BCD751044604127672711C6D34419000", Hex(response));
    }

    [Fact]
    public void Authenticate3G_SqnBehind_AnswersTheReferenceAuts()
    {
        // The reference: "If the card's SQN_MS were ff9bb4d0b620: DC 0E BA853F3C121B1D42E794305F81BD 90 00".
        using var card = Card(K1, Opc1, sqnMs: 0xff9bb4d0b620);
        card.Process(Apdu("00A4040407A0000000871002"));
        Assert.Equal("DC0EBA853F3C121B1D42E794305F81BD9000", Hex(card.Process(Apdu($"0088008122 10{Rand1} 10{Autn1} 00"))));
    }

    [Fact]
    public void Authenticate_WithoutLe_T0_Answers61xx_ThenGetResponse()
    {
        using var card = Card(K1, Opc1, sqnMs: 0xff9bb4d0b5e0);
        card.Process(Apdu("00A4040C07A0000000871002"));
        // A case 4 command carried as case 3 (T=0): the card says how much waits, GET RESPONSE takes it.
        Assert.Equal("612C", Hex(card.Process(Apdu($"0088008122 10{Rand1} 10{Autn1}"))));
        var data = card.Process(Apdu("00C000002C"));
        Assert.StartsWith("DB08A54211D5E3BA50BF", Hex(data), StringComparison.Ordinal);
        Assert.EndsWith("9000", Hex(data), StringComparison.Ordinal);
        // Nothing waits any more.
        Assert.Equal("6985", Hex(card.Process(Apdu("00C0000010"))));
    }

    [Fact]
    public void Authenticate_MacFailure_Is9862_AndChangesNothing()
    {
        using var card = Card(K1, Opc1, sqnMs: 0xff9bb4d0b5e0);
        card.Process(Apdu("00A4040C07A0000000871002"));
        var forged = Autn1[..^2] + "00";
        Assert.Equal("9862", Hex(card.Process(Apdu($"0088008122 10{Rand1} 10{forged} 00"))));
        Assert.StartsWith("DB08", Hex(card.Process(Apdu($"0088008122 10{Rand1} 10{Autn1} 00"))), StringComparison.Ordinal);
        // The same SQN again is a replay: AUTS, not keys.
        Assert.StartsWith("DC0E", Hex(card.Process(Apdu($"0088008122 10{Rand1} 10{Autn1} 00"))), StringComparison.Ordinal);
    }

    [Fact]
    public void GbaContext_Set19_BootstrapsAndDerivesTheReferenceKsExtNaf_AndKeepsKsIntNaf()
    {
        using var card = Card(K19, Opc19, sqnMs: 0x16f3b3f70f82, imsi: "208930000000001");
        card.Process(Apdu("00A4040C07A0000000871002"));
        // Bootstrapping mode (tag DD): RES only, CK and IK stay in the card (TS 31.102 7.1.2, TS 33.220 G.1).
        Assert.Equal("DB0828D7B0F2A2EC3DE59000", Hex(card.Process(Apdu($"0088008423 DD 10{Rand19} 10{Autn19} 00"))));
        // EF_GBABP holds RAND until the ME writes the B-TID and lifetime.
        card.Process(Apdu("00A4000C026FD6"));
        Assert.StartsWith("10" + Rand19.ToUpperInvariant() + "0000", Hex(card.Process(Apdu("00B0000020"))), StringComparison.Ordinal);

        // NAF derivation mode (tag DE): Ks_ext_NAF of the reference.
        var nafId = Gba.NafId("naf.example.com", Gba.UaHttpDigest);
        var impi = System.Text.Encoding.UTF8.GetBytes(Impi19);
        byte[] body = [0xDE, (byte)nafId.Length, .. nafId, (byte)impi.Length, .. impi];
        var response = card.Process([0x00, 0x88, 0x00, 0x84, (byte)body.Length, .. body, 0x00]);
        Assert.Equal("DB20" + "4e0b372085e422e8ef2dd338885825222d65dc01479f4ee60efdd4f3078d30a6".ToUpperInvariant() + "9000", Hex(response));

        // Ks_int_NAF stays in the card; the secure element can use it. Its packet opens under the reference Ks_int_NAF.
        Assert.Equal("9000", Hex(card.Process(Apdu("00700000 01")))[^4..]);
        Assert.Equal("9000", Hex(card.Process(Apdu("01A4040C07F04F4246534501"))));
        byte[] derive = [(byte)nafId.Length, .. nafId, (byte)impi.Length, .. impi];
        Assert.Equal("9000", Hex(card.Process([0x81, 0x22, 0x01, 0x00, (byte)derive.Length, .. derive])));
        var packet = card.Process([0x81, 0x10, 0x01, 0x00, 0x05, .. "hello"u8, 0x00]);
        Assert.Equal("9000", Hex(packet)[^4..]);
        var plain = new byte[5];
        Assert.True(SealedData.TryOpen(Convert.FromHexString("3935b3b4bd5f26143b94353aa7efc6a86f0835c24a272c2c877afc6dba2564f6"), SealDirection.DeviceToServer, card.IccidOctets, packet.AsSpan(0, packet.Length - 2), plain));
        Assert.Equal("hello"u8.ToArray(), plain);
    }

    [Fact]
    public void NafDerivation_BeforeAnyBootstrap_IsRefused()
    {
        using var card = Card(K19, Opc19);
        card.Process(Apdu("00A4040C07A0000000871002"));
        var nafId = Gba.NafId("naf.example.com", Gba.UaHttpDigest);
        byte[] body = [0xDE, (byte)nafId.Length, .. nafId, 3, .. "a@b"u8];
        Assert.Equal("6985", Hex(card.Process([0x00, 0x88, 0x00, 0x84, (byte)body.Length, .. body, 0x00])));
    }

    [Fact]
    public void EfImsi_And_EfIccid_AreCodedAsTs31102And102221Say()
    {
        using var card = Card(K1, Opc1, imsi: "208930000000001", iccid: "8988211000000000017");
        Assert.Equal("9000", Hex(card.Process(Apdu("00A4000C023F00"))));
        // EF_ICCID by SFI 02 (READ BINARY P1 = 0x82): swapped BCD, F padded.
        Assert.Equal("988812010000000010F7" + "9000", Hex(card.Process(Apdu("00B082000A"))));
        card.Process(Apdu("00A4040C07A0000000871002"));
        // The reference's example (TS 31.102 4.2.2, as pySim's enc_imsi): 208930000000001 → 08 29 80 39 00 00 00 00 10.
        Assert.Equal("0829803900000000109000", Hex(card.Process(Apdu("00B0870009"))));
        var client = new CardUsim(new VirtualUiccChannel(card));
        Assert.Equal("208930000000001", client.ReadImsi());
        // An odd-length IMSI ends in a full octet, an even one in an F nibble; both read back.
        Assert.Equal("001010123456063", Imsi.Decode(Imsi.Encode("001010123456063")));
        Assert.Equal("0910101032540636", Convert.ToHexString(Imsi.Encode("001010123456063"), 1, 8));
        Assert.Equal("31041012345678", Imsi.Decode(Imsi.Encode("31041012345678")));
        Assert.Equal("083101141032547 6F8".Replace(" ", string.Empty, StringComparison.Ordinal), Convert.ToHexString(Imsi.Encode("31041012345678")));
    }

    [Theory]
    [InlineData("A088008122", "6E00")]          // GSM class
    [InlineData("FF88008122", "6E00")]          // reserved class
    [InlineData("0012000000", "6D00")]          // unknown instruction
    [InlineData("0088018100", "6A86")]          // AUTHENTICATE P1 ≠ 00
    [InlineData("0088009900", "6A86")]          // unknown context
    [InlineData("0088008000", "9864")]          // GSM context not supported
    [InlineData("00880081021010", "6700")]      // AUTHENTICATE data of the wrong length
    [InlineData("00A4080002 3F00", "6A86")]     // select by path: not supported
    [InlineData("00A40004 03 3F0000", "6700")]  // a FID of three octets
    [InlineData("00A4000402 6F99", "6A82")]     // no such file
    [InlineData("00B0000010", "6986")]          // READ BINARY with no current EF
    [InlineData("0188008122", "6881")]          // logical channel 1 not open
    [InlineData("00C0000010", "6985")]          // GET RESPONSE with nothing waiting
    [InlineData("0088", "6700")]                // not an APDU
    [InlineData("00A40404 05", "6700")]         // Lc says 5, no data
    [InlineData("80100100 01 41", "6D00")]      // a secure-element instruction outside the application
    [InlineData("00700001 00", "6A86")]         // MANAGE CHANNEL asking for channel 1 by number
    public void BadApdu_GetsItsStatusWord_AndChangesNothing(string apdu, string sw)
    {
        var state = Path.Combine(_directory.FullName, "card.state");
        using var card = Card(K1, Opc1, sqnMs: 0xff9bb4d0b5e0, state: state);
        card.Process(Apdu("00A4040C07A0000000871002"));
        var before = File.Exists(state) ? File.ReadAllBytes(state) : [];
        Assert.Equal(sw, Hex(card.Process(Apdu(apdu)))[^4..]);
        Assert.Equal(before, File.Exists(state) ? File.ReadAllBytes(state) : []);
        // The card still works: the USIM stays selected and the vector is still fresh.
        Assert.StartsWith("DB08", Hex(card.Process(Apdu($"0088008122 10{Rand1} 10{Autn1} 00"))), StringComparison.Ordinal);
    }

    [Fact]
    public void UpdateBinary_OnlyEfGbabp_OthersNeedAdm()
    {
        using var card = Card(K1, Opc1);
        card.Process(Apdu("00A4040C07A0000000871002"));
        card.Process(Apdu("00A4000C026F07"));
        Assert.Equal("6982", Hex(card.Process(Apdu("00D6000001 08"))));
        card.Process(Apdu("00A4000C026FD6"));
        Assert.Equal("9000", Hex(card.Process(Apdu("00D6000003 000000"))));
        Assert.Equal("6700", Hex(card.Process(Apdu("00D600FE03 000000"))));
    }

    [Fact]
    public void LogicalChannels_ThreeBesideTheBasic_EachWithItsOwnSelection()
    {
        using var card = Card(K1, Opc1, sqnMs: 0xff9bb4d0b5e0);
        Assert.Equal("019000", Hex(card.Process(Apdu("0070000001"))));
        Assert.Equal("029000", Hex(card.Process(Apdu("0070000001"))));
        Assert.Equal("039000", Hex(card.Process(Apdu("0070000001"))));
        Assert.Equal("6A81", Hex(card.Process(Apdu("0070000001"))));
        // USIM on channel 2, the secure element on channel 3; AUTHENTICATE on channel 3 is not the USIM's.
        card.Process(Apdu("02A4040C07A0000000871002"));
        card.Process(Apdu("03A4040C07F04F4246534501"));
        Assert.Equal("6985", Hex(card.Process(Apdu($"0388008122 10{Rand1} 10{Autn1} 00"))));
        Assert.StartsWith("DB08", Hex(card.Process(Apdu($"0288008122 10{Rand1} 10{Autn1} 00"))), StringComparison.Ordinal);
        Assert.Equal("9000", Hex(card.Process(Apdu("00708002"))));
        Assert.Equal("6881", Hex(card.Process(Apdu("02A4040C07A0000000871002"))));
        // A reset closes every channel but the basic one.
        card.PowerOn();
        Assert.Equal("6881", Hex(card.Process(Apdu("03CA000100"))));
    }

    [Fact]
    public void State_SurvivesARestart_IsEncrypted_AndBelongsToOneCard()
    {
        var state = Path.Combine(_directory.FullName, "card.state");
        using (var card = Card(K1, Opc1, sqnMs: 0xff9bb4d0b5e0, state: state))
        {
            card.Process(Apdu("00A4040C07A0000000871002"));
            Assert.StartsWith("DB08", Hex(card.Process(Apdu($"0088008122 10{Rand1} 10{Autn1} 00"))), StringComparison.Ordinal);
        }

        var bytes = File.ReadAllBytes(state);
        Assert.DoesNotContain("001010000000001", System.Text.Encoding.ASCII.GetString(bytes), StringComparison.Ordinal);
        // A crash while writing leaves the temporary file; the state read is the last whole one.
        File.WriteAllBytes(state + ".tmp", [1, 2, 3]);
        using (var card = Card(K1, Opc1, state: state))
        {
            card.Process(Apdu("00A4040C07A0000000871002"));
            // The SQN was committed before the keys left: the same AUTN is a replay after the restart.
            Assert.StartsWith("DC0E", Hex(card.Process(Apdu($"0088008122 10{Rand1} 10{Autn1} 00"))), StringComparison.Ordinal);
        }

        var other = Assert.Throws<InvalidOperationException>(() => Card(K19, Opc19, state: state));
        Assert.Contains("another K or OPc", other.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void StateThatCannotBeWritten_Is6F00_AndTheCardGoesBackToWhatIsOnDisk()
    {
        // A folder where the temporary file goes blocks the write (a read-only folder would not stop root).
        var state = Path.Combine(_directory.FullName, "card.state");
        using var card = Card(K1, Opc1, sqnMs: 0xff9bb4d0b5e0, state: state);
        card.Process(Apdu("00A4040C07A0000000871002"));
        Directory.CreateDirectory(state + ".tmp"); // the temporary file cannot be created
        Assert.Equal("6F00", Hex(card.Process(Apdu($"0088008122 10{Rand1} 10{Autn1} 00"))));
        Directory.Delete(state + ".tmp");
    }

    internal static VirtualUicc Card(byte[] k, byte[] opc, ulong sqnMs = 0, string imsi = "001010000000001", string? iccid = null, string? state = null,
        ReadOnlyMemory<byte> serverKey = default, IReadOnlyDictionary<byte, ReadOnlyMemory<byte>>? keys = null) => new(new VirtualUiccOptions
    {
        Imsi = imsi,
        Iccid = iccid,
        K = k,
        Opc = opc,
        InitialSqnMs = sqnMs,
        StateFile = state,
        ServerPublicKey = serverKey,
        PersonalisedKeys = keys ?? new Dictionary<byte, ReadOnlyMemory<byte>>(),
    });

    internal static byte[] Apdu(string hex) => Convert.FromHexString(hex.Replace(" ", string.Empty, StringComparison.Ordinal));

    internal static string Hex(byte[] bytes) => Convert.ToHexString(bytes);
}
