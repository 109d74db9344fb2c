using System.Security.Cryptography;

namespace OpenBest.Crypto.Aead;

/// <summary>
/// An authenticated encryption algorithm with associated data: an immutable descriptor that carries
/// its sizes and creates keys (the shape of NSec's <c>AeadAlgorithm</c>, built on the BCL primitives
/// and on <see cref="Aes128"/> for CCM).
/// </summary>
/// <remarks>
/// <para>Encryption writes the ciphertext (as long as the plaintext) and the tag into separate spans; the
/// tag span's length selects the tag size. Decryption returns <see langword="false"/> when the tag does
/// not verify, compares the tag in fixed time, and zeroes the plaintext span before returning.</para>
/// <para>Misuse (wrong key type, wrong nonce or tag size, mismatched lengths) throws <see cref="ArgumentException"/>.</para>
/// </remarks>
public abstract class AeadAlgorithm
{
    private protected AeadAlgorithm()
    {
    }

    /// <summary>AES-128 in CCM mode (NIST SP 800-38C, RFC 3610) with a 13-octet nonce; tags of 4..16 octets (even).</summary>
    public static AeadAlgorithm Aes128Ccm { get; } = new Aes128CcmAlgorithm();

    /// <summary>AES-128 in GCM mode (NIST SP 800-38D) with a 12-octet nonce and a 16-octet tag.</summary>
    public static AeadAlgorithm Aes128Gcm { get; } = new Aes128GcmAlgorithm();

    /// <summary>ChaCha20-Poly1305 (RFC 8439) with a 12-octet nonce and a 16-octet tag.</summary>
    public static AeadAlgorithm ChaCha20Poly1305 { get; } = new ChaCha20Poly1305Algorithm();

    /// <summary>The algorithm's name.</summary>
    public abstract string Name { get; }

    /// <summary>The key size in octets.</summary>
    public abstract int KeySize { get; }

    /// <summary>The nonce size in octets.</summary>
    public abstract int NonceSize { get; }

    /// <summary>Whether this platform can run the algorithm.</summary>
    public abstract bool IsSupported { get; }

    /// <summary>Whether a tag of <paramref name="size"/> octets is allowed.</summary>
    public abstract bool IsTagSizeSupported(int size);

    /// <summary>Imports <paramref name="key"/> into a key handle for this algorithm; dispose it to zero the key.</summary>
    /// <exception cref="ArgumentException">The key has the wrong size.</exception>
    /// <exception cref="PlatformNotSupportedException">The platform lacks the algorithm.</exception>
    public AeadKey CreateKey(ReadOnlySpan<byte> key)
    {
        if (key.Length != KeySize)
        {
            throw new ArgumentException($"{Name} takes a {KeySize}-octet key, not {key.Length}.", nameof(key));
        }

        var handle = CreateKeyCore(key);
        if (!handle.ExportsItself)
        {
            // Pinned, so the GC never leaves a moved copy of the key behind; zeroed on dispose.
            handle.Raw = PinnedArrays<byte>.Rent(key.Length);
            key.CopyTo(handle.Raw);
        }

        return handle;
    }

    /// <summary>Encrypts <paramref name="plaintext"/> into <paramref name="ciphertext"/> and writes the tag (its span's length is the tag size).</summary>
    /// <exception cref="ArgumentException">The key belongs to another algorithm, or a size is wrong.</exception>
    public void Encrypt(AeadKey key, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> plaintext, Span<byte> ciphertext, Span<byte> tag, ReadOnlySpan<byte> associatedData = default)
    {
        Validate(key, nonce, plaintext.Length, ciphertext.Length, tag.Length);
        key.EncryptCore(nonce, plaintext, ciphertext, tag, associatedData);
    }

    /// <summary>
    /// Verifies <paramref name="tag"/> and decrypts <paramref name="ciphertext"/> into <paramref name="plaintext"/>.
    /// Returns <see langword="false"/> (with <paramref name="plaintext"/> zeroed) when the tag does not verify.
    /// </summary>
    /// <exception cref="ArgumentException">The key belongs to another algorithm, or a size is wrong.</exception>
    public bool Decrypt(AeadKey key, ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> ciphertext, ReadOnlySpan<byte> tag, Span<byte> plaintext, ReadOnlySpan<byte> associatedData = default)
    {
        Validate(key, nonce, ciphertext.Length, plaintext.Length, tag.Length);
        if (key.DecryptCore(nonce, ciphertext, tag, plaintext, associatedData))
        {
            return true;
        }

        CryptographicOperations.ZeroMemory(plaintext);
        return false;
    }

    /// <summary>The algorithm's name.</summary>
    public override string ToString() => Name;

    private protected abstract AeadKey CreateKeyCore(ReadOnlySpan<byte> key);

    private void Validate(AeadKey key, ReadOnlySpan<byte> nonce, int inputLength, int outputLength, int tagLength)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (!ReferenceEquals(key.Algorithm, this))
        {
            throw new ArgumentException($"The key is a {key.Algorithm.Name} key, not a {Name} key.", nameof(key));
        }

        if (nonce.Length != NonceSize)
        {
            throw new ArgumentException($"{Name} takes a {NonceSize}-octet nonce, not {nonce.Length}.", nameof(nonce));
        }

        if (inputLength != outputLength)
        {
            throw new ArgumentException("The output span must be as long as the input.");
        }

        if (!IsTagSizeSupported(tagLength))
        {
            throw new ArgumentException($"{Name} does not support a {tagLength}-octet tag.");
        }
    }
}

/// <summary>A key imported into an <see cref="AeadAlgorithm"/>; <see cref="Dispose()"/> zeroes it. Not thread-safe.</summary>
public abstract class AeadKey : IDisposable
{
    private protected AeadKey(AeadAlgorithm algorithm) => Algorithm = algorithm;

    /// <summary>The algorithm the key belongs to.</summary>
    public AeadAlgorithm Algorithm { get; }

    internal byte[] Raw { get; set; } = [];

    /// <summary>
    /// Copies the key into <paramref name="destination"/> (its <see cref="AeadAlgorithm.KeySize"/> octets): only to
    /// seal it at rest, never to show it.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The key was disposed.</exception>
    public void Export(Span<byte> destination)
    {
        if (ExportsItself)
        {
            ExportCore(destination);
            return;
        }

        ObjectDisposedException.ThrowIf(Raw.Length == 0, this);
        Raw.CopyTo(destination);
    }

    /// <summary>Whether the key can give its bytes back itself (no copy is kept beside it).</summary>
    internal virtual bool ExportsItself => false;

    /// <summary>Copies the key when <see cref="ExportsItself"/>.</summary>
    internal virtual void ExportCore(Span<byte> destination) => throw new NotSupportedException();

    /// <summary>Zeroes the key.</summary>
    public void Dispose()
    {
        var raw = Raw;
        Raw = [];
        PinnedArrays<byte>.Return(raw); // zeroed there
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Never shows the key.</summary>
    public override string ToString() => $"AeadKey({Algorithm.Name})";

    /// <summary>Releases and zeroes the key material.</summary>
    protected abstract void Dispose(bool disposing);

    internal abstract void EncryptCore(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> plaintext, Span<byte> ciphertext, Span<byte> tag, ReadOnlySpan<byte> associatedData);

    internal abstract bool DecryptCore(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> ciphertext, ReadOnlySpan<byte> tag, Span<byte> plaintext, ReadOnlySpan<byte> associatedData);
}
