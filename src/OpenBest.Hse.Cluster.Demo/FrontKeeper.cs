using System.Diagnostics;
using System.Net;
using Npgsql;

namespace OpenBest.Hse.Cluster.Demo;

/// <summary>
/// Keeps nginx in front of the live nodes, as an operator's configuration manager would: nginx's open-source build has no
/// health checks for UDP, so the cluster's membership table is the health check. Whenever the cluster declares a node dead
/// (the node killed, or any other), the configuration is written again without it and nginx reloads.
/// </summary>
internal sealed class FrontKeeper : IAsyncDisposable
{
    private readonly NpgsqlDataSource _membership;
    private readonly string _nginx;
    private readonly string _config;
    private readonly string _prefix;
    private readonly int _listen;
    private readonly IReadOnlyList<(string Name, int Port)> _nodes;
    private readonly Stopwatch _clock;
    private readonly Dictionary<string, (TimeSpan DeclaredDead, TimeSpan FrontUpdated)> _dead = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _watch;

    private FrontKeeper(string postgres, string nginx, string config, string prefix, int listen, IReadOnlyList<(string Name, int Port)> nodes, Stopwatch clock)
    {
        _membership = NpgsqlDataSource.Create(postgres);
        (_nginx, _config, _prefix, _listen, _nodes, _clock) = (nginx, config, prefix, listen, nodes, clock);
        _watch = Task.Run(WatchAsync);
    }

    /// <summary>Starts watching the membership of the cluster in <paramref name="postgres"/>; times are on <paramref name="clock"/>.</summary>
    public static FrontKeeper Start(string postgres, string nginx, string config, string prefix, int listen, IReadOnlyList<(string Name, int Port)> nodes, Stopwatch clock) =>
        new(postgres, nginx, config, prefix, listen, nodes, clock);

    /// <summary>When the cluster declared <paramref name="node"/> dead and when nginx ran without it, or null while it has not.</summary>
    public (TimeSpan DeclaredDead, TimeSpan FrontUpdated)? Dead(string node)
    {
        lock (_dead)
        {
            return _dead.TryGetValue(node, out var at) ? at : null;
        }
    }

    /// <summary>The nodes the cluster declared dead so far.</summary>
    public IReadOnlyList<string> DeadNodes()
    {
        lock (_dead)
        {
            return [.. _dead.Keys];
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _watch.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        await _membership.DisposeAsync().ConfigureAwait(false);
        _stop.Dispose();
    }

    private async Task WatchAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                var members = await PostgresMembershipTable.NodesAsync(_membership, "openbest-hse").ConfigureAwait(false);
                var declared = _clock.Elapsed;
                var newlyDead = _nodes.Select(n => n.Name)
                    .Where(name => Dead(name) is null && members.FirstOrDefault(m => m.Node == name).Status == "Dead").ToList();
                if (newlyDead.Count > 0)
                {
                    await ReloadWithoutAsync([.. DeadNodes(), .. newlyDead]).ConfigureAwait(false);
                    lock (_dead)
                    {
                        foreach (var name in newlyDead)
                        {
                            _dead[name] = (declared, _clock.Elapsed);
                        }
                    }
                }
            }
            catch (NpgsqlException)
            {
                // The database is away for a moment: the next look tells.
            }

            try
            {
                await Task.Delay(200, _stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task ReloadWithoutAsync(IReadOnlyCollection<string> dead)
    {
        var live = _nodes.Where(n => !dead.Contains(n.Name)).Select(n => new IPEndPoint(IPAddress.Loopback, n.Port)).ToList();
        if (live.Count == 0)
        {
            return;
        }

        await File.WriteAllTextAsync(_config, NginxFront.Render(live, _listen)).ConfigureAwait(false);
        await using var reload = ChildProcess.Start(_nginx, ["-c", _config, "-p", _prefix, "-e", "stderr", "-g", $"pid {_prefix}/nginx.pid;", "-s", "reload"]);
        await reload.WaitForExitAsync().ConfigureAwait(false);
    }
}
