using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.LoadBalancing;

namespace ImagingProxy.Configuration;

/// <summary>Reads a cluster's protocol from its metadata (validated at load, so unknown text never reaches here).</summary>
public static class ClusterProtocols
{
    /// <summary>The policy a DICOM cluster without <c>LoadBalancingPolicy</c> picks its nodes with: the fewest open associations.</summary>
    public static readonly string DicomDefaultLoadBalancingPolicy = LoadBalancingPolicies.LeastRequests;

    public static ClusterProtocol Of(ClusterConfig config)
        => ConfigurationValidator.TryParseProtocol(config.Metadata?.GetValueOrDefault(MetadataKeys.Protocol), out var protocol) ? protocol : ClusterProtocol.Http;

    /// <summary>
    /// The policy that picks <paramref name="config"/>'s destinations now (<c>/status</c>): its <c>LoadBalancingPolicy</c>,
    /// else YARP's default for HTTP (<c>PowerOfTwoChoices</c>) and <see cref="DicomDefaultLoadBalancingPolicy"/> for DICOM
    /// and HL7 (an HL7 cluster without one gives a new connection the node with the fewest node connections per unit of
    /// its share, <c>MllpForwarder</c>).
    /// </summary>
    public static string LoadBalancingPolicy(ClusterConfig config)
        => Of(config) switch
        {
            ClusterProtocol.Dicom or ClusterProtocol.Mllp => config.LoadBalancingPolicy ?? DicomDefaultLoadBalancingPolicy,
            _ => config.LoadBalancingPolicy ?? LoadBalancingPolicies.PowerOfTwoChoices,
        };
}
