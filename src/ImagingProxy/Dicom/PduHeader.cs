namespace ImagingProxy.Dicom;

/// <summary>
/// The 6-byte header every PDU starts with: <c>type:u8 | reserved:u8 | length:u32 BE</c> (PS3.8 §9.3.1).
/// <see cref="Length"/> is the PDU-length field: the bytes after the header.
/// </summary>
public readonly record struct PduHeader(PduType Type, uint Length)
{
    /// <summary>Size of the PDU header on the wire.</summary>
    public const int Size = 6;

    /// <summary>Header plus body.</summary>
    public long TotalLength => Size + (long)Length;
}
