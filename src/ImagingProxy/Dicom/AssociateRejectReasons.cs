namespace ImagingProxy.Dicom;

/// <summary>
/// A-ASSOCIATE-RJ Reason/Diag. values (PS3.8 §9.3.4, Table 9-21). The meaning of the byte depends on the source,
/// so the names carry the source as a prefix.
/// </summary>
public static class AssociateRejectReasons
{
    public const byte ServiceUserNoReasonGiven = 1;
    public const byte ServiceUserApplicationContextNameNotSupported = 2;
    public const byte ServiceUserCallingAeTitleNotRecognized = 3;
    public const byte ServiceUserCalledAeTitleNotRecognized = 7;

    public const byte ServiceProviderAcseNoReasonGiven = 1;
    public const byte ServiceProviderAcseProtocolVersionNotSupported = 2;

    public const byte ServiceProviderPresentationTemporaryCongestion = 1;
    public const byte ServiceProviderPresentationLocalLimitExceeded = 2;

    /// <summary>The Table 9-21 name of a reason, or "reserved" for values the table reserves.</summary>
    public static string Describe(AssociateRejectSource source, byte reason) => (source, reason) switch
    {
        (AssociateRejectSource.ServiceUser, ServiceUserNoReasonGiven) => "no-reason-given",
        (AssociateRejectSource.ServiceUser, ServiceUserApplicationContextNameNotSupported) => "application-context-name-not-supported",
        (AssociateRejectSource.ServiceUser, ServiceUserCallingAeTitleNotRecognized) => "calling-AE-title-not-recognized",
        (AssociateRejectSource.ServiceUser, ServiceUserCalledAeTitleNotRecognized) => "called-AE-title-not-recognized",
        (AssociateRejectSource.ServiceProviderAcse, ServiceProviderAcseNoReasonGiven) => "no-reason-given",
        (AssociateRejectSource.ServiceProviderAcse, ServiceProviderAcseProtocolVersionNotSupported) => "protocol-version-not-supported",
        (AssociateRejectSource.ServiceProviderPresentation, ServiceProviderPresentationTemporaryCongestion) => "temporary-congestion",
        (AssociateRejectSource.ServiceProviderPresentation, ServiceProviderPresentationLocalLimitExceeded) => "local-limit-exceeded",
        _ => "reserved",
    };
}
