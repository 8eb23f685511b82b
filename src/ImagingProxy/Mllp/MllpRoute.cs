namespace ImagingProxy.Mllp;

/// <summary>One compiled <c>ImagingProxy:Mllp:Routes</c> entry.</summary>
/// <param name="Id">The route's configuration key (a metric tag and log field).</param>
/// <param name="Pattern">MSH-9 and MSH-3..6 pattern.</param>
/// <param name="Listeners">Listener names the route applies to; null for every listener.</param>
/// <param name="Cluster">The cluster whose nodes receive matching messages.</param>
internal sealed record MllpRoute(string Id, Hl7Pattern Pattern, IReadOnlySet<string>? Listeners, string Cluster);
