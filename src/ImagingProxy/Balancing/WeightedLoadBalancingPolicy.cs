using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.LoadBalancing;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Balancing;

/// <summary>
/// One of YARP's load-balancing policies, under its own name, that honours destination <c>Weight</c> and cluster
/// <c>SlowStart</c> on HTTP clusters (<see cref="WeightedPicker"/>). A cluster without either is YARP's policy unchanged,
/// and so is <c>FirstAlphabetical</c>, which has no share to scale.
/// </summary>
/// <remarks>
/// YARP hands a policy the route's cluster. An XDS request the XDS step moved to the repository cluster
/// (<c>ReassignProxyRequest</c>) is balanced among the repository's destinations, so its settings are read from the
/// cluster in <see cref="IReverseProxyFeature"/>, found through <see cref="IProxyStateLookup"/> (resolved at the first
/// such request: YARP's state is built from the policies, so it cannot be a constructor dependency).
/// </remarks>
internal sealed class WeightedLoadBalancingPolicy(ILoadBalancingPolicy inner, WeightedPicker picker, IServiceProvider services) : ILoadBalancingPolicy
{
    private IProxyStateLookup? _state;

    public string Name => inner.Name;

    public DestinationState? PickDestination(HttpContext context, ClusterState cluster, IReadOnlyList<DestinationState> availableDestinations)
    {
        if (context.Features.Get<IReverseProxyFeature>()?.Cluster is { } proxied && !ReferenceEquals(proxied, cluster.Model)
            && (_state ??= services.GetRequiredService<IProxyStateLookup>()).TryGetCluster(proxied.Config.ClusterId, out var moved))
        {
            cluster = moved;
        }

        if (availableDestinations.Count <= 1
            || !picker.Weights.IsWeighted(cluster)
            || string.Equals(inner.Name, LoadBalancingPolicies.FirstAlphabetical, StringComparison.OrdinalIgnoreCase))
        {
            return inner.PickDestination(context, cluster, availableDestinations);
        }

        return picker.Pick(inner.Name, cluster, availableDestinations);
    }
}
