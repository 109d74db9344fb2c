using System.Text;
using OpenBest.EasInterface;

namespace OpenBest.Eas.Tests;

/// <summary>The HSE–EAS bodies (TS 33.163 annex: XML; schema hse-eas.xsd): round trips, and refusal of anything invalid.</summary>
public sealed class EasXmlTests
{
    private static readonly EasSessionKeys Keys = new(42, 3, 1, "confidential", 2, true, "meter-7@acme#0a0b0c0d", Enumerable.Range(0, 32).Select(i => (byte)i).ToArray());

    public static TheoryData<string> Names() => ["register", "registered", "request", "push", "push-eki", "start", "start-eki", "refresh", "refresh-eki", "uplink", "downlink", "problem"];

    private static EasMessage Sample(string name) => name switch
    {
        "register" => new EasSessionRegister("eas.example.com", new Uri("https://127.0.0.1:8443/")),
        "registered" => new EasSessionRegistered("0123456789abcdef0123456789abcdef", "eas.example.com"),
        "request" => new EasSessionRequest("meter-7@acme", 0x0a0b0c0d),
        "push" => new EasSessionRequest("meter-7@acme", 0x0a0b0c0d, Keys),
        "push-eki" => new EasSessionRequest("meter-7@acme", 0x0a0b0c0d, Keys with { EnterpriseKeyIdentifier = "ek-1"u8.ToArray() }),
        "start" => new EasSessionStart("meter-7@acme", 0x0a0b0c0d, Keys),
        "start-eki" => new EasSessionStart("meter-7@acme", 0x0a0b0c0d, null, [0xE1, 0x02]),
        "refresh" => new EasKeyRefresh("meter-7@acme"),
        "refresh-eki" => new EasKeyRefresh("meter-7@acme", new byte[16]),
        "uplink" => new EasUplink(17, 42, "meter-7@acme", [1, 2, 3], 0x0a0b0c0d),
        "downlink" => new EasDownlink(42, [4, 5, 6]),
        _ => new EasProblem("bad request", "KeyIdentifier is missing"),
    };

    [Fact]
    public void EnterpriseKeyIdentifiers_RoundTrip_AndTheirLengthIsChecked()
    {
        Assert.True(EasXml.TryRead(EasXml.Write(Sample("push-eki")), out var push, out _));
        Assert.Equal("ek-1"u8.ToArray(), ((EasSessionRequest)push!).Keys!.EnterpriseKeyIdentifier);
        Assert.True(EasXml.TryRead(EasXml.Write(new EasKeyRefresh("m", [9])), out var refresh, out _));
        Assert.Equal([9], ((EasKeyRefresh)refresh!).EnterpriseKeyIdentifier);
        Assert.False(EasXml.TryRead(EasXml.Write(new EasKeyRefresh("m", new byte[17])), out _, out _));
        Assert.False(EasXml.TryRead(Encoding.UTF8.GetBytes("<EasKeyRefresh xmlns=\"urn:openbest:hse-eas:1\"><ExternalId>m</ExternalId><EnterpriseKeyIdentifier></EnterpriseKeyIdentifier></EasKeyRefresh>"), out _, out _));
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void EveryBody_RoundTrips_AndIsValidAgainstTheSchema(string name)
    {
        var message = Sample(name);
        var bytes = EasXml.Write(message);
        Assert.True(EasXml.TryRead(bytes, out var read, out var error), error);
        Assert.Equal(EasXml.Write(read!), bytes);
    }

    [Fact]
    public void Keys_AreNeverShownByToString()
    {
        Assert.DoesNotContain("AAECAwQF", Sample("push").ToString()!, StringComparison.Ordinal);
        Assert.DoesNotContain("0, 1, 2", Keys.ToString(), StringComparison.Ordinal);
        Assert.Equal("meter-7@acme#0a0b0c0d", EasXml.PskIdentity("meter-7@acme", 0x0a0b0c0d));
    }

    [Theory]
    [InlineData("", "Root element is missing")]
    [InlineData("<EasKeyRefresh xmlns=\"urn:openbest:hse-eas:1\"></EasKeyRefresh>", "incomplete")]
    [InlineData("<EasKeyRefresh xmlns=\"urn:other\"><ExternalId>x</ExternalId></EasKeyRefresh>", "")]
    [InlineData("<EasKeyRefresh xmlns=\"urn:openbest:hse-eas:1\"><ExternalId>a#b</ExternalId></EasKeyRefresh>", "Pattern")]
    [InlineData("<EasSessionRequest xmlns=\"urn:openbest:hse-eas:1\"><ExternalId>x</ExternalId><KeyIdentifier>XYZ</KeyIdentifier></EasSessionRequest>", "Pattern")]
    [InlineData("<EasDownlink xmlns=\"urn:openbest:hse-eas:1\"><SessionId>0</SessionId><Message>AQ==</Message></EasDownlink>", "MinInclusive")]
    [InlineData("<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><EasKeyRefresh xmlns=\"urn:openbest:hse-eas:1\"><ExternalId>&e;</ExternalId></EasKeyRefresh>", "DTD")]
    [InlineData("<EasKeyRefresh xmlns=\"urn:openbest:hse-eas:1\"><ExternalId>x</ExternalId><Extra/></EasKeyRefresh>", "Extra")]
    public void InvalidBodies_AreRefused_WithAReason_NeverAnException(string xml, string reason)
    {
        Assert.False(EasXml.TryRead(Encoding.UTF8.GetBytes(xml), out var message, out var error));
        Assert.Null(message);
        Assert.NotEmpty(error);
        Assert.Contains(reason, error, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain('\n', error);
    }

    [Fact]
    public void OversizedBody_IsRefused()
    {
        Assert.False(EasXml.TryRead(new byte[EasXml.MaxBody + 1], out _, out var error));
        Assert.Contains("more than", error, StringComparison.Ordinal);
    }

    [Fact]
    public void RandomBytes_NeverThrow()
    {
        var random = new Random(3163);
        var valid = EasXml.Write(Sample("push"));
        for (var i = 0; i < 2000; i++)
        {
            var mutated = valid.ToArray();
            for (var j = 0; j < 1 + random.Next(4); j++)
            {
                mutated[random.Next(mutated.Length)] = (byte)random.Next(256);
            }

            EasXml.TryRead(mutated, out _, out _);
        }
    }

    [Fact]
    public void Schema_IsShipped()
    {
        Assert.Contains("urn:openbest:hse-eas:1", EasXml.SchemaText(), StringComparison.Ordinal);
        var path = Path.Combine(OpenBest.Testing.TestPaths.RepositoryRoot(), "src", "OpenBest.EasInterface", "hse-eas.xsd");
        Assert.Equal(File.ReadAllText(path), EasXml.SchemaText());
    }
}
