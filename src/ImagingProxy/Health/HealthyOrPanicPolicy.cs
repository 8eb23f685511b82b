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
        // Panic sends to every destination, but never to one an operator is draining.
        return available.Count > 0 ? available : AvailableDestinationsPolicies.NotDraining(allDestinations);
    }
}
