using System.Net;
using System.Net.Sockets;

namespace OpenBest.Hse.Northbound.Tests;

/// <summary>A UDP relay between one device and the HSE that the test can cut (the device out of coverage, or asleep in PSM).</summary>
internal sealed class UdpRelay : IAsyncDisposable
{
    private readonly UdpClient _front = new(new IPEndPoint(IPAddress.Loopback, 0));
    private readonly UdpClient _back = new(new IPEndPoint(IPAddress.Loopback, 0));
    private readonly IPEndPoint _hse;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _up;
    private readonly Task _down;
    private IPEndPoint? _device;

    public UdpRelay(IPEndPoint hse)
    {
        _hse = hse;
        _up = Task.Run(() => PumpAsync(_front, toHse: true));
        _down = Task.Run(() => PumpAsync(_back, toHse: false));
    }

    /// <summary>Where the device sends.</summary>
    public IPEndPoint EndPoint => (IPEndPoint)_front.Client.LocalEndPoint!;

    /// <summary>While true, nothing passes in either direction.</summary>
    public volatile bool Cut;

    /// <summary>Datagrams dropped while cut, towards the device.</summary>
    public int DroppedDown;

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _front.Dispose();
        _back.Dispose();
        await Task.WhenAll(_up, _down).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _stop.Dispose();
    }

    private async Task PumpAsync(UdpClient from, bool toHse)
    {
        while (!_stop.IsCancellationRequested)
        {
            UdpReceiveResult datagram;
            try
            {
                datagram = await from.ReceiveAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (_stop.IsCancellationRequested)
                {
                    return;
                }

                continue;
            }

            if (Cut)
            {
                if (!toHse)
                {
                    Interlocked.Increment(ref DroppedDown);
                }

                continue;
            }

            try
            {
                if (toHse)
                {
                    _device = datagram.RemoteEndPoint;
                    await _back.SendAsync(datagram.Buffer, _hse, _stop.Token);
                }
                else if (_device is { } device)
                {
                    await _front.SendAsync(datagram.Buffer, device, _stop.Token);
                }
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
            }
        }
    }
}
