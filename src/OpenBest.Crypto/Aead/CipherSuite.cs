using System.Buffers.Binary;

namespace OpenBest.Crypto.Aead;

/// <summary>The plane a message belongs to (EMSDP header bit P, profile section 2).</summary>
public enum Plane
{
    /// <summary>Control plane (P = 0).</summary>
    Control = 0,

    /// <summary>User plane (P = 1).</summary>
    User = 1,
}

/// <summary>The direction of a message (profile section 3).</summary>
public enum Direction
{
    /// <summary>UE to network (HSE or EAS).</summary>
    Uplink = 0,

    /// <summary>Network to UE.</summary>
    Downlink = 1,
}

/// <summary>
/// A cipher suite of EMSDP wire profile 1 (section 4): the AEAD, the key size and the tag size on each plane.
/// </summary>
/// <remarks>
/// <code>
/// | ID | Suite             | Key | UP tag | CP tag | bitmap |
/// |  1 | AES-128-CCM       | 16  |   8    |   8    | 0x01   |
/// |  2 | AES-128-CCM       | 16  |   4    |   8    | 0x02   |
/// |  3 | AES-128-GCM       | 16  |  16    |  16    | 0x04   |
/// |  4 | ChaCha20-Poly1305 | 32  |  16    |  16    | 0x08   |
/// </code>
/// Every suite takes the profile's 12-octet nonce; AES-CCM runs on the 13-octet nonce 0x00 ‖ nonce12.
/// </remarks>
public sealed class CipherSuite
{
    /// <summary>The size of the profile nonce in octets.</summary>
    public const int NonceSize = 12;

    private static readonly CipherSuite[] All =
    [
        new(1, "AES-128-CCM-8", AeadAlgorithm.Aes128Ccm, 8, 8),
        new(2, "AES-128-CCM-4/8", AeadAlgorithm.Aes128Ccm, 4, 8),
        new(3, "AES-128-GCM", AeadAlgorithm.Aes128Gcm, 16, 16),
        new(4, "ChaCha20-Poly1305", AeadAlgorithm.ChaCha20Poly1305, 16, 16),
    ];

    private CipherSuite(byte id, string name, AeadAlgorithm algorithm, int userPlaneTagSize, int controlPlaneTagSize)
    {
        Id = id;
        Name = name;
        Algorithm = algorithm;
        UserPlaneTagSize = userPlaneTagSize;
        ControlPlaneTagSize = controlPlaneTagSize;
    }

    /// <summary>Suite 1: AES-128-CCM with 8-octet tags (mandatory to implement).</summary>
    public static CipherSuite Aes128Ccm8 => All[0];

    /// <summary>Suite 2: AES-128-CCM with a 4-octet UP tag and an 8-octet CP tag (lowest overhead).</summary>
    public static CipherSuite Aes128Ccm4 => All[1];

    /// <summary>Suite 3: AES-128-GCM with 16-octet tags.</summary>
    public static CipherSuite Aes128Gcm => All[2];

    /// <summary>Suite 4: ChaCha20-Poly1305 with 16-octet tags (devices without AES hardware).</summary>
    public static CipherSuite ChaCha20Poly1305 => All[3];

    /// <summary>Every suite, by ID.</summary>
    public static IReadOnlyList<CipherSuite> Suites => All;

    /// <summary>The suite ID (1..4).</summary>
    public byte Id { get; }

    /// <summary>A readable name.</summary>
    public string Name { get; }

    /// <summary>The AEAD.</summary>
    public AeadAlgorithm Algorithm { get; }

    /// <summary>The key size in octets (16, or 32 for suite 4); also the length taken for K_E2M* and K_E2E*.</summary>
    public int KeySize => Algorithm.KeySize;

    /// <summary>The user-plane tag size.</summary>
    public int UserPlaneTagSize { get; }

    /// <summary>The control-plane tag size.</summary>
    public int ControlPlaneTagSize { get; }

    /// <summary>The suite's bit in the UE configuration's suites bitmap: 1 &lt;&lt; (ID − 1).</summary>
    public byte BitmapBit => (byte)(1 << (Id - 1));

    /// <summary>Finds a suite by ID.</summary>
    public static bool TryGet(byte id, out CipherSuite suite)
    {
        if (id is >= 1 and <= 4)
        {
            suite = All[id - 1];
            return true;
        }

        suite = null!;
        return false;
    }

    /// <summary>The tag size on <paramref name="plane"/>.</summary>
    public int TagSize(Plane plane) => plane == Plane.User ? UserPlaneTagSize : ControlPlaneTagSize;

    /// <summary>Imports a key for this suite.</summary>
    public AeadKey CreateKey(ReadOnlySpan<byte> key) => Algorithm.CreateKey(key);

    /// <summary>
    /// The profile nonce (section 3): octet 0 = (direction &lt;&lt; 1) | plane, octets 1..3 = 0,
    /// octets 4..11 = the full counter big-endian.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="nonce"/> is shorter than 12 octets.</exception>
    public static void WriteNonce(Direction direction, Plane plane, ulong counter, Span<byte> nonce)
    {
        if (nonce.Length < NonceSize)
        {
            throw new ArgumentException($"The profile nonce has {NonceSize} octets.", nameof(nonce));
        }

        nonce[0] = (byte)(((int)direction << 1) | (int)plane);
        nonce[1] = 0;
        nonce[2] = 0;
        nonce[3] = 0;
        BinaryPrimitives.WriteUInt64BigEndian(nonce[4..], counter);
    }

    /// <summary>
    /// Seals: writes the ciphertext of <paramref name="plaintext"/> followed by the plane's tag into
    /// <paramref name="output"/> (plaintext length + tag size octets) and returns the number written.
    /// With an empty plaintext this is the integrity-only tag over <paramref name="associatedData"/>.
    /// </summary>
    public int Seal(AeadKey key, ReadOnlySpan<byte> nonce12, Plane plane, ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> plaintext, Span<byte> output)
    {
        var tagSize = TagSize(plane);
        if (output.Length < plaintext.Length + tagSize)
        {
            throw new ArgumentException("The output span is too short for the ciphertext and tag.", nameof(output));
        }

        Span<byte> nonce = stackalloc byte[Aes128CcmAlgorithm.Nonce];
        var native = NativeNonce(nonce12, nonce);
        Algorithm.Encrypt(key, native, plaintext, output[..plaintext.Length], output.Slice(plaintext.Length, tagSize), associatedData);
        return plaintext.Length + tagSize;
    }

    /// <summary>
    /// Opens what <see cref="Seal"/> wrote: <paramref name="sealed"/> is ciphertext ‖ tag. Returns
    /// <see langword="false"/>, with <paramref name="plaintext"/> zeroed, when the tag does not verify.
    /// </summary>
    public bool Open(AeadKey key, ReadOnlySpan<byte> nonce12, Plane plane, ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> @sealed, Span<byte> plaintext)
    {
        var tagSize = TagSize(plane);
        if (@sealed.Length < tagSize)
        {
            return false;
        }

        var length = @sealed.Length - tagSize;
        if (plaintext.Length < length)
        {
            throw new ArgumentException("The plaintext span is too short.", nameof(plaintext));
        }

        Span<byte> nonce = stackalloc byte[Aes128CcmAlgorithm.Nonce];
        var native = NativeNonce(nonce12, nonce);
        return Algorithm.Decrypt(key, native, @sealed[..length], @sealed[length..], plaintext[..length], associatedData);
    }

    /// <summary>The suite's name and ID.</summary>
    public override string ToString() => $"{Name} (suite {Id})";

    private ReadOnlySpan<byte> NativeNonce(ReadOnlySpan<byte> nonce12, Span<byte> scratch13)
    {
        if (nonce12.Length != NonceSize)
        {
            throw new ArgumentException($"The profile nonce has {NonceSize} octets, not {nonce12.Length}.", nameof(nonce12));
        }

        if (Algorithm.NonceSize == Aes128CcmAlgorithm.Nonce)
        {
            scratch13[0] = 0;
            nonce12.CopyTo(scratch13[1..]);
            return scratch13;
        }

        return nonce12;
    }
}
