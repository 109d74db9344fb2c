using System.Threading.Channels;
using OpenBest.Protocol;
using OpenBest.Sessions;
using OpenBest.Storage;
using OpenBest.Testing;

namespace OpenBest.Client.Tests;

/// <summary>
/// The SDK's push channel against a real HSE over loopback UDP (profile 6.2 "Suspend / Resume / push" and "Data Ack";
/// docs/protocol.md, "Suspend, resume and push"): the HSE pages the suspended device, the SDK dispatches by port, drops
/// repeats by message id, and the channel stays suspended at both ends.
/// </summary>
public sealed class BestPushChannelTests
{
    private static readonly ServingNetwork Network = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org");

    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    private static async Task<T> NextAsync<T>(ChannelReader<T> reader) => await reader.ReadAsync(Cancel).AsTask().WaitAsync(Eventually.Deadline, Cancel);

    private static UeChannelOptions Template => new() { EasId = "eas.example.com", Service = BestService.Confidential, ServingNetwork = Network };

    [Fact]
    public async Task Pushes_ReachTheSuspendedDevice_ByPort_OnceEach_AndTheChannelStaysSuspended()
    {
        await using var hse = new TestHse();
        await using var client = await BestClient.CreateAsync(hse.Options(), Cancel);
        await using var push = await BestPushChannel.OpenAsync(client, template: Template, ct: Cancel);
        Assert.Equal(PushMessage.PushEasId, push.Channel.Options.EasId);
        Assert.Equal(BestService.Confidential, push.Channel.Service);
        var sid = push.Channel.SessionId;
        Assert.Equal(sid, (await NextAsync(hse.Established.Reader)).SessionId);
        Assert.Equal(sid, (await NextAsync(hse.Suspended.Reader)).SessionId); // suspended right away
        Assert.True(await push.IsSuspendedAsync());

        var valve = Channel.CreateUnbounded<PushMessage>();
        var requests = Channel.CreateUnbounded<(string EasId, BestService Service)>();
        push.Register(7, (m, _) =>
        {
            valve.Writer.TryWrite(m);
            return Task.CompletedTask;
        });
        push.Register(9, (_, _) => throw new InvalidOperationException("a handler's bug"));
        push.SessionRequested = (easId, service, _) =>
        {
            requests.Writer.TryWrite((easId, service));
            return Task.CompletedTask;
        };

        // The HSE pages the suspended session (the northbound push): each goes at once to the device's last path.
        Task Page(ReadOnlySpan<byte> payload, long token)
        {
            var bytes = payload.ToArray();
            return hse.Host.InvokeAsync(e => e.SendDownlink(sid, bytes, ackRequested: true, token: token, page: true));
        }

        await Page(new PushMessage(9, 1, "throws"u8.ToArray()).ToArray(), 1);
        await Page(new PushMessage(7, 2, "open valve"u8.ToArray()).ToArray(), 2);
        await Page(new PushMessage(7, 2, "open valve"u8.ToArray()).ToArray(), 3); // the same message id again
        await Page(new PushMessage(42, 3, "nobody listens"u8.ToArray()).ToArray(), 4);
        await Page(PushMessage.SessionRequest(4, BestService.Integrity, "meter.example.com").ToArray(), 5);
        await Page("not a push message"u8, 6);

        // The device acknowledged every one (the engine's Data Ack), and the HSE reported each by its token.
        var acknowledged = new HashSet<long>();
        while (acknowledged.Count < 6)
        {
            acknowledged.Add((await NextAsync(hse.Acknowledged.Reader)).Token);
        }

        Assert.Equal([1L, 2, 3, 4, 5, 6], acknowledged.Order());
        var opened = await NextAsync(valve.Reader);
        Assert.Equal((7, 2u, "open valve"), (opened.Port, opened.MessageId, System.Text.Encoding.UTF8.GetString(opened.Body.Span)));
        Assert.Equal(("meter.example.com", BestService.Integrity), await NextAsync(requests.Reader));
        await Eventually.True(() => push.Delivered == 3 && push.Duplicates == 1 && push.Unhandled == 1 && push.Malformed == 1 && push.HandlerFailures == 1,
            "port 9's, port 7's and the session request delivered; the repeat, port 42 and the garbage dropped; the failing handler counted");
        Assert.False(valve.Reader.TryRead(out _)); // the repeat was delivered once

        // A Data Ack answers a push and resumes nothing: the HSE and the device both hold the channel suspended.
        Assert.Equal("Suspended", await hse.Host.QueryAsync(e => e.StateOf(sid)));
        Assert.False(hse.Resumed.Reader.TryRead(out _));
        Assert.True(await push.IsSuspendedAsync());
        Assert.Empty(hse.Store.Uplinks(0, 10)); // the device sent no data

        Assert.True(await push.CloseAsync(Cancel));
        Assert.True(push.Channel.IsClosed);
    }

    [Fact]
    public async Task ManagementChannel_BesideThePushChannel_EachGetsItsOwnPushes()
    {
        await using var hse = new TestHse();
        await using var client = await BestClient.CreateAsync(hse.Options(), Cancel);
        await using var push = await BestPushChannel.OpenAsync(client, template: Template, ct: Cancel);
        await using var management = await BestPushChannel.OpenAsync(client, PushMessage.ManagementEasId, Template, Cancel);
        Assert.NotEqual(push.Channel.SessionId, management.Channel.SessionId);
        var suspended = new HashSet<uint> { (await NextAsync(hse.Suspended.Reader)).SessionId, (await NextAsync(hse.Suspended.Reader)).SessionId };
        Assert.Equal([push.Channel.SessionId, management.Channel.SessionId], suspended.Order());

        var commands = Channel.CreateUnbounded<string>();
        management.Register(100, (m, _) =>
        {
            commands.Writer.TryWrite(System.Text.Encoding.UTF8.GetString(m.Body.Span));
            return Task.CompletedTask;
        });
        var command = new PushMessage(100, 1, "reboot"u8.ToArray()).ToArray();
        await hse.Host.InvokeAsync(e => e.SendDownlink(management.Channel.SessionId, command, ackRequested: true, token: 77, page: true));
        Assert.Equal("reboot", await NextAsync(commands.Reader));
        Assert.Equal(77, (await NextAsync(hse.Acknowledged.Reader)).Token);
        Assert.Equal(0, push.Delivered + push.Unhandled + push.Malformed);
        Assert.Equal("Suspended", await hse.Host.QueryAsync(e => e.StateOf(management.Channel.SessionId)));
    }

    [Fact]
    public async Task Refused_ThrowsWithTheCause()
    {
        await using var hse = new TestHse();
        hse.Store.SetEasServices(PushMessage.PushEasId, ServicePolicy.Parse("integrity"));
        await using var client = await BestClient.CreateAsync(hse.Options(), Cancel);
        var refused = await Assert.ThrowsAsync<BestPushChannelException>(() =>
            BestPushChannel.OpenAsync(client, template: Template with { MinimumService = BestService.Confidential }, ct: Cancel));
        Assert.Equal(Cause.NotAuthorised, refused.Rejected);
        await Assert.ThrowsAsync<ArgumentException>(() =>
            BestPushChannel.OpenAsync(client, template: Template with { Service = BestService.KeyAgreementOnly }, ct: Cancel));
    }
}
