namespace ImagingProxy.Dicom;

/// <summary>
/// How one association went, raised by <see cref="DicomConnectionHandler.AssociationEnded"/> when it ends.
/// <see cref="StartedAtAccept"/>: served from the accepting thread (<see cref="DicomAcceptStart"/>).
/// </summary>
public sealed record DicomAssociationSummary(
    string Id,
    DicomAssociationEndReason Reason,
    string? CallingAeTitle,
    string? CalledAeTitle,
    string? ClusterId,
    string? DestinationId,
    long BytesFromClient,
    long BytesFromNode,
    int CStoreRequests,
    int CEchoRequests,
    int Attempts = 0,
    bool StartedAtAccept = false);
