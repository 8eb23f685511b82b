namespace ImagingProxy.Configuration;

/// <summary>
/// An HL7 route. Every criterion that is set must match; an empty route is a catch-all. Routes are tried by
/// <see cref="Order"/> (lower first, default 0), then the more specific route first (more criteria set, more MSH-9
/// components without <c>*</c>), then by name; the first match wins, so a catch-all never hides a specific route.
/// </summary>
public sealed record MllpRouteConfig
{
    /// <summary>Lower is tried first (default 0), like YARP's route <c>Order</c>.</summary>
    public int? Order { get; init; }

    /// <summary>MSH-9 pattern: <c>ADT^*</c>, <c>ORM^O01</c>, <c>*</c>.</summary>
    public string? MessageType { get; init; }

    /// <summary>MSH-3 (first component) or <c>*</c>.</summary>
    public string? SendingApplication { get; init; }

    /// <summary>MSH-4 (first component) or <c>*</c>.</summary>
    public string? SendingFacility { get; init; }

    /// <summary>MSH-5 (first component) or <c>*</c>.</summary>
    public string? ReceivingApplication { get; init; }

    /// <summary>MSH-6 (first component) or <c>*</c>.</summary>
    public string? ReceivingFacility { get; init; }

    /// <summary>When set, the route applies only to messages arriving on these listeners.</summary>
    public List<string>? Listeners { get; init; }

    /// <summary>The id of an <c>Mllp</c> cluster in <c>ReverseProxy:Clusters</c>.</summary>
    public string? Cluster { get; init; }
}
