namespace ImagingProxy.Dicom;

/// <summary>The result of <see cref="DicomEchoClient"/>: an outcome, a short detail, and the fields of the PDU that decided it.</summary>
public readonly record struct EchoResult(EchoOutcome Outcome, string Detail)
{
    /// <summary>A-ASSOCIATE-RJ fields when <see cref="Outcome"/> is <see cref="EchoOutcome.Rejected"/>.</summary>
    public AssociateRejectResult? RejectResult { get; init; }

    public AssociateRejectSource? RejectSource { get; init; }

    /// <summary>Reason byte, see <see cref="AssociateRejectReasons"/>.</summary>
    public byte? RejectReason { get; init; }

    /// <summary>A-ABORT fields when <see cref="Outcome"/> is <see cref="EchoOutcome.Aborted"/>.</summary>
    public AbortSource? AbortSource { get; init; }

    public AbortReason? AbortReason { get; init; }

    /// <summary>C-ECHO-RSP Status (0000,0900) when one was received.</summary>
    public ushort? Status { get; init; }

    public bool IsSuccess => Outcome == EchoOutcome.Success;

    public override string ToString() => $"{Outcome}: {Detail}";
}
