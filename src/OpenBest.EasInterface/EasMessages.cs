using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Xml;
using System.Xml.Linq;
using System.Xml.Schema;

namespace OpenBest.EasInterface;

/// <summary>A body of the HSE–EAS interface (schema <c>hse-eas.xsd</c>, namespace <see cref="EasXml.Namespace"/>).</summary>
public abstract record EasMessage;

/// <summary>EAS → HSE: "EAS Session Register" (POST /eas/v1/registrations; 201 Created).</summary>
public sealed record EasSessionRegister(string EasId, Uri Endpoint) : EasMessage;

/// <summary>HSE → EAS: the registration made, with its id (the annex's "session id").</summary>
public sealed record EasSessionRegistered(string RegistrationId, string EasId) : EasMessage;

/// <summary>The keys of one confirmed UE session for one EAS. K_EAS_PSK is secret: <see cref="ToString"/> never shows it.</summary>
public sealed record EasSessionKeys(uint SessionId, byte KeyId, byte Suite, string Service, int CounterLength, bool UeToEasMode, string PskIdentity, byte[] KEasPsk)
{
    /// <summary>UE-to-EAS mode: the Enterprise Key Identifier this key set's K_E2E was derived with (as named to the UE), or null.</summary>
    public byte[]? EnterpriseKeyIdentifier { get; init; }

    /// <summary>Never shows the key.</summary>
    public override string ToString() => $"EasSessionKeys(session {SessionId}, key {KeyId}, suite {Suite}, {Service}, n={CounterLength}, {PskIdentity})";
}

/// <summary>"EAS Session Request": EAS → HSE asks for a key by external id and key identifier; HSE → EAS pushes <see cref="Keys"/>.</summary>
public sealed record EasSessionRequest(string ExternalId, uint KeyIdentifier, EasSessionKeys? Keys = null) : EasMessage
{
    /// <summary>A key request for one endpoint of the enterprise (EMSE Id): the answer carries that endpoint's K_EMSE_PSK in place of K_EAS_PSK.</summary>
    public string? EndpointId { get; init; }
}

/// <summary>"EAS Session Start": the answer to <see cref="EasSessionRequest"/> (with the keys from the HSE; optionally an Enterprise Key Identifier from the EAS).</summary>
public sealed record EasSessionStart(string ExternalId, uint KeyIdentifier, EasSessionKeys? Keys = null, byte[]? EnterpriseKeyIdentifier = null) : EasMessage;

/// <summary>EAS → HSE: refresh the keys of the UE with this external id (the HSE carries it to the UE); with an Enterprise Key Identifier, the new keys use that Enterprise Key.</summary>
public sealed record EasKeyRefresh(string ExternalId, byte[]? EnterpriseKeyIdentifier = null) : EasMessage;

/// <summary>HSE → EAS: a UE-to-EAS uplink message, forwarded unmodified through the outbox.</summary>
/// <param name="Sequence">The outbox's order: increasing per EAS, so a receiver that remembers the last one delivers each message once.</param>
/// <param name="SessionId">The UE session.</param>
/// <param name="ExternalId">The UE's identifier for this EAS.</param>
/// <param name="Message">The EMSDP message, unmodified.</param>
/// <param name="KeyIdentifier">The EAS key identifier of the message's key set, when the HSE knows it (to fetch a key the EAS lacks).</param>
public sealed record EasUplink(long Sequence, uint SessionId, string ExternalId, byte[] Message, uint? KeyIdentifier = null) : EasMessage;

/// <summary>EAS → HSE: a downlink message the EAS sealed for a UE-to-EAS session.</summary>
public sealed record EasDownlink(uint SessionId, byte[] Message) : EasMessage;

/// <summary>An error body: what went wrong, never a key.</summary>
public sealed record EasProblem(string Title, string? Detail = null) : EasMessage;

/// <summary>
/// Writes and reads HSE–EAS bodies. Reading validates against the schema first, with no DTD, no external
/// resolution and a size limit; anything invalid is refused with a one-line reason and never throws.
/// </summary>
public static class EasXml
{
    /// <summary>The namespace of every body.</summary>
    public const string Namespace = "urn:openbest:hse-eas:1";

    /// <summary>The media type of every body.</summary>
    public const string MediaType = "application/xml";

    /// <summary>The largest body accepted (64 KiB).</summary>
    public const int MaxBody = 64 * 1024;

    private static readonly XNamespace Ns = Namespace;
    private static readonly Lazy<XmlSchemaSet> Schemas = new(LoadSchemas);

    /// <summary>The schema text, as shipped.</summary>
    public static string SchemaText()
    {
        using var stream = typeof(EasXml).Assembly.GetManifestResourceStream("OpenBest.EasInterface.hse-eas.xsd")!;
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }

    /// <summary>The PSK identity of the profile (section 5): <c>&lt;external id&gt;#&lt;8 lowercase hex digits&gt;</c>.</summary>
    public static string PskIdentity(string externalId, uint keyIdentifier) => string.Create(CultureInfo.InvariantCulture, $"{externalId}#{keyIdentifier:x8}");

    /// <summary>Encodes <paramref name="message"/> as UTF-8 XML.</summary>
    public static byte[] Write(EasMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        var element = message switch
        {
            EasSessionRegister m => new XElement(Ns + "EasSessionRegister", new XElement(Ns + "EasId", m.EasId), new XElement(Ns + "Endpoint", m.Endpoint.ToString())),
            EasSessionRegistered m => new XElement(Ns + "EasSessionRegistered", new XElement(Ns + "RegistrationId", m.RegistrationId), new XElement(Ns + "EasId", m.EasId)),
            EasSessionRequest m => new XElement(Ns + "EasSessionRequest", new XElement(Ns + "ExternalId", m.ExternalId), new XElement(Ns + "KeyIdentifier", Hex(m.KeyIdentifier)), KeysElement(m.Keys),
                m.EndpointId is { } endpoint ? new XElement(Ns + "EndpointId", endpoint) : null),
            EasSessionStart m => new XElement(Ns + "EasSessionStart", new XElement(Ns + "ExternalId", m.ExternalId), new XElement(Ns + "KeyIdentifier", Hex(m.KeyIdentifier)), KeysElement(m.Keys),
                m.EnterpriseKeyIdentifier is { } eki ? new XElement(Ns + "EnterpriseKeyIdentifier", Convert.ToHexString(eki)) : null),
            EasKeyRefresh m => new XElement(Ns + "EasKeyRefresh", new XElement(Ns + "ExternalId", m.ExternalId),
                m.EnterpriseKeyIdentifier is { } eki ? new XElement(Ns + "EnterpriseKeyIdentifier", Convert.ToHexString(eki)) : null),
            EasUplink m => new XElement(Ns + "EasUplink", new XElement(Ns + "Sequence", m.Sequence), new XElement(Ns + "SessionId", m.SessionId), new XElement(Ns + "ExternalId", m.ExternalId),
                m.KeyIdentifier is { } kid ? new XElement(Ns + "KeyIdentifier", Hex(kid)) : null, new XElement(Ns + "Message", Convert.ToBase64String(m.Message))),
            EasDownlink m => new XElement(Ns + "EasDownlink", new XElement(Ns + "SessionId", m.SessionId), new XElement(Ns + "Message", Convert.ToBase64String(m.Message))),
            EasProblem m => new XElement(Ns + "Problem", new XElement(Ns + "Title", m.Title), m.Detail is null ? null : new XElement(Ns + "Detail", m.Detail)),
            _ => throw new ArgumentException($"Unknown message {message.GetType().Name}.", nameof(message)),
        };
        using var stream = new MemoryStream();
        using (var writer = XmlWriter.Create(stream, new XmlWriterSettings { Encoding = new UTF8Encoding(false), Indent = false }))
        {
            new XDocument(element).WriteTo(writer);
        }

        var body = stream.ToArray();
        CryptographicOperations.ZeroMemory(stream.GetBuffer()); // the body may carry K_EAS_PSK: one copy, the caller's
        return body;
    }

    /// <summary>Validates and reads a body; false with a one-line reason when it is not a valid HSE–EAS body.</summary>
    public static bool TryRead(ReadOnlySpan<byte> body, out EasMessage? message, out string error)
    {
        message = null;
        if (body.Length > MaxBody)
        {
            error = $"the body has {body.Length} octets, more than {MaxBody}";
            return false;
        }

        XElement root;
        var copy = body.ToArray();
        try
        {
            var settings = new XmlReaderSettings
            {
                DtdProcessing = DtdProcessing.Prohibit,
                XmlResolver = null,
                ValidationType = ValidationType.Schema,
                Schemas = Schemas.Value,
                MaxCharactersInDocument = MaxBody,
                ValidationFlags = XmlSchemaValidationFlags.ReportValidationWarnings,
            };
            // Errors and warnings alike (an element of another namespace is only a warning) refuse the body.
            settings.ValidationEventHandler += (_, e) => throw new XmlSchemaValidationException(e.Message);
            using var stream = new MemoryStream(copy, writable: false);
            using var reader = XmlReader.Create(stream, settings);
            root = XElement.Load(reader);
        }
        catch (Exception e) when (e is XmlException or XmlSchemaException or InvalidOperationException)
        {
            error = e.Message.ReplaceLineEndings(" ");
            return false;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(copy); // the body may carry K_EAS_PSK
        }

        try
        {
            message = root.Name.LocalName switch
            {
                "EasSessionRegister" => new EasSessionRegister(Text(root, "EasId"), new Uri(Text(root, "Endpoint"), UriKind.Absolute)),
                "EasSessionRegistered" => new EasSessionRegistered(Text(root, "RegistrationId"), Text(root, "EasId")),
                "EasSessionRequest" => new EasSessionRequest(Text(root, "ExternalId"), ParseHex(Text(root, "KeyIdentifier")), ReadKeys(root)) { EndpointId = root.Element(Ns + "EndpointId")?.Value },
                "EasSessionStart" => new EasSessionStart(Text(root, "ExternalId"), ParseHex(Text(root, "KeyIdentifier")), ReadKeys(root),
                    root.Element(Ns + "EnterpriseKeyIdentifier") is { } eki ? Convert.FromHexString(eki.Value.Trim()) : null),
                "EasKeyRefresh" => new EasKeyRefresh(Text(root, "ExternalId"), root.Element(Ns + "EnterpriseKeyIdentifier") is { } eki ? Convert.FromHexString(eki.Value.Trim()) : null),
                "EasUplink" => new EasUplink(long.Parse(Text(root, "Sequence"), CultureInfo.InvariantCulture), uint.Parse(Text(root, "SessionId"), CultureInfo.InvariantCulture), Text(root, "ExternalId"), Convert.FromBase64String(Text(root, "Message")),
                    root.Element(Ns + "KeyIdentifier") is { } kid ? ParseHex(kid.Value) : null),
                "EasDownlink" => new EasDownlink(uint.Parse(Text(root, "SessionId"), CultureInfo.InvariantCulture), Convert.FromBase64String(Text(root, "Message"))),
                "Problem" => new EasProblem(Text(root, "Title"), root.Element(Ns + "Detail")?.Value),
                _ => null,
            };
        }
        catch (Exception e) when (e is FormatException or OverflowException or UriFormatException)
        {
            error = e.Message.ReplaceLineEndings(" ");
            return false;
        }

        error = message is null ? $"unexpected element {root.Name.LocalName}" : string.Empty;
        return message is not null;
    }

    private static XElement? KeysElement(EasSessionKeys? keys) => keys is null ? null : new XElement(Ns + "Keys",
        new XElement(Ns + "SessionId", keys.SessionId),
        new XElement(Ns + "KeyId", keys.KeyId),
        new XElement(Ns + "Suite", keys.Suite),
        new XElement(Ns + "Service", keys.Service),
        new XElement(Ns + "CounterLength", keys.CounterLength),
        new XElement(Ns + "UeToEasMode", keys.UeToEasMode ? "true" : "false"),
        new XElement(Ns + "PskIdentity", keys.PskIdentity),
        new XElement(Ns + "KEasPsk", Convert.ToBase64String(keys.KEasPsk)),
        keys.EnterpriseKeyIdentifier is { } eki ? new XElement(Ns + "EnterpriseKeyIdentifier", Convert.ToHexString(eki)) : null);

    private static EasSessionKeys? ReadKeys(XElement root)
    {
        if (root.Element(Ns + "Keys") is not { } k)
        {
            return null;
        }

        return new EasSessionKeys(
            uint.Parse(Text(k, "SessionId"), CultureInfo.InvariantCulture),
            byte.Parse(Text(k, "KeyId"), CultureInfo.InvariantCulture),
            byte.Parse(Text(k, "Suite"), CultureInfo.InvariantCulture),
            Text(k, "Service"),
            int.Parse(Text(k, "CounterLength"), CultureInfo.InvariantCulture),
            XmlConvert.ToBoolean(Text(k, "UeToEasMode")),
            Text(k, "PskIdentity"),
            Convert.FromBase64String(Text(k, "KEasPsk")))
        {
            EnterpriseKeyIdentifier = k.Element(Ns + "EnterpriseKeyIdentifier") is { } eki ? Convert.FromHexString(eki.Value.Trim()) : null,
        };
    }

    private static string Text(XElement parent, string name) => parent.Element(Ns + name)?.Value.Trim() ?? throw new FormatException($"{name} is missing");

    private static string Hex(uint value) => value.ToString("x8", CultureInfo.InvariantCulture);

    private static uint ParseHex(string text) => uint.Parse(text, NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    private static XmlSchemaSet LoadSchemas()
    {
        var set = new XmlSchemaSet { XmlResolver = null };
        using var stream = typeof(EasXml).Assembly.GetManifestResourceStream("OpenBest.EasInterface.hse-eas.xsd")!;
        using var reader = XmlReader.Create(stream, new XmlReaderSettings { DtdProcessing = DtdProcessing.Prohibit, XmlResolver = null });
        set.Add(Namespace, reader);
        set.Compile();
        return set;
    }

    /// <summary>Zeroes the keys a message carries (after use).</summary>
    public static void Zero(EasMessage? message)
    {
        var keys = message switch
        {
            EasSessionRequest r => r.Keys,
            EasSessionStart s => s.Keys,
            _ => null,
        };
        if (keys is not null)
        {
            CryptographicOperations.ZeroMemory(keys.KEasPsk);
        }
    }
}
