using System.Security.Cryptography;
using BclAesGcm = System.Security.Cryptography.AesGcm;

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
