namespace OpenBest.Hse.Northbound.Dashboard;

/// <summary>What the dashboard counts from the HSE's session events, per sample interval (an index into the counts).</summary>
internal enum DashboardCount
{
    /// <summary>User-plane payloads from devices (<c>DataReceived</c> in UE-to-HSE mode, <c>UplinkForwarded</c> in UE-to-EAS mode).</summary>
    Uplink,

    /// <summary>Downlink payloads the device acknowledged (<c>DataAcknowledged</c>).</summary>
    Acknowledged,

    /// <summary>New key sets in use (<c>KeysRefreshed</c>).</summary>
    Refreshes,

    /// <summary>Rejects (<c>SessionRejected</c>).</summary>
    Rejects,

    /// <summary>Dropped messages (<c>MessageDropped</c>).</summary>
    Drops,

    /// <summary>Sessions established (<c>SessionEstablished</c>).</summary>
    Started,

    /// <summary>Sessions ended (<c>SessionTerminated</c>).</summary>
    Ended,
}
