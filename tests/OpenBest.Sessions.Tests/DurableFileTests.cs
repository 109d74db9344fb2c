using OpenBest.Sessions;

namespace OpenBest.Sessions.Tests;

/// <summary>Files replaced whole and durably (the USIM state, the EAS's counter reservations).</summary>
public sealed class DurableFileTests : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("openbest-durable-");

    public void Dispose() => _directory.Delete(recursive: true);

    [Fact]
    public void Replace_WritesTheWholeFile_OwnerOnly_AndLeavesNoTemporary()
    {
        var path = Path.Combine(_directory.FullName, "state.json");
        DurableFile.Replace(path, "first"u8);
        DurableFile.Replace(path, "second, longer"u8);
        Assert.Equal("second, longer", File.ReadAllText(path));
        Assert.Equal(["state.json"], _directory.GetFiles().Select(f => f.Name));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }
    }

    [Fact]
    public void SyncDirectory_OfAMissingFolder_IsAnIOExceptionNamingIt()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        var missing = Path.Combine(_directory.FullName, "missing");
        Assert.Contains(missing, Assert.Throws<IOException>(() => DurableFile.SyncDirectory(missing)).Message, StringComparison.Ordinal);
        DurableFile.SyncDirectory(_directory.FullName);
    }
}
