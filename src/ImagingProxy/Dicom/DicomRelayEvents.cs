namespace ImagingProxy.Dicom;

/// <summary>Receives what a <see cref="DimseObserver"/> sees in one relay direction and records it on the association.</summary>
internal sealed class DicomRelayEvents(DicomAssociation association, bool fromClient, DicomProxyMetrics? metrics) : IDimseObserverEvents
{
    public void OnPdu(PduHeader header)
    {
        // PS3.8 §9.3.7: an A-RELEASE-RP completes the release when it answers an A-RELEASE-RQ that went the other way (a
        // collision, both RQs, still ends in RPs). One that answers nothing is an unexpected PDU (Table 9-10, Sta6: AA-8),
        // relayed for the peer to abort, and releases nothing.
        if (header.Type == PduType.ReleaseRequest)
        {
            association.ReleaseRequested(fromClient);
        }
        else if (header.Type == PduType.ReleaseResponse && association.WasReleaseRequested(fromClient: !fromClient))
        {
            association.MarkReleased();
        }
    }

    public void OnCommand(byte presentationContextId, DimseCommand command)
    {
        association.CountCommand(command.CommandField);
        metrics?.DimseOperation(association.Listener, association.ClusterId ?? string.Empty, command.CommandField, command.Status);
    }

    public void OnCommandUnparsed(byte presentationContextId, long length)
    {
    }

    public void OnAssociateReject(AssociateRejectResult result, AssociateRejectSource source, byte reason)
    {
        // Not expected after the AC (PS3.8 Table 9-10); the peer will answer it, the proxy only relays.
    }

    public void OnAbort(AbortSource source, AbortReason reason)
    {
        // PS3.8 §9.2 (AA-1 to AA-3): after an A-ABORT the association is over and the transport closes; a side that keeps
        // its connection open is closed when ARTIM expires, as after a release, not after the idle timeout.
        association.IdleWatch?.Released();
        if (fromClient)
        {
            association.ClientAborted = true;
        }
        else
        {
            association.NodeAborted = true;
            association.NodeAbort = (source, reason);
        }
    }

    public void OnMalformed(DimseStreamError error)
    {
        if (fromClient)
        {
            association.ClientMalformed ??= error;
        }
        else
        {
            association.NodeMalformed ??= error;
        }
    }
}
