using System.Security.Cryptography;
using System.Text;
using OpenBest.Crypto;

namespace OpenBest.Obf.Tests;

/// <summary>The key-import batch: round trips, and refusal of every kind of damage with an error that names the place and holds no key.</summary>
public sealed class KeyImportBatchTests
{
    private static readonly byte[] TransportKey = Hex.Bytes("000102030405060708090a0b0c0d0e0f");

    // MILENAGE test sets 1, 3 and 19 as three secure elements.
    private static readonly (string Iccid, string? Eid, string Imsi, string? Impi, SubscriberKeyType Type, string K, string Op)[] Elements =
    [
        ("8949000000000000018", null, "001010000000001", null, SubscriberKeyType.MilenageKOpc, "465b5ce8b199b49faa5f0a2ee238a6bc", "cd63cb71954a9f4e48a5994e37a02baf"),
        ("89490000000000000026", "89049032000001000000012345678901", "001010000000002", "001010000000002@ims.mnc001.mcc001.3gppnetwork.org", SubscriberKeyType.MilenageKOp, "fec86ba6eb707ed08905757b1bb44b8f", "dbc59adcb6f9a0ef735477b7fadf8374"),
        ("8949000000000000034", null, "208930000000001", "208930000000001@ims.mnc093.mcc208.3gppnetwork.org", SubscriberKeyType.MilenageKOpc, "5122250214c33e723a5dd523fc145fc0", "981d464c7c52eb6e5036234984ad0bcf"),
    ];

    [Theory]
    [InlineData(16)]
    [InlineData(24)]
    [InlineData(32)]
    public void RoundTrip(int keyLength)
    {
        var key = RandomNumberGenerator.GetBytes(keyLength);
        var records = Records();
        var batch = KeyImportBatch.Write(records, key);

        Assert.True(KeyImportBatch.TryRead(batch, key, out var read, out var error), error?.ToString());
        Assert.Equal(records.Count, read.Count);
        for (var i = 0; i < records.Count; i++)
        {
            Assert.Equal(records[i].Iccid, read[i].Iccid);
            Assert.Equal(records[i].Eid, read[i].Eid);
            Assert.Equal(records[i].Imsi, read[i].Imsi);
            Assert.Equal(records[i].Impi, read[i].Impi);
            Assert.Equal(records[i].Type, read[i].Type);
            Assert.Equal(records[i].K.ToArray(), read[i].K.ToArray());
            Assert.Equal(records[i].OpOrOpc.ToArray(), read[i].OpOrOpc.ToArray());
            read[i].Dispose();
        }
    }

    [Fact]
    public void TheBatch_HasTheDocumentedShape_AndCarriesNoKeyInTheClear()
    {
        var text = Encoding.UTF8.GetString(KeyImportBatch.Write(Records(), TransportKey));
        var lines = text.Split('\n');
        Assert.Equal($"obf-key-import version=1 kek-id={KeyImportBatch.KekId(TransportKey)}", lines[0]);
        Assert.StartsWith("record iccid=8949000000000000018 imsi=001010000000001 type=k-opc wrapped=", lines[1], StringComparison.Ordinal);
        Assert.StartsWith("record iccid=89490000000000000026 eid=89049032000001000000012345678901 imsi=001010000000002 impi=001010000000002@ims.mnc001.mcc001.3gppnetwork.org type=k-op wrapped=", lines[2], StringComparison.Ordinal);
        Assert.Matches("^end records=3 seal=[0-9a-f]{64}$", lines[4]);
        Assert.Equal(string.Empty, lines[5]);
        AssertNoKeyMaterial(text);
    }

    [Fact]
    public void KekId_IsTheFirstEightOctetsOfSha256OfTheKey()
    {
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(TransportKey)[..8]), KeyImportBatch.KekId(TransportKey));
        Assert.Equal("be45cb2605bf36be", KeyImportBatch.KekId(TransportKey));
        Assert.Throws<ArgumentException>(() => KeyImportBatch.KekId(new byte[15]));
    }

    [Fact]
    public void TheDocumentedExample_IsWhatTheWriterProduces()
    {
        var example = ReadDocumentedExample();
        using var record = Record(0);
        Assert.Equal(example, Encoding.UTF8.GetString(KeyImportBatch.Write([record], TransportKey)));
        Assert.True(KeyImportBatch.TryRead(Encoding.UTF8.GetBytes(example), TransportKey, out var read, out var error), error?.ToString());
        Assert.Equal("465b5ce8b199b49faa5f0a2ee238a6bc", Hex.String(Assert.Single(read).K));
    }

    [Fact]
    public void WrongTransportKey_NamesRecord1()
    {
        var batch = KeyImportBatch.Write(Records(), TransportKey);
        var other = Hex.Bytes("0f0e0d0c0b0a09080706050403020100");

        var error = AssertRefused(batch, other, KeyImportErrorKind.WrongTransportKey);
        Assert.Equal(1, error.Record);
        Assert.Equal(2, error.Line);
        Assert.Contains(KeyImportBatch.KekId(TransportKey), error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void WrongTransportKey_BehindAForgedKekId_IsATamperedRecord1()
    {
        var other = Hex.Bytes("0f0e0d0c0b0a09080706050403020100");
        var text = Text(KeyImportBatch.Write(Records(), TransportKey)).Replace(KeyImportBatch.KekId(TransportKey), KeyImportBatch.KekId(other), StringComparison.Ordinal);

        var error = AssertRefused(text, other, KeyImportErrorKind.TamperedRecord);
        Assert.Equal(1, error.Record);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(57)]
    [InlineData(111)]
    public void ATamperedRecordInTheMiddle_IsNamed_AndNothingIsReturned(int hexDigit)
    {
        var lines = Lines(KeyImportBatch.Write(Records(), TransportKey));
        var at = lines[2].IndexOf("wrapped=", StringComparison.Ordinal) + "wrapped=".Length + hexDigit;
        var chars = lines[2].ToCharArray();
        chars[at] = chars[at] == '0' ? '1' : '0';
        lines[2] = new string(chars);

        var error = AssertRefused(Join(lines), TransportKey, KeyImportErrorKind.TamperedRecord);
        Assert.Equal(2, error.Record);
        Assert.Equal(3, error.Line);
    }

    [Fact]
    public void AWrappedSecretMovedToAnotherIdentity_IsRefused()
    {
        var lines = Lines(KeyImportBatch.Write(Records(), TransportKey));
        static string Wrapped(string line) => line[(line.IndexOf("wrapped=", StringComparison.Ordinal) + 8)..];

        // Record 3's secret pasted into record 1 (and vice versa).
        var w1 = Wrapped(lines[1]);
        var w3 = Wrapped(lines[3]);
        lines[1] = lines[1].Replace(w1, w3, StringComparison.Ordinal);
        lines[3] = lines[3].Replace(w3, w1, StringComparison.Ordinal);

        var error = AssertRefused(Join(lines), TransportKey, KeyImportErrorKind.IdentityMismatch);
        Assert.Equal(1, error.Record);
    }

    [Theory]
    [InlineData("iccid=89490000000000000026", "iccid=89490000000000000042")]
    [InlineData("imsi=001010000000002", "imsi=001010000000009")]
    [InlineData(" eid=89049032000001000000012345678901", "")]
    [InlineData("eid=89049032000001000000012345678901", "eid=89049032000001000000012345678902")]
    [InlineData(" impi=001010000000002@ims.mnc001.mcc001.3gppnetwork.org", "")]
    [InlineData("type=k-op ", "type=k-opc ")]
    public void AnEditedIdentityField_IsRefused(string from, string to)
    {
        var lines = Lines(KeyImportBatch.Write(Records(), TransportKey));
        Assert.Contains(from, lines[2], StringComparison.Ordinal);
        lines[2] = lines[2].Replace(from, to, StringComparison.Ordinal);

        var error = AssertRefused(Join(lines), TransportKey, KeyImportErrorKind.IdentityMismatch);
        Assert.Equal(2, error.Record);
        Assert.Equal(3, error.Line);
    }

    [Fact]
    public void ARemovedRecord_WithTheCountFixed_FailsTheSeal()
    {
        var lines = Lines(KeyImportBatch.Write(Records(), TransportKey)).ToList();
        lines.RemoveAt(2);
        lines[3] = lines[3].Replace("records=3", "records=2", StringComparison.Ordinal);

        var error = AssertRefused(Join(lines), TransportKey, KeyImportErrorKind.SealMismatch);
        Assert.Null(error.Record);
        Assert.Equal(4, error.Line);
    }

    [Fact]
    public void ARemovedRecord_FailsTheCount()
    {
        var lines = Lines(KeyImportBatch.Write(Records(), TransportKey)).ToList();
        lines.RemoveAt(2);
        AssertRefused(Join(lines), TransportKey, KeyImportErrorKind.RecordCountMismatch);
    }

    [Fact]
    public void ReorderedRecords_FailTheSeal()
    {
        var lines = Lines(KeyImportBatch.Write(Records(), TransportKey));
        (lines[1], lines[2]) = (lines[2], lines[1]);
        AssertRefused(Join(lines), TransportKey, KeyImportErrorKind.SealMismatch);
    }

    [Fact]
    public void ARepeatedRecord_IsADuplicate()
    {
        var lines = Lines(KeyImportBatch.Write(Records(), TransportKey)).ToList();
        lines.Insert(3, lines[1]);
        lines[5] = lines[5].Replace("records=3", "records=4", StringComparison.Ordinal);

        var error = AssertRefused(Join(lines), TransportKey, KeyImportErrorKind.DuplicateIdentity);
        Assert.Equal(3, error.Record);
        Assert.Equal(4, error.Line);
    }

    [Fact]
    public void ACutShortBatch_IsTruncated()
    {
        var lines = Lines(KeyImportBatch.Write(Records(), TransportKey));
        AssertRefused(Join(lines[..3]), TransportKey, KeyImportErrorKind.Truncated);
    }

    [Fact]
    public void AChangedHeader_FailsTheSeal()
    {
        var text = Text(KeyImportBatch.Write(Records(), TransportKey)).Replace("obf-key-import version=1", "obf-key-import  version=1", StringComparison.Ordinal);
        AssertRefused(text, TransportKey, KeyImportErrorKind.SealMismatch);
    }

    public static TheoryData<string, string, int, int?> MalformedLines => new()
    {
        // (what to replace in the second record line, replacement, expected line, expected record)
        { "type=k-op ", "type=k-tuak ", 3, 2 },
        { "type=k-op ", "", 3, 2 },
        { "iccid=89490000000000000026", "iccid=8949000000000000002X", 3, 2 },
        { "iccid=89490000000000000026", "iccid=894900000000026", 3, 2 },
        { "imsi=001010000000002", "imsi=0010100000000021234", 3, 2 },
        { "imsi=001010000000002 ", "", 3, 2 },
        { "eid=89049032000001000000012345678901", "eid=8904903200000100000001234567890", 3, 2 },
        { "impi=001010000000002@ims.mnc001.mcc001.3gppnetwork.org", "impi=no-realm", 3, 2 },
        { "wrapped=", "wrapped=00", 3, 2 },
        { "wrapped=", "wrapped=zz", 3, 2 },
        { "type=k-op ", "type=k-op colour=blue ", 3, 2 },
        { "type=k-op ", "type=k-op type=k-op ", 3, 2 },
        { "type=k-op ", "type=k-op stray ", 3, 2 },
        { "record ", "recorde ", 3, null },
    };

    [Theory]
    [MemberData(nameof(MalformedLines))]
    public void MalformedRecordLines_AreNamed(string from, string to, int line, int? record)
    {
        var lines = Lines(KeyImportBatch.Write(Records(), TransportKey));
        Assert.Contains(from, lines[2], StringComparison.Ordinal);
        lines[2] = ReplaceFirst(lines[2], from, to);

        var error = AssertRefused(Join(lines), TransportKey, KeyImportErrorKind.Malformed);
        Assert.Equal(line, error.Line);
        Assert.Equal(record, error.Record);
    }

    [Theory]
    [InlineData("obf-key-import version=1 kek-id=", "obf-key-import version=1 kekid=", KeyImportErrorKind.Malformed)]
    [InlineData("kek-id=be45cb2605bf36be", "kek-id=be45cb2605bf36", KeyImportErrorKind.Malformed)]
    [InlineData("version=1", "version=2", KeyImportErrorKind.UnsupportedVersion)]
    [InlineData("version=1", "version=01", KeyImportErrorKind.Malformed)]
    [InlineData("obf-key-import ", "key-import ", KeyImportErrorKind.Malformed)]
    public void AMalformedHeader_IsNamed(string from, string to, KeyImportErrorKind kind)
    {
        var text = ReplaceFirst(Text(KeyImportBatch.Write(Records(), TransportKey)), from, to);
        var error = AssertRefused(text, TransportKey, kind);
        Assert.Equal(1, error.Line);
        Assert.Null(error.Record);
    }

    [Theory]
    [InlineData("records=3", "records=three")]
    [InlineData("records=3", "records=03")]
    [InlineData(" seal=", " seal=00")]
    [InlineData("end ", "fin ")]
    public void AMalformedEndLine_IsNamed(string from, string to)
    {
        var lines = Lines(KeyImportBatch.Write(Records(), TransportKey));
        lines[4] = ReplaceFirst(lines[4], from, to);
        var error = AssertRefused(Join(lines), TransportKey, KeyImportErrorKind.Malformed);
        Assert.Equal(5, error.Line);
    }

    [Fact]
    public void TextAfterTheEndLine_IsMalformed()
    {
        var text = Text(KeyImportBatch.Write(Records(), TransportKey)) + "record iccid=8949000000000000042 imsi=001010000000004 type=k-opc wrapped=00\n";
        var error = AssertRefused(text, TransportKey, KeyImportErrorKind.Malformed);
        Assert.Equal(6, error.Line);
    }

    [Fact]
    public void NotUtf8_AndEmpty_AreMalformed()
    {
        AssertRefused([0x6f, 0x62, 0xff, 0xfe], TransportKey, KeyImportErrorKind.Malformed);
        AssertRefused([], TransportKey, KeyImportErrorKind.Malformed);
        AssertRefused("\n# nothing but a comment\n", TransportKey, KeyImportErrorKind.Malformed);
    }

    [Fact]
    public void CommentsBlankLinesCrLfAndABom_AreAccepted()
    {
        var lines = Lines(KeyImportBatch.Write(Records(), TransportKey));
        var text = "\uFEFF# from the card vendor, lot 42\r\n\r\n" + string.Join("\r\n", lines[..2]) + "\r\n   \r\n# second lot\r\n" + string.Join("\r\n", lines[2..]);
        Assert.True(KeyImportBatch.TryRead(Encoding.UTF8.GetBytes(text), TransportKey, out var read, out var error), error?.ToString());
        Assert.Equal(3, read.Count);
    }

    [Fact]
    public void AnEmptyBatch_RoundTrips()
    {
        var batch = KeyImportBatch.Write([], TransportKey);
        Assert.True(KeyImportBatch.TryRead(batch, TransportKey, out var read, out var error), error?.ToString());
        Assert.Empty(read);
        var wrong = AssertRefused(batch, Hex.Bytes("0f0e0d0c0b0a09080706050403020100"), KeyImportErrorKind.WrongTransportKey);
        Assert.Null(wrong.Record);
        Assert.Equal(1, wrong.Line);
    }

    [Fact]
    public void ImportedRecords_DriveMilenage_WithOpOrOpc()
    {
        var batch = KeyImportBatch.Write(Records(), TransportKey);
        Assert.True(KeyImportBatch.TryRead(batch, TransportKey, out var read, out _));
        var rand = Hex.Bytes("9f7c8d021accf4db213ccff0c7f71a6a");
        var res = new byte[8];

        // Record 2 carries OP of test set 3; MILENAGE must come out with OPc 1006020f… and RES 8011c48c….
        using (var milenage = read[1].CreateMilenage())
        {
            milenage.F2345(rand, res, default, default, default);
        }

        Assert.Equal("8011c48c0c214ed2", Hex.String(res));
        foreach (var record in read)
        {
            record.Dispose();
        }

        Assert.Throws<ObjectDisposedException>(() => read[0].K.ToArray());
    }

    [Fact]
    public void Write_RefusesDuplicates_AndBadKeys()
    {
        using var a = Record(0);
        using var b = new SecureElementKeyRecord("8949000000000000042", null, a.Imsi, null, SubscriberKeyType.MilenageKOpc, new byte[16], new byte[16]);
        Assert.Contains("IMSI", Assert.Throws<ArgumentException>(() => KeyImportBatch.Write([a, b], TransportKey)).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => KeyImportBatch.Write([a], new byte[20]));
        Assert.Throws<ArgumentException>(() => KeyImportBatch.TryRead([], new byte[8], out _, out _));
    }

    [Fact]
    public void RecordFields_AreChecked_WithoutEchoingThem()
    {
        var e = Assert.Throws<ArgumentException>(() => new SecureElementKeyRecord("12345", null, "001010000000001", null, SubscriberKeyType.MilenageKOpc, new byte[16], new byte[16]));
        Assert.DoesNotContain("12345", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new SecureElementKeyRecord("8949000000000000018", null, "001010000000001", null, SubscriberKeyType.MilenageKOpc, new byte[15], new byte[16]));
        Assert.Throws<ArgumentException>(() => new SecureElementKeyRecord("8949000000000000018", null, "001010000000001", "user with space@realm", SubscriberKeyType.MilenageKOpc, new byte[16], new byte[16]));
        Assert.Throws<ArgumentException>(() => new SecureElementKeyRecord("8949000000000000018", null, "001010000000001", null, (SubscriberKeyType)7, new byte[16], new byte[16]));
        using var ok = Record(1);
        Assert.DoesNotContain("fec86ba6", ok.ToString(), StringComparison.OrdinalIgnoreCase);
    }

    private static SecureElementKeyRecord Record(int i)
    {
        var e = Elements[i];
        return new SecureElementKeyRecord(e.Iccid, e.Eid, e.Imsi, e.Impi, e.Type, Hex.Bytes(e.K), Hex.Bytes(e.Op));
    }

    private static List<SecureElementKeyRecord> Records() => [.. Enumerable.Range(0, Elements.Length).Select(Record)];

    private static KeyImportError AssertRefused(string batch, byte[] key, KeyImportErrorKind kind) => AssertRefused(Encoding.UTF8.GetBytes(batch), key, kind);

    private static KeyImportError AssertRefused(byte[] batch, byte[] key, KeyImportErrorKind kind)
    {
        Assert.False(KeyImportBatch.TryRead(batch, key, out var records, out var error));
        Assert.Null(records);
        Assert.Equal(kind, error.Kind);
        AssertNoKeyMaterial(error.ToString());
        return error;
    }

    private static void AssertNoKeyMaterial(string text)
    {
        foreach (var e in Elements)
        {
            Assert.DoesNotContain(e.K, text, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain(e.Op, text, StringComparison.OrdinalIgnoreCase);
        }

        Assert.DoesNotContain(Hex.String(TransportKey), text, StringComparison.OrdinalIgnoreCase);
    }

    private static string ReadDocumentedExample()
    {
        // The example block of docs/obf-key-import.md, between its marker comments.
        var doc = File.ReadAllText(Path.Combine(OpenBest.Testing.TestPaths.RepositoryRoot(), "docs", "obf-key-import.md"));
        const string Begin = "<!-- example-batch -->\n```\n";
        var start = doc.IndexOf(Begin, StringComparison.Ordinal);
        Assert.True(start >= 0, "docs/obf-key-import.md has no example batch");
        start += Begin.Length;
        var end = doc.IndexOf("```\n", start, StringComparison.Ordinal);
        return doc[start..end];
    }

    private static string Text(byte[] batch) => Encoding.UTF8.GetString(batch);

    private static string[] Lines(byte[] batch) => Text(batch).TrimEnd('\n').Split('\n');

    private static string Join(IEnumerable<string> lines) => string.Join('\n', lines) + "\n";

    private static string ReplaceFirst(string text, string from, string to)
    {
        var at = text.IndexOf(from, StringComparison.Ordinal);
        Assert.True(at >= 0, $"\"{from}\" not found");
        return text[..at] + to + text[(at + from.Length)..];
    }
}
