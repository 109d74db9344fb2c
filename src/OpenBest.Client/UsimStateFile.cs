using System.Globalization;
using System.Text;
using System.Text.Json;
using OpenBest.Crypto.Aka;
using OpenBest.Sessions;

namespace OpenBest.Client;

/// <summary>
/// A software USIM's sequence state (SQN_MS and the SEQ_MS array) in a JSON file: written to a private
/// temporary file (mode 0600) and moved into place before CK/IK are used, so a crash never leaves half a state
/// and never lets an SQN be accepted twice.
/// </summary>
public static class UsimStateFile
{
    /// <summary>Reads the state, or a fresh one when <paramref name="path"/> is null or missing.</summary>
    /// <exception cref="InvalidOperationException">The file is not a USIM state; the message names it.</exception>
    public static UsimSequenceState Load(string? path)
    {
        if (path is null || !File.Exists(path))
        {
            return new UsimSequenceState(SqnScheme.Default);
        }

        Saved? saved;
        try
        {
            saved = JsonSerializer.Deserialize<Saved>(File.ReadAllText(path));
        }
        catch (JsonException)
        {
            throw new InvalidOperationException($"{path} is not a USIM state file (JSON).");
        }

        if (saved is null)
        {
            throw new InvalidOperationException($"{path} holds no USIM state.");
        }

        if (saved.SqnMs is not { Length: 12 } || !saved.SqnMs.All(char.IsAsciiHexDigit))
        {
            throw new InvalidOperationException($"{path}: SqnMs must be 12 hex digits.");
        }

        return UsimSequenceState.Restore(new SqnScheme(saved.IndLength), saved.SeqMs ?? [], ulong.Parse(saved.SqnMs, NumberStyles.HexNumber, CultureInfo.InvariantCulture));
    }

    /// <summary>Writes the state atomically (nothing when <paramref name="path"/> is null).</summary>
    public static void Save(string? path, UsimSequenceState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (path is null)
        {
            return;
        }

        var json = JsonSerializer.Serialize(new Saved(state.Scheme.IndLength, state.SqnMs.ToString("x12", CultureInfo.InvariantCulture), [.. state.SeqMsEntries]));
        // Written beside it, synced, renamed over it, and the folder synced: the state survives a power cut.
        DurableFile.Replace(path, Encoding.UTF8.GetBytes(json));
    }

    private sealed record Saved(int IndLength, string SqnMs, ulong[]? SeqMs);
}
