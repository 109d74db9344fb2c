namespace OpenBest.Gsup;

/// <summary>How a <see cref="GsupClient"/> reaches its HLR (immutable; validated when the client is made).</summary>
public sealed record GsupClientOptions
{
    /// <summary>The HLR's GSUP address.</summary>
    public required GsupEndpoint Endpoint { get; init; }

    /// <summary>
    /// The IPA unit name (and serial number) sent in ID_RESP (default "OpenBest-HSE"). osmo-hlr routes answers by it,
    /// so every client of one HLR needs its own: give each HSE or OBF node a distinct name.
    /// </summary>
    public string UnitName { get; init; } = "OpenBest-HSE";

    /// <summary>
    /// How long a request may take in all: a free slot, a connection, the answer (default 5 s). osmo-hlr answers from
    /// its SQLite database within milliseconds; 5 s leaves room for a loaded HLR and a few TCP retransmissions. When it
    /// passes without an answer the connection is reset, since GSUP has no transaction identifier and a late answer
    /// could otherwise be taken for the next request's.
    /// </summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How long a connection attempt may take, TCP connect and the IPA identity exchange together (default 5 s).</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The most requests outstanding at once (default 64); more wait for a slot within <see cref="RequestTimeout"/>.
    /// osmo-hlr handles one connection's requests in order, so a deeper queue only adds latency.
    /// </summary>
    public int MaxInFlight { get; init; } = 64;

    /// <summary>The first wait before reconnecting after a failed attempt (default 0.5 s); it doubles up to <see cref="MaxReconnectDelay"/>.</summary>
    public TimeSpan ReconnectDelay { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>The longest wait between connection attempts (default 10 s).</summary>
    public TimeSpan MaxReconnectDelay { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// The largest IPA payload accepted (default 4096 octets); a larger declared length closes the connection. A result
    /// with five UMTS tuples takes about 520 octets, and osmo-hlr's own IPA buffers hold 1200.
    /// </summary>
    public int MaxFrameLength { get; init; } = 4096;

    /// <summary>The clock of every timeout and delay (default the system's).</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>Checks every option.</summary>
    /// <exception cref="ArgumentException">An option is out of range; the message names it.</exception>
    public void Validate()
    {
        _ = new IpaIdentity(UnitName);
        Positive(RequestTimeout, nameof(RequestTimeout));
        Positive(ConnectTimeout, nameof(ConnectTimeout));
        Positive(ReconnectDelay, nameof(ReconnectDelay));
        if (MaxReconnectDelay < ReconnectDelay)
        {
            throw new ArgumentException($"GsupClientOptions.{nameof(MaxReconnectDelay)} must be at least {nameof(ReconnectDelay)}.", nameof(MaxReconnectDelay));
        }

        if (MaxInFlight < 1)
        {
            throw new ArgumentException($"GsupClientOptions.{nameof(MaxInFlight)} must be at least 1.", nameof(MaxInFlight));
        }

        if (MaxFrameLength is < 64 or > IpaFraming.MaxPayloadLength)
        {
            throw new ArgumentException($"GsupClientOptions.{nameof(MaxFrameLength)} must be 64..65535.", nameof(MaxFrameLength));
        }

        if (string.IsNullOrEmpty(Endpoint.Host) || Endpoint.Port is < 1 or > 65535)
        {
            throw new ArgumentException($"GsupClientOptions.{nameof(Endpoint)} needs a host and a port 1..65535.", nameof(Endpoint));
        }

        ArgumentNullException.ThrowIfNull(Time);
    }

    private static void Positive(TimeSpan value, string name)
    {
        if (value <= TimeSpan.Zero)
        {
            throw new ArgumentException($"GsupClientOptions.{name} must be positive.", name);
        }
    }
}

/// <summary>The HLR could not be reached, did not answer in time, or answered something unusable.</summary>
public sealed class GsupException : Exception
{
    /// <summary>Creates the exception.</summary>
    public GsupException()
    {
    }

    /// <summary>Creates the exception with a one-line message.</summary>
    public GsupException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a one-line message and its cause.</summary>
    public GsupException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
