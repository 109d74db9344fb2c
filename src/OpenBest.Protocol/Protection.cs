using System.Security.Cryptography;
using OpenBest.Crypto.Aead;

namespace OpenBest.Protocol;

/// <summary>What opening a protected message found.</summary>
public enum OpenStatus
{
    /// <summary>The tag verified at a fresh counter; the window was updated.</summary>
    Accepted,

    /// <summary>The tag verified at a counter already accepted: do not deliver again, but answer again (rate limited).</summary>
    Duplicate,

    /// <summary>Every candidate counter is below the window: drop silently and count.</summary>
    OutsideWindow,

    /// <summary>The tag did not verify: drop silently and count.</summary>
    TagFailed,

    /// <summary>This end does not hold the key of that plane.</summary>
    NoKey,
}

/// <summary>The outcome of opening a message and the full counter it carried.</summary>
public readonly record struct OpenResult(OpenStatus Status, ulong Counter);

/// <summary>
/// Sealing and opening of EMSDP messages (profile sections 3 and 4).
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item>CP with Key ID ≠ 0: empty plaintext, associated data = header ‖ body (‖ SHA-256 of the Session
/// Request for a Session Start), tag appended.</item>
/// <item>UP integrity: associated data = header ‖ payload, empty plaintext, tag appended.</item>
/// <item>UP confidential: associated data = header, the payload encrypted, tag appended.</item>
/// <item>Nonce: (direction &lt;&lt; 1 | plane), 0, 0, 0, the full counter (8 octets).</item>
/// <item>Receiving: reconstruct the counter, test the window before the tag, update it after; if the tag
/// fails at c try c + 2^(8n) and c + 2·2^(8n), each try counting toward the integrity limit.</item>
/// </list>
/// </remarks>
public static class EmsdpProtection
{
    /// <summary>The largest message this implementation builds (a CP message or a UP message with its tag).</summary>
    public const int MaxMessageLength = 1280;

    /// <summary>Writes a Key ID 0 CP message (Session Request, or a Reject when no key set exists): counter field n = 1, value 0, no tag.</summary>
    public static int WriteUnprotected(uint sessionId, ReadOnlySpan<byte> body, Span<byte> output)
    {
        var header = new EmsdpHeader(Plane.Control, 0, false, sessionId, 1, 0);
        var length = header.Write(output);
        body.CopyTo(output[length..]);
        return length + body.Length;
    }

    /// <summary>Writes header ‖ body ‖ tag of a CP message under <paramref name="keys"/> at <paramref name="counter"/>.</summary>
    /// <exception cref="InvalidOperationException">This end has no CP key.</exception>
    public static int SealControl(KeySet keys, Direction direction, uint sessionId, int counterLength, ulong counter, ReadOnlySpan<byte> body, ReadOnlySpan<byte> requestHash, Span<byte> output)
    {
        ArgumentNullException.ThrowIfNull(keys);
        var key = keys.KeyFor(Plane.Control) ?? throw new InvalidOperationException("This end holds no control-plane key.");
        var header = new EmsdpHeader(Plane.Control, keys.KeyId, false, sessionId, counterLength, counter);
        var headerLength = header.Write(output);
        body.CopyTo(output[headerLength..]);
        var authenticated = headerLength + body.Length;

        Span<byte> nonce = stackalloc byte[CipherSuite.NonceSize];
        CipherSuite.WriteNonce(direction, Plane.Control, counter, nonce);
        Span<byte> ad = stackalloc byte[authenticated + requestHash.Length];
        output[..authenticated].CopyTo(ad);
        requestHash.CopyTo(ad[authenticated..]);
        keys.MessagesSealed++;
        return authenticated + keys.Suite.Seal(key, nonce, Plane.Control, ad, default, output[authenticated..]);
    }

    /// <summary>Writes header ‖ payload-or-ciphertext ‖ tag of a UP message.</summary>
    /// <exception cref="InvalidOperationException">This end has no UP key.</exception>
    public static int SealUser(KeySet keys, Direction direction, uint sessionId, int counterLength, ulong counter, bool ackRequested, ReadOnlySpan<byte> payload, Span<byte> output)
    {
        ArgumentNullException.ThrowIfNull(keys);
        var key = keys.KeyFor(Plane.User) ?? throw new InvalidOperationException("This end holds no user-plane key.");
        var header = new EmsdpHeader(Plane.User, keys.KeyId, ackRequested, sessionId, counterLength, counter);
        var headerLength = header.Write(output);
        Span<byte> nonce = stackalloc byte[CipherSuite.NonceSize];
        CipherSuite.WriteNonce(direction, Plane.User, counter, nonce);
        keys.MessagesSealed++;
        if (keys.IsConfidential)
        {
            return headerLength + keys.Suite.Seal(key, nonce, Plane.User, output[..headerLength], payload, output[headerLength..]);
        }

        payload.CopyTo(output[headerLength..]);
        var authenticated = headerLength + payload.Length;
        return authenticated + keys.Suite.Seal(key, nonce, Plane.User, output[..authenticated], default, output[authenticated..]);
    }

    /// <summary>Verifies a received CP message under <paramref name="keys"/> (sent in <paramref name="direction"/>).</summary>
    public static OpenResult OpenControl(KeySet keys, Direction direction, in EmsdpFrame frame, ReadOnlySpan<byte> requestHash = default)
    {
        ArgumentNullException.ThrowIfNull(keys);
        var key = keys.KeyFor(Plane.Control);
        if (key is null)
        {
            return new OpenResult(OpenStatus.NoKey, 0);
        }

        var authenticated = frame.Header.Length + frame.Body.Length;
        Span<byte> ad = stackalloc byte[authenticated + requestHash.Length];
        frame.Message[..authenticated].CopyTo(ad);
        requestHash.CopyTo(ad[authenticated..]);
        return Open(keys, key, direction, Plane.Control, frame, ad, default, default);
    }

    /// <summary>
    /// Verifies (and decrypts) a received UP message into <paramref name="payload"/> (at least the body's length).
    /// On any status but <see cref="OpenStatus.Accepted"/> or <see cref="OpenStatus.Duplicate"/>, <paramref name="payload"/> is zeroed.
    /// </summary>
    public static OpenResult OpenUser(KeySet keys, Direction direction, in EmsdpFrame frame, Span<byte> payload)
    {
        ArgumentNullException.ThrowIfNull(keys);
        var key = keys.KeyFor(Plane.User);
        if (key is null)
        {
            return new OpenResult(OpenStatus.NoKey, 0);
        }

        if (payload.Length < frame.Body.Length)
        {
            throw new ArgumentException("The payload span is shorter than the message body.", nameof(payload));
        }

        var body = payload[..frame.Body.Length];
        if (keys.IsConfidential)
        {
            return Open(keys, key, direction, Plane.User, frame, frame.Header, frame.Body, body);
        }

        var result = Open(keys, key, direction, Plane.User, frame, frame.Message[..(frame.Header.Length + frame.Body.Length)], default, default);
        if (result.Status is OpenStatus.Accepted or OpenStatus.Duplicate)
        {
            frame.Body.CopyTo(body);
        }
        else
        {
            CryptographicOperations.ZeroMemory(body);
        }

        return result;
    }

    private static OpenResult Open(KeySet keys, AeadKey key, Direction direction, Plane plane, in EmsdpFrame frame, ReadOnlySpan<byte> associatedData, ReadOnlySpan<byte> ciphertext, Span<byte> plaintext)
    {
        ref var window = ref keys.ReceiveWindow(plane);
        var first = window.Reconstruct(frame.CounterField, frame.CounterLength);
        var modulus = 1UL << (8 * frame.CounterLength);
        Span<byte> nonce = stackalloc byte[CipherSuite.NonceSize];
        Span<byte> sealedBody = stackalloc byte[ciphertext.Length + frame.Tag.Length];
        ciphertext.CopyTo(sealedBody);
        frame.Tag.CopyTo(sealedBody[ciphertext.Length..]);
        var tried = false;
        for (var attempt = 0UL; attempt < 3; attempt++)
        {
            var counter = first + (attempt * modulus);
            if (counter > ReplayWindow.MaxCounter)
            {
                break;
            }

            var duplicate = window.WasAccepted(counter);
            if (!duplicate && !window.IsAcceptable(counter))
            {
                continue;
            }

            tried = true;
            CipherSuite.WriteNonce(direction, plane, counter, nonce);
            if (!keys.Suite.Open(key, nonce, plane, associatedData, sealedBody, plaintext))
            {
                keys.TagFailures++;
                continue;
            }

            if (duplicate)
            {
                return new OpenResult(OpenStatus.Duplicate, counter);
            }

            window.Accept(counter);
            return new OpenResult(OpenStatus.Accepted, counter);
        }

        CryptographicOperations.ZeroMemory(plaintext);
        return new OpenResult(tried ? OpenStatus.TagFailed : OpenStatus.OutsideWindow, first);
    }
}
