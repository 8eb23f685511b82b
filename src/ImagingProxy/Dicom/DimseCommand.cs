using System.Text;

namespace ImagingProxy.Dicom;

/// <summary>
/// The command elements a proxy reads from a DIMSE command set (PS3.7 §9.3, §E.1). A view over the command bytes:
/// use it inside the callback that received it; <see cref="GetAffectedSopClassUid"/> copies the UID when needed.
/// </summary>
public readonly ref struct DimseCommand
{
    public DimseCommand(
        DimseCommandField commandField,
        ushort? messageId,
        ushort? messageIdBeingRespondedTo,
        ushort? commandDataSetType,
        ushort? status,
        ReadOnlySpan<byte> affectedSopClassUid)
    {
        CommandField = commandField;
        MessageId = messageId;
        MessageIdBeingRespondedTo = messageIdBeingRespondedTo;
        CommandDataSetType = commandDataSetType;
        Status = status;
        AffectedSopClassUid = affectedSopClassUid;
    }

    /// <summary>(0000,0100).</summary>
    public DimseCommandField CommandField { get; }

    /// <summary>(0000,0110), in requests.</summary>
    public ushort? MessageId { get; }

    /// <summary>(0000,0120), in responses.</summary>
    public ushort? MessageIdBeingRespondedTo { get; }

    /// <summary>(0000,0800).</summary>
    public ushort? CommandDataSetType { get; }

    /// <summary>(0000,0900), in responses.</summary>
    public ushort? Status { get; }

    /// <summary>(0000,0002) as ASCII without its NUL padding; empty when absent.</summary>
    public ReadOnlySpan<byte> AffectedSopClassUid { get; }

    /// <summary>True when CommandDataSetType says a data set follows (anything but 0x0101, PS3.7 §E.1).</summary>
    public bool HasDataSet => CommandDataSetType is { } type && type != CommandElement.NoDataSet;

    /// <summary>True for response command fields (bit 15 set, PS3.7 Annex E).</summary>
    public bool IsResponse => ((ushort)CommandField & 0x8000) != 0;

    public string? GetAffectedSopClassUid() => AffectedSopClassUid.IsEmpty ? null : Encoding.ASCII.GetString(AffectedSopClassUid);
}
