using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Health;

internal sealed class HealthyOrPanicPolicy : IAvailableDestinationsPolicy
{
    public string Name => AvailableDestinationsPolicies.HealthyOrPanic;

    public IReadOnlyList<DestinationState> GetAvailalableDestinations(ClusterConfig config, IReadOnlyList<DestinationState> allDestinations)
    {
        var available = AvailableDestinationsPolicies.Filter(config, allDestinations);
        return available.Count > 0 ? available : allDestinations;
    }
}
