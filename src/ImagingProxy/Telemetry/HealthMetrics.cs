using System.Diagnostics;
using System.Diagnostics.Metrics;
using ImagingProxy.Balancing;
using ImagingProxy.Configuration;
using ImagingProxy.Health;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Telemetry;

/// <summary>
/// Health telemetry for every cluster of every protocol: probe results and latency, transitions, and the current
/// health and availability of each destination as gauges (read from YARP's destination state at scrape time).
/// </summary>
public sealed class HealthMetrics : IDisposable
{
    private readonly Meter _meter;
    private readonly Counter<long> _probes;
    private readonly Histogram<double> _probeDuration;
    private readonly Counter<long> _transitions;
    private readonly ActiveHealthMonitor _monitor;
    private readonly DestinationHealthTracker _tracker;
    private readonly IProxyStateLookup _state;
    private readonly DestinationWeights _weights;

    public HealthMetrics(IMeterFactory meterFactory, ActiveHealthMonitor monitor, DestinationHealthTracker tracker, IProxyStateLookup state, DestinationWeights? weights = null)
    {
        _meter = meterFactory.Create(ImagingProxyTelemetry.MeterName);
        _monitor = monitor;
        _tracker = tracker;
        _state = state;
        _weights = weights ?? DestinationWeights.WeightsOnly;
        _probes = _meter.CreateCounter<long>("imagingproxy.health.probes", "{probe}", "Active health probes by result.");
        _probeDuration = _meter.CreateHistogram<double>("imagingproxy.health.probe.duration", "s", "Duration of active health probes.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] });
        _transitions = _meter.CreateCounter<long>("imagingproxy.health.transitions", "{transition}", "Destination health changes, by kind (active, passive) and new state.");
        _meter.CreateObservableGauge("imagingproxy.destination.health", ObserveHealth, "{state}",
            "1 for the destination's current health state (health_state label), per kind (active, passive).");
        _meter.CreateObservableGauge("imagingproxy.destination.available", ObserveAvailable, "{destination}",
            "1 when routing may pick the destination (healthy or not yet probed, and not passively down), else 0.");
        _meter.CreateObservableGauge("imagingproxy.cluster.destinations.available", ObserveClusterAvailable, "{destination}",
            "Destinations routing may pick in each cluster; 0 means every request, association or message is refused.");
        _meter.CreateObservableGauge("imagingproxy.destination.weight", ObserveWeight, "{weight}",
            "The destination's share in load balancing now: its Weight metadata, less while a SlowStart runs after it came back.");
        _monitor.ProbeCompleted += OnProbeCompleted;
        _tracker.Transition += OnTransition;
    }

    private void OnProbeCompleted(ClusterState cluster, DestinationState destination, ClusterProtocol protocol, ProbeResult result, TimeSpan duration)
    {
        var tags = new TagList
        {
            { "cluster", cluster.ClusterId },
            { "destination", destination.DestinationId },
            { "protocol", ProtocolTag(protocol) },
        };
        _probeDuration.Record(duration.TotalSeconds, tags);
        tags.Add("result", result.Healthy ? "healthy" : "unhealthy");
        _probes.Add(1, tags);
    }

    private void OnTransition(string cluster, string destination, string kind, DestinationHealth from, DestinationHealth to)
        => _transitions.Add(1, new TagList
        {
            { "cluster", cluster },
            { "destination", destination },
            { "kind", kind },
            { "health_state", to.ToString() },
        });

    private IEnumerable<Measurement<int>> ObserveHealth()
    {
        foreach (var cluster in _state.GetClusters())
        {
            var protocol = ProtocolTag(ClusterProtocols.Of(cluster.Model.Config));
            foreach (var destination in cluster.Destinations.Values)
            {
                yield return State(cluster, destination, protocol, "active", destination.Health.Active);
                yield return State(cluster, destination, protocol, "passive", destination.Health.Passive);
            }
        }

        static Measurement<int> State(ClusterState cluster, DestinationState destination, string protocol, string kind, DestinationHealth health)
            => new(1, new KeyValuePair<string, object?>("cluster", cluster.ClusterId), new KeyValuePair<string, object?>("destination", destination.DestinationId),
                new KeyValuePair<string, object?>("protocol", protocol), new KeyValuePair<string, object?>("kind", kind),
                new KeyValuePair<string, object?>("health_state", health.ToString()));
    }

    private IEnumerable<Measurement<int>> ObserveAvailable()
    {
        foreach (var cluster in _state.GetClusters())
        {
            var available = cluster.DestinationsState?.AvailableDestinations ?? [];
            var protocol = ProtocolTag(ClusterProtocols.Of(cluster.Model.Config));
            foreach (var destination in cluster.Destinations.Values)
            {
                yield return new Measurement<int>(AvailableDestinationsPolicies.Includes(available, destination) ? 1 : 0,
                    new KeyValuePair<string, object?>("cluster", cluster.ClusterId),
                    new KeyValuePair<string, object?>("destination", destination.DestinationId),
                    new KeyValuePair<string, object?>("protocol", protocol));
            }
        }
    }

    private IEnumerable<Measurement<double>> ObserveWeight()
    {
        foreach (var cluster in _state.GetClusters())
        {
            var protocol = ProtocolTag(ClusterProtocols.Of(cluster.Model.Config));
            foreach (var destination in cluster.Destinations.Values)
            {
                yield return new Measurement<double>(_weights.Of(cluster, destination),
                    new KeyValuePair<string, object?>("cluster", cluster.ClusterId),
                    new KeyValuePair<string, object?>("destination", destination.DestinationId),
                    new KeyValuePair<string, object?>("protocol", protocol));
            }
        }
    }

    private IEnumerable<Measurement<int>> ObserveClusterAvailable()
    {
        foreach (var cluster in _state.GetClusters())
        {
            yield return new Measurement<int>(cluster.DestinationsState?.AvailableDestinations.Count ?? 0,
                new KeyValuePair<string, object?>("cluster", cluster.ClusterId),
                new KeyValuePair<string, object?>("protocol", ProtocolTag(ClusterProtocols.Of(cluster.Model.Config))));
        }
    }

    internal static string ProtocolTag(ClusterProtocol protocol) => protocol switch
    {
        ClusterProtocol.Dicom => "dicom",
        ClusterProtocol.Mllp => "mllp",
        _ => "http",
    };

    public void Dispose()
    {
        _monitor.ProbeCompleted -= OnProbeCompleted;
        _tracker.Transition -= OnTransition;
        _meter.Dispose();
    }
}
