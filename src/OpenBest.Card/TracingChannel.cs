namespace OpenBest.Card;

/// <summary>
/// Writes every command and response that passes through a channel to a text writer, one line each (<c>C: hex</c>,
/// <c>R: hex</c>): a trace of what a device sent to its card and what it got back. Responses can hold keys a card
/// returns (CK, IK in the 3G context); such a trace is for the tester's eyes only.
/// </summary>
public sealed class TracingChannel(IApduChannel inner, TextWriter trace) : IApduChannel
{
    /// <inheritdoc />
    public string Name => inner.Name;

    /// <inheritdoc />
    public byte[] Transmit(ReadOnlySpan<byte> command)
    {
        lock (trace)
        {
            trace.WriteLine($"C: {Convert.ToHexStringLower(command)}");
            var response = inner.Transmit(command);
            trace.WriteLine($"R: {Convert.ToHexStringLower(response)}");
            trace.Flush();
            return response;
        }
    }

    /// <summary>Disposes the inner channel (the writer stays the caller's).</summary>
    public void Dispose() => inner.Dispose();
}
