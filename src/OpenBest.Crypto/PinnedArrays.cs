namespace OpenBest.Crypto;

/// <summary>
/// Pinned arrays for key material, recycled. A key lives in pinned memory so the garbage collector never leaves a moved
/// copy behind; but allocating on the pinned object heap is slow (a runtime call under a lock, and a free-list search that
/// grows with churn), and a server derives several keys per session. Arrays given back are zeroed and kept for the next
/// key of the same length, so after warm-up a new key allocates nothing.
/// </summary>
/// <typeparam name="T">The element type (bytes, or vectors of the round keys).</typeparam>
internal static class PinnedArrays<T>
    where T : unmanaged
{
    // Arrays kept per length at most: the peak of live keys of one kind, bounded so a burst does not pin memory for good.
    private const int MaxKeptPerLength = 65_536;
    private static readonly Dictionary<int, Stack<T[]>> Free = [];
    private static readonly Lock Gate = new();

    /// <summary>A zeroed pinned array of exactly <paramref name="length"/> elements.</summary>
    public static T[] Rent(int length)
    {
        lock (Gate)
        {
            if (Free.TryGetValue(length, out var stack) && stack.TryPop(out var array))
            {
                return array;
            }
        }

        return GC.AllocateArray<T>(length, pinned: true);
    }

    /// <summary>Zeroes <paramref name="array"/> and keeps it for another key. The caller must not touch it again.</summary>
    public static void Return(T[]? array)
    {
        if (array is null || array.Length == 0)
        {
            return;
        }

        System.Security.Cryptography.CryptographicOperations.ZeroMemory(System.Runtime.InteropServices.MemoryMarshal.AsBytes(array.AsSpan()));
        lock (Gate)
        {
            if (!Free.TryGetValue(array.Length, out var stack))
            {
                Free[array.Length] = stack = new Stack<T[]>();
            }

            if (stack.Count < MaxKeptPerLength)
            {
                stack.Push(array);
            }
        }
    }
}
