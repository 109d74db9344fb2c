using OpenBest.Crypto;
using OpenBest.Crypto.Aka;
using OpenBest.Protocol;
using OpenBest.Sessions;

namespace OpenBest.Sessions.Tests;

/// <summary>
/// Targeted denial of service (profile 6.2 "Denial of service": vectors rate limited per identity; section 7: Rejects rate
/// limited per source): well-formed Session Requests that name a known IMSI, from one source, must not keep the real
/// device off the service.
/// </summary>
public sealed class TargetedFloodTests
{
    private const string Attacker = "10.6.6.6";

    /// <summary>Session Requests for <see cref="Harness.Imsi"/> from a party that does not hold K (its AKA would fail), each a new attempt (new UE nonce).</summary>
    private static List<byte[]> Requests(int count)
    {
        using var milenage = new Milenage(new byte[16], Harness.Opc);
        using var forger = new UeEndpoint(new Usim(milenage, new UsimSequenceState(SqnScheme.Default)), new UeOptions { Imsi = Harness.Imsi });
        var requests = new List<byte[]>();
        for (var i = 0; i < count; i++)
        {
            requests.Add(forger.Open(new UeChannelOptions { EasId = "eas.example.com", ServingNetwork = Harness.FiveG }, out _).Send.Single().Message.ToArray());
        }

        return requests;
    }

    private static Cause? CauseOf(StepResult step)
    {
        if (step.Send.Count == 0 || step.Send[0].Message.Span[0] != 0x40 || ControlCommand.TryParse(step.Send[0].Message.Span[3..], out var command) != ParseStatus.Ok)
        {
            return null; // a Session Start (protected) or nothing
        }

        return command is MessageReject reject ? reject.Cause : null;
    }

    [Fact]
    public void AFloodFromOneSource_UsesOnlyThatSourcesShare_AndTheRealDeviceStillOpens()
    {
        using var h = new Harness();
        var starts = 0;
        var congestion = 0;
        foreach (var request in Requests(200))
        {
            var step = h.Hse.Receive(request, Attacker);
            if (CauseOf(step) is { } cause)
            {
                Assert.Equal(Cause.Congestion, cause);
                congestion++;
            }
            else if (step.Send.Count == 1)
            {
                starts++;
            }
        }

        // The source got its share of vectors (5 a minute), and nothing more.
        Assert.Equal(new HseOptions().MaxVectorsPerSourcePerIdentityPerMinute, starts);
        Assert.Equal(5, h.Hse.Counters.VectorsUsed);

        // Its congestion Rejects are rate limited per source (10 a second), the rest dropped silently.
        Assert.Equal(new HseOptions().MaxRejectsPerSourcePerSecond, congestion);

        // The device, from its own address, opens in the same minute.
        var channel = h.Open(new UeChannelOptions { EasId = "eas.example.com", ServingNetwork = Harness.FiveG });
        Assert.True(h.Ue.IsEstablished(channel));
    }

    [Fact]
    public void TheIdentitysBudget_IsReachedOnlyWithSeveralSources_AndRefusesWithCongestion()
    {
        // 20 vectors per identity and minute, 5 per source: four sources are needed to reach the identity's cap (the
        // bound docs/protocol.md states), and a refused request takes nothing from either budget.
        using var h = new Harness();
        var requests = Requests(40);
        var started = 0;
        for (var i = 0; i < 40; i++)
        {
            var step = h.Hse.Receive(requests[i], $"10.6.6.{i / 10}");
            started += CauseOf(step) is null && step.Send.Count == 1 ? 1 : 0;
        }

        Assert.Equal(20, started);
        h.Open(new UeChannelOptions { EasId = "eas.example.com", ServingNetwork = Harness.FiveG });
        Assert.Equal(Cause.Congestion, h.Single<SessionRejected>(h.UeEvents).Cause);

        // A minute later the budgets are whole again.
        h.UeEvents.Clear();
        h.Time.Advance(TimeSpan.FromMinutes(1));
        var channel = h.Open(new UeChannelOptions { EasId = "eas.example.com", ServingNetwork = Harness.FiveG });
        Assert.True(h.Ue.IsEstablished(channel));
    }

    [Fact]
    public void WithCookies_TheFloodersRejectsCannotStarveTheDevicesCookie()
    {
        // RequireCookie: the device's first request is answered by a Reject 0x11 with a cookie. A flooding source's
        // Rejects are limited per source, so the global budget (100 a second) still has the device's.
        using var h = new Harness(new HseOptions { RequireCookie = true, MaxRejectsPerSecond = 20 });
        foreach (var request in Requests(300))
        {
            h.Hse.Receive(request, Attacker);
        }

        var channel = h.Open(new UeChannelOptions { EasId = "eas.example.com", ServingNetwork = Harness.FiveG });
        Assert.True(h.Ue.IsEstablished(channel));
        // The flood never came back with a cookie: the device's is the only vector used.
        Assert.Equal(1, h.Hse.Counters.VectorsUsed);
    }

    [Fact]
    public void UnknownIdentities_AreBudgetedAlike_SoTheBudgetTellsNoOneWhoIsASubscriber()
    {
        using var h = new Harness(registerSubscriber: false);
        var starts = 0;
        foreach (var request in Requests(20))
        {
            var step = h.Hse.Receive(request, Attacker);
            starts += CauseOf(step) is null && step.Send.Count == 1 ? 1 : 0;
        }

        Assert.Equal(new HseOptions().MaxVectorsPerSourcePerIdentityPerMinute, starts);
    }
}
