using System.Security.Cryptography;
using System.Text;
using OpenBest.Crypto;
using OpenBest.Sessions;

namespace OpenBest.Storage;

/// <summary>
/// The master key that encrypts subscriber secrets at rest (AES-256-GCM). Taken from the environment
/// (<c>BEST_MASTER_KEY</c>, 64 hex digits), or from a key file in the data folder that is created on
/// first use with owner-only permissions.
/// </summary>
public sealed class MasterKey : IDisposable
{
    /// <summary>The environment variable that may hold the key (64 hex digits).</summary>
    public const string EnvironmentVariable = "BEST_MASTER_KEY";

    /// <summary>The key file's name in the data folder.</summary>
    public const string FileName = "master.key";

    private const int NonceSize = 12;
    private const int TagSize = 16;
    private readonly AesGcm _aead;
    private readonly Lock _gate = new(); // one platform AEAD context: calls from several threads take turns

    private MasterKey(ReadOnlySpan<byte> key) => _aead = new AesGcm(key, TagSize);

    /// <summary>A key from 32 octets.</summary>
    /// <exception cref="ArgumentException">The key is not 32 octets.</exception>
    public static MasterKey FromBytes(ReadOnlySpan<byte> key) =>
        key.Length == 32 ? new MasterKey(key) : throw new ArgumentException("The master key has 32 octets (64 hex digits).", nameof(key));

    /// <summary>
    /// The key from <c>BEST_MASTER_KEY</c> when set, else from <c>master.key</c> in <paramref name="dataDirectory"/>
    /// (created with 32 random octets and mode 0600 when missing).
    /// </summary>
    /// <exception cref="InvalidOperationException">The variable or file holds something other than 64 hex digits.</exception>
    public static MasterKey Load(string dataDirectory)
    {
        var fromEnvironment = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(fromEnvironment))
        {
            return FromHex(fromEnvironment.Trim(), $"{EnvironmentVariable}");
        }

        Directory.CreateDirectory(dataDirectory);
        var path = Path.Combine(dataDirectory, FileName);
        if (!File.Exists(path))
        {
            CreateKeyFile(path);
        }

        return FromHex(File.ReadAllText(path).Trim(), path);
    }

    /// <summary>Encrypts <paramref name="secret"/>, bound to <paramref name="context"/> (e.g. the IMSI and field): nonce ‖ ciphertext ‖ tag.</summary>
    public byte[] Seal(ReadOnlySpan<byte> secret, string context)
    {
        var output = new byte[NonceSize + secret.Length + TagSize];
        RandomNumberGenerator.Fill(output.AsSpan(0, NonceSize));
        lock (_gate)
        {
            _aead.Encrypt(output.AsSpan(0, NonceSize), secret, output.AsSpan(NonceSize, secret.Length), output.AsSpan(NonceSize + secret.Length), Encoding.UTF8.GetBytes(context));
        }

        return output;
    }

    /// <summary>Decrypts what <see cref="Seal"/> wrote for the same context; null when it does not verify (wrong key, moved or altered row).</summary>
    public SecretBuffer? Open(ReadOnlySpan<byte> sealedValue, string context)
    {
        if (sealedValue.Length < NonceSize + TagSize)
        {
            return null;
        }

        var secret = new SecretBuffer(sealedValue.Length - NonceSize - TagSize);
        try
        {
            lock (_gate)
            {
                _aead.Decrypt(sealedValue[..NonceSize], sealedValue[NonceSize..^TagSize], sealedValue[^TagSize..], secret.WritableSpan, Encoding.UTF8.GetBytes(context));
            }

            return secret;
        }
        catch (AuthenticationTagMismatchException)
        {
            secret.Dispose();
            return null;
        }
    }

    /// <summary>Zeroes the key.</summary>
    public void Dispose() => _aead.Dispose();

    /// <summary>
    /// Writes a new key to a private temporary file and moves it into place without overwriting, so a
    /// concurrent first start or a crash never leaves a partial key file: the loser reads the winner's key.
    /// </summary>
    private static void CreateKeyFile(string path)
    {
        var temporary = path + "." + Guid.NewGuid().ToString("N") + ".tmp";
        var key = RandomNumberGenerator.GetBytes(32);
        var hex = new byte[65];
        try
        {
            for (var i = 0; i < key.Length; i++)
            {
                hex[2 * i] = (byte)"0123456789abcdef"[key[i] >> 4];
                hex[(2 * i) + 1] = (byte)"0123456789abcdef"[key[i] & 0xF];
            }

            hex[64] = (byte)'\n';
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }

            using (var file = new FileStream(temporary, options))
            {
                file.Write(hex);
                file.Flush(flushToDisk: true);
            }

            try
            {
                File.Move(temporary, path, overwrite: false);
            }
            catch (IOException) when (File.Exists(path))
            {
                File.Delete(temporary); // another process created it first: use theirs
            }

            DurableFile.SyncDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
            CryptographicOperations.ZeroMemory(hex);
            if (File.Exists(temporary))
            {
                File.Delete(temporary);
            }
        }
    }

    private static MasterKey FromHex(string hex, string source)
    {
        if (hex.Length != 64 || !hex.All(char.IsAsciiHexDigit))
        {
            throw new InvalidOperationException($"{source} must hold the master key as 64 hex digits (32 octets).");
        }

        var key = Convert.FromHexString(hex);
        try
        {
            return new MasterKey(key);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }
}
