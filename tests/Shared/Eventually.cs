using System.Diagnostics;

namespace OpenBest.Testing;

/// <summary>
/// Waits for what something asynchronous (a timer, a retransmission, another thread or process) will make true, with a
/// deadline generous enough for a busy machine: a test asserts the outcome, never how fast it came.
/// </summary>
internal static class Eventually
{
    /// <summary>How long a test waits for an outcome that takes milliseconds on an idle machine.</summary>
    public static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(20);

    /// <summary>Returns once <paramref name="condition"/> holds; fails the test, naming <paramref name="what"/>, if it did not within <paramref name="within"/> (default <see cref="Deadline"/>).</summary>
    public static async Task True(Func<bool> condition, string what, TimeSpan? within = null)
    {
        ArgumentNullException.ThrowIfNull(condition);
        await True(() => Task.FromResult(condition()), what, within).ConfigureAwait(false);
    }

    /// <summary>Returns once <paramref name="condition"/> holds; fails the test, naming <paramref name="what"/>, if it did not within <paramref name="within"/> (default <see cref="Deadline"/>).</summary>
    public static async Task True(Func<Task<bool>> condition, string what, TimeSpan? within = null)
    {
        ArgumentNullException.ThrowIfNull(condition);
        var limit = within ?? Deadline;
        var started = Stopwatch.GetTimestamp();
        while (!await condition().ConfigureAwait(false))
        {
            if (Stopwatch.GetElapsedTime(started) > limit)
            {
                Assert.Fail($"not within {limit.TotalSeconds:0} s: {what}");
            }

            await Task.Delay(Poll, TestContext.Current.CancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The first value of <paramref name="read"/> that <paramref name="done"/> accepts, polled until the deadline.</summary>
    public static async Task<T> Value<T>(Func<T> read, Func<T, bool> done, string what, TimeSpan? within = null)
    {
        ArgumentNullException.ThrowIfNull(read);
        ArgumentNullException.ThrowIfNull(done);
        var value = default(T)!;
        await True(() => done(value = read()), what, within).ConfigureAwait(false);
        return value;
    }
}
