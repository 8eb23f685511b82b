using ImagingProxy.Configuration;
using Microsoft.Extensions.Configuration;

namespace ImagingProxy.Mllp;

/// <summary>
/// The MLLP routes and limits of one configuration generation, compiled for per-message matching.
/// </summary>
/// <remarks>
/// The configuration system does not keep the order of JSON object keys, so routes are sorted: by
/// <see cref="MllpRouteConfig.Order"/> (default 0), then the more specific first (<see cref="Specificity"/>), then by
/// name. The first match wins, so a catch-all never hides a specific route.
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
        var candidates = new List<(int Order, int Specificity, int Index, MllpRoute Route)>();
        var index = 0;
        foreach (var child in section.GetSection("Routes").GetChildren())
        {
            var config = child.Get<MllpRouteConfig>();
            if (config?.Cluster is not { Length: > 0 } cluster
                || !Hl7Pattern.TryCreate(config.MessageType, config.SendingApplication, config.SendingFacility, config.ReceivingApplication, config.ReceivingFacility, out var pattern, out _))
            {
                continue; // the validator rejects such a configuration; never let it widen a later catch-all
            }

            var listeners = config.Listeners is { Count: > 0 } names ? new HashSet<string>(names, StringComparer.OrdinalIgnoreCase) : null;
            candidates.Add((config.Order ?? 0, Specificity(config), index++, new MllpRoute(child.Key, pattern, listeners, cluster)));
        }

        candidates.Sort(static (a, b) => a.Order != b.Order ? a.Order.CompareTo(b.Order)
            : a.Specificity != b.Specificity ? b.Specificity.CompareTo(a.Specificity)
            : a.Index.CompareTo(b.Index));
        var routes = new List<MllpRoute>(candidates.Count);
        foreach (var candidate in candidates)
        {
            routes.Add(candidate.Route);
        }

        var options = section.Get<MllpOptions>();
        return new MllpRouteTable(routes, options?.MaxFrameSize ?? ProxyDefaults.MaxFrameSize, options?.AckTimeout ?? ProxyDefaults.AckTimeout);
    }

    /// <summary>How specific a route is: one point per criterion set (not <c>*</c>), MSH-9 counting each component.</summary>
    internal static int Specificity(MllpRouteConfig config)
    {
        var score = 0;
        if (config.MessageType is { Length: > 0 } type && type != "*")
        {
            foreach (var component in type.Split('^'))
            {
                score += component == "*" ? 0 : 1;
            }
        }

        foreach (var value in new[] { config.SendingApplication, config.SendingFacility, config.ReceivingApplication, config.ReceivingFacility })
        {
            score += string.IsNullOrEmpty(value) || value == "*" ? 0 : 1;
        }

        return score + (config.Listeners is { Count: > 0 } ? 1 : 0);
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
