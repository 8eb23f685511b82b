using ImagingProxy.Configuration;

namespace ImagingProxy.Dicom;

/// <summary>
/// Picks the DICOM route of an association: routes for the listener it arrived on, an exact Called AE title first,
/// then <c>*</c>; a route restricted to some Calling AE titles is skipped for the others. AE titles compare
/// case-sensitively, as PS3.5 defines them; leading and trailing spaces are not significant and were already trimmed.
/// </summary>
public static class DicomRouteTable
{
    /// <summary>The wildcard Called AE title.</summary>
    public const string AnyCalledAeTitle = "*";

    public static DicomRouteMatch Match(IReadOnlyDictionary<string, DicomRouteConfig> routes, string calledAeTitle, string callingAeTitle, string? listener)
    {
        ArgumentNullException.ThrowIfNull(routes);
        var calledKnown = false;
        foreach (var wildcard in (ReadOnlySpan<bool>)[false, true])
        {
            // Ordered by id so that overlapping routes resolve the same way after every reload.
            foreach (var (id, route) in routes.OrderBy(r => r.Key, StringComparer.OrdinalIgnoreCase))
            {
                var matchesCalled = wildcard
                    ? route.CalledAeTitle == AnyCalledAeTitle
                    : string.Equals(route.CalledAeTitle, calledAeTitle, StringComparison.Ordinal);
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

    private static bool ServesListener(DicomRouteConfig route, string? listener)
        => route.Listeners is not { Count: > 0 } listeners
            || (listener is not null && listeners.Contains(listener, StringComparer.OrdinalIgnoreCase));

    private static bool AllowsCalling(DicomRouteConfig route, string callingAeTitle)
        => route.CallingAeTitles is not { Count: > 0 } allowed || allowed.Contains(callingAeTitle, StringComparer.Ordinal);
}
