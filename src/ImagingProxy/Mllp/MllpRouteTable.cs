using ImagingProxy.Configuration;
using Microsoft.Extensions.Configuration;

namespace ImagingProxy.Mllp;

/// <summary>
/// The MLLP routes and limits of one configuration generation, compiled for per-message matching.
/// </summary>
/// <remarks>
/// Routes are tried in the order the configuration presents them (<see cref="IConfiguration.GetChildren"/>: numeric keys
/// in number order, then names in ordinal order, so a JSON array keeps its order); the first match wins.
/// </remarks>
internal sealed class MllpRouteTable
{
    private MllpRouteTable(IReadOnlyList<MllpRoute> routes, int maxFrameSize, TimeSpan ackTimeout)
    {
        Routes = routes;
        MaxFrameSize = maxFrameSize;
        AckTimeout = ackTimeout;
    }

    public static MllpRouteTable Empty { get; } = new([], ProxyDefaults.MaxFrameSize, ProxyDefaults.AckTimeout);

    public IReadOnlyList<MllpRoute> Routes { get; }

    /// <summary>Largest MLLP message accepted from a sender or a node (bytes between &lt;SB&gt; and &lt;EB&gt;).</summary>
    public int MaxFrameSize { get; }

    /// <summary>How long a node has to acknowledge one message before it is sent elsewhere.</summary>
    public TimeSpan AckTimeout { get; }

    /// <summary>Reads <c>ImagingProxy:Mllp</c> (already validated by <see cref="ConfigurationValidator"/>).</summary>
    public static MllpRouteTable Load(IConfiguration root)
    {
        var section = root.GetSection(ImagingProxyOptions.SectionName).GetSection("Mllp");
        var routes = new List<MllpRoute>();
        foreach (var child in section.GetSection("Routes").GetChildren())
        {
            var config = child.Get<MllpRouteConfig>();
            if (config?.Cluster is not { Length: > 0 } cluster
                || !Hl7Pattern.TryCreate(config.MessageType, config.SendingApplication, config.SendingFacility, config.ReceivingApplication, config.ReceivingFacility, out var pattern, out _))
            {
                continue; // the validator rejects such a configuration; never let it widen a later catch-all
            }

            var listeners = config.Listeners is { Count: > 0 } names ? new HashSet<string>(names, StringComparer.OrdinalIgnoreCase) : null;
            routes.Add(new MllpRoute(child.Key, pattern, listeners, cluster));
        }

        var options = section.Get<MllpOptions>();
        return new MllpRouteTable(routes, options?.MaxFrameSize ?? ProxyDefaults.MaxFrameSize, options?.AckTimeout ?? ProxyDefaults.AckTimeout);
    }

    /// <summary>The first route whose pattern matches and that applies to <paramref name="listener"/>, or null.</summary>
    public MllpRoute? Match(in Hl7Header header, string listener)
    {
        foreach (var route in Routes)
        {
            if ((route.Listeners is null || route.Listeners.Contains(listener)) && route.Pattern.Matches(header))
            {
                return route;
            }
        }

        return null;
    }
}
