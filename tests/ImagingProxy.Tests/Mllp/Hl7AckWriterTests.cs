using System.Buffers;
using System.Text;
using ImagingProxy.Mllp;

namespace ImagingProxy.Tests.Mllp;

public class Hl7AckWriterTests
{
    private static readonly DateTimeOffset s_timestamp = new(2025, 1, 1, 12, 0, 1, TimeSpan.Zero);

    private static Hl7Header Header(byte[] message)
    {
        var status = Hl7HeaderReader.TryRead(message, 8192, out var header);
        Assert.True(status is Hl7ReadStatus.Success or Hl7ReadStatus.MissingMessageType, status.ToString());
        return header;
    }

    private static byte[] Ack(string original, AcknowledgmentCode code, string text = "", Hl7ErrorCode? error = null)
    {
        var writer = new ArrayBufferWriter<byte>();
        var written = Hl7AckWriter.Write(writer, Header(Hl7Samples.Bytes(original)), code, "ACK00001", s_timestamp, text, error);
        Assert.Equal(writer.WrittenCount, written);
        return writer.WrittenSpan.ToArray();
    }

    private static string[][] Segments(byte[] message, char field = '|') =>
        Encoding.UTF8.GetString(message).Split('\r', StringSplitOptions.RemoveEmptyEntries).Select(s => s.Split(field)).ToArray();

    [Fact]
    public void Writes_the_ack_python3_hl7_writes_for_the_captured_orm()
    {
        // shared/docs/protocols.md §3.4: create_ack("AA") on the ORM; MSH-7 differs only by our explicit zone.
        var ack = Ack(Hl7Samples.Orm, AcknowledgmentCode.ApplicationAccept);

        Assert.Equal(
            "MSH|^~\\&|PACS|HOSP|RIS|RADIOLOGY|20250101120001+0000||ACK^O01^ACK|ACK00001|P|2.5.1\rMSA|AA|MSG00001\r",
            Encoding.ASCII.GetString(ack));
    }

    [Fact]
    public void Swaps_sender_and_receiver_and_copies_version_processing_id_and_character_set_field_by_field()
    {
        var ack = Ack(Hl7Samples.Adt, AcknowledgmentCode.CommitAccept);
        var segments = Segments(ack);
        var msh = segments[0];

        Assert.Equal(2, segments.Length);
        Assert.Equal("MSH", msh[0]);
        Assert.Equal("^~\\&", msh[1]);                        // MSH-2
        Assert.Equal("GHH LAB, INC.", msh[2]);                // MSH-3 = original MSH-5
        Assert.Equal("GOOD HEALTH HOSPITAL", msh[3]);         // MSH-4 = original MSH-6
        Assert.Equal("ADT1", msh[4]);                         // MSH-5 = original MSH-3
        Assert.Equal("GOOD HEALTH HOSPITAL", msh[5]);         // MSH-6 = original MSH-4
        Assert.Equal("20250101120001+0000", msh[6]);          // MSH-7
        Assert.Equal(string.Empty, msh[7]);                   // MSH-8
        Assert.Equal("ACK^A01^ACK", msh[8]);                  // MSH-9
        Assert.Equal("ACK00001", msh[9]);                     // MSH-10
        Assert.Equal("P", msh[10]);                           // MSH-11
        Assert.Equal("2.5.1", msh[11]);                       // MSH-12
        Assert.All(msh[12..17], Assert.Empty);                // MSH-13..17 (no acks requested for an ack)
        Assert.Equal("UNICODE UTF-8", msh[17]);               // MSH-18
        Assert.Equal(18, msh.Length);
        Assert.Equal(["MSA", "CA", "MSG00002"], segments[1]);
    }

    [Fact]
    public void Writes_err_with_a_table_0357_code_severity_and_escaped_text()
    {
        var ack = Ack(Hl7Samples.Orm, AcknowledgmentCode.ApplicationError, "backend A|B down", Hl7ErrorCode.ApplicationInternalError);
        var segments = Segments(ack);

        Assert.Equal(3, segments.Length);
        Assert.Equal(["MSA", "AE", "MSG00001", "backend A\\F\\B down"], segments[1]);
        var err = segments[2];
        Assert.Equal("ERR", err[0]);
        Assert.Equal(string.Empty, err[1]);
        Assert.Equal(string.Empty, err[2]);
        Assert.Equal("207^Application internal error^HL70357", err[3]);
        Assert.Equal("E", err[4]);
        Assert.Equal("backend A\\F\\B down", err[8]);
        Assert.Equal(9, err.Length);
    }

    [Fact]
    public void Writes_err_without_text()
    {
        var segments = Segments(Ack(Hl7Samples.Orm, AcknowledgmentCode.ApplicationReject, error: Hl7ErrorCode.SegmentSequenceError));

        Assert.Equal(["MSA", "AR", "MSG00001"], segments[1]);
        Assert.Equal(["ERR", "", "", "100^Segment sequence error^HL70357", "E"], segments[2]);
    }

    [Fact]
    public void Uses_the_original_s_own_delimiters_and_copies_escaped_fields_unchanged()
    {
        var ack = Ack("MSH*@~!&*RIS@X*RAD*PACS*HOSP*2025**ORM@O01*ID!F!1*T*2.4", AcknowledgmentCode.ApplicationReject, "bad*type@here", Hl7ErrorCode.UnsupportedMessageType);
        var segments = Segments(ack, '*');

        Assert.Equal("@~!&", segments[0][1]);
        Assert.Equal("PACS", segments[0][2]);
        Assert.Equal("RIS@X", segments[0][4]);
        Assert.Equal("ACK@O01@ACK", segments[0][8]);
        Assert.Equal("T", segments[0][10]);
        Assert.Equal(["MSA", "AR", "ID!F!1", "bad!F!type!S!here"], segments[1]);
        Assert.Equal("200@Unsupported message type@HL70357", segments[2][3]);
    }

    [Fact]
    public void Is_read_back_by_the_header_and_ack_readers()
    {
        var original = "MSH|^~\\&|RIS|RAD|PACS|HOSP|2025||ORU^R01^ORU_R01|C\\S\\42|D|2.3.1||||||8859/1";
        var ack = Ack(original, AcknowledgmentCode.ApplicationError, "échec ^", Hl7ErrorCode.ApplicationInternalError);

        Assert.Equal(Hl7ReadStatus.Success, Hl7HeaderReader.TryRead(ack, 8192, out var header));
        Assert.Equal("ACK", header.MessageCode.GetString());
        Assert.Equal("R01", header.TriggerEvent.GetString());
        Assert.Equal("ACK00001", header.MessageControlId.GetString());
        Assert.Equal("PACS", header.SendingApplication.GetString());
        Assert.Equal("RIS", header.ReceivingApplication.GetString());
        Assert.Equal("D", header.ProcessingId.GetString());
        Assert.Equal("2.3.1", header.VersionId.GetString());
        Assert.Equal(Hl7CharacterSet.Latin1, header.CharacterSetKind);

        Assert.Equal(Hl7ReadStatus.Success, Hl7AckReader.TryRead(ack, 8192, out var read));
        Assert.Equal(AcknowledgmentCode.ApplicationError, read.Code);
        Assert.Equal("C^42", read.AcknowledgedControlId.GetString());
        Assert.True(read.Acknowledges(Header(Hl7Samples.Bytes(original))));
        Assert.Equal("échec ^", read.Text.GetString());
        Assert.Contains((byte)0xE9, ack); // é written in ISO 8859-1, as MSH-18 declares
    }

    [Theory]
    [InlineData("UNICODE UTF-8", "Zürich 東京", "Zürich 東京")]
    [InlineData("8859/1", "Zürich 東京", "Zürich ??")]
    [InlineData("", "Zürich 東京", "Z?rich ??")]
    [InlineData("8859/5", "Zürich", "Z?rich")]
    public void Writes_its_text_in_the_declared_character_set_or_ascii(string characterSet, string text, string expected)
    {
        var original = "MSH|^~\\&|A|B|C|D|2025||ADT^A08|X|P|2.5||||||" + characterSet;
        var ack = Ack(original, AcknowledgmentCode.ApplicationError, text);

        Assert.Equal(Hl7ReadStatus.Success, Hl7AckReader.TryRead(ack, 8192, out var read));
        Assert.Equal(expected, read.Text.GetString());
    }

    [Fact]
    public void Acknowledges_a_message_of_which_only_the_control_id_is_known()
    {
        var writer = new ArrayBufferWriter<byte>();
        Hl7AckWriter.Write(writer, "CTRL9"u8, Hl7Delimiters.Default, AcknowledgmentCode.ApplicationReject, "P1", s_timestamp, "no message type", Hl7ErrorCode.RequiredFieldMissing);
        var segments = Segments(writer.WrittenSpan.ToArray());

        Assert.Equal(["MSH", "^~\\&", "", "", "", "", "20250101120001+0000", "", "ACK", "P1", "", "2.5"], segments[0]);
        Assert.Equal(["MSA", "AR", "CTRL9", "no message type"], segments[1]);
        Assert.Equal("101^Required field missing^HL70357", segments[2][3]);
    }

    [Fact]
    public void Acknowledges_a_partly_read_header_with_what_it_has()
    {
        var ack = Ack("MSH|^~\\&|RIS|RAD|PACS|HOSP|2025||^|ID9", AcknowledgmentCode.ApplicationReject, "no type", Hl7ErrorCode.UnsupportedMessageType);
        var segments = Segments(ack);

        Assert.Equal("ACK", segments[0][8]);
        Assert.Equal(string.Empty, segments[0][10]);
        Assert.Equal(MllpConstants.FallbackVersionId, segments[0][11]);
        Assert.Equal(["MSA", "AR", "ID9", "no type"], segments[1]);
    }

    [Fact]
    public void Writes_the_time_zone_offset_of_the_timestamp()
    {
        var writer = new ArrayBufferWriter<byte>();
        Hl7AckWriter.Write(writer, "X"u8, Hl7Delimiters.Default, AcknowledgmentCode.CommitReject, "1", new DateTimeOffset(2025, 6, 30, 23, 59, 58, TimeSpan.FromMinutes(-330)));

        Assert.Equal("20250630235958-0530", Segments(writer.WrittenSpan.ToArray())[0][6]);
    }

    [Fact]
    public void Refuses_a_code_outside_table_0008()
    {
        var writer = new ArrayBufferWriter<byte>();
        Assert.Throws<ArgumentOutOfRangeException>(() => Hl7AckWriter.Write(writer, "X"u8, Hl7Delimiters.Default, AcknowledgmentCode.None, "1", s_timestamp));
    }
}
