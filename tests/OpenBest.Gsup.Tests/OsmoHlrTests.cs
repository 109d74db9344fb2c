using OpenBest.Crypto;
using OpenBest.Crypto.Aka;
using OpenBest.Testing;

namespace OpenBest.Gsup.Tests;

/// <summary>
/// <see cref="GsupAuc"/> against a real osmo-hlr holding a subscriber with the keys of MILENAGE test set 1
/// (TS 35.208 4.3.1), every vector checked by the project's software USIM with the same keys.
/// </summary>
public sealed class OsmoHlrTests
{
    internal const string Imsi = "001010000000001";
    internal const string K = "465b5ce8b199b49faa5f0a2ee238a6bc";
    internal const string Opc = "cd63cb71954a9f4e48a5994e37a02baf";

    [Fact]
    public void OsmoHlr_IsInstalled()
    {
        // CI installs it; a machine without it fails here with the command to run, never skips.
        Assert.True(OsmoHlr.FindExecutable() is not null, "osmo-hlr is not installed: apt-get install osmo-hlr (Debian package osmo-hlr).");
        Assert.Contains("OsmoHLR", OsmoHlr.Version(), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Vectors_FromOsmoHlr_AreAcceptedByTheUsim_AndMostComeFromTheCache()
    {
        await using var hlr = await StartWithSubscriberAsync();
        await using var auc = Connect(hlr);
        using var milenage = new Milenage(Convert.FromHexString(K), Convert.FromHexString(Opc));
        var usim = new Usim(milenage, new UsimSequenceState(SqnScheme.Default));
        for (var i = 0; i < 7; i++)
        {
            using var vector = auc.CreateVector(Imsi, AkaContext.Umts);
            Assert.NotNull(vector);
            Assert.True(vector.IsReceived);
            // osmo-hlr's AMF is 0000 (db_auc.c: "FIXME: amf?"), without the separation bit for UMTS.
            Assert.Equal(0x0000, vector.Amf);
            AssertAccepted(usim, vector);
        }

        // Five vectors per request: the first request serves five, the second two of its five.
        Assert.Equal(2, auc.Requests);
        Assert.Equal(5, auc.VectorsFromCache);
    }

    [Theory]
    [InlineData(AkaContext.FiveG)]
    [InlineData(AkaContext.Eps)]
    public async Task Vectors_ForEpsAnd5G_CarryTheSeparationBit(AkaContext context)
    {
        // osmo-hlr sets the AMF separation bit when the request's Current RAT Type is E-UTRAN (TS 33.102 Annex H).
        await using var hlr = await StartWithSubscriberAsync();
        await using var auc = Connect(hlr);
        using var milenage = new Milenage(Convert.FromHexString(K), Convert.FromHexString(Opc));
        var usim = new Usim(milenage, new UsimSequenceState(SqnScheme.Default));
        for (var i = 0; i < 3; i++)
        {
            using var vector = auc.CreateVector(Imsi, context);
            Assert.NotNull(vector);
            Assert.True(AmfBits.HasSeparationBit(vector.Amf));
            Assert.Equal(0x8000, vector.Amf);
            AssertAccepted(usim, vector);
        }

        // Switching kind drops the cached 5G vectors (their SQNs would be stale after a later one): fresh UMTS ones.
        var requests = auc.Requests;
        using var umts = auc.CreateVector(Imsi, AkaContext.Umts);
        Assert.Equal(requests + 1, auc.Requests);
        Assert.Equal(0x0000, umts!.Amf);
        AssertAccepted(usim, umts);
    }

    [Fact]
    public async Task Resynchronisation_AfterAutsFromAUsimFarAhead_GivesAnAcceptedVector_NeverACachedOne()
    {
        await using var hlr = await StartWithSubscriberAsync();
        await using var auc = Connect(hlr);
        using var milenage = new Milenage(Convert.FromHexString(K), Convert.FromHexString(Opc));
        // A USIM that has seen SEQ 1 000 000 (another AuC, a restored database): osmo-hlr's SQN is far behind.
        var ahead = SqnScheme.Default.Compose(1_000_000, 3);
        var usim = new Usim(milenage, UsimSequenceState.FromSqnMs(ahead, SqnScheme.Default));

        using var stale = auc.CreateVector(Imsi, AkaContext.Umts);
        Assert.NotNull(stale);
        using var failure = usim.Authenticate(stale.Rand, stale.Autn);
        Assert.Equal(UsimAuthenticationStatus.SynchronisationFailure, failure.Status);
        Assert.True(auc.Resynchronise(Imsi, stale.Rand, failure.Auts));

        // Four vectors from before the resynchronisation were cached: none of them may come back.
        for (var i = 0; i < 6; i++)
        {
            using var fresh = auc.CreateVector(Imsi, AkaContext.Umts);
            Assert.NotNull(fresh);
            AssertAccepted(usim, fresh);
        }

        Assert.True(SqnScheme.Default.Seq(usim.State.SqnMs) > 1_000_000);
    }

    [Fact]
    public async Task Resynchronisation_WithAForgedAuts_IsRefused()
    {
        await using var hlr = await StartWithSubscriberAsync();
        await using var auc = Connect(hlr);
        using var vector = auc.CreateVector(Imsi, AkaContext.Umts);
        Assert.NotNull(vector);
        var forged = new byte[14];
        Random.Shared.NextBytes(forged);
        // MAC-S does not verify: osmo-hlr generates nothing and answers "IMSI unknown".
        Assert.False(auc.Resynchronise(Imsi, vector.Rand, forged));
        Assert.False(auc.Resynchronise(Imsi, vector.Rand, forged.AsSpan(0, 13)));
    }

    [Fact]
    public async Task UnknownSubscriber_AndSubscriberWithoutKeys_GiveNull()
    {
        await using var hlr = await StartWithSubscriberAsync();
        await hlr.VtyAsync("subscriber imsi 001010000000002 create");
        await using var auc = Connect(hlr);
        Assert.Null(auc.CreateVector("001010000000099", AkaContext.Umts));
        Assert.Null(auc.CreateVector("001010000000002", AkaContext.FiveG));
        Assert.Null(auc.CreateVector("not-an-imsi", AkaContext.Umts));
        Assert.False(auc.Resynchronise("001010000000099", new byte[16], new byte[14]));
        // The connection is still good for a known one.
        using var vector = auc.CreateVector(Imsi, AkaContext.Umts);
        Assert.NotNull(vector);
    }

    [Fact]
    public async Task Client_IdentifiesWithItsUnitName_AndAnswersGsupOverOneConnection()
    {
        await using var hlr = await StartWithSubscriberAsync();
        await using var client = new GsupClient(new GsupClientOptions { Endpoint = hlr.Gsup, UnitName = "OpenBest-HSE-test" });
        Assert.True(await client.WaitConnectedAsync(Eventually.Deadline, TestContext.Current.CancellationToken));
        using var answer = await client.SendAuthInfoAsync(new SendAuthInfoRequest(Imsi) { NumberOfVectors = 2 }, TestContext.Current.CancellationToken);
        Assert.True(SendAuthInfoResult.TryRead(answer.Message, out var result));
        Assert.Equal(2, result!.Tuples.Count);
        Assert.All(result.Tuples, t => Assert.True(t.IsQuintet));
        // osmo-hlr lists the connection under the name sent in ID_RESP.
        var peers = await hlr.VtyAsync("show gsup-connections");
        Assert.Contains("OpenBest-HSE-test", peers, StringComparison.Ordinal);
        Assert.Equal(1, client.Connects);
    }

    [Fact]
    public async Task OsmoHlrKilled_FailsClearly_ThenTheClientReconnects()
    {
        await using var hlr = await StartWithSubscriberAsync();
        await using var auc = Connect(hlr, new GsupAucOptions { VectorsPerRequest = 1 });
        using var milenage = new Milenage(Convert.FromHexString(K), Convert.FromHexString(Opc));
        var usim = new Usim(milenage, new UsimSequenceState(SqnScheme.Default));
        using (var before = auc.CreateVector(Imsi, AkaContext.Umts))
        {
            AssertAccepted(usim, before!);
        }

        hlr.Kill();
        var failure = Assert.Throws<GsupException>(() => auc.CreateVector(Imsi, AkaContext.Umts));
        Assert.Contains(hlr.Gsup.ToString(), failure.Message, StringComparison.Ordinal);
        Assert.False(auc.Client.IsConnected);

        await hlr.RestartAsync();
        var after = await Eventually.Value(
            () =>
            {
                try
                {
                    return auc.CreateVector(Imsi, AkaContext.Umts);
                }
                catch (GsupException)
                {
                    return null;
                }
            },
            v => v is not null,
            "a vector once osmo-hlr is back");
        using (after)
        {
            AssertAccepted(usim, after!);
        }

        Assert.True(auc.Client.Connects >= 2);
    }

    internal static async Task<OsmoHlr> StartWithSubscriberAsync()
    {
        var hlr = await OsmoHlr.StartAsync();
        try
        {
            await hlr.CreateSubscriberAsync(Imsi, K, Opc);
            return hlr;
        }
        catch
        {
            await hlr.DisposeAsync();
            throw;
        }
    }

    internal static GsupAuc Connect(OsmoHlr hlr, GsupAucOptions? options = null) =>
        GsupAuc.Connect(new GsupClientOptions { Endpoint = hlr.Gsup, UnitName = "OpenBest-HSE-" + Guid.NewGuid().ToString("N")[..8] }, options);

    private static void AssertAccepted(Usim usim, AuthenticationVector vector)
    {
        using var answer = usim.Authenticate(vector.Rand, vector.Autn);
        Assert.Equal(UsimAuthenticationStatus.Success, answer.Status);
        Assert.Equal(Convert.ToHexString(vector.Xres), Convert.ToHexString(answer.Res));
        Assert.Equal(Convert.ToHexString(vector.Ck), Convert.ToHexString(answer.Ck));
        Assert.Equal(Convert.ToHexString(vector.Ik), Convert.ToHexString(answer.Ik));
        Assert.Equal(vector.Amf, answer.Amf);
    }
}
