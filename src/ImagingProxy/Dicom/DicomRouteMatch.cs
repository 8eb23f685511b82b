using ImagingProxy.Configuration;

namespace ImagingProxy.Dicom;

/// <summary>The outcome of matching the <see cref="DicomRouteTable"/>: a route, or the PS3.8 reject reason to send.</summary>
public readonly record struct DicomRouteMatch(DicomRouteMatchResult Result, string? RouteId, DicomRouteConfig? Route)
{
    public bool IsMatch => Result == DicomRouteMatchResult.Matched;
}
