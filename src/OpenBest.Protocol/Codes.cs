namespace OpenBest.Protocol;

/// <summary>Causes of Message Reject and of parse failures (profile section 7).</summary>
public enum Cause : byte
{
    /// <summary>No cause: the operation succeeded.</summary>
    None = 0x00,

    /// <summary>Unknown subscriber.</summary>
    UnknownSubscriber = 0x01,

    /// <summary>AKA MAC failure.</summary>
    AkaMacFailure = 0x02,

    /// <summary>AKA synchronisation failure (carries AUTS).</summary>
    AkaSynchronisationFailure = 0x03,

    /// <summary>Integrity check failed.</summary>
    IntegrityCheckFailed = 0x04,

    /// <summary>Unknown session.</summary>
    UnknownSession = 0x05,

    /// <summary>Counter outside the window.</summary>
    CounterOutsideWindow = 0x06,

    /// <summary>Service not supported.</summary>
    ServiceNotSupported = 0x07,

    /// <summary>No common suite or key agreement, or a selection not acceptable.</summary>
    NoCommonSuite = 0x08,

    /// <summary>Service not allowed in this serving network.</summary>
    ServiceNotAllowedInServingNetwork = 0x09,

    /// <summary>Unknown EAS.</summary>
    UnknownEas = 0x0A,

    /// <summary>Malformed message.</summary>
    MalformedMessage = 0x0B,

    /// <summary>Unknown comprehension-required TLV.</summary>
    UnknownComprehensionRequiredTlv = 0x0C,

    /// <summary>Congestion (with a back-off timer).</summary>
    Congestion = 0x0D,

    /// <summary>Session limit reached.</summary>
    SessionLimitReached = 0x0E,

    /// <summary>Key set exhausted.</summary>
    KeySetExhausted = 0x0F,

    /// <summary>Not authorised.</summary>
    NotAuthorised = 0x10,

    /// <summary>Cookie required.</summary>
    CookieRequired = 0x11,
}

/// <summary>EMSDP control-plane command codes (profile section 6.1; TS 33.163 6.2.6).</summary>
public enum CommandCode : byte
{
    /// <summary>Session Request, UE → HSE, unprotected.</summary>
    SessionRequest = 0x10,

    /// <summary>Session Start, HSE → UE, under the new key set at CP counter 0.</summary>
    SessionStart = 0x11,

    /// <summary>Session Start Confirmation, UE → HSE.</summary>
    SessionStartConfirmation = 0x12,

    /// <summary>Session Terminate Request, either direction.</summary>
    SessionTerminateRequest = 0x20,

    /// <summary>Session Terminate Response, either direction.</summary>
    SessionTerminateResponse = 0x21,

    /// <summary>Manage Keys Request, either direction.</summary>
    ManageKeysRequest = 0x30,

    /// <summary>Manage Keys Response, UE → HSE under the new key set at CP counter 0.</summary>
    ManageKeysResponse = 0x31,

    /// <summary>Message Reject, either direction.</summary>
    MessageReject = 0x80,

    /// <summary>Session Suspend (profile extension), either direction.</summary>
    SessionSuspend = 0xE0,

    /// <summary>Session Resume (profile extension), UE → HSE.</summary>
    SessionResume = 0xE1,

    /// <summary>Data Ack (profile extension), either direction.</summary>
    DataAck = 0xE2,
}

/// <summary>TLV tags (profile section 6.3). 0x01..0x7F are comprehension-required, 0x80..0xFE skippable.</summary>
public enum TlvTag : byte
{
    /// <summary>IMSI, 8 octets as EF_IMSI octets 2..9 (TS 33.163).</summary>
    Imsi = 0x01,

    /// <summary>SUCI value (TS 24.501 9.11.3.4), 1..255 octets.</summary>
    Suci = 0x02,

    /// <summary>UE configuration, 5 octets.</summary>
    UeConfiguration = 0x03,

    /// <summary>Enterprise Setup: the EAS Id, 1..64 octets UTF-8.</summary>
    EnterpriseSetup = 0x04,

    /// <summary>Serving Network: 3-octet PLMN ID or a 4..255-octet network name.</summary>
    ServingNetwork = 0x05,

    /// <summary>RAND, 16 octets.</summary>
    Rand = 0x06,

    /// <summary>AUTN, 16 octets.</summary>
    Autn = 0x07,

    /// <summary>AUTS, 14 octets.</summary>
    Auts = 0x08,

    /// <summary>HSE configuration, 4 octets; the first TLV of a Session Start.</summary>
    HseConfiguration = 0x09,

    /// <summary>Request checksum: the first 8 octets of SHA-256 over the Session Request.</summary>
    RequestChecksum = 0x0A,

    /// <summary>Confirmation required, empty.</summary>
    ConfirmationRequired = 0x0B,

    /// <summary>Key ID, 1 octet, 1..7.</summary>
    KeyId = 0x0C,

    /// <summary>Cause, 1 octet.</summary>
    Cause = 0x0D,

    /// <summary>Enterprise Key Identifier, 1..16 octets.</summary>
    EnterpriseKeyIdentifier = 0x0E,

    /// <summary>Back-off timer, 2 octets, seconds.</summary>
    BackOffTimer = 0x0F,

    /// <summary>Key lifetime, 4 octets, seconds.</summary>
    KeyLifetime = 0x10,

    /// <summary>EAS key identifier, 4 octets (RAND octets 12..15).</summary>
    EasKeyIdentifier = 0x11,

    /// <summary>Acked counter, 4 octets.</summary>
    AckedCounter = 0x12,

    /// <summary>UE nonce, 8 octets.</summary>
    UeNonce = 0x13,

    /// <summary>Acked tag, 4 octets.</summary>
    AckedTag = 0x14,

    /// <summary>Rejected command, 1 octet.</summary>
    RejectedCommand = 0x15,

    /// <summary>Cookie, 8 octets.</summary>
    Cookie = 0x16,

    /// <summary>HSE nonce, 16 octets.</summary>
    HseNonce = 0x17,
}

/// <summary>The service a channel gives (UE configuration octet 3, mask 0x03).</summary>
public enum BestService : byte
{
    /// <summary>Key agreement only: keys for an application protocol, no EMSDP user plane protection.</summary>
    KeyAgreementOnly = 0,

    /// <summary>Integrity protection of the user plane.</summary>
    Integrity = 1,

    /// <summary>Integrity and confidentiality of the user plane.</summary>
    Confidential = 2,

    /// <summary>No security (Key ID 0, no tags); only where HSE policy allows it.</summary>
    None = 3,
}

/// <summary>Counter schemes (UE configuration octet 5): the length n of the counter field.</summary>
[Flags]
public enum CounterSchemes : byte
{
    /// <summary>No scheme.</summary>
    None = 0,

    /// <summary>n = 1.</summary>
    OneOctet = 0x01,

    /// <summary>n = 2.</summary>
    TwoOctets = 0x02,

    /// <summary>n = 4.</summary>
    FourOctets = 0x04,
}

/// <summary>Key agreements a UE supports (UE configuration octet 2) — one bit each.</summary>
[Flags]
public enum KeyAgreements : byte
{
    /// <summary>None.</summary>
    None = 0,

    /// <summary>UMTS AKA.</summary>
    UmtsAka = 0x01,

    /// <summary>EPS AKA.</summary>
    EpsAka = 0x02,

    /// <summary>5G AKA.</summary>
    FiveGAka = 0x04,

    /// <summary>EAP-AKA'.</summary>
    EapAkaPrime = 0x08,

    /// <summary>GBA.</summary>
    Gba = 0x10,

    /// <summary>AKMA.</summary>
    Akma = 0x20,
}
