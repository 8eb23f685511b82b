using System.Buffers.Binary;

namespace ImagingProxy.PeerTests.Peers;

/// <summary>
/// Splits a DICOM Part-10 file (PS3.10 §7.1) into its File Meta Information and its data set. A receiver such as
/// storescp +B writes the data set exactly as it arrived but its own meta header (implementation version,
/// source AE title), so "byte-identical" is checked on the data set.
/// </summary>
public static class DicomPart10
{
    private const int PreambleAndPrefix = 128 + 4;

    /// <summary>The bytes after the File Meta Information group.</summary>
    public static ReadOnlyMemory<byte> DataSet(ReadOnlyMemory<byte> file)
    {
        var span = file.Span;
        // (0002,0000) UL FileMetaInformationGroupLength, explicit VR little endian: tag 4, "UL" 2, length 2, value 4.
        if (span.Length < PreambleAndPrefix + 12
            || !span.Slice(128, 4).SequenceEqual("DICM"u8)
            || BinaryPrimitives.ReadUInt16LittleEndian(span[PreambleAndPrefix..]) != 0x0002
            || BinaryPrimitives.ReadUInt16LittleEndian(span[(PreambleAndPrefix + 2)..]) != 0x0000)
        {
            throw new FormatException("Not a DICOM Part-10 file starting with (0002,0000) FileMetaInformationGroupLength.");
        }

        var groupLength = BinaryPrimitives.ReadUInt32LittleEndian(span[(PreambleAndPrefix + 8)..]);
        var start = PreambleAndPrefix + 12 + (long)groupLength;
        if (start > file.Length)
        {
            throw new FormatException($"FileMetaInformationGroupLength {groupLength} runs past the end of the file ({file.Length} bytes).");
        }

        return file[(int)start..];
    }
}
