using OpenBest.Protocol;

namespace OpenBest.Sessions;

/// <summary>The device's identity and timers (immutable; usable without a host).</summary>
public sealed record UeOptions
{
    /// <summary>The IMSI sent in Session Requests (or set <see cref="Suci"/>).</summary>
    public string? Imsi { get; init; }

    /// <summary>A SUCI value to send instead of the IMSI (TLV 0x02).</summary>
    public ReadOnlyMemory<byte>? Suci { get; init; }

    /// <summary>First retransmission interval of a CP request or an acknowledged UP message; doubles each time (2 s).</summary>
    public TimeSpan RetransmissionInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Retransmissions before giving up (4).</summary>
    public int MaxRetransmissions { get; init; } = 4;

    /// <summary>The cap on any back-off an unprotected Reject asks for (profile 6.2: 15 min).</summary>
    public TimeSpan MaxBackOff { get; init; } = TimeSpan.FromMinutes(15);

    /// <summary>How long old key sets stay valid for receiving after a refresh (600 s).</summary>
    public TimeSpan KeyGracePeriod { get; init; } = TimeSpan.FromSeconds(600);

    /// <summary>How long data may wait for a key set with an Enterprise Key before it is given up (UE-to-EAS mode; 60 s).</summary>
    public TimeSpan MaxHoldTime { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Where UE nonces come from: 8 octets from the CSPRNG by default. Set it only to reproduce published
    /// test vectors; a predictable nonce weakens key separation between session attempts.
    /// </summary>
    public Func<byte[]>? UeNonceSource { get; init; }

    /// <summary>An AMF bit the HSE sets in BEST vectors and the UE requires (profile 5), or 0 for none.</summary>
    public ushort RequiredAmfMarker { get; init; }
}

/// <summary>What one channel asks for (a Session Request's UE configuration, EAS and serving network).</summary>
public sealed record UeChannelOptions
{
    /// <summary>The EAS Id (Enterprise Setup TLV), e.g. <c>eas.example.com</c>, or <c>urn:best:push</c>.</summary>
    public required string EasId { get; init; }

    /// <summary>The requested service (default confidential).</summary>
    public BestService Service { get; init; } = BestService.Confidential;

    /// <summary>The least service this device accepts: integrity by default (a downgrade to "none" is never accepted unless asked for).</summary>
    public BestService MinimumService { get; init; } = BestService.Integrity;

    /// <summary>UE-to-EAS (end-to-end) mode.</summary>
    public bool UeToEasMode { get; init; }

    /// <summary>The key agreements offered (default 5G AKA, EAP-AKA', EPS AKA, UMTS AKA).</summary>
    public KeyAgreements KeyAgreements { get; init; } = KeyAgreements.FiveGAka | KeyAgreements.EapAkaPrime | KeyAgreements.EpsAka | KeyAgreements.UmtsAka;

    /// <summary>The suites offered as the bitmap of profile section 4 (default all four).</summary>
    public byte Suites { get; init; } = 0x0F;

    /// <summary>The counter schemes offered (default all).</summary>
    public CounterSchemes CounterSchemes { get; init; } = CounterSchemes.OneOctet | CounterSchemes.TwoOctets | CounterSchemes.FourOctets;

    /// <summary>The serving network (PLMN ID or 5G name).</summary>
    public ServingNetwork? ServingNetwork { get; init; }

    /// <summary>The Enterprise Key shared only with the enterprise (UE-to-EAS mode), used when the HSE names none; or empty.</summary>
    public ReadOnlyMemory<byte> EnterpriseKey { get; init; }

    /// <summary>
    /// Enterprise Keys by identifier (UE-to-EAS mode): the HSE names the one to use with TLV 0x0E in its Session Start or
    /// Manage Keys Request, as the EAS chose (profile section 5). A key set naming an identifier not here is refused (Reject 0x08).
    /// </summary>
    public IReadOnlyList<EnterpriseKey> EnterpriseKeys { get; init; } = [];

    /// <summary>
    /// Whether user-plane data needs an Enterprise Key (UE-to-EAS mode): true when any is configured. A key set without
    /// one (the HSE named none, and no unnamed key is set) then carries no data: sends wait (up to 64) until the HSE
    /// refreshes the keys naming one, and downlink under it is dropped, because the operator can derive its keys.
    /// </summary>
    public bool RequiresEnterpriseKey => !EnterpriseKey.IsEmpty || EnterpriseKeys.Count > 0;

    /// <summary>The Enterprise Key for a key set whose Session Start or Manage Keys Request named <paramref name="identifier"/>; null when it is not held.</summary>
    public ReadOnlyMemory<byte>? EnterpriseKeyFor(ReadOnlyMemory<byte>? identifier)
    {
        if (identifier is not { } named)
        {
            return EnterpriseKey;
        }

        foreach (var key in EnterpriseKeys)
        {
            if (key.Identifier.AsSpan().SequenceEqual(named.Span))
            {
                return key.Key;
            }
        }

        return null;
    }
}

/// <summary>
/// An Enterprise Key: a secret only the device and its enterprise share, provisioned out of band, named by an identifier
/// of 1 to 16 octets that the EAS chooses (TLV 0x0E). The key is secret: <see cref="ToString"/> never shows it.
/// </summary>
public sealed record EnterpriseKey
{
    /// <summary>Creates an Enterprise Key.</summary>
    /// <exception cref="ArgumentException">The identifier is not 1 to 16 octets, or the key is empty.</exception>
    public EnterpriseKey(byte[] identifier, byte[] key)
    {
        ArgumentNullException.ThrowIfNull(identifier);
        ArgumentNullException.ThrowIfNull(key);
        if (identifier.Length is < 1 or > 16)
        {
            throw new ArgumentException("An Enterprise Key Identifier has 1 to 16 octets.", nameof(identifier));
        }

        if (key.Length == 0)
        {
            throw new ArgumentException("An Enterprise Key is not empty.", nameof(key));
        }

        Identifier = identifier;
        Key = key;
    }

    /// <summary>The Enterprise Key Identifier (TLV 0x0E).</summary>
    public byte[] Identifier { get; }

    /// <summary>The key.</summary>
    public byte[] Key { get; }

    /// <summary>Shows the identifier, never the key.</summary>
    public override string ToString() => $"EnterpriseKey({Convert.ToHexString(Identifier)})";

    /// <summary>Parses <c>IDENTIFIER:KEY</c>, each as hex (the command line's form).</summary>
    public static bool TryParse(string text, out EnterpriseKey? key)
    {
        key = null;
        var colon = text?.IndexOf(':', StringComparison.Ordinal) ?? -1;
        if (colon <= 0)
        {
            return false;
        }

        try
        {
            var identifier = Convert.FromHexString(text.AsSpan(0, colon));
            var secret = Convert.FromHexString(text.AsSpan(colon + 1));
            if (identifier.Length is < 1 or > 16 || secret.Length == 0)
            {
                return false;
            }

            key = new EnterpriseKey(identifier, secret);
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
    }
}
