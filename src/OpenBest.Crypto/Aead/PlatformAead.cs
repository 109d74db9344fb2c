using System.Security.Cryptography;
using BclAesGcm = System.Security.Cryptography.AesGcm;
using BclChaCha = System.Security.Cryptography.ChaCha20Poly1305;

namespace OpenBest.Crypto.Aead;

/// <summary>
/// An AES-GCM key on the platform's <c>AesGcm</c>, for processes without AES-NI and PCLMULQDQ
/// (<see cref="Aes128GcmAlgorithm.IsHardwareAccelerated"/>). The base class keeps the pinned copy that
/// <see cref="AeadKey.Export"/> returns.
/// </summary>
internal sealed class PlatformAesGcmKey(AeadAlgorithm algorithm, ReadOnlySpan<byte> key, int tagSize) : AeadKey(algorithm)
{
    // The platform object keeps its own copy of the key and zeroes it when disposed.
    private readonly BclAesGcm _gcm = new(key, tagSize);

    internal override void EncryptCore(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> plaintext, Span<byte> ciphertext, Span<byte> tag, ReadOnlySpan<byte> associatedData)
        => _gcm.Encrypt(nonce, plaintext, ciphertext, tag, associatedData);

    internal override bool DecryptCore(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> ciphertext, ReadOnlySpan<byte> tag, Span<byte> plaintext, ReadOnlySpan<byte> associatedData)
    {
        try
        {
            _gcm.Decrypt(nonce, ciphertext, tag, plaintext, associatedData);
            return true;
        }
        catch (AuthenticationTagMismatchException)
        {
            return false;
        }
    }

    protected override void Dispose(bool disposing) => _gcm.Dispose();
}

internal sealed class ChaCha20Poly1305Algorithm : AeadAlgorithm
{
    public override string Name => "ChaCha20-Poly1305";

    public override int KeySize => 32;

    public override int NonceSize => 12;

    public override bool IsSupported => BclChaCha.IsSupported;

    public override bool IsTagSizeSupported(int size) => size == 16;

    private protected override AeadKey CreateKeyCore(ReadOnlySpan<byte> key) => new Key(this, key);

    private sealed class Key(AeadAlgorithm algorithm, ReadOnlySpan<byte> key) : AeadKey(algorithm)
    {
        private readonly BclChaCha _aead = new(key);

        internal override void EncryptCore(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> plaintext, Span<byte> ciphertext, Span<byte> tag, ReadOnlySpan<byte> associatedData)
            => _aead.Encrypt(nonce, plaintext, ciphertext, tag, associatedData);

        internal override bool DecryptCore(ReadOnlySpan<byte> nonce, ReadOnlySpan<byte> ciphertext, ReadOnlySpan<byte> tag, Span<byte> plaintext, ReadOnlySpan<byte> associatedData)
        {
            try
            {
                _aead.Decrypt(nonce, ciphertext, tag, plaintext, associatedData);
                return true;
            }
            catch (AuthenticationTagMismatchException)
            {
                return false;
            }
        }

        protected override void Dispose(bool disposing) => _aead.Dispose();
    }
}
