namespace ImagingProxy.Dicom;

/// <summary>What <see cref="PduReader.TryReadPdu"/> found at the start of the buffer.</summary>
public enum PduReadResult
{
    /// <summary>Not enough bytes yet; nothing was consumed.</summary>
    Incomplete,

    /// <summary>A whole PDU was read and consumed.</summary>
    Complete,

    /// <summary>The PDU-length field exceeds the limit; decided from the header alone, before any body is buffered.</summary>
    TooLarge,

    /// <summary>The PDU-type byte is none of PS3.8 Table 9-1 (answer with A-ABORT source 2 reason 1).</summary>
    UnknownType,
}
