namespace ImagingProxy.Dicom;

/// <summary>A-ABORT Reason/Diag. field, significant only when the source is the service-provider (PS3.8 §9.3.8, Table 9-26).</summary>
public enum AbortReason : byte
{
    ReasonNotSpecified = 0,
    UnrecognizedPdu = 1,
    UnexpectedPdu = 2,
    Reserved = 3,
    UnrecognizedPduParameter = 4,
    UnexpectedPduParameter = 5,
    InvalidPduParameterValue = 6,
}
