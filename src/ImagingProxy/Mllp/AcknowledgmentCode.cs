namespace ImagingProxy.Mllp;

/// <summary>MSA-1 acknowledgment code (HL7 table 0008).</summary>
public enum AcknowledgmentCode : byte
{
    /// <summary>Not a valid code; never written.</summary>
    None = 0,

    /// <summary>AA: original mode application accept / enhanced mode application acknowledgment accept.</summary>
    ApplicationAccept,

    /// <summary>AE: application error (the sender may correct and resend).</summary>
    ApplicationError,

    /// <summary>AR: application reject (unsupported type, version or processing id, or unparseable).</summary>
    ApplicationReject,

    /// <summary>CA: enhanced mode accept acknowledgment, commit accept.</summary>
    CommitAccept,

    /// <summary>CE: enhanced mode accept acknowledgment, commit error.</summary>
    CommitError,

    /// <summary>CR: enhanced mode accept acknowledgment, commit reject.</summary>
    CommitReject,
}
