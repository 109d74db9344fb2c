using System.CommandLine;

namespace OpenBest.Cli;

/// <summary>
/// Key agreement only: a PSK and its identity written for the program that takes them — OpenSSL's s_client/s_server
/// arguments, GnuTLS's gnutls-cli arguments, or a strongSwan swanctl.conf <c>secrets</c> section (an IKEv2 PSK whose IKE
/// identity is the PSK identity). The key is the output's purpose: it goes to standard output only, never to a log.
/// </summary>
internal static class PskFormat
{
    public static Option<string> Option()
    {
        var format = new Option<string>("--format") { Description = "openssl (-psk_identity … -psk …), gnutls (--pskusername … --pskkey …) or swanctl (a secrets section for strongSwan)", HelpName = "FORMAT", DefaultValueFactory = _ => "openssl" };
        format.Validators.Add(r => { if (r.GetValueOrDefault<string>() is not ("openssl" or "gnutls" or "swanctl")) { r.AddError("--format must be openssl, gnutls or swanctl"); } });
        return format;
    }

    public static void Write(TextWriter output, string format, string identity, ReadOnlySpan<byte> key)
    {
        var hex = Convert.ToHexStringLower(key);
        switch (format)
        {
            case "swanctl":
                output.WriteLine("secrets {");
                output.WriteLine("    ike-best {");
                output.WriteLine($"        id = \"{identity}\"");
                output.WriteLine($"        secret = 0x{hex}");
                output.WriteLine("    }");
                output.WriteLine("}");
                break;
            case "gnutls":
                output.WriteLine($"--pskusername {identity} --pskkey {hex}");
                break;
            default:
                output.WriteLine($"-psk_identity {identity} -psk {hex}");
                break;
        }
    }
}
