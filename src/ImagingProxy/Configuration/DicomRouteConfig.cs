namespace ImagingProxy.Configuration;

/// <summary>A DICOM route: associations whose Called AE title matches go to <see cref="Cluster"/>.</summary>
public sealed record DicomRouteConfig
{
    /// <summary>The Called AE title to match exactly, or <c>*</c> for any (exact routes win over <c>*</c>).</summary>
    public string? CalledAeTitle { get; init; }

    /// <summary>When set, only these Calling AE titles may use the route; others are rejected (calling-AE-title-not-recognized).</summary>
    public List<string>? CallingAeTitles { get; init; }

    /// <summary>When set, the route applies only to associations arriving on these listeners.</summary>
    public List<string>? Listeners { get; init; }

    /// <summary>The id of a <c>Dicom</c> cluster in <c>ReverseProxy:Clusters</c>.</summary>
    public string? Cluster { get; init; }
}
