namespace ImagingProxy.Dicom;

/// <summary>Why an A-ASSOCIATE-RQ/AC body could not be parsed (PS3.8 §9.3.2, §9.3.3).</summary>
public enum AssociateParseError
{
    None = 0,

    /// <summary>The body is shorter than the 68-byte fixed part.</summary>
    TooShort,

    /// <summary>
    /// The PDU-length is over <c>ImagingProxy:Dicom:MaxAssociatePduLength</c>: the PDU is not read (never buffered by a
    /// length from the wire), the sender gets A-ABORT. Not found by the parser, which only sees PDUs within the limit.
    /// </summary>
    OverMaximumLength,

    /// <summary>Bit 0 of the protocol-version field is not set (answer RJ source 2 reason 2).</summary>
    ProtocolVersionNotSupported,

    /// <summary>Called AE title empty (16 spaces) or with characters not allowed by the AE VR (answer RJ source 1 reason 7).</summary>
    InvalidCalledAeTitle,

    /// <summary>Calling AE title empty or with characters not allowed by the AE VR (answer RJ source 1 reason 3).</summary>
    InvalidCallingAeTitle,

    /// <summary>An item or sub-item header is cut short, or its length runs past its container.</summary>
    ItemLengthInvalid,

    /// <summary>No Application Context item (0x10), or more than one.</summary>
    InvalidApplicationContext,

    /// <summary>No Presentation Context item (0x20 in an RQ, 0x21 in an AC).</summary>
    MissingPresentationContext,

    /// <summary>A presentation context without exactly one abstract syntax (RQ) or without a transfer syntax (RQ).</summary>
    InvalidPresentationContext,

    /// <summary>No User Information item (0x50), or more than one.</summary>
    InvalidUserInformation,

    /// <summary>A Maximum Length sub-item (0x51) whose length is not 4.</summary>
    InvalidMaximumLength,
}
