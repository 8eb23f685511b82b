using System.Text;

namespace ImagingProxy.Tests.Mllp;

/// <summary>Messages used across the codec tests (the ORM is the one captured in shared/docs/protocols.md §3.5).</summary>
internal static class Hl7Samples
{
    public const string Orm =
        "MSH|^~\\&|RIS|RADIOLOGY|PACS|HOSP|20250101120000||ORM^O01^ORM_O01|MSG00001|P|2.5.1\r"
        + "PID|1||12345^^^HOSP^MR||DOE^JOHN||19700101|M\r"
        + "ORC|NW|ORD1001\r"
        + "OBR|1|ORD1001||71020^CHEST XRAY 2 VIEWS^C4";

    public const string Adt =
        "MSH|^~\\&|ADT1|GOOD HEALTH HOSPITAL|GHH LAB, INC.|GOOD HEALTH HOSPITAL|198808181126|SECURITY|ADT^A01^ADT_A01|MSG00002|P|2.5.1|||AL|NE||UNICODE UTF-8\r"
        + "EVN|A01|200708181123\r"
        + "PID|1||PATID1234^^^GOOD HEALTH HOSPITAL^MR||EVERYMAN^ADAM^A^III||19610615|M\r";

    public static byte[] Bytes(string message) => Encoding.UTF8.GetBytes(message);

    public static byte[] Frame(string message) => [0x0B, .. Bytes(message), 0x1C, 0x0D];
}
