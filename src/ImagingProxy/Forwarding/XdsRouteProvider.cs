using ImagingProxy.Configuration;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Primitives;
using Yarp.ReverseProxy.Configuration;

namespace ImagingProxy.Forwarding;

/// <summary>
/// Supplies YARP with the one route of the Xds endpoint: every path, registry cluster by default; the
/// <see cref="XdsRoutingStep"/> moves each request to the cluster its SOAP action names. Follows reloads of
/// <c>ImagingProxy:Xds</c>.
/// </summary>
internal sealed class XdsRouteProvider(ConfigurationGate gate) : IProxyConfigProvider
{
    public const string RouteId = "imagingproxy-xds";

    public IProxyConfig GetConfig()
    {
        var token = gate.Configuration.GetReloadToken();
        var xds = gate.Configuration.GetSection($"{ImagingProxyOptions.SectionName}:Xds").Get<XdsOptions>() ?? new XdsOptions();
        var cluster = xds.RegistryCluster ?? xds.RepositoryCluster;
        var hasEndpoint = gate.Configuration.GetSection($"Kestrel:Endpoints:{EndpointNames.Xds}").Exists();
        IReadOnlyList<RouteConfig> routes = cluster is null || !hasEndpoint
            ? []
            :
            [
                new RouteConfig
                {
                    RouteId = RouteId,
                    ClusterId = cluster,
                    Order = int.MaxValue,
                    MaxRequestBodySize = -1,
                    Match = new RouteMatch { Path = "/{**catch-all}" },
                    Metadata = new Dictionary<string, string>
                    {
                        [MetadataKeys.Listener] = EndpointNames.Xds,
                        [MetadataKeys.XdsRoute] = "true",
                        [MetadataKeys.XdsRegistryCluster] = xds.RegistryCluster ?? "",
                        [MetadataKeys.XdsRepositoryCluster] = xds.RepositoryCluster ?? "",
                    },
                },
            ];
        return new Config(routes, token);
    }

    private sealed class Config(IReadOnlyList<RouteConfig> routes, IChangeToken token) : IProxyConfig
    {
        public IReadOnlyList<RouteConfig> Routes { get; } = routes;

        public IReadOnlyList<ClusterConfig> Clusters { get; } = [];

        public IChangeToken ChangeToken { get; } = token;
    }
}
