using ImagingProxy.Configuration;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Matching;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Hosting;

/// <summary>
/// Keeps each endpoint to its listener: admin paths only on <c>Admin</c>, the XDS route only on <c>Xds</c>, YARP
/// routes on the listener named by their <c>Metadata:Listener</c> (default <c>Viewers</c>). A request on any other
/// listener does not match, so it gets 404 there.
/// </summary>
internal sealed class ListenerMatcherPolicy : MatcherPolicy, IEndpointSelectorPolicy
{
    public override int Order => -100;

    public bool AppliesToEndpoints(IReadOnlyList<Endpoint> endpoints)
    {
        for (var i = 0; i < endpoints.Count; i++)
        {
            if (RequiredListener(endpoints[i]) is not null)
            {
                return true;
            }
        }

        return false;
    }

    public Task ApplyAsync(HttpContext httpContext, CandidateSet candidates)
    {
        var listener = httpContext.Features.Get<IProxyListenerFeature>()?.Name;
        for (var i = 0; i < candidates.Count; i++)
        {
            var required = RequiredListener(candidates[i].Endpoint);
            if (required is not null && !string.Equals(required, listener, StringComparison.OrdinalIgnoreCase))
            {
                candidates.SetValidity(i, false);
            }
        }

        return Task.CompletedTask;
    }

    private static string? RequiredListener(Endpoint endpoint)
    {
        if (endpoint.Metadata.GetMetadata<ListenerMetadata>() is { } metadata)
        {
            return metadata.Name;
        }

        if (endpoint.Metadata.GetMetadata<RouteModel>() is { } route)
        {
            return route.Config.Metadata is not null && route.Config.Metadata.TryGetValue(MetadataKeys.Listener, out var name) && !string.IsNullOrEmpty(name)
                ? name
                : EndpointNames.Viewers;
        }

        return null;
    }
}
