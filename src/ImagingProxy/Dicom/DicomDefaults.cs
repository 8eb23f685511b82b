namespace ImagingProxy.Dicom;

/// <summary>The DICOM feature's defaults, in one place.</summary>
public static class DicomDefaults
{
    /// <summary>Maximum P-DATA-TF PDU-length we announce and accept (PS3.8 D.1); dcmtk's default too.</summary>
    public const uint MaxPduLength = 16 * 1024;

    /// <summary>Bound for association-phase PDUs (RQ/AC) whose length is not negotiated (protocols.md §1.2).</summary>
    public const uint AssociationPduLimit = 64 * 1024;

    /// <summary>Presentation context id our C-ECHO client proposes (PS3.8 §9.3.2.2: odd, 1-255).</summary>
    public const byte EchoPresentationContextId = 1;
}
