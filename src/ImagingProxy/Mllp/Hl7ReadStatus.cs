namespace ImagingProxy.Mllp;

/// <summary>Outcome of reading an HL7 v2 header (<see cref="Hl7HeaderReader"/>) or acknowledgement (<see cref="Hl7AckReader"/>).</summary>
/// <remarks>
/// Statuses after <see cref="BadDelimiters"/> leave a partly read result: the delimiters and every field that was present
/// are valid, so a caller can still answer AR/CR when the message control id (MSH-10) was read.
/// </remarks>
public enum Hl7ReadStatus
{
    Success = 0,

    /// <summary>The message does not begin with an MSH segment.</summary>
    NoMsh,

    /// <summary>
    /// MSH-1/MSH-2 do not declare a usable set of delimiters (HL7 v2.5 §2.5.4). When MSH-1 is usable, the header reader
    /// still reads the fields with it and the usual encoding characters, so that a NAK can answer MSH-10.
    /// </summary>
    BadDelimiters,

    /// <summary>The MSH segment is longer than the configured maximum.</summary>
    HeaderTooLong,

    /// <summary>MSH-10 (message control id) is empty.</summary>
    MissingControlId,

    /// <summary>MSH-9.1 (message code) is empty.</summary>
    MissingMessageType,

    /// <summary>No MSA segment in the scanned part of an acknowledgement.</summary>
    NoMsa,

    /// <summary>MSA-1 is not one of AA, AE, AR, CA, CE, CR (HL7 table 0008).</summary>
    UnknownAcknowledgmentCode,
}
