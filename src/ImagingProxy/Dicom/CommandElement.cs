namespace ImagingProxy.Dicom;

/// <summary>Element numbers of the group 0000 command elements the codec reads or writes (PS3.7 §E.1, Table E.1-1).</summary>
public static class CommandElement
{
    public const ushort CommandGroupLength = 0x0000;
    public const ushort AffectedSopClassUid = 0x0002;
    public const ushort CommandField = 0x0100;
    public const ushort MessageId = 0x0110;
    public const ushort MessageIdBeingRespondedTo = 0x0120;
    public const ushort CommandDataSetType = 0x0800;
    public const ushort Status = 0x0900;

    /// <summary>CommandDataSetType value meaning "no data set follows" (PS3.7 §E.1); any other value means one does.</summary>
    public const ushort NoDataSet = 0x0101;

    /// <summary>Status (0000,0900) Success (PS3.7 Annex C).</summary>
    public const ushort StatusSuccess = 0x0000;
}
