using System.CommandLine;
using System.Globalization;
using System.Numerics;

namespace OpenBest.Cli;

/// <summary>The command line's common rules on option values, each with its one-line error.</summary>
internal static class OptionRules
{
    /// <summary>The value must be <paramref name="min"/>..<paramref name="max"/>: "--NAME must be MIN..MAX [UNIT]" otherwise.</summary>
    public static Option<T> Within<T>(this Option<T> option, T min, T max, string? unit = null)
        where T : struct, INumber<T>
    {
        ArgumentNullException.ThrowIfNull(option);
        option.Validators.Add(r =>
        {
            var value = r.GetValueOrDefault<T>();
            if (value < min || value > max)
            {
                r.AddError(string.Create(CultureInfo.InvariantCulture, $"{option.Name} must be {min}..{max}{(unit is null ? string.Empty : " " + unit)}"));
            }
        });
        return option;
    }
}
