using System.Buffers.Binary;

namespace ImagingProxy.Dicom;

/// <summary>
/// Scans a complete command set: group 0000 elements, Implicit VR Little Endian whatever the negotiated transfer
/// syntax (PS3.7 §6.3.1): <c>group:u16 LE | element:u16 LE | length:u32 LE | value</c>. Allocation free; never throws.
/// </summary>
public static class DimseCommandReader
{
    internal const int ElementHeaderLength = 8;

    /// <summary>
    /// Reads the command elements of interest. False if an element runs past the end, an element is outside group
    /// 0000, a US element is not 2 bytes, or CommandField (0000,0100) is missing.
    /// </summary>
    public static bool TryRead(ReadOnlySpan<byte> commandSet, out DimseCommand command)
    {
        command = default;
        ushort? commandField = null;
        ushort? messageId = null;
        ushort? respondedTo = null;
        ushort? dataSetType = null;
        ushort? status = null;
        ReadOnlySpan<byte> sopClass = default;
        var remaining = commandSet;
        while (!remaining.IsEmpty)
        {
            if (remaining.Length < ElementHeaderLength)
            {
                return false;
            }

            var group = BinaryPrimitives.ReadUInt16LittleEndian(remaining);
            var element = BinaryPrimitives.ReadUInt16LittleEndian(remaining[2..]);
            var length = BinaryPrimitives.ReadUInt32LittleEndian(remaining[4..]);
            if (group != 0 || length > (uint)(remaining.Length - ElementHeaderLength))
            {
                return false;
            }

            var value = remaining.Slice(ElementHeaderLength, (int)length);
            remaining = remaining[(ElementHeaderLength + (int)length)..];
            switch (element)
            {
                case CommandElement.AffectedSopClassUid:
                    sopClass = value.TrimEnd((byte)0).TrimEnd((byte)' ');
                    break;
                case CommandElement.CommandField:
                    if (!TryReadUs(value, out commandField))
                    {
                        return false;
                    }

                    break;
                case CommandElement.MessageId:
                    if (!TryReadUs(value, out messageId))
                    {
                        return false;
                    }

                    break;
                case CommandElement.MessageIdBeingRespondedTo:
                    if (!TryReadUs(value, out respondedTo))
                    {
                        return false;
                    }

                    break;
                case CommandElement.CommandDataSetType:
                    if (!TryReadUs(value, out dataSetType))
                    {
                        return false;
                    }

                    break;
                case CommandElement.Status:
                    if (!TryReadUs(value, out status))
                    {
                        return false;
                    }

                    break;
                default:
                    break;
            }
        }

        if (commandField is null)
        {
            return false;
        }

        command = new DimseCommand((DimseCommandField)commandField.Value, messageId, respondedTo, dataSetType, status, sopClass);
        return true;
    }

    private static bool TryReadUs(ReadOnlySpan<byte> value, out ushort? result)
    {
        result = null;
        if (value.Length != 2)
        {
            return false;
        }

        result = BinaryPrimitives.ReadUInt16LittleEndian(value);
        return true;
    }
}
