using System.Buffers.Binary;

namespace OpenBest.Dtls;

/// <summary>
/// Reads the PSK identities a client presents from its plaintext handshake records, before the TLS engine sees them, so
/// that the server can look the key up asynchronously (the engine asks for it synchronously). It reassembles handshake
/// messages across records and reports the identities of a ClientHello's pre_shared_key extension (TLS 1.3, RFC 8446
/// 4.2.11; only when the ClientHello offers TLS 1.3) and of a ClientKeyExchange (TLS 1.2, RFC 4279 2: psk_identity is
/// its first field, also for DHE_PSK and ECDHE_PSK). It never rejects anything: what it cannot read, the engine refuses.
/// </summary>
internal sealed class HandshakeReader
{
    private const byte Handshake = 22;
    private const byte ApplicationData = 23;
    private const byte ClientHello = 1;
    private const byte ClientKeyExchange = 16;
    private const int MaxMessage = 1 << 16;

    private byte[] _messages = new byte[1024];
    private int _length;

    /// <summary>Whether the reader stopped (it saw the ClientKeyExchange, an encrypted record, or something it cannot follow).</summary>
    public bool Done { get; private set; }

    /// <summary>Feeds one whole record; returns the identities found in the handshake messages it completed.</summary>
    /// <param name="record">A record: 5-octet header and fragment.</param>
    /// <returns>Each identity, and whether it came from a TLS 1.3 ClientHello (else from a TLS 1.2 ClientKeyExchange).</returns>
    public List<(byte[] Identity, bool Tls13)> Feed(ReadOnlySpan<byte> record)
    {
        var found = new List<(byte[], bool)>();
        if (Done)
        {
            return found;
        }

        if (record[0] == ApplicationData)
        {
            Done = true; // TLS 1.3 encrypted records: the ClientHello was all there was to read
            return found;
        }

        if (record[0] != Handshake)
        {
            return found; // change_cipher_spec (TLS 1.3 compatibility mode) or an alert
        }

        var fragment = record[5..];
        if (_length + fragment.Length > MaxMessage)
        {
            Done = true;
            return found;
        }

        if (_messages.Length < _length + fragment.Length)
        {
            Array.Resize(ref _messages, Math.Max(_messages.Length * 2, _length + fragment.Length));
        }

        fragment.CopyTo(_messages.AsSpan(_length));
        _length += fragment.Length;

        var consumed = 0;
        while (!Done && _length - consumed >= 4)
        {
            var type = _messages[consumed];
            var bodyLength = (_messages[consumed + 1] << 16) | (_messages[consumed + 2] << 8) | _messages[consumed + 3];
            if (bodyLength > MaxMessage)
            {
                Done = true;
                break;
            }

            if (_length - consumed < 4 + bodyLength)
            {
                break;
            }

            var body = _messages.AsSpan(consumed + 4, bodyLength);
            consumed += 4 + bodyLength;
            switch (type)
            {
                case ClientHello:
                    ReadClientHello(body, found);
                    break;
                case ClientKeyExchange:
                    if (TryReadOpaque16(body, out var identity, out _))
                    {
                        found.Add((identity.ToArray(), false));
                    }

                    Done = true; // what follows is change_cipher_spec and the encrypted Finished
                    break;
            }
        }

        _messages.AsSpan(consumed, _length - consumed).CopyTo(_messages);
        _length -= consumed;
        return found;
    }

    /// <summary>legacy_version(2) random(32) session_id&lt;0..32&gt; cipher_suites&lt;2..&gt; compression&lt;1..&gt; extensions&lt;..&gt;.</summary>
    private static void ReadClientHello(ReadOnlySpan<byte> body, List<(byte[], bool)> found)
    {
        if (body.Length < 35)
        {
            return;
        }

        var rest = body[34..];
        if (!TryReadOpaque8(rest, out _, out rest) || !TryReadOpaque16(rest, out _, out rest) || !TryReadOpaque8(rest, out _, out rest)
            || !TryReadOpaque16(rest, out var extensions, out _))
        {
            return;
        }

        var offersTls13 = false;
        ReadOnlySpan<byte> preSharedKey = default;
        var hasPreSharedKey = false;
        while (extensions.Length >= 4)
        {
            var type = BinaryPrimitives.ReadUInt16BigEndian(extensions);
            if (!TryReadOpaque16(extensions[2..], out var data, out extensions))
            {
                return;
            }

            switch (type)
            {
                case 43: // supported_versions: versions<2..254>
                    if (TryReadOpaque8(data, out var versions, out _))
                    {
                        for (var i = 0; i + 1 < versions.Length; i += 2)
                        {
                            offersTls13 |= versions[i] == 0x03 && versions[i + 1] == 0x04;
                        }
                    }

                    break;
                case 41: // pre_shared_key: identities<7..2^16-1> (identity<1..2^16-1>, obfuscated_ticket_age(4)), binders
                    preSharedKey = data;
                    hasPreSharedKey = true;
                    break;
            }
        }

        if (!offersTls13 || !hasPreSharedKey || !TryReadOpaque16(preSharedKey, out var identities, out _))
        {
            return;
        }

        while (TryReadOpaque16(identities, out var identity, out identities) && identities.Length >= 4)
        {
            found.Add((identity.ToArray(), true));
            identities = identities[4..];
        }
    }

    private static bool TryReadOpaque8(ReadOnlySpan<byte> input, out ReadOnlySpan<byte> value, out ReadOnlySpan<byte> rest)
    {
        value = rest = default;
        if (input.Length < 1 || input.Length < 1 + input[0])
        {
            return false;
        }

        value = input.Slice(1, input[0]);
        rest = input[(1 + input[0])..];
        return true;
    }

    private static bool TryReadOpaque16(ReadOnlySpan<byte> input, out ReadOnlySpan<byte> value, out ReadOnlySpan<byte> rest)
    {
        value = rest = default;
        if (input.Length < 2)
        {
            return false;
        }

        var length = BinaryPrimitives.ReadUInt16BigEndian(input);
        if (input.Length < 2 + length)
        {
            return false;
        }

        value = input.Slice(2, length);
        rest = input[(2 + length)..];
        return true;
    }
}
