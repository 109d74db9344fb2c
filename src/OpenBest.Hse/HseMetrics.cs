using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;
using OpenBest.Sessions;

namespace OpenBest.Hse;

/// <summary>
/// The HSE's metrics as <see cref="System.Diagnostics.Metrics"/> instruments (meter "OpenBest.Hse"), with a
/// listener that renders them as Prometheus text for <c>/metrics</c>. No label carries an identity or a key.
/// </summary>
public sealed class HseMetrics : IDisposable
{
    /// <summary>The meter name.</summary>
    public const string MeterName = "OpenBest.Hse";

    private readonly Meter _meter = new(MeterName);
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<string, long> _values = new(StringComparer.Ordinal);
    private readonly Counter<long> _events;

    /// <summary>Creates the instruments; <paramref name="host"/> supplies the message and queue counts.</summary>
    public HseMetrics(HseHost host)
    {
        ArgumentNullException.ThrowIfNull(host);
        _events = _meter.CreateCounter<long>("openbest_hse_events_total", description: "Session events by kind");
        _meter.CreateObservableCounter("openbest_hse_messages_received_total", () => host.Received, description: "EMSDP messages received");
        _meter.CreateObservableCounter("openbest_hse_messages_sent_total", () => host.Sent, description: "EMSDP messages sent");
        _meter.CreateObservableCounter("openbest_hse_overloaded_total", () => host.Overloaded, description: "Messages refused because the work queue was full");
        _meter.CreateObservableCounter("openbest_hse_errors_total", () => host.Errors, description: "Work items or sends that failed");

        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter == _meter)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            var key = instrument.Name;
            foreach (var tag in tags)
            {
                key += $"{{{tag.Key}=\"{tag.Value}\"}}";
            }

            if (instrument is ObservableCounter<long>)
            {
                _values[key] = value;
            }
            else
            {
                _values.AddOrUpdate(key, value, (_, old) => old + value);
            }
        });
        _listener.Start();
    }

    /// <summary>Counts one session event by its kind.</summary>
    public void Record(SessionEvent e)
    {
        ArgumentNullException.ThrowIfNull(e);
        _events.Add(1, new KeyValuePair<string, object?>("kind", e.GetType().Name));
    }

    /// <summary>The metrics in the Prometheus text exposition format.</summary>
    public string Render()
    {
        _listener.RecordObservableInstruments();
        var text = new StringBuilder();
        foreach (var (key, value) in _values.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            text.Append(key).Append(' ').Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }

        return text.ToString();
    }

    /// <summary>Stops listening.</summary>
    public void Dispose()
    {
        _listener.Dispose();
        _meter.Dispose();
    }
}
