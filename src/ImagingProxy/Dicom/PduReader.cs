using System.Buffers;
using System.Buffers.Binary;

namespace ImagingProxy.Dicom;

/// <summary>Pure PDU framing reader (PS3.8 §9.3.1). Never copies a body: it hands back a slice of the input.</summary>
public static class PduReader
{
    /// <summary>
    /// Reads one PDU from the start of <paramref name="buffer"/>. On <see cref="PduReadResult.Complete"/> the buffer is
    /// advanced past the PDU and <paramref name="body"/> is a slice of it; on any other result the buffer is unchanged.
    /// The type is judged on the first byte and the length on the header alone, so a bad or oversized PDU is refused
    /// before its body is buffered. Reserved header byte 1 is never tested (PS3.8 §9.3.1).
    /// <paramref name="maxPduLength"/> is the largest acceptable PDU-length field value (bytes after the 6-byte header).
    /// </summary>
    public static PduReadResult TryReadPdu(
        ref ReadOnlySequence<byte> buffer,
        uint maxPduLength,
        out PduHeader header,
        out ReadOnlySequence<byte> body)
    {
        header = default;
        body = default;
        if (buffer.IsEmpty)
        {
            return PduReadResult.Incomplete;
        }

        var type = buffer.FirstSpan[0];
        if (!IsKnownType(type))
        {
            header = new PduHeader((PduType)type, 0);
            return PduReadResult.UnknownType;
        }

        if (buffer.Length < PduHeader.Size)
        {
            return PduReadResult.Incomplete;
        }

        Span<byte> raw = stackalloc byte[PduHeader.Size];
        buffer.Slice(0, PduHeader.Size).CopyTo(raw);
        var length = BinaryPrimitives.ReadUInt32BigEndian(raw[2..]);
        header = new PduHeader((PduType)type, length);
        if (length > maxPduLength)
        {
            return PduReadResult.TooLarge;
        }

        if (buffer.Length - PduHeader.Size < length)
        {
            return PduReadResult.Incomplete;
        }

        body = buffer.Slice(PduHeader.Size, length);
        buffer = buffer.Slice(body.End);
        return PduReadResult.Complete;
    }

    /// <summary>True for the PDU types of PS3.8 Table 9-1 (0x01..0x07).</summary>
    public static bool IsKnownType(byte type) => type is >= (byte)PduType.AssociateRequest and <= (byte)PduType.Abort;
}
