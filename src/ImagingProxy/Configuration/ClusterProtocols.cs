using Yarp.ReverseProxy.Configuration;

namespace ImagingProxy.Configuration;

/// <summary>Reads a cluster's protocol from its metadata (validated at load, so unknown text never reaches here).</summary>
public static class ClusterProtocols
{
    public static ClusterProtocol Of(ClusterConfig config)
        => ConfigurationValidator.TryParseProtocol(config.Metadata?.GetValueOrDefault(MetadataKeys.Protocol), out var protocol) ? protocol : ClusterProtocol.Http;
}
