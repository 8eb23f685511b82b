using System.Diagnostics.Metrics;
using ImagingProxy.Configuration;

namespace ImagingProxy.Telemetry;

/// <summary>
/// Configuration reloads, read from the <see cref="ConfigurationGate"/> when scraped: how many were applied and how many
/// rejected (<c>imagingproxy.config.reloads</c>, <c>result</c> = <c>applied</c> or <c>rejected</c>), and whether the
/// newest edit is rejected now (<c>imagingproxy.config.rejected</c>, 1 while the last good configuration serves instead).
/// </summary>
public sealed class ConfigurationMetrics : IDisposable
{
    private readonly Meter _meter;

    public ConfigurationMetrics(IMeterFactory meterFactory, ConfigurationGate gate)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        ArgumentNullException.ThrowIfNull(gate);
        _meter = meterFactory.Create(ImagingProxyTelemetry.MeterName);
        _meter.CreateObservableCounter(
            "imagingproxy.config.reloads",
            () => (Measurement<long>[])
            [
                new(Math.Max(gate.Generation - 1, 0), new KeyValuePair<string, object?>("result", "applied")),
                new(gate.Rejections, new KeyValuePair<string, object?>("result", "rejected")),
            ],
            "{reload}",
            "Configuration reloads since the start, by result (applied, or rejected: the last good configuration kept serving).");
        _meter.CreateObservableGauge(
            "imagingproxy.config.rejected",
            () => gate.LastRejection.Count > 0 ? 1 : 0,
            "{edit}",
            "1 while the newest configuration edit is rejected (see /status for its problems) and the last good one serves, else 0.");
    }

    public void Dispose() => _meter.Dispose();
}
