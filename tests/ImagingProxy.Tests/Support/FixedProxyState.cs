using System.Diagnostics.CodeAnalysis;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Tests.Support;

/// <summary>An <see cref="IProxyStateLookup"/> over fixed clusters (no routes): what handler and health tests route to.</summary>
internal sealed class FixedProxyState(params ClusterState[] clusters) : IProxyStateLookup
{
    public bool TryGetRoute(string id, [NotNullWhen(true)] out RouteModel? route)
    {
        route = null;
        return false;
    }

    public IEnumerable<RouteModel> GetRoutes() => [];

    public bool TryGetCluster(string id, [NotNullWhen(true)] out ClusterState? cluster)
    {
        cluster = clusters.FirstOrDefault(c => string.Equals(c.ClusterId, id, StringComparison.OrdinalIgnoreCase)); // as YARP's lookup
        return cluster is not null;
    }

    public IEnumerable<ClusterState> GetClusters() => clusters;
}
