namespace ImagingProxy.Dicom;

/// <summary>Well-known UIDs (PS3.6 Annex A) and the project's own implementation identity (PS3.7 D.3.3.2).</summary>
public static class DicomUids
{
    /// <summary>DICOM Application Context Name (PS3.7 Annex A.2.1).</summary>
    public const string ApplicationContextName = "1.2.840.10008.3.1.1.1";

    /// <summary>Verification SOP Class (PS3.4 Annex A).</summary>
    public const string Verification = "1.2.840.10008.1.1";

    /// <summary>Implicit VR Little Endian, the default transfer syntax (PS3.5 §10.1).</summary>
    public const string ImplicitVrLittleEndian = "1.2.840.10008.1.2";

    /// <summary>Explicit VR Little Endian (PS3.5 §10.1).</summary>
    public const string ExplicitVrLittleEndian = "1.2.840.10008.1.2.1";

    /// <summary>ImagingProxy's Implementation Class UID, a UUID-derived UID under 2.25 (PS3.5 Annex B.2).</summary>
    public const string ImplementationClassUid = "2.25.44264399306526363112187445203753590707";

    /// <summary>ImagingProxy's Implementation Version Name (PS3.7 D.3.3.2.2; 1-16 characters).</summary>
    public const string ImplementationVersionName = "IMAGINGPROXY";
}
