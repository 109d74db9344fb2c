namespace OpenBest.Testing;

/// <summary>Where the tests find the repository's own files (interop vectors, schemas, documents, tools).</summary>
internal static class TestPaths
{
    /// <summary>The repository's root: the folder above the test binaries that holds OpenBest.slnx.</summary>
    public static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "OpenBest.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("OpenBest.slnx not found above the test binaries.");
    }
}
