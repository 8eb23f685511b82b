using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace ImagingProxy.Telemetry;

/// <summary>What happens to the DICOM and MLLP listeners' connections outside their protocol handlers.</summary>
public sealed class ListenerMetrics : IDisposable
{
    private readonly Meter _meter;
    private readonly Counter<long> _closeTimeouts;

    public ListenerMetrics(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        _meter = meterFactory.Create(ImagingProxyTelemetry.MeterName);
        _closeTimeouts = _meter.CreateCounter<long>("imagingproxy.listener.close_timeouts", "{connection}",
            "DICOM and MLLP connections aborted because the client read nothing of their last bytes after the protocol ended, by listener and protocol.");
    }

    /// <summary>Counts a connection aborted because its close waited too long for the client to read.</summary>
    public void CloseTimedOut(string listener, string protocol)
        => _closeTimeouts.Add(1, new TagList { { "listener", listener }, { "protocol", protocol } });

    public void Dispose() => _meter.Dispose();
}
