using ImagingProxy.Dicom;

namespace ImagingProxy.Tests.Dicom;

public sealed class RelayOutcomeTests
{
    [Theory]
    [InlineData(RelayEnd.SourceClosed, RelayEnd.Stopped, true, false, false, false, false, false, DicomAssociationEndReason.Released)]
    [InlineData(RelayEnd.SourceClosed, RelayEnd.Stopped, true, false, true, false, false, false, DicomAssociationEndReason.ClientAborted)]
    [InlineData(RelayEnd.Stopped, RelayEnd.SourceClosed, false, false, false, true, false, false, DicomAssociationEndReason.NodeAborted)]
    [InlineData(RelayEnd.Malformed, RelayEnd.Stopped, true, false, false, false, false, false, DicomAssociationEndReason.Malformed)]
    [InlineData(RelayEnd.Malformed, RelayEnd.Stopped, true, false, true, false, false, false, DicomAssociationEndReason.Malformed)]
    [InlineData(RelayEnd.Stopped, RelayEnd.Malformed, false, false, false, true, false, false, DicomAssociationEndReason.Malformed)]
    [InlineData(RelayEnd.Stopped, RelayEnd.Stopped, false, false, false, false, true, false, DicomAssociationEndReason.Idle)]
    [InlineData(RelayEnd.Stopped, RelayEnd.Stopped, false, false, false, false, false, true, DicomAssociationEndReason.Shutdown)]
    [InlineData(RelayEnd.SourceClosed, RelayEnd.Stopped, true, false, false, false, false, false, DicomAssociationEndReason.ClientClosed)]
    [InlineData(RelayEnd.Stopped, RelayEnd.TargetClosed, false, false, false, false, false, false, DicomAssociationEndReason.ClientClosed)]
    [InlineData(RelayEnd.Stopped, RelayEnd.SourceClosed, false, false, false, false, false, false, DicomAssociationEndReason.NodeClosed)]
    [InlineData(RelayEnd.TargetClosed, RelayEnd.Stopped, true, false, false, false, false, false, DicomAssociationEndReason.NodeClosed)]
    public void Names_one_end_reason(RelayEnd clientToNode, RelayEnd nodeToClient, bool clientFirst, bool released, bool clientAborted, bool nodeAborted, bool idle, bool shutdown, DicomAssociationEndReason expected)
    {
        if (expected == DicomAssociationEndReason.Released)
        {
            released = true;
        }

        var outcome = new RelayOutcome(clientToNode, nodeToClient, clientFirst, released, clientAborted, nodeAborted, idle, shutdown);

        Assert.Equal(expected, outcome.Decide());
    }

    [Theory]
    [InlineData(DicomAssociationEndReason.Released, false, false)]
    [InlineData(DicomAssociationEndReason.ClientAborted, false, false)]
    [InlineData(DicomAssociationEndReason.NodeClosed, true, false)]
    [InlineData(DicomAssociationEndReason.ClientClosed, false, true)]
    [InlineData(DicomAssociationEndReason.Idle, true, true)]
    [InlineData(DicomAssociationEndReason.Shutdown, true, true)]
    public void Aborts_only_the_side_still_waiting(DicomAssociationEndReason reason, bool abortClient, bool abortNode)
    {
        Assert.Equal(abortClient, RelayOutcome.AbortClient(reason));
        Assert.Equal(abortNode, RelayOutcome.AbortNode(reason));
    }
}
