using System.Net;
using System.Net.Sockets;
using OpenBest.Crypto.Aka;
using OpenBest.Testing;

namespace OpenBest.Gsup.Tests;

/// <summary>The client's connection handling and answer matching, against a scripted server.</summary>
public sealed class GsupClientTests
{
    private const string ImsiA = "001010000000001";
    private const string ImsiB = "001010000000002";

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Identity_NamesTheUnit_AndPingGetsPong()
    {
        await using var server = new FakeHlr(r => Task.FromResult<byte[]?>(FakeHlr.Result(r.Imsi, 1, 1)));
        await using var client = new GsupClient(Options(server) with { UnitName = "OpenBest-HSE-7" });
        Assert.True(await client.WaitConnectedAsync(Eventually.Deadline, Token));
        var identity = await Eventually.Value(() => server.Identities.TryPeek(out var i) ? i : null, i => i is not null, "ID_RESP");
        Assert.Equal("OpenBest-HSE-7", identity!.ValueOf(IpaIdTag.SerialNumber));
        Assert.Equal("OpenBest-HSE-7", identity.ValueOf(IpaIdTag.UnitName));
        Assert.Equal(IpaIdGet.Standard.Tags, identity.Entries.Select(e => e.Key));

        await server.SendRawAsync(IpaFraming.EncodeCcm(IpaCcm.Ping));
        await Eventually.True(() => server.Pongs == 1, "PONG for PING");
    }

    [Fact]
    public async Task Answers_AreMatchedByImsi_WhenTheyComeOutOfOrder()
    {
        var releaseA = new TaskCompletionSource();
        await using var server = new FakeHlr(async r =>
        {
            if (r.Imsi == ImsiA)
            {
                await releaseA.Task;
            }

            return FakeHlr.Result(r.Imsi, 1, r.Imsi == ImsiA ? (byte)0xA : (byte)0xB);
        })
        { InOrder = false };
        await using var client = new GsupClient(Options(server));
        var a = client.SendAuthInfoAsync(new SendAuthInfoRequest(ImsiA), Token);
        using (var b = await client.SendAuthInfoAsync(new SendAuthInfoRequest(ImsiB), Token))
        {
            Assert.Equal(0xB, First(b));
        }

        releaseA.SetResult();
        using var answerA = await a;
        Assert.Equal(0xA, First(answerA));
    }

    [Fact]
    public async Task CancelledRequest_LeavesAPlaceholder_SoTheNextGetsItsOwnAnswer()
    {
        // GSUP has no transaction id: the first answer for an IMSI belongs to the first request still counted.
        var first = new TaskCompletionSource();
        var count = 0;
        await using var server = new FakeHlr(async r =>
        {
            var n = Interlocked.Increment(ref count);
            if (n == 1)
            {
                await first.Task;
            }

            return FakeHlr.Result(r.Imsi, 1, (byte)n);
        });
        await using var client = new GsupClient(Options(server));
        using var cancel = new CancellationTokenSource();
        var abandoned = client.SendAuthInfoAsync(new SendAuthInfoRequest(ImsiA), cancel.Token);
        await Eventually.True(() => server.Requests.Count == 1, "the first request at the server");
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => abandoned);

        var second = client.SendAuthInfoAsync(new SendAuthInfoRequest(ImsiA), Token);
        await Eventually.True(() => server.Requests.Count == 2, "the second request at the server");
        first.SetResult();
        using var answer = await second;
        Assert.Equal(2, First(answer));
        Assert.Equal(1, client.Connects);
    }

    [Fact]
    public async Task NoAnswer_TimesOut_ResetsTheConnection_AndTheNextRequestWorks()
    {
        var answer = false;
        await using var server = new FakeHlr(r => Task.FromResult(Volatile.Read(ref answer) ? FakeHlr.Result(r.Imsi, 1, 7) : null));
        await using var client = new GsupClient(Options(server) with { RequestTimeout = TimeSpan.FromMilliseconds(300) });
        Assert.True(await client.WaitConnectedAsync(Eventually.Deadline, Token));
        var error = await Assert.ThrowsAsync<GsupException>(() => client.SendAuthInfoAsync(new SendAuthInfoRequest(ImsiA), Token));
        Assert.Contains("No answer from the HLR at gsup://127.0.0.1:", error.Message, StringComparison.Ordinal);
        Assert.Equal(1, client.Timeouts);

        Volatile.Write(ref answer, true);
        await Eventually.True(() => client.Connects == 2, "a new connection after the reset");
        using var reply = await client.SendAuthInfoAsync(new SendAuthInfoRequest(ImsiA), Token);
        Assert.Equal(7, First(reply));
    }

    [Fact]
    public async Task NoServer_FailsAtOnce_NamingTheAddress()
    {
        var port = UnusedPort();
        await using var client = new GsupClient(new GsupClientOptions { Endpoint = new GsupEndpoint("127.0.0.1", port), RequestTimeout = TimeSpan.FromMinutes(5) });
        // Not a five-minute wait: once an attempt failed, requests fail until the next one succeeds.
        var error = await Eventually.Value(
            () =>
            {
                try
                {
                    client.SendAuthInfoAsync(new SendAuthInfoRequest(ImsiA), Token).GetAwaiter().GetResult().Dispose();
                    return null;
                }
                catch (GsupException e)
                {
                    return e;
                }
            },
            e => e is not null,
            "a failure");
        Assert.Contains($"gsup://127.0.0.1:{port}", error!.Message, StringComparison.Ordinal);
        Assert.Contains("connection refused", error.Message, StringComparison.Ordinal);
        Assert.False(client.IsConnected);
        Assert.Equal("connection refused", client.LastError);
    }

    [Fact]
    public async Task LostConnection_FailsTheRequestsInFlight_ThenReconnects()
    {
        var hold = new TaskCompletionSource();
        await using var server = new FakeHlr(async r =>
        {
            await hold.Task;
            return FakeHlr.Result(r.Imsi, 1, 3);
        });
        await using var client = new GsupClient(Options(server));
        var inFlight = client.SendAuthInfoAsync(new SendAuthInfoRequest(ImsiA), Token);
        await Eventually.True(() => server.Requests.Count == 1, "the request at the server");
        server.DropConnections();
        var error = await Assert.ThrowsAsync<GsupException>(() => inFlight);
        Assert.Contains("was lost", error.Message, StringComparison.Ordinal);

        hold.SetResult();
        await Eventually.True(() => client.Connects == 2, "reconnected");
        using var answer = await client.SendAuthInfoAsync(new SendAuthInfoRequest(ImsiA), Token);
        Assert.Equal(3, First(answer));
    }

    [Fact]
    public async Task OversizedFrame_ClosesTheConnection()
    {
        await using var server = new FakeHlr(r => Task.FromResult<byte[]?>(FakeHlr.Result(r.Imsi, 1, 1)));
        await using var client = new GsupClient(Options(server) with { MaxFrameLength = 256 });
        Assert.True(await client.WaitConnectedAsync(Eventually.Deadline, Token));
        await server.SendRawAsync(IpaFraming.EncodeOsmo(IpaOsmoExtension.Gsup, new byte[300]));
        await Eventually.True(() => client.Connects == 2, "a new connection after the oversized frame");
    }

    [Fact]
    public async Task InFlight_IsBounded()
    {
        var outstanding = 0;
        var most = 0;
        await using var server = new FakeHlr(async r =>
        {
            var now = Interlocked.Increment(ref outstanding);
            InterlockedMax(ref most, now);
            await Task.Delay(5);
            Interlocked.Decrement(ref outstanding);
            return FakeHlr.Result(r.Imsi, 1, 1);
        });
        await using var client = new GsupClient(Options(server) with { MaxInFlight = 2 });
        var requests = Enumerable.Range(0, 20).Select(i => client.SendAuthInfoAsync(new SendAuthInfoRequest($"0010100000000{i:00}"), Token)).ToList();
        foreach (var answer in await Task.WhenAll(requests))
        {
            answer.Dispose();
        }

        Assert.InRange(Volatile.Read(ref most), 1, 2);
    }

    [Fact]
    public async Task Auc_MapsCauses_AndRefusesVectorsWithoutTheSeparationBitFor5G()
    {
        await using var server = new FakeHlr(r => Task.FromResult<byte[]?>(r.Imsi switch
        {
            ImsiA => new SendAuthInfoError(r.Imsi, GsupCause.ImsiUnknown).Encode(),
            ImsiB => new SendAuthInfoError(r.Imsi, GsupCause.NetworkFailure).Encode(),
            "001010000000003" => FakeHlr.Result(r.Imsi, 2, 1, amf: 0x0000),
            "001010000000004" => FakeHlr.Result(r.Imsi, 2, 1, amf: 0x8000, resLength: 16),
            _ => FakeHlr.Result(r.Imsi, 2, 1, amf: 0x8000),
        }));
        await using var auc = GsupAuc.Connect(Options(server));
        Assert.Null(auc.CreateVector(ImsiA, AkaContext.FiveG));
        var refused = Assert.Throws<GsupException>(() => auc.CreateVector(ImsiB, AkaContext.Umts));
        Assert.Contains("NetworkFailure", refused.Message, StringComparison.Ordinal);

        // An HLR that ignores the Current RAT Type IE cannot serve EPS or 5G AKA; UMTS is fine.
        var noBit = Assert.Throws<GsupException>(() => auc.CreateVector("001010000000003", AkaContext.FiveG));
        Assert.Contains("separation bit", noBit.Message, StringComparison.Ordinal);
        using (var umts = auc.CreateVector("001010000000003", AkaContext.Umts))
        {
            Assert.NotNull(umts);
        }

        Assert.Contains("RES of 16 octets", Assert.Throws<GsupException>(() => auc.CreateVector("001010000000004", AkaContext.Umts)).Message, StringComparison.Ordinal);
        using var fine = auc.CreateVector("001010000000005", AkaContext.FiveG);
        Assert.Equal(0x8000, fine!.Amf);

        // The 5G request named E-UTRAN; the UMTS one no RAT; every request asked for five vectors.
        var requests = server.Requests.ToList();
        Assert.Contains(requests, r => r.Imsi == "001010000000005" && r.CurrentRatType == GsupRatType.EutranSgs);
        Assert.Contains(requests, r => r.Imsi == ImsiB && r.CurrentRatType is null);
        Assert.All(requests, r => Assert.Equal((byte)5, r.NumberOfVectors));
    }

    [Fact]
    public void Options_AreValidated_NamingTheOption()
    {
        var endpoint = new GsupEndpoint("127.0.0.1", 4222);
        Assert.Contains("MaxInFlight", Assert.Throws<ArgumentException>(() => new GsupClient(new GsupClientOptions { Endpoint = endpoint, MaxInFlight = 0 })).Message, StringComparison.Ordinal);
        Assert.Contains("RequestTimeout", Assert.Throws<ArgumentException>(() => new GsupClient(new GsupClientOptions { Endpoint = endpoint, RequestTimeout = TimeSpan.Zero })).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new GsupClient(new GsupClientOptions { Endpoint = endpoint, UnitName = "two words" }));
        Assert.Contains("VectorsPerRequest", Assert.Throws<ArgumentException>(() => new GsupAucOptions { VectorsPerRequest = 6 }.Validate()).Message, StringComparison.Ordinal);
    }

    private static GsupClientOptions Options(FakeHlr server) => new() { Endpoint = server.Endpoint, RequestTimeout = TimeSpan.FromSeconds(30) };

    private static byte First(GsupAnswer answer)
    {
        Assert.True(SendAuthInfoResult.TryRead(answer.Message, out var result));
        return result!.Tuples[0].Rand.Span[0];
    }

    private static int UnusedPort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int current;
        while ((current = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, current) != current)
        {
        }
    }
}
