namespace OpenBest.Gsup;

/// <summary>
/// GSUP message types (GSUP specification, "Message Type"). Requests end in binary 00, errors in 01 and results in 10:
/// the three messages of one procedure differ in those two bits only.
/// </summary>
public enum GsupMessageType : byte
{
    /// <summary>UPDATE LOCATION REQUEST.</summary>
    UpdateLocationRequest = 0x04,

    /// <summary>UPDATE LOCATION ERROR.</summary>
    UpdateLocationError = 0x05,

    /// <summary>UPDATE LOCATION RESULT.</summary>
    UpdateLocationResult = 0x06,

    /// <summary>SEND AUTHENTICATION INFO REQUEST: vectors for an IMSI, optionally resynchronising with RAND and AUTS.</summary>
    SendAuthInfoRequest = 0x08,

    /// <summary>SEND AUTHENTICATION INFO ERROR: no vectors, with a cause.</summary>
    SendAuthInfoError = 0x09,

    /// <summary>SEND AUTHENTICATION INFO RESULT: zero to five authentication tuples.</summary>
    SendAuthInfoResult = 0x0A,

    /// <summary>AUTHENTICATION FAILURE REPORT.</summary>
    AuthFailureReport = 0x0B,

    /// <summary>PURGE MS REQUEST.</summary>
    PurgeMsRequest = 0x0C,

    /// <summary>PURGE MS ERROR.</summary>
    PurgeMsError = 0x0D,

    /// <summary>PURGE MS RESULT.</summary>
    PurgeMsResult = 0x0E,

    /// <summary>INSERT SUBSCRIBER DATA REQUEST.</summary>
    InsertDataRequest = 0x10,

    /// <summary>INSERT SUBSCRIBER DATA ERROR.</summary>
    InsertDataError = 0x11,

    /// <summary>INSERT SUBSCRIBER DATA RESULT.</summary>
    InsertDataResult = 0x12,

    /// <summary>DELETE SUBSCRIBER DATA REQUEST.</summary>
    DeleteDataRequest = 0x14,

    /// <summary>DELETE SUBSCRIBER DATA ERROR.</summary>
    DeleteDataError = 0x15,

    /// <summary>DELETE SUBSCRIBER DATA RESULT.</summary>
    DeleteDataResult = 0x16,

    /// <summary>LOCATION CANCELLATION REQUEST.</summary>
    LocationCancelRequest = 0x1C,

    /// <summary>LOCATION CANCELLATION ERROR.</summary>
    LocationCancelError = 0x1D,

    /// <summary>LOCATION CANCELLATION RESULT.</summary>
    LocationCancelResult = 0x1E,
}

/// <summary>Helpers over the category bits of <see cref="GsupMessageType"/>.</summary>
public static class GsupMessageTypes
{
    private const byte CategoryMask = 0b11;

    /// <summary>Whether <paramref name="type"/> is a request (ends in 00).</summary>
    public static bool IsRequest(byte type) => (type & CategoryMask) == 0b00;

    /// <summary>Whether <paramref name="type"/> is an error (ends in 01).</summary>
    public static bool IsError(byte type) => (type & CategoryMask) == 0b01;

    /// <summary>Whether <paramref name="type"/> is a result (ends in 10).</summary>
    public static bool IsResult(byte type) => (type & CategoryMask) == 0b10;

    /// <summary>The request type of the procedure <paramref name="type"/> belongs to.</summary>
    public static byte RequestOf(byte type) => (byte)(type & ~CategoryMask);
}

/// <summary>
/// GSUP information element identifiers (GSUP specification, "IE Identifier"; libosmocore <c>gsup.h</c> for the IEs
/// added after the specification's table). Every IE is tag (1), length (1), value.
/// </summary>
public enum GsupIei : byte
{
    /// <summary>IMSI, BCD as octets 4..N of the Called Party BCD Number (TS 24.008 10.5.4.7).</summary>
    Imsi = 0x01,

    /// <summary>Cause: a GMM cause (TS 24.008 10.5.5.14), see <see cref="GsupCause"/>.</summary>
    Cause = 0x02,

    /// <summary>Auth Tuple: a container of RAND, SRES, Kc, IK, CK, AUTN and RES.</summary>
    AuthTuple = 0x03,

    /// <summary>PDP Info Complete.</summary>
    PdpInfoComplete = 0x04,

    /// <summary>PDP Info.</summary>
    PdpInfo = 0x05,

    /// <summary>Cancellation type.</summary>
    CancelType = 0x06,

    /// <summary>Freeze P-TMSI.</summary>
    FreezePtmsi = 0x07,

    /// <summary>MSISDN.</summary>
    Msisdn = 0x08,

    /// <summary>HLR Number.</summary>
    HlrNumber = 0x09,

    /// <summary>Message Class (libosmocore): which application a message belongs to, see <see cref="GsupMessageClass"/>.</summary>
    MessageClass = 0x0A,

    /// <summary>RAND (16 octets): in a tuple, or with AUTS in a resynchronising request.</summary>
    Rand = 0x20,

    /// <summary>SRES (4 octets).</summary>
    Sres = 0x21,

    /// <summary>Kc (8 octets).</summary>
    Kc = 0x22,

    /// <summary>IK (16 octets).</summary>
    Ik = 0x23,

    /// <summary>CK (16 octets).</summary>
    Ck = 0x24,

    /// <summary>AUTN (16 octets).</summary>
    Autn = 0x25,

    /// <summary>AUTS (14 octets).</summary>
    Auts = 0x26,

    /// <summary>RES, the expected response (4..16 octets; 8 with MILENAGE).</summary>
    Res = 0x27,

    /// <summary>CN Domain: 1 = PS (assumed when absent), 2 = CS.</summary>
    CnDomain = 0x28,

    /// <summary>Supported RAT types (libosmocore).</summary>
    SupportedRatTypes = 0x29,

    /// <summary>Current RAT type (libosmocore), see <see cref="GsupRatType"/>. osmo-hlr sets the AMF separation bit for E-UTRAN.</summary>
    CurrentRatType = 0x2A,

    /// <summary>Session ID.</summary>
    SessionId = 0x30,

    /// <summary>Session State.</summary>
    SessionState = 0x31,

    /// <summary>Number of vectors requested (libosmocore): 1 octet.</summary>
    NumVectorsRequested = 0x52,
}

/// <summary>RAT types of the Current RAT Type IE (libosmocore <c>enum osmo_rat_type</c>).</summary>
public enum GsupRatType : byte
{
    /// <summary>Unknown.</summary>
    Unknown = 0,

    /// <summary>GERAN over A.</summary>
    GeranA = 1,

    /// <summary>UTRAN over Iu.</summary>
    UtranIu = 2,

    /// <summary>E-UTRAN over SGs: osmo-hlr (1.5 and later) then sets the AMF separation bit of TS 33.102 Annex H.</summary>
    EutranSgs = 3,
}

/// <summary>Message classes of the Message Class IE (libosmocore <c>enum osmo_gsup_message_class</c>).</summary>
public enum GsupMessageClass : byte
{
    /// <summary>Not set.</summary>
    Unset = 0,

    /// <summary>Subscriber management: authentication, location updating.</summary>
    SubscriberManagement = 1,

    /// <summary>SMS.</summary>
    Sms = 2,

    /// <summary>USSD.</summary>
    Ussd = 3,

    /// <summary>Inter-MSC.</summary>
    InterMsc = 4,
}

/// <summary>GMM causes carried in the GSUP Cause IE (TS 24.008 10.5.5.14); the ones an HLR answers SEND AUTHENTICATION INFO with.</summary>
public enum GsupCause : byte
{
    /// <summary>IMSI unknown in HLR. osmo-hlr also answers it for a subscriber without keys, and when AUTS did not verify.</summary>
    ImsiUnknown = 0x02,

    /// <summary>Illegal MS.</summary>
    IllegalMs = 0x03,

    /// <summary>Illegal ME.</summary>
    IllegalMe = 0x06,

    /// <summary>GPRS services not allowed.</summary>
    GprsNotAllowed = 0x07,

    /// <summary>GPRS and non-GPRS services not allowed.</summary>
    GprsAndNonGprsNotAllowed = 0x08,

    /// <summary>PLMN not allowed.</summary>
    PlmnNotAllowed = 0x0B,

    /// <summary>Roaming not allowed in this location area.</summary>
    RoamingNotAllowed = 0x0D,

    /// <summary>Network failure: the HLR could not compute vectors (a database error, say).</summary>
    NetworkFailure = 0x11,

    /// <summary>Congestion.</summary>
    Congestion = 0x16,

    /// <summary>Invalid mandatory information: the request was malformed (an invalid IMSI, say).</summary>
    InvalidMandatoryInformation = 0x60,

    /// <summary>Message type non-existent or not implemented.</summary>
    MessageTypeNotImplemented = 0x61,

    /// <summary>Protocol error, unspecified.</summary>
    ProtocolErrorUnspecified = 0x6F,
}
