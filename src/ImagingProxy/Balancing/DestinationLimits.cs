using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Runtime.CompilerServices;
using ImagingProxy.Configuration;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Balancing;

/// <summary>
/// Destination metadata <c>MaxConcurrent</c>, every protocol: the most a destination is given at once (open DICOM
/// associations, HL7 node connections, HTTP requests in flight), as HAProxy's <c>maxconn</c> and NGINX's
/// <c>max_conns</c> on a server: a PACS licensed for a number of associations, or a server that degrades past a load,
/// is passed over while it is full, and its share goes to the others. When every destination is full the request,
/// association or message is refused as when none is available (503, A-ASSOCIATE-RJ transient, an HL7 AR/CR NAK at
/// once), each pass over a full destination counted in <c>imagingproxy.destination.limit_reached</c>.
/// </summary>
public sealed class DestinationLimits : IDisposable
{
    private readonly Meter? _meter;
    private readonly Counter<long>? _reached;
    private readonly ConditionalWeakTable<DestinationConfig, StrongBox<int>> _limits = [];
    private readonly ConditionalWeakTable<ClusterConfig, StrongBox<bool>> _limited = [];

    public DestinationLimits(IMeterFactory meterFactory)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        _meter = meterFactory.Create(Telemetry.ImagingProxyTelemetry.MeterName);
        _reached = _meter.CreateCounter<long>("imagingproxy.destination.limit_reached", "{pick}",
            "Picks that passed over a destination at its MaxConcurrent, by cluster, destination and protocol.");
    }

    private DestinationLimits()
    {
    }

    /// <summary>Limits without a metric: for components built without a host (tests).</summary>
    public static DestinationLimits Unmetered { get; } = new();

    /// <summary>True when a destination of <paramref name="cluster"/> has a <c>MaxConcurrent</c>.</summary>
    public bool IsLimited(ClusterConfig cluster)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        return _limited.GetValue(cluster, static c =>
        {
            var limited = false;
            foreach (var destination in c.Destinations?.Values ?? [])
            {
                limited |= MaxOf(destination) > 0;
            }

            return new StrongBox<bool>(limited);
        }).Value;
    }

    /// <summary>The destination's <c>MaxConcurrent</c>, 0 when it has none.</summary>
    public int Max(DestinationState destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        return _limits.GetValue(destination.Model.Config, static d => new StrongBox<int>(MaxOf(d))).Value;
    }

    /// <summary>
    /// True when <paramref name="destination"/>, carrying <paramref name="load"/>, is at its <c>MaxConcurrent</c>: the
    /// caller passes it over, and the pass is counted.
    /// </summary>
    public bool IsFull(ClusterConfig cluster, DestinationState destination, int load)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        if (!AtLimit(destination, load))
        {
            return false;
        }

        Reached(cluster, destination);
        return true;
    }

    /// <summary>True when <paramref name="destination"/>, carrying <paramref name="load"/>, is at its <c>MaxConcurrent</c> (not counted).</summary>
    public bool AtLimit(DestinationState destination, int load) => Max(destination) is > 0 and var max && load >= max;

    /// <summary>Counts one pass over a full destination (a caller that found it full itself).</summary>
    public void Reached(ClusterConfig cluster, DestinationState destination)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        ArgumentNullException.ThrowIfNull(destination);
        _reached?.Add(1, new TagList
        {
            { "cluster", cluster.ClusterId },
            { "destination", destination.DestinationId },
            { "protocol", Telemetry.HealthMetrics.ProtocolTag(ClusterProtocols.Of(cluster)) },
        });
    }

    /// <summary>A destination's <c>MaxConcurrent</c> metadata: 0 (none) when absent or not a positive whole number.</summary>
    public static int MaxOf(DestinationConfig destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        return int.TryParse(destination.Metadata?.GetValueOrDefault(MetadataKeys.MaxConcurrent), NumberStyles.None, CultureInfo.InvariantCulture, out var max) && max > 0
            ? max
            : 0;
    }

    public void Dispose() => _meter?.Dispose();
}
