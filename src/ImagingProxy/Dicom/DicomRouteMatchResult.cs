namespace ImagingProxy.Dicom;

/// <summary>How a Called/Calling AE title pair met the DICOM routes.</summary>
public enum DicomRouteMatchResult
{
    Matched,

    /// <summary>No route for the Called AE title (A-ASSOCIATE-RJ permanent, service-user, reason 7).</summary>
    CalledAeTitleNotRecognized,

    /// <summary>A route exists for the Called AE title but not for this Calling AE title (reason 3).</summary>
    CallingAeTitleNotRecognized,
}
