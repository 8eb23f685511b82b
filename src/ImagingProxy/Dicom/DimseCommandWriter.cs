using System.Buffers.Binary;

namespace ImagingProxy.Dicom;

/// <summary>
/// Encodes C-ECHO command sets (PS3.7 §9.3.5): group 0000 in ascending tag order, Implicit VR Little Endian,
/// CommandGroupLength first; the UI value padded with one NUL to even length (PS3.5 §6.2).
/// </summary>
public static class DimseCommandWriter
{
    /// <summary>Bytes of a C-ECHO-RQ command set (12 + 56).</summary>
    public const int EchoRequestLength = 68;

    /// <summary>Bytes of a C-ECHO-RSP command set (12 + 66).</summary>
    public const int EchoResponseLength = 78;

    internal const int ElementHeaderLength = 8;

    // "1.2.840.10008.1.1" (17 bytes) + NUL.
    private static ReadOnlySpan<byte> VerificationUidPadded => "1.2.840.10008.1.1\0"u8;

    /// <summary>Writes a C-ECHO-RQ; returns the bytes written (<see cref="EchoRequestLength"/>).</summary>
    public static int WriteEchoRequest(Span<byte> destination, ushort messageId)
    {
        var span = destination[..EchoRequestLength];
        var position = WriteUl(span, 0, CommandElement.CommandGroupLength, EchoRequestLength - 12);
        position = WriteBytes(span, position, CommandElement.AffectedSopClassUid, VerificationUidPadded);
        position = WriteUs(span, position, CommandElement.CommandField, (ushort)DimseCommandField.CEchoRequest);
        position = WriteUs(span, position, CommandElement.MessageId, messageId);
        return WriteUs(span, position, CommandElement.CommandDataSetType, CommandElement.NoDataSet);
    }

    /// <summary>Writes a C-ECHO-RSP with AffectedSOPClassUID present; returns the bytes written (<see cref="EchoResponseLength"/>).</summary>
    public static int WriteEchoResponse(Span<byte> destination, ushort messageIdBeingRespondedTo, ushort status)
    {
        var span = destination[..EchoResponseLength];
        var position = WriteUl(span, 0, CommandElement.CommandGroupLength, EchoResponseLength - 12);
        position = WriteBytes(span, position, CommandElement.AffectedSopClassUid, VerificationUidPadded);
        position = WriteUs(span, position, CommandElement.CommandField, (ushort)DimseCommandField.CEchoResponse);
        position = WriteUs(span, position, CommandElement.MessageIdBeingRespondedTo, messageIdBeingRespondedTo);
        position = WriteUs(span, position, CommandElement.CommandDataSetType, CommandElement.NoDataSet);
        return WriteUs(span, position, CommandElement.Status, status);
    }

    private static int WriteHeader(Span<byte> span, int position, ushort element, int length)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(span[position..], 0x0000);
        BinaryPrimitives.WriteUInt16LittleEndian(span[(position + 2)..], element);
        BinaryPrimitives.WriteUInt32LittleEndian(span[(position + 4)..], (uint)length);
        return position + ElementHeaderLength;
    }

    private static int WriteUl(Span<byte> span, int position, ushort element, uint value)
    {
        position = WriteHeader(span, position, element, 4);
        BinaryPrimitives.WriteUInt32LittleEndian(span[position..], value);
        return position + 4;
    }

    private static int WriteUs(Span<byte> span, int position, ushort element, ushort value)
    {
        position = WriteHeader(span, position, element, 2);
        BinaryPrimitives.WriteUInt16LittleEndian(span[position..], value);
        return position + 2;
    }

    private static int WriteBytes(Span<byte> span, int position, ushort element, ReadOnlySpan<byte> value)
    {
        position = WriteHeader(span, position, element, value.Length);
        value.CopyTo(span[position..]);
        return position + value.Length;
    }
}
