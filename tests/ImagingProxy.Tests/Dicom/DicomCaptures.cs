namespace ImagingProxy.Tests.Dicom;

/// <summary>
/// Real dcmtk 3.6.7 wire bytes (echoscu → storescp), from shared/docs/protocols.md §1.12. Each property returns a fresh copy.
/// </summary>
internal static class DicomCaptures
{
    internal const string VerificationUidHex = "312E322E3834302E31303030382E312E31";

    /// <summary>Offset of the reserved byte dcmtk sets to 0xFF in its presentation context item (protocols.md §1.12).</summary>
    public const int RequestReservedFfOffset = 0x69;

    /// <summary>Offset of the Result byte of the AC's presentation context item (0x21 at 0x63, value at 0x67).</summary>
    public const int AcceptResultOffset = 0x69;

    public static byte[] AssociateRequest => Convert.FromHexString(
        "0100000000CD0001000053544F524553435020202020202020204543484F534355202020202020202020"
        + "0000000000000000000000000000000000000000000000000000000000000000"
        + "10000015312E322E3834302E31303030382E332E312E312E31"
        + "2000002E0100FF0030000011312E322E3834302E31303030382E312E3140000011312E322E3834302E31303030382E312E32"
        + "5000003A510000040000400052" + "00001B312E322E3237362E302E373233303031302E332E302E332E362E37" + "5500000F4F464649535F44434D544B5F333637");

    public static byte[] AssociateAccept => Convert.FromHexString(
        "0200000000B80001000053544F524553435020202020202020204543484F534355202020202020202020"
        + "0000000000000000000000000000000000000000000000000000000000000000"
        + "10000015312E322E3834302E31303030382E332E312E312E31"
        + "210000190100000040000011312E322E3834302E31303030382E312E32"
        + "5000003A510000040000400052" + "00001B312E322E3237362E302E373233303031302E332E302E332E362E37" + "5500000F4F464649535F44434D544B5F333637");

    public static byte[] EchoRequestPData => Convert.FromHexString(
        "04000000004A" + "00000046" + "0103" + EchoRequestCommandHex);

    public static byte[] EchoResponsePData => Convert.FromHexString(
        "0400000000540000005001030000000004000000420000000000020012000000" + VerificationUidHex + "00"
        + "00000001020000003080" + "00002001020000000100" + "00000008020000000101" + "00000009020000000000");

    public static byte[] EchoRequestCommand => Convert.FromHexString(EchoRequestCommandHex);

    public static byte[] EchoResponseCommand => EchoResponsePData[12..];

    public static byte[] ReleaseRequest => Convert.FromHexString("05000000000400000000");

    public static byte[] ReleaseResponse => Convert.FromHexString("06000000000400000000");

    /// <summary>echoscu --abort: service-user abort.</summary>
    public static byte[] UserAbort => Convert.FromHexString("07000000000400000000");

    /// <summary>storescp --refuse: rejected-permanent, service-user, no-reason-given.</summary>
    public static byte[] RefuseReject => Convert.FromHexString("03000000000400010101");

    /// <summary>The whole Verification association, both directions interleaved, as one stream.</summary>
    public static byte[] All => [.. AssociateRequest, .. AssociateAccept, .. EchoRequestPData, .. EchoResponsePData, .. ReleaseRequest, .. ReleaseResponse];

    public static IEnumerable<(string Name, byte[] Pdu)> Each()
    {
        yield return (nameof(AssociateRequest), AssociateRequest);
        yield return (nameof(AssociateAccept), AssociateAccept);
        yield return (nameof(EchoRequestPData), EchoRequestPData);
        yield return (nameof(EchoResponsePData), EchoResponsePData);
        yield return (nameof(ReleaseRequest), ReleaseRequest);
        yield return (nameof(ReleaseResponse), ReleaseResponse);
        yield return (nameof(UserAbort), UserAbort);
        yield return (nameof(RefuseReject), RefuseReject);
    }

    internal const string EchoRequestCommandHex =
        "000000000400000038000000" + "0000020012000000" + VerificationUidHex + "00"
        + "00000001020000003000" + "00001001020000000100" + "00000008020000000101";
}
