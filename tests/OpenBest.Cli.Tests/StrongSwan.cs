using System.Diagnostics;
using System.Globalization;
using OpenBest.Testing;

namespace OpenBest.Cli.Tests;

/// <summary>
/// Two strongSwan daemons (charon-systemd, Debian's) for one IKEv2 exchange: the device's in one network namespace and the
/// enterprise gateway's in another, joined by a veth pair (10.99.0.1 and 10.99.0.2). Each has its own strongswan.conf
/// (STRONGSWAN_CONF), vici socket and log; their connections and secrets are loaded with swanctl. Needs root.
/// </summary>
internal sealed class StrongSwan : IAsyncDisposable
{
    private const string Charon = "/usr/sbin/charon-systemd";
    private const string Swanctl = "/usr/sbin/swanctl";
    private static int _instances;
    private readonly string _directory;
    private readonly string _ue;
    private readonly string _gw;
    private readonly List<PeerProcess> _daemons = [];

    private StrongSwan(string directory, string ue, string gw)
    {
        _directory = directory;
        _ue = ue;
        _gw = gw;
    }

    public static bool Available(out string why)
    {
        why = !Environment.IsPrivilegedProcess ? "network namespaces need root"
            : !File.Exists(Charon) || !File.Exists(Swanctl) ? "strongSwan is not installed (apt install charon-systemd strongswan-swanctl)"
            : !File.Exists("/usr/sbin/ip") && !File.Exists("/sbin/ip") ? "iproute2 is not installed"
            : string.Empty;
        return why.Length == 0;
    }

    /// <summary>Starts both daemons with their connections: the device (IKE identity <paramref name="identity"/>) and the gateway gw.example.com, each with its secrets section.</summary>
    public static async Task<StrongSwan> StartAsync(string parent, string identity, string ueSecrets, string gwSecrets)
    {
        var n = string.Create(CultureInfo.InvariantCulture, $"{Environment.ProcessId % 10000}x{Interlocked.Increment(ref _instances)}");
        var directory = Directory.CreateDirectory(Path.Combine(parent, "ike-" + n)).FullName;
        var swan = new StrongSwan(directory, "obue" + n, "obgw" + n);
        try
        {
            await IpAsync("netns", "add", swan._ue);
            await IpAsync("netns", "add", swan._gw);
            await IpAsync("link", "add", "obu" + n, "type", "veth", "peer", "name", "obg" + n);
            await IpAsync("link", "set", "obu" + n, "netns", swan._ue);
            await IpAsync("link", "set", "obg" + n, "netns", swan._gw);
            await IpAsync("-n", swan._ue, "addr", "add", "10.99.0.1/24", "dev", "obu" + n);
            await IpAsync("-n", swan._gw, "addr", "add", "10.99.0.2/24", "dev", "obg" + n);
            foreach (var (ns, link) in new[] { (swan._ue, "obu" + n), (swan._gw, "obg" + n) })
            {
                await IpAsync("-n", ns, "link", "set", link, "up");
                await IpAsync("-n", ns, "link", "set", "lo", "up");
            }

            await swan.StartDaemonAsync("ue", swan._ue, $$"""
                connections {
                    best {
                        version = 2
                        local_addrs = 10.99.0.1
                        remote_addrs = 10.99.0.2
                        proposals = aes128gcm16-prfsha256-x25519
                        local {
                            auth = psk
                            id = "{{identity}}"
                        }
                        remote {
                            auth = psk
                            id = gw.example.com
                        }
                    }
                }
                {{ueSecrets}}
                """);
            await swan.StartDaemonAsync("gw", swan._gw, $$"""
                connections {
                    best {
                        version = 2
                        local_addrs = 10.99.0.2
                        proposals = aes128gcm16-prfsha256-x25519
                        local {
                            auth = psk
                            id = gw.example.com
                        }
                        remote {
                            auth = psk
                            id = "{{identity}}"
                        }
                    }
                }
                {{gwSecrets}}
                """);
            return swan;
        }
        catch
        {
            await swan.DisposeAsync();
            throw;
        }
    }

    /// <summary>The device initiates the IKE SA; whether swanctl said it completed, and the gateway's list of SAs (and the daemons' logs when it failed).</summary>
    public async Task<(bool Ok, string Sas)> InitiateAsync()
    {
        var (code, initiate) = await RunAsync(Swanctl, "--initiate", "--ike", "best", "--timeout", "30", "--uri", Uri("ue"));
        var (_, sas) = await RunAsync(Swanctl, "--list-sas", "--uri", Uri("gw"));
        return (code == 0, sas + (code == 0 ? string.Empty : "\n" + initiate + "\n" + Log("ue") + "\n" + Log("gw")));
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var daemon in _daemons)
        {
            await daemon.DisposeAsync();
        }

        await RunAsync("ip", "netns", "del", _ue);
        await RunAsync("ip", "netns", "del", _gw);
    }

    private string Uri(string name) => "unix://" + Path.Combine(_directory, name, "charon.vici");

    private string Log(string name) => File.Exists(Path.Combine(_directory, name, "charon.log")) ? File.ReadAllText(Path.Combine(_directory, name, "charon.log")) : string.Empty;

    private async Task StartDaemonAsync(string name, string ns, string swanctlConf)
    {
        var folder = Directory.CreateDirectory(Path.Combine(_directory, name)).FullName;
        var conf = Path.Combine(folder, "strongswan.conf");
        await File.WriteAllTextAsync(conf, $$"""
            charon {
                load_modular = yes
                plugins {
                    include /etc/strongswan.d/charon/*.conf
                    vici {
                        socket = unix://{{folder}}/charon.vici
                    }
                }
                filelog {
                    log {
                        path = {{folder}}/charon.log
                        default = 1
                        ike = 2
                    }
                }
            }
            charon-systemd {
                journal {
                    default = -1
                }
            }
            """);
        var config = Path.Combine(folder, "swanctl.conf");
        await File.WriteAllTextAsync(config, swanctlConf);
        _daemons.Add(PeerProcess.Start("ip", "netns", "exec", ns, "env", "STRONGSWAN_CONF=" + conf, Charon));
        await Eventually.True(() => File.Exists(Path.Combine(folder, "charon.vici")), $"charon in {ns} opens its vici socket");
        var (code, output) = await RunAsync(Swanctl, "--load-all", "--file", config, "--uri", Uri(name));
        Assert.True(code == 0, $"swanctl --load-all ({name}): {output}");
    }

    private static async Task IpAsync(params string[] arguments)
    {
        var (code, output) = await RunAsync("ip", arguments);
        Assert.True(code == 0, $"ip {string.Join(' ', arguments)}: {output}");
    }

    private static async Task<(int Code, string Output)> RunAsync(string program, params string[] arguments)
    {
        await using var process = PeerProcess.Start(program, arguments);
        var code = await process.ExitAsync();
        return (code, process.Output);
    }
}
