using ImagingProxy.Configuration;

namespace ImagingProxy.Dicom;

/// <summary>
/// Picks the DICOM route of an association: routes for the listener it arrived on, an exact Called AE title first,
/// then <c>*</c>; a route restricted to some Calling AE titles is skipped for the others. AE titles compare
/// case-sensitively, as PS3.5 defines them; leading and trailing spaces are not significant (trimmed on the wire side
/// when read, on the configured side when compared).
/// </summary>
public static class DicomRouteTable
{
    /// <summary>The wildcard Called AE title.</summary>
    public const string AnyCalledAeTitle = "*";

    /// <summary>The routes in matching order (by id, so overlapping routes resolve the same way after every reload).</summary>
    public static KeyValuePair<string, DicomRouteConfig>[] Order(IReadOnlyDictionary<string, DicomRouteConfig> routes)
    {
        ArgumentNullException.ThrowIfNull(routes);
        var ordered = new KeyValuePair<string, DicomRouteConfig>[routes.Count];
        var i = 0;
        foreach (var route in routes)
        {
            ordered[i++] = route;
        }

        Array.Sort(ordered, static (a, b) => StringComparer.OrdinalIgnoreCase.Compare(a.Key, b.Key));
        return ordered;
    }

    public static DicomRouteMatch Match(IReadOnlyDictionary<string, DicomRouteConfig> routes, string calledAeTitle, string callingAeTitle, string? listener)
        => Match(Order(routes), calledAeTitle, callingAeTitle, listener);

    /// <summary>Matches against routes already in <see cref="Order"/> (done once per configuration generation).</summary>
    public static DicomRouteMatch Match(ReadOnlySpan<KeyValuePair<string, DicomRouteConfig>> ordered, string calledAeTitle, string callingAeTitle, string? listener)
    {
        var calledKnown = false;
        foreach (var wildcard in (ReadOnlySpan<bool>)[false, true])
        {
            foreach (var (id, route) in ordered)
            {
                var matchesCalled = wildcard
                    ? route.CalledAeTitle == AnyCalledAeTitle
                    : SameAeTitle(route.CalledAeTitle, calledAeTitle);
                if (!matchesCalled || !ServesListener(route, listener))
                {
                    continue;
                }

                calledKnown = true;
                if (AllowsCalling(route, callingAeTitle))
                {
                    return new DicomRouteMatch(DicomRouteMatchResult.Matched, id, route);
                }
            }
        }

        return new DicomRouteMatch(
            calledKnown ? DicomRouteMatchResult.CallingAeTitleNotRecognized : DicomRouteMatchResult.CalledAeTitleNotRecognized,
            null,
            null);
    }

    /// <summary>
    /// The one cluster every association arriving on <paramref name="listener"/> can be routed to, known before its
    /// A-ASSOCIATE-RQ arrives: every route serving the listener names it (at least one does). Null otherwise.
    /// </summary>
    public static string? SingleCluster(ReadOnlySpan<KeyValuePair<string, DicomRouteConfig>> ordered, string? listener)
    {
        string? cluster = null;
        foreach (var (_, route) in ordered)
        {
            if (!ServesListener(route, listener))
            {
                continue;
            }

            if (route.Cluster is null || (cluster is not null && !string.Equals(cluster, route.Cluster, StringComparison.OrdinalIgnoreCase)))
            {
                return null;
            }

            cluster = route.Cluster;
        }

        return cluster;
    }

    private static bool ServesListener(DicomRouteConfig route, string? listener)
        => route.Listeners is not { Count: > 0 } listeners
            || (listener is not null && listeners.Contains(listener, StringComparer.OrdinalIgnoreCase));

    private static bool AllowsCalling(DicomRouteConfig route, string callingAeTitle)
    {
        if (route.CallingAeTitles is not { Count: > 0 } allowed)
        {
            return true;
        }

        foreach (var title in allowed)
        {
            if (SameAeTitle(title, callingAeTitle))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// A configured AE title against one read from the wire (already trimmed): leading and trailing spaces are not
    /// significant (PS3.5 VR AE) on either side, so <c>"PACS "</c> in the configuration, which validates, matches too.
    /// </summary>
    private static bool SameAeTitle(string? configured, string wire)
        => configured is not null && configured.AsSpan().Trim(' ').SequenceEqual(wire);
}
