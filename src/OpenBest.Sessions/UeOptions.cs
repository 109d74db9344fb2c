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

    /// <summary>The Enterprise Key shared only with the enterprise (UE-to-EAS mode), or empty.</summary>
    public ReadOnlyMemory<byte> EnterpriseKey { get; init; }
}
