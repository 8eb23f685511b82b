namespace ImagingProxy.Dicom;

/// <summary>A-ASSOCIATE-RJ Source field (PS3.8 §9.3.4, Table 9-21).</summary>
public enum AssociateRejectSource : byte
{
    /// <summary>DICOM UL service-user.</summary>
    ServiceUser = 1,

    /// <summary>DICOM UL service-provider (ACSE related function).</summary>
    ServiceProviderAcse = 2,

    /// <summary>DICOM UL service-provider (Presentation related function).</summary>
    ServiceProviderPresentation = 3,
}
