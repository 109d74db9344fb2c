using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace OpenBest.Card;

/// <summary>
/// libpcsclite, pcsc-lite's client library, loaded for one pcscd. The library reads the daemon's socket once per process
/// (from <c>PCSCLITE_CSOCK_NAME</c>, else <c>/run/pcscd/pcscd.comm</c>), so reaching a second pcscd from the same process
/// takes a second copy of the library, loaded while the variable names that daemon's socket: <see cref="ForSocket"/>.
/// </summary>
public sealed unsafe partial class PcscLibrary
{
    private const string Name = "libpcsclite.so.1";
    private static readonly Lazy<PcscLibrary> DefaultLibrary = new(() => new PcscLibrary(Load(Name), null));
    private static readonly ConcurrentDictionary<string, Lazy<PcscLibrary>> BySocket = new(StringComparer.Ordinal);
    private static readonly Lock EnvironmentGate = new();

    private PcscLibrary(nint handle, string? socket)
    {
        Socket = socket;
        EstablishContext = (delegate* unmanaged<nint, nint, nint, nint*, nint>)NativeLibrary.GetExport(handle, "SCardEstablishContext");
        ReleaseContext = (delegate* unmanaged<nint, nint>)NativeLibrary.GetExport(handle, "SCardReleaseContext");
        ListReaders = (delegate* unmanaged<nint, byte*, byte*, nint*, nint>)NativeLibrary.GetExport(handle, "SCardListReaders");
        Connect = (delegate* unmanaged<nint, byte*, nint, nint, nint*, nint*, nint>)NativeLibrary.GetExport(handle, "SCardConnect");
        Reconnect = (delegate* unmanaged<nint, nint, nint, nint, nint*, nint>)NativeLibrary.GetExport(handle, "SCardReconnect");
        Disconnect = (delegate* unmanaged<nint, nint, nint>)NativeLibrary.GetExport(handle, "SCardDisconnect");
        Transmit = (delegate* unmanaged<nint, nint*, byte*, nint, nint, byte*, nint*, nint>)NativeLibrary.GetExport(handle, "SCardTransmit");
    }

    /// <summary>The library as the system loads it: the machine's pcscd.</summary>
    /// <exception cref="IOException">libpcsclite is not installed.</exception>
    public static PcscLibrary Default => DefaultLibrary.Value;

    /// <summary>The socket of the pcscd this copy reaches; null for the machine's.</summary>
    public string? Socket { get; }

    internal delegate* unmanaged<nint, nint, nint, nint*, nint> EstablishContext { get; }

    internal delegate* unmanaged<nint, nint> ReleaseContext { get; }

    internal delegate* unmanaged<nint, byte*, byte*, nint*, nint> ListReaders { get; }

    internal delegate* unmanaged<nint, byte*, nint, nint, nint*, nint*, nint> Connect { get; }

    internal delegate* unmanaged<nint, nint, nint, nint, nint*, nint> Reconnect { get; }

    internal delegate* unmanaged<nint, nint, nint> Disconnect { get; }

    internal delegate* unmanaged<nint, nint*, byte*, nint, nint, byte*, nint*, nint> Transmit { get; }

    /// <summary>
    /// The library for the pcscd listening on <paramref name="socket"/>: a private copy of libpcsclite, loaded once per socket
    /// with <c>PCSCLITE_CSOCK_NAME</c> set while it fixes its socket name.
    /// </summary>
    /// <exception cref="IOException">libpcsclite is not installed.</exception>
    public static PcscLibrary ForSocket(string socket)
    {
        ArgumentException.ThrowIfNullOrEmpty(socket);
        return BySocket.GetOrAdd(Path.GetFullPath(socket), s => new Lazy<PcscLibrary>(() => LoadCopy(s))).Value;
    }

    private static PcscLibrary LoadCopy(string socket)
    {
        _ = Default; // loads the system's copy, whose file /proc/self/maps then names
        var path = File.ReadLines("/proc/self/maps").Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Where(f => f.Length >= 6 && f[5].Contains("libpcsclite.so", StringComparison.Ordinal))
            .Select(f => f[5]).FirstOrDefault() ?? throw new IOException($"PC/SC: cannot find the file of {Name} among the loaded libraries.");
        var copy = Path.Combine(Path.GetTempPath(), $"openbest-libpcsclite-{Environment.ProcessId}-{Guid.NewGuid():N}.so");
        File.Copy(path, copy);
        try
        {
            lock (EnvironmentGate)
            {
                var previous = Environment.GetEnvironmentVariable("PCSCLITE_CSOCK_NAME");
                _ = SetEnvironment("PCSCLITE_CSOCK_NAME", socket, 1);
                try
                {
                    var library = new PcscLibrary(Load(copy), socket);
                    // The first call fixes the socket name for this copy for good, whether or not the daemon answers yet.
                    nint context;
                    if (library.EstablishContext(2, 0, 0, &context) == 0)
                    {
                        _ = library.ReleaseContext(context);
                    }

                    return library;
                }
                finally
                {
                    _ = previous is null ? UnsetEnvironment("PCSCLITE_CSOCK_NAME") : SetEnvironment("PCSCLITE_CSOCK_NAME", previous, 1);
                }
            }
        }
        finally
        {
            File.Delete(copy); // the mapping stays
        }
    }

    private static nint Load(string name)
    {
        try
        {
            return NativeLibrary.Load(name);
        }
        catch (DllNotFoundException)
        {
            throw new IOException($"PC/SC: {Name} is not installed (Debian: libpcsclite1 and pcscd).");
        }
    }

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetEnvironment(string name, string value, int overwrite);

    [LibraryImport("libc", EntryPoint = "unsetenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int UnsetEnvironment(string name);
}
