using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using OpenBest.Crypto;

namespace OpenBest.Obf;

/// <summary>Why a key-import batch was refused.</summary>
public enum KeyImportErrorKind
{
    /// <summary>A line or field does not follow the format (docs/obf-key-import.md).</summary>
    Malformed,

    /// <summary>The header names a format version this reader does not know.</summary>
    UnsupportedVersion,

    /// <summary>The batch was wrapped under another transport key (its KEK identifier differs).</summary>
    WrongTransportKey,

    /// <summary>A record's wrapped secret does not unwrap under the transport key: it was altered.</summary>
    TamperedRecord,

    /// <summary>A record's wrapped secret is bound to other identity fields or another type: it was moved or its fields edited.</summary>
    IdentityMismatch,

    /// <summary>Two records name the same ICCID, IMSI or IMPI.</summary>
    DuplicateIdentity,

    /// <summary>The batch ends without its end line (cut short).</summary>
    Truncated,

    /// <summary>The end line's record count differs from the records present.</summary>
    RecordCountMismatch,

    /// <summary>The batch seal does not verify: records were removed, reordered or added, or the header changed.</summary>
    SealMismatch,
}

/// <summary>A refused batch: where (line and, for a record, its 1-based index) and why. Never holds key material.</summary>
/// <param name="Line">The 1-based line, or 0 when the problem is the batch as a whole.</param>
/// <param name="Record">The 1-based record index, or null when the problem is not one record's.</param>
/// <param name="Kind">The reason.</param>
/// <param name="Message">A description for an operator.</param>
public sealed record KeyImportError(int Line, int? Record, KeyImportErrorKind Kind, string Message)
{
    /// <summary>"line L, record R: message".</summary>
    public override string ToString() =>
        (Line > 0 ? $"line {Line}" : "batch") + (Record is { } r ? $", record {r}" : string.Empty) + $": {Message}";
}

/// <summary>
/// The key-import batch: a line-oriented UTF-8 file that carries secure-element subscriber secrets from a
/// trusted source, each record's K ‖ OP(c) wrapped with AES key wrap with padding (RFC 5649) under a
/// transport key, with the record's identity bound inside the wrapping, and the whole batch sealed
/// with an HMAC so records cannot be dropped, duplicated or reordered unnoticed. The format is
/// specified in docs/obf-key-import.md.
/// </summary>
/// <remarks>
/// <see cref="TryRead"/> checks everything before it returns anything: either every record, or one
/// error naming the line and record and the reason, and no records at all.
/// </remarks>
public static class KeyImportBatch
{
    /// <summary>The format version this code writes and reads.</summary>
    public const int FormatVersion = 1;

    /// <summary>The first token of the header line.</summary>
    public const string Magic = "obf-key-import";

    private const int BindingLength = 16;
    private const int PlaintextLength = 2 * SecureElementKeyRecord.KeyLength + BindingLength;
    private const int WrappedLength = PlaintextLength + AesKeyWrap.SemiblockSize;
    private const int MaxLineLength = 1024;
    private const string TokenKOpc = "k-opc";
    private const string TokenKOp = "k-op";

    private static readonly string[] HeaderFields = ["version", "kek-id"];
    private static readonly string[] RecordFields = ["iccid", "eid", "imsi", "impi", "type", "wrapped"];
    private static readonly string[] EndFields = ["records", "seal"];

    /// <summary>
    /// The transport key's identifier written in the header: the first 8 octets of SHA-256 over the key,
    /// as 16 lower-case hex digits. It names the key without revealing it.
    /// </summary>
    /// <exception cref="ArgumentException">The key is not 16, 24 or 32 octets.</exception>
    public static string KekId(ReadOnlySpan<byte> transportKey)
    {
        CheckTransportKey(transportKey);
        Span<byte> digest = stackalloc byte[32];
        SHA256.HashData(transportKey, digest);
        return Convert.ToHexStringLower(digest[..8]);
    }

    /// <summary>Writes <paramref name="records"/> as a sealed batch under <paramref name="transportKey"/> (an AES key of 16, 24 or 32 octets).</summary>
    /// <exception cref="ArgumentException">The key length is wrong, or two records share an ICCID, IMSI or IMPI.</exception>
    public static byte[] Write(IReadOnlyList<SecureElementKeyRecord> records, ReadOnlySpan<byte> transportKey)
    {
        ArgumentNullException.ThrowIfNull(records);
        CheckTransportKey(transportKey);
        var identities = new IdentitySet();
        for (var i = 0; i < records.Count; i++)
        {
            ArgumentNullException.ThrowIfNull(records[i], nameof(records));
            if (identities.FirstDuplicate(records[i].Iccid, records[i].Imsi, records[i].Impi) is { } field)
            {
                throw new ArgumentException($"Record {i + 1} repeats the {field} of an earlier record.", nameof(records));
            }
        }

        var text = new StringBuilder();
        using var seal = new Seal(transportKey);
        using var wrap = new AesKeyWrap(transportKey);
        Span<byte> plaintext = stackalloc byte[PlaintextLength];
        Span<byte> wrapped = stackalloc byte[WrappedLength];
        try
        {
            AppendSealed(text, seal, $"{Magic} version={FormatVersion} kek-id={KekId(transportKey)}");
            foreach (var record in records)
            {
                var type = TypeToken(record.Type);
                record.K.CopyTo(plaintext);
                record.OpOrOpc.CopyTo(plaintext[SecureElementKeyRecord.KeyLength..]);
                SecureElementKeyRecord.IdentityBinding(record.Iccid, record.Eid, record.Imsi, record.Impi, type, plaintext[(2 * SecureElementKeyRecord.KeyLength)..]);
                wrap.WrapWithPadding(plaintext, wrapped);

                var line = new StringBuilder("record iccid=").Append(record.Iccid);
                if (record.Eid is not null)
                {
                    line.Append(" eid=").Append(record.Eid);
                }

                line.Append(" imsi=").Append(record.Imsi);
                if (record.Impi is not null)
                {
                    line.Append(" impi=").Append(record.Impi);
                }

                line.Append(" type=").Append(type).Append(" wrapped=").Append(Convert.ToHexStringLower(wrapped));
                AppendSealed(text, seal, line.ToString());
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plaintext);
        }

        text.Append(CultureInfo.InvariantCulture, $"end records={records.Count} seal={Convert.ToHexStringLower(seal.Finish())}\n");
        return Encoding.UTF8.GetBytes(text.ToString());
    }

    /// <summary>
    /// Reads a batch under <paramref name="transportKey"/>. Every line is parsed and every record
    /// unwrapped and checked before anything is returned.
    /// </summary>
    /// <returns>
    /// True with all the records (the caller disposes them); false with an error naming the line, the
    /// record and the reason, and no records (any already unwrapped are zeroed).
    /// </returns>
    /// <exception cref="ArgumentException">The transport key is not 16, 24 or 32 octets (a configuration mistake, not bad input).</exception>
    public static bool TryRead(ReadOnlySpan<byte> batch, ReadOnlySpan<byte> transportKey, [NotNullWhen(true)] out IReadOnlyList<SecureElementKeyRecord>? records, [NotNullWhen(false)] out KeyImportError? error)
    {
        CheckTransportKey(transportKey);
        records = null;
        if (!TryParse(batch, out var parsed, out error))
        {
            return false;
        }

        // The batch names the key it was wrapped under: another key would fail every record, the first one first.
        var first = parsed.Records.Count > 0 ? parsed.Records[0] : null;
        if (!CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(parsed.KekId), Encoding.ASCII.GetBytes(KekId(transportKey))))
        {
            error = new KeyImportError(first?.Line ?? parsed.HeaderLine, first is null ? null : 1, KeyImportErrorKind.WrongTransportKey,
                $"the batch was wrapped under the transport key {parsed.KekId}, not under the key given ({KekId(transportKey)})");
            return false;
        }

        var result = new List<SecureElementKeyRecord>(parsed.Records.Count);
        using var wrap = new AesKeyWrap(transportKey);
        Span<byte> wrapped = stackalloc byte[WrappedLength];
        Span<byte> plaintext = stackalloc byte[PlaintextLength];
        Span<byte> binding = stackalloc byte[BindingLength];
        try
        {
            for (var i = 0; i < parsed.Records.Count; i++)
            {
                var r = parsed.Records[i];
                Convert.FromHexString(r.Wrapped, wrapped, out _, out _);
                if (!wrap.TryUnwrapWithPadding(wrapped, plaintext, out var length) || length != PlaintextLength)
                {
                    error = new KeyImportError(r.Line, i + 1, KeyImportErrorKind.TamperedRecord, "the wrapped secret does not unwrap under the transport key: the record was altered");
                    return Fail(result, out records);
                }

                SecureElementKeyRecord.IdentityBinding(r.Iccid, r.Eid, r.Imsi, r.Impi, r.TypeToken, binding);
                if (!CryptographicOperations.FixedTimeEquals(binding, plaintext[(2 * SecureElementKeyRecord.KeyLength)..]))
                {
                    error = new KeyImportError(r.Line, i + 1, KeyImportErrorKind.IdentityMismatch, "the wrapped secret belongs to another identity or key type: the record was moved or its fields changed");
                    return Fail(result, out records);
                }

                result.Add(new SecureElementKeyRecord(r.Iccid, r.Eid, r.Imsi, r.Impi, r.Type, plaintext[..SecureElementKeyRecord.KeyLength], plaintext[SecureElementKeyRecord.KeyLength..(2 * SecureElementKeyRecord.KeyLength)]));
            }

            using var seal = new Seal(transportKey);
            foreach (var line in parsed.SealedLines)
            {
                seal.Append(line);
            }

            if (!CryptographicOperations.FixedTimeEquals(seal.Finish(), parsed.Seal))
            {
                error = new KeyImportError(parsed.EndLine, null, KeyImportErrorKind.SealMismatch, "the batch seal does not verify: records were removed, reordered or added, or the header changed");
                return Fail(result, out records);
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plaintext);
        }

        records = result;
        error = null;
        return true;
    }

    private static bool Fail(List<SecureElementKeyRecord> unwrapped, out IReadOnlyList<SecureElementKeyRecord>? records)
    {
        foreach (var record in unwrapped)
        {
            record.Dispose();
        }

        records = null;
        return false;
    }

    private static void CheckTransportKey(ReadOnlySpan<byte> transportKey)
    {
        if (transportKey.Length is not (16 or 24 or 32))
        {
            throw new ArgumentException($"The transport key is an AES key of 16, 24 or 32 octets, not {transportKey.Length}.", nameof(transportKey));
        }
    }

    private static string TypeToken(SubscriberKeyType type) => type switch
    {
        SubscriberKeyType.MilenageKOpc => TokenKOpc,
        SubscriberKeyType.MilenageKOp => TokenKOp,
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    private static void AppendSealed(StringBuilder text, Seal seal, string line)
    {
        seal.Append(line);
        text.Append(line).Append('\n');
    }

    private static bool TryParse(ReadOnlySpan<byte> batch, out ParsedBatch parsed, [NotNullWhen(false)] out KeyImportError? error)
    {
        parsed = new ParsedBatch();
        string text;
        try
        {
            text = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(batch);
        }
        catch (DecoderFallbackException)
        {
            error = new KeyImportError(0, null, KeyImportErrorKind.Malformed, "the batch is not UTF-8 text");
            return false;
        }

        if (text.StartsWith('\uFEFF'))
        {
            text = text[1..];
        }

        var lines = text.Split('\n');
        var identities = new IdentitySet();
        var sawHeader = false;
        var sawEnd = false;
        for (var index = 0; index < lines.Length; index++)
        {
            var number = index + 1;
            var line = lines[index].EndsWith('\r') ? lines[index][..^1] : lines[index];
            if (string.IsNullOrWhiteSpace(line) || line.StartsWith('#'))
            {
                continue;
            }

            var tokens = line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            var kind = tokens[0];
            var recordIndex = sawHeader && !sawEnd && kind == "record" ? parsed.Records.Count + 1 : (int?)null;
            KeyImportError Malformed(string message) => new(number, recordIndex, KeyImportErrorKind.Malformed, message);

            if (line.Length > MaxLineLength)
            {
                error = Malformed($"the line is longer than {MaxLineLength} characters");
                return false;
            }

            if (sawEnd)
            {
                error = Malformed("text after the end line");
                return false;
            }

            if (!sawHeader)
            {
                if (kind != Magic)
                {
                    error = Malformed($"the batch must begin with the header line \"{Magic} version=… kek-id=…\"");
                    return false;
                }

                if (!TryFields(tokens, HeaderFields, out var header, out var problem))
                {
                    error = Malformed(problem!);
                    return false;
                }

                if (!header.TryGetValue("version", out var version) || !IsDecimal(version, 1, 6))
                {
                    error = Malformed("the header needs version=<number>");
                    return false;
                }

                if (version != FormatVersion.ToString(CultureInfo.InvariantCulture))
                {
                    error = new KeyImportError(number, null, KeyImportErrorKind.UnsupportedVersion, $"format version {version} is not supported (this reader knows version {FormatVersion})");
                    return false;
                }

                if (!header.TryGetValue("kek-id", out var kekId) || !IsHex(kekId, 16))
                {
                    error = Malformed("the header needs kek-id=<16 hex digits>");
                    return false;
                }

                parsed.KekId = kekId.ToLowerInvariant();
                parsed.HeaderLine = number;
                parsed.SealedLines.Add(line);
                sawHeader = true;
                continue;
            }

            if (kind == "record")
            {
                if (!TryFields(tokens, RecordFields, out var fields, out var problem))
                {
                    error = Malformed(problem!);
                    return false;
                }

                fields.TryGetValue("eid", out var eid);
                fields.TryGetValue("impi", out var impi);
                fields.TryGetValue("iccid", out var iccid);
                fields.TryGetValue("imsi", out var imsi);
                if (SecureElementKeyRecord.CheckIdentity(iccid, eid, imsi, impi) is { } identityProblem)
                {
                    error = Malformed(identityProblem);
                    return false;
                }

                if (!fields.TryGetValue("type", out var typeToken) || typeToken is not (TokenKOpc or TokenKOp))
                {
                    error = Malformed($"type must be {TokenKOpc} or {TokenKOp}");
                    return false;
                }

                if (!fields.TryGetValue("wrapped", out var wrapped) || !IsHex(wrapped, 2 * WrappedLength))
                {
                    error = Malformed($"wrapped must be {2 * WrappedLength} hex digits (the RFC 5649 wrapping of {PlaintextLength} octets)");
                    return false;
                }

                if (identities.FirstDuplicate(iccid!, imsi!, impi) is { } duplicate)
                {
                    error = new KeyImportError(number, recordIndex, KeyImportErrorKind.DuplicateIdentity, $"the {duplicate} repeats that of an earlier record");
                    return false;
                }

                var type = typeToken == TokenKOpc ? SubscriberKeyType.MilenageKOpc : SubscriberKeyType.MilenageKOp;
                parsed.Records.Add(new ParsedRecord(number, iccid!, eid, imsi!, impi, type, typeToken, wrapped));
                parsed.SealedLines.Add(line);
                continue;
            }

            if (kind == "end")
            {
                if (!TryFields(tokens, EndFields, out var fields, out var problem))
                {
                    error = Malformed(problem!);
                    return false;
                }

                if (!fields.TryGetValue("records", out var count) || !IsDecimal(count, 1, 9))
                {
                    error = Malformed("the end line needs records=<number>");
                    return false;
                }

                if (!fields.TryGetValue("seal", out var seal) || !IsHex(seal, 64))
                {
                    error = Malformed("the end line needs seal=<64 hex digits>");
                    return false;
                }

                if (int.Parse(count, CultureInfo.InvariantCulture) != parsed.Records.Count)
                {
                    error = new KeyImportError(number, null, KeyImportErrorKind.RecordCountMismatch, $"the end line counts {count} records, the batch holds {parsed.Records.Count}");
                    return false;
                }

                parsed.Seal = Convert.FromHexString(seal);
                parsed.EndLine = number;
                sawEnd = true;
                continue;
            }

            error = Malformed("a line is a record line or the end line");
            return false;
        }

        if (!sawHeader)
        {
            error = new KeyImportError(0, null, KeyImportErrorKind.Malformed, "the batch is empty: no header line");
            return false;
        }

        if (!sawEnd)
        {
            error = new KeyImportError(0, null, KeyImportErrorKind.Truncated, $"the batch has no end line after its {parsed.Records.Count} records: it was cut short");
            return false;
        }

        error = null;
        return true;
    }

    private static bool TryFields(string[] tokens, string[] allowed, out Dictionary<string, string> fields, out string? problem)
    {
        fields = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 1; i < tokens.Length; i++)
        {
            var eq = tokens[i].IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                problem = $"field {i} is not name=value";
                return false;
            }

            var name = tokens[i][..eq];
            if (!allowed.Contains(name))
            {
                problem = $"unknown field \"{(name.Length <= 16 && name.All(char.IsAsciiLetterOrDigit) ? name : "?")}\"";
                return false;
            }

            if (!fields.TryAdd(name, tokens[i][(eq + 1)..]))
            {
                problem = $"the field {name} occurs twice";
                return false;
            }
        }

        problem = null;
        return true;
    }

    private static bool IsHex(string value, int length) => value.Length == length && value.All(char.IsAsciiHexDigit);

    private static bool IsDecimal(string value, int minLength, int maxLength) =>
        value.Length >= minLength && value.Length <= maxLength && value.All(char.IsAsciiDigit) && (value.Length == 1 || value[0] != '0');

    private sealed record ParsedRecord(int Line, string Iccid, string? Eid, string Imsi, string? Impi, SubscriberKeyType Type, string TypeToken, string Wrapped);

    private sealed class ParsedBatch
    {
        public string KekId { get; set; } = string.Empty;

        public int HeaderLine { get; set; }

        public int EndLine { get; set; }

        public byte[] Seal { get; set; } = [];

        public List<ParsedRecord> Records { get; } = [];

        public List<string> SealedLines { get; } = [];
    }

    /// <summary>ICCID, IMSI and IMPI each identify one record.</summary>
    private sealed class IdentitySet
    {
        private readonly HashSet<string> _iccids = new(StringComparer.Ordinal);
        private readonly HashSet<string> _imsis = new(StringComparer.Ordinal);
        private readonly HashSet<string> _impis = new(StringComparer.OrdinalIgnoreCase);

        public string? FirstDuplicate(string iccid, string imsi, string? impi)
        {
            if (!_iccids.Add(iccid))
            {
                return "ICCID";
            }

            if (!_imsis.Add(imsi))
            {
                return "IMSI";
            }

            return impi is not null && !_impis.Add(impi) ? "IMPI" : null;
        }
    }

    /// <summary>
    /// HMAC-SHA-256 under seal key = HMAC-SHA-256(transport key, "obf-key-import seal"), over the header and
    /// record lines exactly as written, each followed by one LF.
    /// </summary>
    private sealed class Seal : IDisposable
    {
        private readonly IncrementalHash _hmac;

        public Seal(ReadOnlySpan<byte> transportKey)
        {
            Span<byte> sealKey = stackalloc byte[32];
            HMACSHA256.HashData(transportKey, "obf-key-import seal"u8, sealKey);
            _hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, sealKey);
            CryptographicOperations.ZeroMemory(sealKey);
        }

        public void Append(string line)
        {
            _hmac.AppendData(Encoding.UTF8.GetBytes(line));
            _hmac.AppendData("\n"u8);
        }

        public byte[] Finish() => _hmac.GetHashAndReset();

        public void Dispose() => _hmac.Dispose();
    }
}
