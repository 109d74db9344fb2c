using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace OpenBest.Cli;

/// <summary>Options that take a fixed-length hexadecimal value, with errors that name the option and the expected length but never echo the value (it may be a key).</summary>
internal static class HexOption
{
    public static Option<byte[]> Create(string name, int octets, string description)
    {
        var option = new Option<byte[]>(name)
        {
            Description = $"{description} [{octets * 2} hex digits]",
            HelpName = "HEX",
            CustomParser = result => Parse(result, name, octets),
        };
        return option;
    }

    public static Option<ulong> CreateNumber(string name, int octets, string description)
    {
        var option = new Option<ulong>(name)
        {
            Description = $"{description} [{octets * 2} hex digits]",
            HelpName = "HEX",
            CustomParser = result =>
            {
                var bytes = Parse(result, name, octets);
                ulong value = 0;
                foreach (var b in bytes ?? [])
                {
                    value = (value << 8) | b;
                }

                return value;
            },
        };
        return option;
    }

    /// <summary>An option or argument value of <paramref name="min"/>..<paramref name="max"/> octets in hex.</summary>
    public static Option<byte[]> CreateVariable(string name, int min, int max, string description) => new(name)
    {
        Description = $"{description} [hex, {min}..{max} octets]",
        HelpName = "HEX",
        CustomParser = result => ParseVariable(result, name, min, max),
    };

    /// <summary>Parses hex of <paramref name="min"/>..<paramref name="max"/> octets, with an error naming <paramref name="name"/>.</summary>
    public static byte[]? ParseVariable(ArgumentResult result, string name, int min, int max) =>
        Parse(result, name, min, max, string.Create(CultureInfo.InvariantCulture, $"an even number of hex digits, {min}..{max} octets"));

    /// <summary>Adds "is required" errors for the options missing from a command.</summary>
    public static void Require(CommandResult result, params Option[] options)
    {
        foreach (var option in options)
        {
            if (result.GetResult(option) is null)
            {
                result.AddError($"{option.Name} is required: {option.Description}");
                return;
            }
        }
    }

    private static byte[]? Parse(ArgumentResult result, string name, int octets) =>
        Parse(result, name, octets, octets, string.Create(CultureInfo.InvariantCulture, $"{octets * 2} hex digits ({octets} octets)"));

    /// <summary>One hex token of <paramref name="min"/>..<paramref name="max"/> octets; every error names the option and <paramref name="expected"/>, never the value.</summary>
    private static byte[]? Parse(ArgumentResult result, string name, int min, int max, string expected)
    {
        if (result.Tokens.Count != 1)
        {
            result.AddError($"{name} takes one value: {expected}");
            return null;
        }

        var text = result.Tokens[0].Value;
        if (text.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
        {
            text = text[2..];
        }

        for (var i = 0; i < text.Length; i++)
        {
            if (!char.IsAsciiHexDigit(text[i]))
            {
                result.AddError(string.Create(CultureInfo.InvariantCulture, $"{name} must be {expected}; character {i + 1} is not a hex digit"));
                return null;
            }
        }

        if (text.Length % 2 != 0 || text.Length / 2 < min || text.Length / 2 > max)
        {
            result.AddError(string.Create(CultureInfo.InvariantCulture, $"{name} must be {expected}; got {text.Length} hex digits"));
            return null;
        }

        return Convert.FromHexString(text);
    }

    /// <summary>
    /// <c>--enterprise-key IDENTIFIER:KEY</c> (hex), repeatable: a device's Enterprise Keys, parsed once; an error names the
    /// option and never echoes the value.
    /// </summary>
    public static Option<Sessions.EnterpriseKey[]> EnterpriseKeys(string description) => new("--enterprise-key")
    {
        Description = description,
        HelpName = "ID:KEY",
        Arity = ArgumentArity.ZeroOrMore,
        DefaultValueFactory = _ => [],
        CustomParser = result => ParseEach<Sessions.EnterpriseKey>(result, (string token, out Sessions.EnterpriseKey key) => Sessions.EnterpriseKey.TryParse(token, out key!),
            _ => "--enterprise-key must be IDENTIFIER:KEY in hex, the identifier 1..16 octets and the key not empty"),
    };

    /// <summary>
    /// <c>--enterprise-key EXTERNAL-ID=IDENTIFIER:KEY</c>, repeatable: an EAS's Enterprise Keys by device, parsed once; an
    /// error names the option and the external id, never the key.
    /// </summary>
    public static Option<(string ExternalId, Sessions.EnterpriseKey Key)[]> EnterpriseKeysByDevice(string description) => new("--enterprise-key")
    {
        Description = description,
        HelpName = "EXTERNAL-ID=ID:KEY",
        Arity = ArgumentArity.ZeroOrMore,
        DefaultValueFactory = _ => [],
        CustomParser = result => ParseEach<(string, Sessions.EnterpriseKey)>(result, (string token, out (string, Sessions.EnterpriseKey) entry) =>
        {
            var equals = token.IndexOf('=', StringComparison.Ordinal);
            var ok = Sessions.EnterpriseKey.TryParse(equals > 0 ? token[(equals + 1)..] : string.Empty, out var key);
            entry = ok && equals > 0 ? (token[..equals], key!) : default;
            return ok && equals > 0;
        }, token =>
        {
            var equals = token.IndexOf('=', StringComparison.Ordinal);
            return $"--enterprise-key must be EXTERNAL-ID=IDENTIFIER:KEY in hex, the identifier 1..16 octets (got '{(equals > 0 ? token[..equals] : "?")}=…')";
        }),
    };

    /// <summary><c>--se-key INDEX:KEY</c>, repeatable: secure-element keys by index (0..255, 32 octets each); errors never echo a key.</summary>
    public static Option<(byte Index, byte[] Key)[]> IndexedKeys(string name, string description) => new(name)
    {
        Description = description,
        HelpName = "INDEX:KEY",
        Arity = ArgumentArity.ZeroOrMore,
        DefaultValueFactory = _ => [],
        CustomParser = result => ParseEach<(byte, byte[])>(result, (string token, out (byte, byte[]) entry) =>
        {
            var colon = token.IndexOf(':', StringComparison.Ordinal);
            entry = default;
            if (colon <= 0 || !byte.TryParse(token[..colon], NumberStyles.None, CultureInfo.InvariantCulture, out var index)
                || token.Length - colon - 1 != 64 || !token[(colon + 1)..].All(char.IsAsciiHexDigit))
            {
                return false;
            }

            entry = (index, Convert.FromHexString(token[(colon + 1)..]));
            return true;
        }, token => $"{name} must be INDEX:KEY, the index 0..255 and the key 64 hex digits (32 octets)"),
    };

    private delegate bool TokenParser<T>(string token, out T value);

    /// <summary>Parses every token of a repeatable option; the first bad one is an error (from <paramref name="error"/>) and nothing is kept.</summary>
    private static T[] ParseEach<T>(ArgumentResult result, TokenParser<T> parse, Func<string, string> error)
    {
        var values = new List<T>();
        foreach (var token in result.Tokens)
        {
            if (!parse(token.Value, out var value))
            {
                result.AddError(error(token.Value));
                return [];
            }

            values.Add(value);
        }

        return [.. values];
    }
}
