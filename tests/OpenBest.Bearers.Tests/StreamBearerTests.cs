using System.IO.Pipelines;
using OpenBest.Bearers;
using OpenBest.Testing;

namespace OpenBest.Bearers.Tests;

/// <summary>The non-IP stream bearer (profile section 1: 2-octet length framing) over a pair of pipes.</summary>
public sealed class StreamBearerTests
{
    private static async Task<byte[]> NextAsync(StreamBearer bearer)
    {
        return (await bearer.Received.ReadAsync(TestContext.Current.CancellationToken).AsTask().WaitAsync(Eventually.Deadline, TestContext.Current.CancellationToken)).Message.ToArray();
    }

    [Fact]
    public async Task Messages_CrossTheLink_BothWays()
    {
        var ab = new Pipe();
        var ba = new Pipe();
        await using var a = StreamBearer.Over(ba.Reader.AsStream(), ab.Writer.AsStream(), "a");
        await using var b = StreamBearer.Over(ab.Reader.AsStream(), ba.Writer.AsStream(), "b");
        await a.SendAsync(new byte[] { 1, 2, 3 }, a.Path, TestContext.Current.CancellationToken);
        await a.SendAsync(new byte[300], a.Path, TestContext.Current.CancellationToken);
        await a.SendAsync(new byte[] { 7 }, a.Path, TestContext.Current.CancellationToken);
        Assert.Equal([1, 2, 3], await NextAsync(b));
        Assert.Equal(300, (await NextAsync(b)).Length);

        // Exactly the frames sent, nothing in between: the stream is in order, so the frame sent after them comes next.
        Assert.Equal([7], await NextAsync(b));
        Assert.False(b.Received.TryRead(out _));
        await b.SendAsync(new byte[] { 9 }, b.Path, TestContext.Current.CancellationToken);
        Assert.Equal([9], await NextAsync(a));
        Assert.Equal("b", b.Path.ToString());
    }

    [Fact]
    public async Task LineNoise_IsDroppedAndCounted_AndTheNextFrameIsFound()
    {
        var link = new Pipe();
        await using var bearer = StreamBearer.Over(link.Reader.AsStream(), Stream.Null, "serial");
        var writer = link.Writer.AsStream();
        // An oversized length (0xFFFF > 4096), zero lengths, then a good frame.
        await writer.WriteAsync(new byte[] { 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x02, 0xAB, 0xCD }, TestContext.Current.CancellationToken);
        await writer.FlushAsync(TestContext.Current.CancellationToken);
        Assert.Equal([0xAB, 0xCD], await NextAsync(bearer));
        Assert.True(bearer.Dropped >= 2);
    }

    [Fact]
    public async Task FramesSplitAcrossReads_AreReassembled()
    {
        var link = new Pipe();
        await using var bearer = StreamBearer.Over(link.Reader.AsStream(), Stream.Null);
        var writer = link.Writer.AsStream();
        foreach (var piece in new[] { new byte[] { 0x00 }, new byte[] { 0x03, 0x01 }, new byte[] { 0x02, 0x03 } })
        {
            await writer.WriteAsync(piece, TestContext.Current.CancellationToken);
            await writer.FlushAsync(TestContext.Current.CancellationToken);
            await Task.Delay(20, TestContext.Current.CancellationToken);
        }

        Assert.Equal([1, 2, 3], await NextAsync(bearer));
    }

    [Fact]
    public async Task EndOfStream_CompletesTheReceiver()
    {
        var link = new Pipe();
        await using var bearer = StreamBearer.Over(link.Reader.AsStream(), Stream.Null);
        await link.Writer.CompleteAsync();
        await bearer.Received.Completion.WaitAsync(Eventually.Deadline, TestContext.Current.CancellationToken);
    }
}
