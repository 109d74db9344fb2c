using Microsoft.Extensions.Configuration;

namespace OpenBest.EasInterface;

/// <summary>
/// The settings convention of OpenBest's hosts (<c>best hse</c>, <c>best obf serve</c>): the defaults, then a JSON file (one
/// section per host), then <c>BEST_</c> environment variables, then the command line, each overriding the one before; an
/// unknown setting in any of them is an error that names it.
/// </summary>
public static class LayeredSettings
{
    /// <summary>
    /// Reads the layers into one section: <paramref name="jsonFile"/> (or ./appsettings.json when present), the variables of
    /// <paramref name="environment"/> (the process's when null) named by <paramref name="environmentName"/>, then
    /// <paramref name="commandLine"/> (setting name → value).
    /// </summary>
    /// <param name="section">The section name, e.g. "Hse".</param>
    /// <param name="names">Every known setting.</param>
    /// <param name="environmentName">A setting's environment variable.</param>
    /// <param name="jsonFile">The JSON file given with --config, or null.</param>
    /// <param name="commandLine">The options given.</param>
    /// <param name="environment">The environment, or null for the process's.</param>
    /// <param name="invalid">Makes the host's exception from a one-line message.</param>
    /// <returns>The merged section, and where the values came from ("defaults &lt; file &lt; environment &lt; command line").</returns>
    public static (IConfigurationSection Section, string Sources) Read(string section, IReadOnlyCollection<string> names, Func<string, string> environmentName,
        string? jsonFile, IReadOnlyDictionary<string, string?> commandLine, IDictionary<string, string?>? environment, Func<string, Exception> invalid)
    {
        ArgumentNullException.ThrowIfNull(names);
        ArgumentNullException.ThrowIfNull(environmentName);
        ArgumentNullException.ThrowIfNull(commandLine);
        ArgumentNullException.ThrowIfNull(invalid);
        var builder = new ConfigurationBuilder();
        var sources = new List<string> { "defaults" };
        var json = jsonFile ?? (File.Exists("appsettings.json") ? Path.GetFullPath("appsettings.json") : null);
        if (json is not null)
        {
            if (!File.Exists(json))
            {
                throw invalid($"--config: {json} does not exist");
            }

            try
            {
                builder.AddJsonFile(json, optional: false, reloadOnChange: false);
                builder.Build();
            }
            catch (Exception e) when (e is FormatException or InvalidDataException or System.Text.Json.JsonException)
            {
                throw invalid($"{json}: not valid JSON ({e.Message.ReplaceLineEndings(" ")})");
            }

            sources.Add(json);
        }

        var env = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        var variables = environment ?? Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>().ToDictionary(e => (string)e.Key, e => (string?)e.Value);
        foreach (var name in names)
        {
            if (variables.TryGetValue(environmentName(name), out var value) && !string.IsNullOrEmpty(value))
            {
                env[$"{section}:{name}"] = value;
            }
        }

        if (env.Count > 0)
        {
            builder.AddInMemoryCollection(env);
            sources.Add("environment");
        }

        if (commandLine.Count > 0)
        {
            builder.AddInMemoryCollection(commandLine.Where(p => p.Value is not null).Select(p => new KeyValuePair<string, string?>($"{section}:{p.Key}", p.Value)));
            sources.Add("command line");
        }

        var merged = builder.Build().GetSection(section);
        var known = names.ToHashSet(StringComparer.OrdinalIgnoreCase);
        foreach (var child in merged.GetChildren())
        {
            if (!known.Contains(child.Key))
            {
                throw invalid($"{section}:{child.Key}: unknown setting (known: {string.Join(", ", known)})");
            }
        }

        return (merged, string.Join(" < ", sources));
    }

    /// <summary>A setting's environment variable: <paramref name="prefix"/> and the name in upper snake case (DataDir → BEST_DATA_DIR).</summary>
    public static string EnvironmentName(string prefix, string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var text = new System.Text.StringBuilder(prefix);
        for (var i = 0; i < name.Length; i++)
        {
            if (i > 0 && char.IsUpper(name[i]))
            {
                text.Append('_');
            }

            text.Append(char.ToUpperInvariant(name[i]));
        }

        return text.ToString();
    }
}
