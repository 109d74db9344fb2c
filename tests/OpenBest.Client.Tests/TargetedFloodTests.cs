using System.Net;
using System.Net.Sockets;
using OpenBest.Crypto;
using OpenBest.Crypto.Aka;
using OpenBest.Hse;
using OpenBest.Protocol;
using OpenBest.Sessions;

namespace OpenBest.Client.Tests;

/// <summary>
/// Targeted denial of service over real UDP on loopback (profile 6.2 "Denial of service", section 7): a source that
/// floods well-formed Session Requests naming a known IMSI (127.0.0.2, answering its cookies when asked, so it is
/// return-routable) does not keep the real device (127.0.0.1) from opening a session with a real HSE on SQLite.
/// </summary>
public sealed class TargetedFloodTests
{
    private static CancellationToken Cancel => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task AFloodingSource_DoesNotStopTheRealDevice(bool requireCookie)
    {
        await using var hse = new TestHse(new HseOptions { RequireCookie = requireCookie });
        using var flooder = new Flooder(hse.Udp.LocalEndPoint);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Cancel);
        var flood = Task.Run(() => flooder.RunAsync(stop.Token), Cancel);
        try
        {
            // The flood is under way (it has been answered with congestion) before the device starts.
            await flooder.Congested.Task.WaitAsync(TimeSpan.FromSeconds(60), Cancel);
            await using var device = await BestClient.CreateAsync(hse.Options(), Cancel);
            var opened = await device.OpenAsync(new UeChannelOptions { EasId = "eas.example.com", ServingNetwork = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org") }, Cancel);
            Assert.True(opened.Established, $"the device did not open: {opened.Rejected}");
            Assert.Equal(SendStatus.Acknowledged, await opened.Channel!.SendAsync("still here"u8.ToArray(), acknowledged: true, Cancel));
        }
        finally
        {
            await stop.CancelAsync();
            await flood.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing | ConfigureAwaitOptions.ContinueOnCapturedContext);
        }

        // The flooder got at most its source's share of vectors in each minute (the test may cross a minute boundary or
        // two on a slow machine); it asked for many more.
        Assert.True(flooder.Requests > 50, $"only {flooder.Requests} requests were sent");
        Assert.InRange(flooder.Starts, 0, 3 * new HseOptions().MaxVectorsPerSourcePerIdentityPerMinute);
    }

    /// <summary>A party that knows the device's IMSI but not its K, sending new Session Requests from 127.0.0.2 as fast as it can.</summary>
    private sealed class Flooder : IDisposable
    {
        private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        private readonly Milenage _milenage = new(new byte[16], TestHse.Opc);
        private readonly UeEndpoint _ue;
        private readonly IPEndPoint _hse;
        private readonly Lock _gate = new();

        public Flooder(IPEndPoint hse)
        {
            _hse = hse;
            _socket.Bind(new IPEndPoint(IPAddress.Parse("127.0.0.2"), 0));
            _ue = new UeEndpoint(new Usim(_milenage, new UsimSequenceState(SqnScheme.Default)), new UeOptions { Imsi = TestHse.Imsi });
        }

        public TaskCompletionSource Congested { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int Requests { get; private set; }

        public int Starts { get; private set; }

        public async Task RunAsync(CancellationToken stop)
        {
            var reader = Task.Run(() => ReadAsync(stop), CancellationToken.None);
            try
            {
                while (!stop.IsCancellationRequested)
                {
                    StepResult step;
                    lock (_gate)
                    {
                        step = _ue.Open(new UeChannelOptions { EasId = "eas.example.com", ServingNetwork = ServingNetwork.FromName("5G:mnc001.mcc001.3gppnetwork.org") }, out _);
                        Requests++;
                    }

                    await SendAsync(step, stop);
                    await Task.Yield();
                }
            }
            catch (OperationCanceledException)
            {
            }

            await reader.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        public void Dispose()
        {
            _socket.Dispose();
            _ue.Dispose();
            _milenage.Dispose();
        }

        private async Task SendAsync(StepResult step, CancellationToken stop)
        {
            foreach (var send in step.Send)
            {
                await _socket.SendToAsync(send.Message, _hse, stop);
            }
        }

        private async Task ReadAsync(CancellationToken stop)
        {
            var buffer = new byte[2048];
            try
            {
                while (!stop.IsCancellationRequested)
                {
                    var received = await _socket.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0), stop);
                    var message = buffer.AsSpan(0, received.ReceivedBytes);
                    StepResult step;
                    lock (_gate)
                    {
                        // A cookie Reject makes the forger send its request again with the cookie; a Session Start fails its AKA.
                        step = _ue.Receive(message);
                        Starts += message[0] != 0x40 ? 1 : 0;
                    }

                    if (step.Events.OfType<SessionRejected>().Any(r => r.Cause == Cause.Congestion))
                    {
                        Congested.TrySetResult();
                    }

                    await SendAsync(step, stop);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
            }
        }
    }
}
