using System.Diagnostics.Metrics;
using ImagingProxy.Configuration;
using Yarp.ReverseProxy;

namespace ImagingProxy.Telemetry;

/// <summary>
/// When the certificates of TLS sessions to the nodes expire (<see cref="NodeTls.Expirations"/>), as a gauge of Unix
/// times: each <c>tls://</c> node's certificate as last presented, and ImagingProxy's client certificate per cluster.
/// Only destinations and clusters still configured are reported, so a removed node raises no expiry alert.
/// </summary>
public sealed class TlsMetrics : IDisposable
{
    private readonly Meter _meter;
    private readonly NodeTls _nodeTls;
    private readonly IProxyStateLookup _state;

    public TlsMetrics(IMeterFactory meterFactory, NodeTls nodeTls, IProxyStateLookup state)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        _meter = meterFactory.Create(ImagingProxyTelemetry.MeterName);
        _nodeTls = nodeTls;
        _state = state;
        _meter.CreateObservableGauge("imagingproxy.tls.certificate.expiration_timestamp", Observe, "s",
            "When a certificate of the TLS sessions to the nodes expires (Unix time): role node (the node's, as last presented) or client (ImagingProxy's own for the cluster).");
    }

    public void Dispose() => _meter.Dispose();

    private IEnumerable<Measurement<double>> Observe()
    {
        foreach (var (cluster, destination, role, notAfter) in _nodeTls.Expirations())
        {
            if (!_state.TryGetCluster(cluster, out var state) || (destination.Length > 0 && !state.Destinations.ContainsKey(destination)))
            {
                continue;
            }

            yield return new Measurement<double>(notAfter.ToUnixTimeSeconds(), [new("cluster", cluster), new("destination", destination.Length > 0 ? destination : "none"), new("role", role)]);
        }
    }
}
