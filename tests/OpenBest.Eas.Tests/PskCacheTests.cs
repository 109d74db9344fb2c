using System.Net;

namespace OpenBest.Eas.Tests;

/// <summary>The EAS's DTLS PSK lookups in front of the HSE: cached, rate limited per source and overall, keys zeroed when they go.</summary>
public sealed class PskCacheTests
{
    private static readonly IPEndPoint One = new(IPAddress.Parse("10.0.0.1"), 5000);
    private static readonly IPEndPoint Two = new(IPAddress.Parse("10.0.0.2"), 5000);
    private long _now = 1_000_000;
    private readonly List<string> _asked = [];

    private PskCache Cache() => new(identity =>
    {
        _asked.Add(identity);
        return identity.StartsWith("known", StringComparison.Ordinal) ? new byte[32] : null;
    }, () => _now);

    [Fact]
    public void AKey_IsKeptForAMinute_ARefusalForASecond_EachLookupGetsItsOwnCopy()
    {
        using var cache = Cache();
        var first = cache.Get("known#0a0b0c0d", One)!;
        first[0] = 1; // the caller's copy: the cache's stays as the HSE gave it
        Assert.Equal(new byte[32], cache.Get("known#0a0b0c0d", One));
        Assert.Null(cache.Get("stranger#0a0b0c0d", One));
        Assert.Null(cache.Get("stranger#0a0b0c0d", One));
        Assert.Equal(2, cache.Requests);

        _now += 1_001;
        Assert.Null(cache.Get("stranger#0a0b0c0d", One));
        Assert.NotNull(cache.Get("known#0a0b0c0d", One));
        Assert.Equal(3, cache.Requests);
        _now += 60_000;
        Assert.NotNull(cache.Get("known#0a0b0c0d", One));
        Assert.Equal(4, cache.Requests);
    }

    [Fact]
    public void TheLifetimes_CountFromTheHsesAnswer_NotFromTheLookup()
    {
        // The HSE takes 1.5 s to answer each lookup.
        using var cache = new PskCache(identity =>
        {
            _now += 1_500;
            return identity.StartsWith("known", StringComparison.Ordinal) ? new byte[32] : null;
        }, () => _now);
        Assert.Null(cache.Get("stranger#0a0b0c0d", One));
        Assert.Null(cache.Get("stranger#0a0b0c0d", One)); // the refusal is kept 1 s from its answer
        Assert.Equal(1, cache.Requests);

        _now += 1_001;
        Assert.Null(cache.Get("stranger#0a0b0c0d", One));
        Assert.Equal(2, cache.Requests);
    }

    [Theory]
    [InlineData("no-hash")]
    [InlineData("#0a0b0c0d")]
    [InlineData("x#0A0B0C0D")]
    [InlineData("x#0a0b0c0")]
    [InlineData("x#0a0b0c0d0")]
    public void AMalformedIdentity_IsRefused_WithoutAskingTheHse(string identity)
    {
        using var cache = Cache();
        Assert.Null(cache.Get(identity, One));
        Assert.Empty(_asked);
    }

    [Fact]
    public void OneSource_CannotUseUpTheOthersShare()
    {
        using var cache = Cache();
        for (var i = 0; i < 20; i++)
        {
            cache.Get($"probe-{i}#00000000", One);
        }

        Assert.Equal(PskCache.RequestsPerSecondPerSource, _asked.Count);
        Assert.NotNull(cache.Get("known#0a0b0c0d", Two));

        // Overall at most 50 a second, whatever the sources.
        for (var i = 0; i < 100; i++)
        {
            cache.Get($"spread-{i}#00000000", new IPEndPoint(IPAddress.Parse($"10.1.0.{i}"), 1));
        }

        Assert.Equal(PskCache.RequestsPerSecond, _asked.Count);
        _now += 1_000;
        Assert.NotNull(cache.Get("known-2#0a0b0c0d", One));
    }

    [Fact]
    public void WhenFull_ExpiredEntriesGoFirst_AndAfterDisposeNothingIsKept()
    {
        var cache = Cache();
        for (var i = 0; i < PskCache.MaxEntries; i++)
        {
            _now += i % PskCache.RequestsPerSecond == 0 ? 1_000 : 0; // within the rate
            cache.Get($"known-{i}#00000000", new IPEndPoint(IPAddress.Parse($"10.2.{i / 250}.{i % 250}"), 1));
        }

        _now += 1_000;
        var asked = _asked.Count;
        Assert.NotNull(cache.Get("known-new#00000000", One));
        Assert.NotNull(cache.Get($"known-{PskCache.MaxEntries - 1}#00000000", One)); // recent: still cached
        Assert.Equal(asked + 1, _asked.Count);

        cache.Dispose();
        Assert.Null(cache.Get("known-new#00000000", One));
    }
}
