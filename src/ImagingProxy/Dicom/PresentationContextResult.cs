namespace ImagingProxy.Dicom;

/// <summary>Presentation context Result/Reason in an A-ASSOCIATE-AC (PS3.8 §9.3.3.2, Table 9-18).</summary>
public enum PresentationContextResult : byte
{
    Acceptance = 0,
    UserRejection = 1,

    /// <summary>no-reason (provider rejection).</summary>
    NoReason = 2,

    /// <summary>abstract-syntax-not-supported (provider rejection).</summary>
    AbstractSyntaxNotSupported = 3,

    /// <summary>transfer-syntaxes-not-supported (provider rejection).</summary>
    TransferSyntaxesNotSupported = 4,
}
