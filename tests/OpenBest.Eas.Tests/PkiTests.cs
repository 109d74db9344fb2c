using OpenBest.EasInterface;

namespace OpenBest.Eas.Tests;

/// <summary><c>best pki init</c>'s development PKI: a CA, the HSE's and each EAS's certificates; identities by common name.</summary>
public sealed class PkiTests : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-pki-");

    public void Dispose() => _directory.Delete(recursive: true);

    [Fact]
    public void Init_CreatesWhatIsMissing_KeysPrivate_IdentitiesByCommonName()
    {
        var written = DevelopmentPki.Init(_directory.FullName, ["eas.example.com", "acme-eas"]);
        Assert.Equal(8, written.Count);
        Assert.Empty(DevelopmentPki.Init(_directory.FullName, ["eas.example.com"]));
        Assert.Equal(2, DevelopmentPki.Init(_directory.FullName, ["other.example.com"]).Count);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(DevelopmentPki.Hse(_directory.FullName).Key));
        }

        using var ca = DevelopmentPki.LoadCertificate(DevelopmentPki.Ca(_directory.FullName).Certificate);
        using var eas = DevelopmentPki.LoadPair(DevelopmentPki.Eas(_directory.FullName, "eas.example.com"));
        using var hse = DevelopmentPki.LoadPair(DevelopmentPki.Hse(_directory.FullName));
        Assert.True(eas.HasPrivateKey);
        Assert.Equal("eas.example.com", DevelopmentPki.IdentityOf(eas));
        Assert.Equal("hse", DevelopmentPki.IdentityOf(hse));
        Assert.True(DevelopmentPki.IsIssuedBy(eas, ca));
        Assert.False(DevelopmentPki.IsIssuedBy(null, ca));

        // A certificate of another CA is not one of ours.
        var other = Directory.CreateTempSubdirectory("openbest-pki-other-");
        try
        {
            DevelopmentPki.Init(other.FullName, ["eas.example.com"]);
            using var foreign = DevelopmentPki.LoadPair(DevelopmentPki.Eas(other.FullName, "eas.example.com"));
            Assert.False(DevelopmentPki.IsIssuedBy(foreign, ca));
        }
        finally
        {
            other.Delete(recursive: true);
        }
    }

    [Fact]
    public void MissingFiles_NameThemselves()
    {
        var e = Assert.Throws<InvalidOperationException>(() => DevelopmentPki.LoadPair(DevelopmentPki.Hse(_directory.FullName)));
        Assert.Contains("hse.crt does not exist", e.Message, StringComparison.Ordinal);
        Assert.Contains("best pki init", e.Message, StringComparison.Ordinal);
    }
}
