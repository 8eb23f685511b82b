using System.Globalization;
using Yarp.ReverseProxy.Configuration;

namespace ImagingProxy.Configuration;

/// <summary>
/// Adapts every cluster before YARP sees it so that ImagingProxy owns active health checks for all protocols
/// (yarp-notes.md §5): YARP's own HTTP-only monitor is switched off (the user's <c>Active.Enabled</c> is kept in
/// metadata for our monitor), and the available-destinations policy becomes one that honours those results.
/// The default is no panic: a cluster with no healthy destination has no destination, because sending clinical
/// traffic to a dead server is worse than a clear 503 or A-ASSOCIATE-RJ.
/// </summary>
internal sealed class ProxyConfigFilter : IProxyConfigFilter
{
    public ValueTask<ClusterConfig> ConfigureClusterAsync(ClusterConfig cluster, CancellationToken cancel)
    {
        var health = cluster.HealthCheck ?? new HealthCheckConfig();
        var active = health.Active ?? new ActiveHealthCheckConfig();
        var metadata = cluster.Metadata is null
            ? new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
            : new Dictionary<string, string>(cluster.Metadata, StringComparer.OrdinalIgnoreCase);
        metadata[MetadataKeys.ActiveHealthCheckEnabled] = (active.Enabled == true).ToString(CultureInfo.InvariantCulture);

        var policy = string.Equals(health.AvailableDestinationsPolicy, "HealthyOrPanic", StringComparison.OrdinalIgnoreCase)
            ? Health.AvailableDestinationsPolicies.HealthyOrPanic
            : Health.AvailableDestinationsPolicies.HealthyAndUnknown;

        return ValueTask.FromResult(cluster with
        {
            Metadata = metadata,
            HealthCheck = health with
            {
                Active = active with { Enabled = false },
                AvailableDestinationsPolicy = policy,
            },
        });
    }

    public ValueTask<RouteConfig> ConfigureRouteAsync(RouteConfig route, ClusterConfig? cluster, CancellationToken cancel) => ValueTask.FromResult(route);
}
