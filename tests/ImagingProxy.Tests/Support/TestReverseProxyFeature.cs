using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Tests.Support;

/// <summary>YARP's per-request proxy feature, settable, for steps tested without YARP's pipeline.</summary>
internal sealed class TestReverseProxyFeature : IReverseProxyFeature
{
    public required RouteModel Route { get; init; }

    public required ClusterModel Cluster { get; set; }

    public IReadOnlyList<DestinationState> AllDestinations { get; init; } = [];

    public IReadOnlyList<DestinationState> AvailableDestinations { get; set; } = [];

    public DestinationState? ProxiedDestination { get; set; }
}
