using System.Security.Cryptography;

namespace OpenBest.Crypto;

/// <summary>
/// Random octets from the operating system's CSPRNG, drawn in blocks per thread.
/// </summary>
/// <remarks>
/// One call into the platform CSPRNG costs about a microsecond here whatever its size, which would
/// dominate an AuC that draws 16 octets of RAND per vector. Each thread therefore fills a 1 KiB
/// block at once and hands it out in pieces; every octet is handed out once and zeroed as it goes.
/// </remarks>
public static class RandomPool
{
    private const int BlockSize = 1024;

    [ThreadStatic]
    private static byte[]? t_block;

    [ThreadStatic]
    private static int t_offset;

    /// <summary>Fills <paramref name="destination"/> with CSPRNG output.</summary>
    public static void Fill(Span<byte> destination)
    {
        if (destination.Length > BlockSize / 4)
        {
            RandomNumberGenerator.Fill(destination);
            return;
        }

        var block = t_block;
        if (block is null || t_offset + destination.Length > BlockSize)
        {
            block ??= t_block = GC.AllocateArray<byte>(BlockSize, pinned: true);
            RandomNumberGenerator.Fill(block);
            t_offset = 0;
        }

        var piece = block.AsSpan(t_offset, destination.Length);
        piece.CopyTo(destination);
        CryptographicOperations.ZeroMemory(piece);
        t_offset += destination.Length;
    }
}
