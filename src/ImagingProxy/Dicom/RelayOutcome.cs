namespace ImagingProxy.Dicom;

/// <summary>
/// Everything known when both directions of an association's relay have stopped; <see cref="Decide"/> names the one
/// reason it ended, and <see cref="AbortClient"/>/<see cref="AbortNode"/> say which side still needs an A-ABORT.
/// </summary>
public readonly record struct RelayOutcome(
    RelayEnd ClientToNode,
    RelayEnd NodeToClient,
    bool ClientSideEndedFirst,
    bool Released,
    bool ClientAborted,
    bool NodeAborted,
    bool Idle,
    bool Shutdown)
{
    public DicomAssociationEndReason Decide()
    {
        // First: the read that turned a direction malformed was not relayed, and with it any A-RELEASE-RP or A-ABORT it
        // carried before the garbage (its flag is set all the same). The other side never had it, so both get A-ABORT.
        if (ClientToNode == RelayEnd.Malformed || NodeToClient == RelayEnd.Malformed)
        {
            return DicomAssociationEndReason.Malformed;
        }

        if (Released)
        {
            return DicomAssociationEndReason.Released;
        }

        if (ClientAborted)
        {
            return DicomAssociationEndReason.ClientAborted;
        }

        if (NodeAborted)
        {
            return DicomAssociationEndReason.NodeAborted;
        }

        if (Idle)
        {
            return DicomAssociationEndReason.Idle;
        }

        if (Shutdown)
        {
            return DicomAssociationEndReason.Shutdown;
        }

        var clientGone = ClientToNode == RelayEnd.SourceClosed || NodeToClient == RelayEnd.TargetClosed;
        var nodeGone = NodeToClient == RelayEnd.SourceClosed || ClientToNode == RelayEnd.TargetClosed;
        return (clientGone, nodeGone) switch
        {
            (true, false) => DicomAssociationEndReason.ClientClosed,
            (false, true) => DicomAssociationEndReason.NodeClosed,
            _ => ClientSideEndedFirst ? DicomAssociationEndReason.ClientClosed : DicomAssociationEndReason.NodeClosed,
        };
    }

    /// <summary>True when the client must be sent an A-ABORT (PS3.8 §9.3.8, source 2) before the transport closes.</summary>
    public static bool AbortClient(DicomAssociationEndReason reason) => reason is DicomAssociationEndReason.NodeClosed
        or DicomAssociationEndReason.Idle or DicomAssociationEndReason.Shutdown or DicomAssociationEndReason.Malformed;

    /// <summary>True when the node must be sent an A-ABORT before the transport closes.</summary>
    public static bool AbortNode(DicomAssociationEndReason reason) => reason is DicomAssociationEndReason.ClientClosed
        or DicomAssociationEndReason.Idle or DicomAssociationEndReason.Shutdown or DicomAssociationEndReason.Malformed;
}
