namespace ImagingProxy.Dicom;

/// <summary>Why <see cref="DimseObserver"/> stopped interpreting a byte stream.</summary>
public enum DimseStreamError
{
    /// <summary>A PDU-type byte outside PS3.8 Table 9-1.</summary>
    UnknownPduType,

    /// <summary>A-ASSOCIATE-RJ, A-RELEASE-RQ/RP or A-ABORT with a PDU-length other than 4 (PS3.8 §9.3.4, §9.3.6-9.3.8).</summary>
    InvalidFixedPduLength,

    /// <summary>A PDV item-length below 2, past the end of its P-DATA-TF, or a P-DATA-TF too short for a PDV header (PS3.8 §9.3.5).</summary>
    InvalidPdvLength,

    /// <summary>A command fragment on another presentation context than the fragments before it (PS3.8 Annex E.1).</summary>
    PresentationContextMismatch,
}
