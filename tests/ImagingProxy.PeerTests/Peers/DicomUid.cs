using System.Buffers.Binary;
using System.Globalization;

namespace ImagingProxy.PeerTests.Peers;

/// <summary>UIDs under the 2.25 root: the decimal form of a random UUID (PS3.5 §B.2), at most 44 characters.</summary>
public static class DicomUid
{
    public static string New()
    {
        Span<byte> bytes = stackalloc byte[16];
        Guid.NewGuid().TryWriteBytes(bytes, bigEndian: true, out _);
        return "2.25." + BinaryPrimitives.ReadUInt128BigEndian(bytes).ToString(CultureInfo.InvariantCulture);
    }
}
