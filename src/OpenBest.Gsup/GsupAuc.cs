using System.Collections.Concurrent;
using OpenBest.Crypto.Aka;
using OpenBest.Sessions;

namespace OpenBest.Gsup;

/// <summary>What a <see cref="GsupAuc"/> asks of its HLR and keeps (immutable).</summary>
public sealed record GsupAucOptions
{
    /// <summary>
    /// Vectors asked for per request (default 5, the most a GSUP result carries). One is served, the rest wait in a
    /// small per-subscriber cache, so four in five sessions need no round trip to the HLR.
    /// </summary>
    public int VectorsPerRequest { get; init; } = SendAuthInfoResult.MaxTuples;

    /// <summary>
    /// How long an unused vector stays servable (default 5 min). A vector's SQN stays fresh for the USIM as long as no
    /// later SQN of the same IND was used, so the limit is about the HLR's data: a subscriber re-keyed there is served
    /// by it again within this time.
    /// </summary>
    public TimeSpan CachedVectorLifetime { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>The most subscribers with cached vectors (default 100 000); beyond it surplus vectors are dropped, not kept.</summary>
    public int MaxCachedSubscribers { get; init; } = 100_000;

    /// <summary>
    /// The longest a synchronous <see cref="GsupAuc.CreateVector"/> or <see cref="GsupAuc.Resynchronise"/> blocks its
    /// caller (default 10 s; each request to the HLR has its own <see cref="GsupClientOptions.RequestTimeout"/> too).
    /// </summary>
    public TimeSpan SynchronousTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Checks every option.</summary>
    /// <exception cref="ArgumentException">An option is out of range; the message names it.</exception>
    public void Validate()
    {
        if (VectorsPerRequest is < 1 or > SendAuthInfoResult.MaxTuples)
        {
            throw new ArgumentException($"GsupAucOptions.{nameof(VectorsPerRequest)} must be 1..{SendAuthInfoResult.MaxTuples}.", nameof(VectorsPerRequest));
        }

        if (CachedVectorLifetime < TimeSpan.Zero || SynchronousTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException($"GsupAucOptions.{nameof(CachedVectorLifetime)} must not be negative and {nameof(SynchronousTimeout)} must be positive.", nameof(SynchronousTimeout));
        }

        if (MaxCachedSubscribers < 0)
        {
            throw new ArgumentException($"GsupAucOptions.{nameof(MaxCachedSubscribers)} must not be negative.", nameof(MaxCachedSubscribers));
        }
    }
}

/// <summary>
/// The HSE's subscriber interface served by the operator's HLR over GSUP: vectors come from SEND AUTHENTICATION INFO,
/// resynchronisation sends the USIM's RAND and AUTS in it, and K and OPc never leave the HLR.
/// </summary>
/// <remarks>
/// <para>
/// Contexts. A UMTS vector is asked for as is (osmo-hlr's AMF is 0000). EPS and 5G vectors need the AMF separation bit
/// (TS 33.102 Annex H, TS 33.501 6.1.3.2); GSUP has no field for it, but osmo-hlr (1.5 and later) sets it when the
/// request's Current RAT Type is E-UTRAN, so EPS and 5G requests say E-UTRAN (GSUP names no 5G RAT; the quintet is the
/// same, and the HSE derives the 5G keys from CK, IK and SQN ⊕ AK itself). A vector arriving without the bit for an
/// EPS or 5G context (an HLR that ignores that IE) is refused with a <see cref="GsupException"/>.
/// </para>
/// <para>
/// SQN. The HLR keeps SEQ_HE and picks the IND: osmo-hlr gives each GSUP connection its own IND value (the lowest one
/// free), so an HSE's vectors do not collide with those of the MSCs and SGSNs, as profile section 5 wants.
/// </para>
/// <para>
/// Cache. Per subscriber, the unused vectors of the last result wait, oldest (lowest SQN) first, for at most
/// <see cref="GsupAucOptions.CachedVectorLifetime"/>. Vectors of both kinds share one SQN sequence, so asking for the
/// other kind (UMTS after 5G, say) drops the cached ones, which a later SQN would make stale anyway. A
/// resynchronisation drops them too, and keeps the fresh vectors the HLR answers with.
/// </para>
/// <para>
/// Failures. An unknown subscriber (GMM cause "IMSI unknown", which osmo-hlr also answers for a subscriber without keys)
/// gives null, as the interface asks. No connection, no answer, another cause or unusable tuples throw a
/// <see cref="GsupException"/>; the HSE's executor counts it and carries on. Thread-safe.
/// </para>
/// </remarks>
public sealed class GsupAuc : IHseSubscribers, IAsyncDisposable, IDisposable
{
    private const int Stripes = 64;

    private readonly GsupClient _client;
    private readonly bool _ownsClient;
    private readonly GsupAucOptions _options;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<string, Cached> _cache = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim[] _stripes = [.. Enumerable.Range(0, Stripes).Select(_ => new SemaphoreSlim(1, 1))];
    private long _requests;
    private long _served;
    private long _fromCache;

    /// <summary>Serves vectors from the HLR <paramref name="client"/> talks to (the client stays the caller's).</summary>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    public GsupAuc(GsupClient client, GsupAucOptions? options = null, TimeProvider? time = null)
        : this(client, ownsClient: false, options, time)
    {
    }

    private GsupAuc(GsupClient client, bool ownsClient, GsupAucOptions? options, TimeProvider? time)
    {
        ArgumentNullException.ThrowIfNull(client);
        _options = options ?? new GsupAucOptions();
        _options.Validate();
        _client = client;
        _ownsClient = ownsClient;
        _time = time ?? TimeProvider.System;
    }

    /// <summary>The client underneath (its connection state, counters).</summary>
    public GsupClient Client => _client;

    /// <summary>SEND AUTHENTICATION INFO requests sent.</summary>
    public long Requests => Interlocked.Read(ref _requests);

    /// <summary>Vectors handed out.</summary>
    public long VectorsServed => Interlocked.Read(ref _served);

    /// <summary>Vectors handed out from the cache, without a round trip.</summary>
    public long VectorsFromCache => Interlocked.Read(ref _fromCache);

    /// <summary>Connects to the HLR at <paramref name="clientOptions"/>'s endpoint; the client is disposed with this object.</summary>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    public static GsupAuc Connect(GsupClientOptions clientOptions, GsupAucOptions? options = null)
    {
        var client = new GsupClient(clientOptions);
        try
        {
            return new GsupAuc(client, ownsClient: true, options, clientOptions.Time);
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A fresh vector for <paramref name="imsi"/>, or null for a subscriber the HLR does not know (or an IMSI that is
    /// not 6..15 digits). Blocks for at most <see cref="GsupAucOptions.SynchronousTimeout"/>; hosts that can await use
    /// <see cref="CreateVectorAsync"/>.
    /// </summary>
    /// <exception cref="GsupException">The HLR could not be reached, did not answer in time, refused for another cause, or sent unusable vectors.</exception>
    public AuthenticationVector? CreateVector(string imsi, AkaContext context) =>
        Synchronously(token => CreateVectorAsync(imsi, context, token));

    /// <summary>
    /// Resynchronises at the HLR with the RAND of the failed challenge and the USIM's AUTS (TS 33.102 6.3.5), keeping
    /// the fresh vectors it answers with; false when the HLR refuses (osmo-hlr answers "IMSI unknown" when MAC-S does
    /// not verify). Cached vectors are dropped either way. Blocks for at most
    /// <see cref="GsupAucOptions.SynchronousTimeout"/>.
    /// </summary>
    /// <exception cref="GsupException">The HLR could not be reached or did not answer in time.</exception>
    public bool Resynchronise(string imsi, ReadOnlySpan<byte> rand, ReadOnlySpan<byte> auts)
    {
        var randCopy = rand.ToArray();
        var autsCopy = auts.ToArray();
        return Synchronously(token => ResynchroniseAsync(imsi, randCopy, autsCopy, token));
    }

    /// <summary>The asynchronous form of <see cref="CreateVector"/>.</summary>
    /// <exception cref="GsupException">The HLR could not be reached, did not answer in time, refused for another cause, or sent unusable vectors.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public async Task<AuthenticationVector?> CreateVectorAsync(string imsi, AkaContext context, CancellationToken cancellationToken = default)
    {
        if (!GsupImsi.IsValid(imsi))
        {
            return null;
        }

        var separation = context != AkaContext.Umts;
        var stripe = Stripe(imsi);
        await stripe.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (TryTake(imsi, separation) is { } cached)
            {
                Interlocked.Increment(ref _served);
                Interlocked.Increment(ref _fromCache);
                return cached;
            }

            var (vectors, refusal) = await FetchAsync(new SendAuthInfoRequest(imsi), context, cancellationToken).ConfigureAwait(false);
            if (refusal is { } cause and not GsupCause.ImsiUnknown)
            {
                throw new GsupException($"The HLR at {_client.Endpoint} refused vectors for {imsi}: GMM cause 0x{(byte)cause:x2} ({cause}).");
            }

            if (vectors is null)
            {
                return null;
            }

            Interlocked.Increment(ref _served);
            Keep(imsi, separation, vectors, from: 1);
            return vectors[0];
        }
        finally
        {
            stripe.Release();
        }
    }

    /// <summary>The asynchronous form of <see cref="Resynchronise"/>.</summary>
    /// <exception cref="GsupException">The HLR could not be reached or did not answer in time.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public async Task<bool> ResynchroniseAsync(string imsi, ReadOnlyMemory<byte> rand, ReadOnlyMemory<byte> auts, CancellationToken cancellationToken = default)
    {
        if (!GsupImsi.IsValid(imsi) || rand.Length != 16 || auts.Length != 14)
        {
            return false;
        }

        var stripe = Stripe(imsi);
        await stripe.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // Never serve a vector from before the resynchronisation: the USIM would refuse it again. The fresh ones are
            // of the kind last served, which the failed challenge was.
            var separation = Drop(imsi) ?? false;
            var context = separation ? AkaContext.FiveG : AkaContext.Umts;
            var (vectors, _) = await FetchAsync(new SendAuthInfoRequest(imsi, rand, auts), context, cancellationToken).ConfigureAwait(false);
            if (vectors is null)
            {
                return false;
            }

            Keep(imsi, separation, vectors, from: 0);
            return true;
        }
        finally
        {
            stripe.Release();
        }
    }

    /// <summary>Zeroes the cached vectors; disposes the client if this object made it.</summary>
    public async ValueTask DisposeAsync()
    {
        foreach (var imsi in _cache.Keys)
        {
            Drop(imsi);
        }

        if (_ownsClient)
        {
            await _client.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Zeroes the cached vectors; disposes the client if this object made it.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    private SemaphoreSlim Stripe(string imsi) => _stripes[(StringComparer.Ordinal.GetHashCode(imsi) & int.MaxValue) % Stripes];

    private T Synchronously<T>(Func<CancellationToken, Task<T>> call)
    {
        using var limit = new CancellationTokenSource(_options.SynchronousTimeout, _time);
        try
        {
            // The client's I/O runs on the thread pool and never needs this thread, so blocking it cannot deadlock.
            return call(limit.Token).GetAwaiter().GetResult();
        }
        catch (OperationCanceledException) when (limit.IsCancellationRequested)
        {
            throw new GsupException($"No vectors from the HLR at {_client.Endpoint} within {_options.SynchronousTimeout.TotalSeconds:0.###} s (GsupAucOptions.SynchronousTimeout).");
        }
    }

    /// <summary>
    /// Sends the request for <paramref name="context"/> and turns the tuples into vectors. No vectors with a cause when
    /// the HLR refused; no vectors and no cause for a subscriber with GSM keys alone.
    /// </summary>
    /// <exception cref="GsupException">No answer, a malformed one, or unusable vectors.</exception>
    private async Task<(AuthenticationVector[]? Vectors, GsupCause? Refusal)> FetchAsync(SendAuthInfoRequest request, AkaContext context, CancellationToken cancellationToken)
    {
        request = request with
        {
            NumberOfVectors = (byte)_options.VectorsPerRequest,
            CurrentRatType = context == AkaContext.Umts ? null : GsupRatType.EutranSgs,
            MessageClass = GsupMessageClass.SubscriberManagement,
        };
        Interlocked.Increment(ref _requests);
        using var answer = await _client.SendAuthInfoAsync(request, cancellationToken).ConfigureAwait(false);
        if (SendAuthInfoError.TryRead(answer.Message.Span, out var error))
        {
            return (null, error!.Cause);
        }

        if (!SendAuthInfoResult.TryRead(answer.Message, out var result) || result!.Imsi != request.Imsi)
        {
            throw new GsupException($"The HLR at {_client.Endpoint} answered SEND AUTHENTICATION INFO for {request.Imsi} with a malformed message.");
        }

        var quintets = result.Tuples.Where(t => t.IsQuintet).ToList();
        if (quintets.Count == 0)
        {
            // Only GSM triplets (a subscriber with 2G keys alone): nothing AKA can use.
            return (null, null);
        }

        var vectors = new List<AuthenticationVector>(quintets.Count);
        try
        {
            foreach (var tuple in quintets)
            {
                if (tuple.Res.Length != 8)
                {
                    throw new GsupException($"The HLR at {_client.Endpoint} sent a RES of {tuple.Res.Length} octets for {request.Imsi}; only 8 (MILENAGE) is supported.");
                }

                var vector = AuthenticationVector.FromReceived(tuple.Rand.Span, tuple.Res.Span, tuple.Ck.Span, tuple.Ik.Span, tuple.Autn.Span);
                vectors.Add(vector);
                if (context != AkaContext.Umts && !AmfBits.HasSeparationBit(vector.Amf))
                {
                    throw new GsupException($"The HLR at {_client.Endpoint} sent vectors without the AMF separation bit (AMF {vector.Amf:x4}) for {request.Imsi}, which {context} AKA needs (TS 33.501 6.1.3.2); it ignores the Current RAT Type IE (osmo-hlr sets the bit from version 1.5 on).");
                }
            }
        }
        catch
        {
            foreach (var vector in vectors)
            {
                vector.Dispose();
            }

            throw;
        }

        return ([.. vectors], null);
    }

    private AuthenticationVector? TryTake(string imsi, bool separation)
    {
        if (!_cache.TryGetValue(imsi, out var cached))
        {
            return null;
        }

        lock (cached)
        {
            if (cached.Separation == separation && cached.Expires > _time.GetUtcNow() && cached.Vectors.TryDequeue(out var vector))
            {
                return vector;
            }
        }

        Drop(imsi);
        return null;
    }

    /// <summary>
    /// Caches <paramref name="vectors"/> from index <paramref name="from"/> on, replacing what was there. The entry stays
    /// when it runs empty: it remembers the kind last served, for a resynchronisation.
    /// </summary>
    private void Keep(string imsi, bool separation, AuthenticationVector[] vectors, int from)
    {
        Drop(imsi);
        var entry = new Cached(separation, _time.GetUtcNow() + _options.CachedVectorLifetime);
        for (var i = from; i < vectors.Length; i++)
        {
            entry.Vectors.Enqueue(vectors[i]);
        }

        if (_cache.Count >= _options.MaxCachedSubscribers && !Sweep())
        {
            Zero(entry);
            return;
        }

        _cache[imsi] = entry;
    }

    /// <summary>Removes and zeroes the subscriber's cached vectors; returns whether they had the separation bit, if there were any.</summary>
    private bool? Drop(string imsi)
    {
        if (!_cache.TryRemove(imsi, out var cached))
        {
            return null;
        }

        Zero(cached);
        return cached.Separation;
    }

    private static void Zero(Cached cached)
    {
        lock (cached)
        {
            while (cached.Vectors.TryDequeue(out var vector))
            {
                vector.Dispose();
            }
        }
    }

    /// <summary>Drops expired entries; true when there is room afterwards.</summary>
    private bool Sweep()
    {
        var now = _time.GetUtcNow();
        foreach (var (imsi, cached) in _cache)
        {
            if (cached.Expires <= now && _cache.TryRemove(KeyValuePair.Create(imsi, cached)))
            {
                Zero(cached);
            }
        }

        return _cache.Count < _options.MaxCachedSubscribers;
    }

    private sealed class Cached(bool separation, DateTimeOffset expires)
    {
        public bool Separation { get; } = separation;

        public DateTimeOffset Expires { get; } = expires;

        public Queue<AuthenticationVector> Vectors { get; } = new();
    }
}
