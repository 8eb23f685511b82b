using ImagingProxy.Dicom;

namespace ImagingProxy.Tests.Dicom;

/// <summary>Records observer events as readable lines, so whole event sequences compare with one assertion.</summary>
internal sealed class RecordingObserverEvents : IDimseObserverEvents
{
    public List<string> Events { get; } = [];

    public bool RecordPdus { get; init; } = true;

    public void OnPdu(PduHeader header)
    {
        if (RecordPdus)
        {
            Events.Add($"pdu {header.Type} {header.Length}");
        }
    }

    public void OnCommand(byte presentationContextId, DimseCommand command)
        => Events.Add($"command pc{presentationContextId} {command.CommandField} status={command.Status?.ToString("X4") ?? "-"} sop={command.GetAffectedSopClassUid()}");

    public void OnCommandUnparsed(byte presentationContextId, long length) => Events.Add($"unparsed pc{presentationContextId} {length}");

    public void OnAssociateReject(AssociateRejectResult result, AssociateRejectSource source, byte reason) => Events.Add($"reject {result} {source} {reason}");

    public void OnAbort(AbortSource source, AbortReason reason) => Events.Add($"abort {source} {reason}");

    public void OnMalformed(DimseStreamError error) => Events.Add($"malformed {error}");
}
