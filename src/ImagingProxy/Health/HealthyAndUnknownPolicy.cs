using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Health;

internal sealed class HealthyAndUnknownPolicy : IAvailableDestinationsPolicy
{
    public string Name => AvailableDestinationsPolicies.HealthyAndUnknown;

    public IReadOnlyList<DestinationState> GetAvailalableDestinations(ClusterConfig config, IReadOnlyList<DestinationState> allDestinations)
        => AvailableDestinationsPolicies.Filter(config, allDestinations);
}
