namespace OpenBest.Protocol;

/// <summary>
/// The receive side of one counter (per session, key set, direction and plane; profile section 3):
/// counter reconstruction from the n-octet field and a 64-wide replay window that is tested before
/// the tag is verified and updated only after.
/// </summary>
public struct ReplayWindow
{
    /// <summary>The window width.</summary>
    public const int Width = 64;

    /// <summary>The largest counter, 2^48 − 1.</summary>
    public const ulong MaxCounter = (1UL << 48) - 1;

    private ulong _bitmap; // bit i set: counter (Highest − i) was accepted

    /// <summary>A window for a new key set: nothing accepted, "highest accepted" = −1.</summary>
    public ReplayWindow()
    {
        Highest = -1;
        _bitmap = 0;
    }

    /// <summary>The highest accepted counter, or −1.</summary>
    public long Highest { get; private set; }

    /// <summary>
    /// The candidate c ≡ <paramref name="field"/> (mod 2^(8n)) closest to Highest + 1, ties toward the larger,
    /// ignoring candidates below 0 or above 2^48 − 1.
    /// </summary>
    public readonly ulong Reconstruct(uint field, int counterLength)
    {
        var modulus = 1L << (8 * counterLength);
        var expected = Highest + 1;
        var baseValue = expected - (expected % modulus) + field;
        long best = -1;
        long bestDistance = long.MaxValue;
        foreach (var candidate in (ReadOnlySpan<long>)[baseValue - modulus, baseValue, baseValue + modulus])
        {
            if (candidate < 0 || candidate > (long)MaxCounter)
            {
                continue;
            }

            var distance = Math.Abs(candidate - expected);
            if (distance < bestDistance || (distance == bestDistance && candidate > best))
            {
                best = candidate;
                bestDistance = distance;
            }
        }

        return (ulong)Math.Max(best, 0);
    }

    /// <summary>Whether <paramref name="counter"/> may still be accepted: not below the window, not already accepted.</summary>
    public readonly bool IsAcceptable(ulong counter)
    {
        if (counter > MaxCounter)
        {
            return false;
        }

        if ((long)counter > Highest)
        {
            return true;
        }

        var age = (ulong)(Highest - (long)counter);
        return age < Width && (_bitmap & (1UL << (int)age)) == 0;
    }

    /// <summary>Whether <paramref name="counter"/> was already accepted (inside the window).</summary>
    public readonly bool WasAccepted(ulong counter)
    {
        if ((long)counter > Highest)
        {
            return false;
        }

        var age = (ulong)(Highest - (long)counter);
        return age < Width && (_bitmap & (1UL << (int)age)) != 0;
    }

    /// <summary>Records <paramref name="counter"/> as accepted; call only after its tag verified.</summary>
    public void Accept(ulong counter)
    {
        if ((long)counter > Highest)
        {
            var shift = (long)counter - Highest;
            _bitmap = shift >= Width ? 0 : _bitmap << (int)shift;
            _bitmap |= 1;
            Highest = (long)counter;
        }
        else
        {
            var age = (int)(Highest - (long)counter);
            if (age < Width)
            {
                _bitmap |= 1UL << age;
            }
        }
    }

    /// <summary>The accepted-counter bitmap (bit i: Highest − i was accepted), to persist the window exactly.</summary>
    public readonly ulong Bitmap => _bitmap;

    /// <summary>Restores a window persisted exactly (<see cref="Highest"/> and <see cref="Bitmap"/>).</summary>
    public static ReplayWindow FromState(long highest, ulong bitmap)
    {
        var window = new ReplayWindow { Highest = Math.Max(-1, highest) };
        window._bitmap = highest < 0 ? 0 : bitmap;
        return window;
    }

    /// <summary>Restores a window after a restart: everything at or below <paramref name="floor"/> is refused.</summary>
    public static ReplayWindow FromFloor(long floor)
    {
        var window = new ReplayWindow { Highest = floor };
        window._bitmap = ulong.MaxValue;
        return window;
    }
}
