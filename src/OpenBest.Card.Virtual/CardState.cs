using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using OpenBest.Sessions;

namespace OpenBest.Card.Virtual;

/// <summary>One key slot of the OBF secure element.</summary>
internal sealed class KeySlot
{
    public byte Index { get; set; }

    public KeyOrigin Origin { get; set; }

    public byte[] Key { get; set; } = [];

    /// <summary>The last counter the card sealed under this key (device → server).</summary>
    public ulong DeviceCounter { get; set; }

    /// <summary>The highest counter the card accepted from a server under this key.</summary>
    public ulong ServerCounter { get; set; }

    /// <summary>SHA-256 fingerprints (hex) of keys this slot held before: one never comes back, or its counters would start again.</summary>
    public List<string> Retired { get; set; } = [];
}

/// <summary>A Ks_int_NAF the card derived (EF_GBANL's record and the key it names).</summary>
internal sealed class NafEntry
{
    public byte[] NafId { get; set; } = [];

    public string BTid { get; set; } = string.Empty;

    public byte[] KsIntNaf { get; set; } = [];
}

/// <summary>Everything a card keeps between power cycles. Serialised whole and sealed; see <see cref="CardStateFile"/>.</summary>
internal sealed class CardState
{
    public string Imsi { get; set; } = string.Empty;

    public string Iccid { get; set; } = string.Empty;

    public int IndLength { get; set; } = 5;

    public ulong SqnMs { get; set; }

    public ulong[] SeqMs { get; set; } = [];

    /// <summary>Ks = CK ‖ IK of the last GBA bootstrap (empty when none).</summary>
    public byte[] Ks { get; set; } = [];

    public byte[] GbaRand { get; set; } = [];

    /// <summary>EF_GBABP's content as the ME last wrote it (the card writes RAND at bootstrap).</summary>
    public byte[] Gbabp { get; set; } = [];

    public List<NafEntry> Naf { get; set; } = [];

    public List<KeySlot> Slots { get; set; } = [];

    public ulong ServerKeySequence { get; set; }

    public string ServerEndpoint { get; set; } = string.Empty;

    public byte[] ServerPublicKey { get; set; } = [];

    /// <summary>The OTA key set of the remote file management application (TS 102 225/226): KIc (AES-CBC) and KID (AES-CMAC).</summary>
    public byte[] OtaKic { get; set; } = [];

    public byte[] OtaKid { get; set; } = [];

    public byte OtaKeyVersion { get; set; }

    /// <summary>The highest CNTR accepted per TAR (hex), TS 102 225 5.1.1.</summary>
    public Dictionary<string, ulong> OtaCounters { get; set; } = [];

    /// <summary>EF_SPN (17 octets: display condition, then the name, 'FF'-padded); remote file management may update it.</summary>
    public byte[] Spn { get; set; } = [];
}

/// <summary>
/// The card's state file: <c>"OBCARD01" ‖ nonce (12) ‖ AES-256-GCM(JSON state) ‖ tag (16)</c>, under a key derived from K
/// and OPc (HMAC-SHA-256(K ‖ OPc, "OpenBest card state")), so the file is useless without the card's secret and a file
/// of another card is refused. Written beside the old one, synced and renamed over it: a torn write never leaves half a state.
/// </summary>
internal static class CardStateFile
{
    private static readonly byte[] Magic = "OBCARD01"u8.ToArray();

    /// <summary>Reads the state; null when the file does not exist.</summary>
    /// <exception cref="InvalidOperationException">The file is not a card state or belongs to another card; the message names it.</exception>
    public static CardState? Load(string path, ReadOnlySpan<byte> k, ReadOnlySpan<byte> opc)
    {
        if (!File.Exists(path))
        {
            return null;
        }

        var sealedState = File.ReadAllBytes(path);
        if (sealedState.Length < Magic.Length + 12 + 16 || !sealedState.AsSpan(0, Magic.Length).SequenceEqual(Magic))
        {
            throw new InvalidOperationException($"{path} is not a card state file.");
        }

        var key = StateKey(k, opc);
        var plain = new byte[sealedState.Length - Magic.Length - 28];
        try
        {
            using var aes = new AesGcm(key, 16);
            aes.Decrypt(sealedState.AsSpan(Magic.Length, 12), sealedState.AsSpan(Magic.Length + 12, plain.Length), sealedState.AsSpan(sealedState.Length - 16), plain, Magic);
            return JsonSerializer.Deserialize<CardState>(plain) ?? throw new InvalidOperationException($"{path} holds no card state.");
        }
        catch (AuthenticationTagMismatchException)
        {
            throw new InvalidOperationException($"{path} belongs to a card with another K or OPc, or is damaged.");
        }
        catch (JsonException)
        {
            throw new InvalidOperationException($"{path} holds a card state this version cannot read.");
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
            CryptographicOperations.ZeroMemory(plain);
        }
    }

    /// <summary>Writes the state atomically and durably.</summary>
    public static void Save(string path, CardState state, ReadOnlySpan<byte> k, ReadOnlySpan<byte> opc)
    {
        var plain = JsonSerializer.SerializeToUtf8Bytes(state);
        var key = StateKey(k, opc);
        var sealedState = new byte[Magic.Length + 12 + plain.Length + 16];
        try
        {
            Magic.CopyTo(sealedState, 0);
            RandomNumberGenerator.Fill(sealedState.AsSpan(Magic.Length, 12));
            using var aes = new AesGcm(key, 16);
            aes.Encrypt(sealedState.AsSpan(Magic.Length, 12), plain, sealedState.AsSpan(Magic.Length + 12, plain.Length), sealedState.AsSpan(sealedState.Length - 16), Magic);
            DurableFile.Replace(path, sealedState);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
            CryptographicOperations.ZeroMemory(plain);
        }
    }

    private static byte[] StateKey(ReadOnlySpan<byte> k, ReadOnlySpan<byte> opc)
    {
        Span<byte> secret = stackalloc byte[k.Length + opc.Length];
        k.CopyTo(secret);
        opc.CopyTo(secret[k.Length..]);
        try
        {
            return HMACSHA256.HashData(secret, Encoding.ASCII.GetBytes("OpenBest card state"));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
        }
    }
}
