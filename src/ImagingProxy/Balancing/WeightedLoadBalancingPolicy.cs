using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.LoadBalancing;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Balancing;

/// <summary>
/// One of YARP's load-balancing policies, under its own name, that honours destination <c>Weight</c> and cluster
/// <c>SlowStart</c> on HTTP clusters (<see cref="WeightedPicker"/>). A cluster without either is YARP's policy unchanged,
/// and so is <c>FirstAlphabetical</c>, which has no share to scale.
/// </summary>
internal sealed class WeightedLoadBalancingPolicy(ILoadBalancingPolicy inner, WeightedPicker picker) : ILoadBalancingPolicy
{
    public string Name => inner.Name;

    public DestinationState? PickDestination(HttpContext context, ClusterState cluster, IReadOnlyList<DestinationState> availableDestinations)
    {
        if (availableDestinations.Count <= 1
            || !picker.Weights.IsWeighted(cluster)
            || string.Equals(inner.Name, LoadBalancingPolicies.FirstAlphabetical, StringComparison.OrdinalIgnoreCase))
        {
            return inner.PickDestination(context, cluster, availableDestinations);
        }

        return picker.Pick(inner.Name, cluster, availableDestinations);
    }
}
