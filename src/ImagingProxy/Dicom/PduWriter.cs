using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace ImagingProxy.Dicom;

/// <summary>Writes upper-layer PDUs (PS3.8 §9.3) straight into an <see cref="IBufferWriter{T}"/> such as a PipeWriter.</summary>
public static class PduWriter
{
    /// <summary>Length of the fixed-size PDUs (A-ASSOCIATE-RJ, A-RELEASE-RQ/RP, A-ABORT): header plus 4.</summary>
    public const int FixedPduLength = PduHeader.Size + 4;

    /// <summary>Header bytes in front of a PDV fragment in a one-PDV P-DATA-TF: PDU header + item-length + pcid + MCH.</summary>
    public const int PDataOverhead = PduHeader.Size + 6;

    /// <summary>
    /// Writes an A-ASSOCIATE-RQ (PS3.8 §9.3.2, Table 9-11) proposing one presentation context with one transfer
    /// syntax, with a User Information item holding Maximum Length, Implementation Class UID and, if not empty,
    /// Implementation Version Name. UIDs are written unpadded (PS3.8 §9.3.2.1). Returns the bytes written.
    /// </summary>
    public static int WriteAssociateRequest(
        IBufferWriter<byte> writer,
        ReadOnlySpan<char> calledAeTitle,
        ReadOnlySpan<char> callingAeTitle,
        byte presentationContextId,
        ReadOnlySpan<char> abstractSyntax,
        ReadOnlySpan<char> transferSyntax,
        uint maxPduLength,
        ReadOnlySpan<char> implementationClassUid,
        ReadOnlySpan<char> implementationVersionName)
    {
        ArgumentNullException.ThrowIfNull(writer);
        var applicationContextLength = 4 + DicomUids.ApplicationContextName.Length;
        var presentationContextValueLength = 4 + 4 + abstractSyntax.Length + 4 + transferSyntax.Length;
        var userInformationValueLength = (4 + 4) + (4 + implementationClassUid.Length)
            + (implementationVersionName.IsEmpty ? 0 : 4 + implementationVersionName.Length);
        var bodyLength = AssociateParser.FixedPartLength + applicationContextLength
            + 4 + presentationContextValueLength + 4 + userInformationValueLength;
        if (presentationContextValueLength > ushort.MaxValue || userInformationValueLength > ushort.MaxValue)
        {
            throw new ArgumentException("A UID is too long for an item.");
        }

        var total = PduHeader.Size + bodyLength;
        var span = writer.GetSpan(total)[..total];
        span.Clear();
        WriteHeader(span, PduType.AssociateRequest, (uint)bodyLength);
        BinaryPrimitives.WriteUInt16BigEndian(span[6..], 0x0001); // protocol-version bit 0
        AeTitle.Write(calledAeTitle, span.Slice(AeTitleRewriter.CalledAeTitleOffset, AeTitle.Length));
        AeTitle.Write(callingAeTitle, span.Slice(AeTitleRewriter.CallingAeTitleOffset, AeTitle.Length));

        var position = PduHeader.Size + AssociateParser.FixedPartLength;
        position = WriteAsciiItem(span, position, 0x10, DicomUids.ApplicationContextName);

        WriteItemHeader(span[position..], 0x20, presentationContextValueLength); // PS3.8 §9.3.2.2
        span[position + 4] = presentationContextId;
        position += 8;
        position = WriteAsciiItem(span, position, 0x30, abstractSyntax);
        position = WriteAsciiItem(span, position, 0x40, transferSyntax);

        WriteItemHeader(span[position..], 0x50, userInformationValueLength); // PS3.8 §9.3.2.3
        position += 4;
        WriteItemHeader(span[position..], 0x51, 4); // PS3.8 D.1
        BinaryPrimitives.WriteUInt32BigEndian(span[(position + 4)..], maxPduLength);
        position += 8;
        position = WriteAsciiItem(span, position, 0x52, implementationClassUid);
        if (!implementationVersionName.IsEmpty)
        {
            position = WriteAsciiItem(span, position, 0x55, implementationVersionName);
        }

        writer.Advance(position);
        return position;
    }

    /// <summary>Writes an A-ASSOCIATE-RJ (PS3.8 §9.3.4, Table 9-21); <paramref name="reason"/> is one of <see cref="AssociateRejectReasons"/>.</summary>
    public static void WriteAssociateReject(IBufferWriter<byte> writer, AssociateRejectResult result, AssociateRejectSource source, byte reason)
        => WriteFixed(writer, PduType.AssociateReject, (byte)result, (byte)source, reason);

    /// <summary>Writes an A-RELEASE-RQ (PS3.8 §9.3.6).</summary>
    public static void WriteReleaseRequest(IBufferWriter<byte> writer) => WriteFixed(writer, PduType.ReleaseRequest, 0, 0, 0);

    /// <summary>Writes an A-RELEASE-RP (PS3.8 §9.3.7).</summary>
    public static void WriteReleaseResponse(IBufferWriter<byte> writer) => WriteFixed(writer, PduType.ReleaseResponse, 0, 0, 0);

    /// <summary>Writes an A-ABORT (PS3.8 §9.3.8). The reason is only significant for <see cref="AbortSource.ServiceProvider"/>.</summary>
    public static void WriteAbort(IBufferWriter<byte> writer, AbortSource source, AbortReason reason)
        => WriteFixed(writer, PduType.Abort, 0, (byte)source, (byte)reason);

    /// <summary>Writes a P-DATA-TF holding one PDV item (PS3.8 §9.3.5, Annex E). Returns the bytes written.</summary>
    public static int WritePDataTransfer(IBufferWriter<byte> writer, byte presentationContextId, MessageControlHeader messageControlHeader, ReadOnlySpan<byte> fragment)
    {
        ArgumentNullException.ThrowIfNull(writer);
        var total = PDataOverhead + fragment.Length;
        var span = writer.GetSpan(total);
        WriteHeader(span, PduType.PDataTransfer, (uint)(total - PduHeader.Size));
        BinaryPrimitives.WriteUInt32BigEndian(span[6..], (uint)(2 + fragment.Length)); // item-length counts pcid and MCH
        span[10] = presentationContextId;
        span[11] = (byte)messageControlHeader;
        fragment.CopyTo(span[PDataOverhead..]);
        writer.Advance(total);
        return total;
    }

    private static void WriteFixed(IBufferWriter<byte> writer, PduType type, byte b1, byte b2, byte b3)
    {
        ArgumentNullException.ThrowIfNull(writer);
        var span = writer.GetSpan(FixedPduLength);
        WriteHeader(span, type, 4);
        span[6] = 0;
        span[7] = b1;
        span[8] = b2;
        span[9] = b3;
        writer.Advance(FixedPduLength);
    }

    private static void WriteHeader(Span<byte> span, PduType type, uint length)
    {
        span[0] = (byte)type;
        span[1] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(span[2..], length);
    }

    private static void WriteItemHeader(Span<byte> span, byte type, int length)
    {
        span[0] = type;
        span[1] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(span[2..], (ushort)length);
    }

    private static int WriteAsciiItem(Span<byte> span, int position, byte type, ReadOnlySpan<char> value)
    {
        WriteItemHeader(span[position..], type, value.Length);
        if (Ascii.FromUtf16(value, span.Slice(position + 4, value.Length), out _) != OperationStatus.Done)
        {
            throw new ArgumentException("UIDs and names in association items are ASCII.", nameof(value));
        }

        return position + 4 + value.Length;
    }
}
