using System.Runtime.InteropServices;

namespace OpenBest.Sessions;

/// <summary>
/// Files that must survive a crash or a power cut: a file is replaced whole (written beside it, synced, renamed over
/// it) and then its folder is synced, so the rename itself is on disk before the caller goes on.
/// </summary>
public static partial class DurableFile
{
    /// <summary>Replaces <paramref name="path"/> with <paramref name="content"/> atomically and durably (owner-only on Unix when created).</summary>
    public static void Replace(string path, ReadOnlySpan<byte> content)
    {
        ArgumentNullException.ThrowIfNull(path);
        var temporary = path + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var stream = new FileStream(temporary, options))
        {
            stream.Write(content);
            stream.Flush(flushToDisk: true);
        }

        File.Move(temporary, path, overwrite: true);
        SyncDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
    }

    /// <summary>
    /// Syncs a folder's entries (names created, renamed or removed in it) to disk. Nothing on Windows, where NTFS journals
    /// them, nor where the C library cannot be loaded by the name "libc" (some musl systems): there the rename is as durable
    /// as the file system makes it.
    /// </summary>
    /// <exception cref="IOException">The folder could not be opened or synced.</exception>
    public static void SyncDirectory(string directory)
    {
        if (OperatingSystem.IsWindows() || !_libcAvailable)
        {
            return;
        }

        int fd;
        try
        {
            fd = Native.Open(directory, 0 /* O_RDONLY */);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            _libcAvailable = false;
            return;
        }

        if (fd < 0)
        {
            throw new IOException($"cannot open the folder {directory} to sync it (errno {Marshal.GetLastPInvokeError()})");
        }

        try
        {
            if (Native.Fsync(fd) != 0)
            {
                throw new IOException($"cannot sync the folder {directory} (errno {Marshal.GetLastPInvokeError()})");
            }
        }
        finally
        {
            _ = Native.Close(fd);
        }
    }

    private static bool _libcAvailable = true;

    private static partial class Native
    {
        [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int Open(string path, int flags);

        [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
        internal static partial int Fsync(int fd);

        [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
        internal static partial int Close(int fd);
    }
}
