using System.Buffers;
using System.Text;
using ImagingProxy.Mllp;

namespace ImagingProxy.Tests.Mllp;

public class Hl7HeaderReaderTests
{
    private static Hl7ReadStatus Read(string message, out Hl7Header header) =>
        Hl7HeaderReader.TryRead(Encoding.UTF8.GetBytes(message), MllpConstants.DefaultMaxHeaderSegmentLength, out header);

    [Fact]
    public void Reads_the_msh_fields_a_proxy_routes_on()
    {
        Assert.Equal(Hl7ReadStatus.Success, Read(Hl7Samples.Adt, out var h));

        Assert.Equal(Hl7Delimiters.Default, h.Delimiters);
        Assert.Equal("^~\\&", h.EncodingCharacters.GetString());
        Assert.Equal("ADT1", h.SendingApplication.GetString());
        Assert.Equal("GOOD HEALTH HOSPITAL", h.SendingFacility.GetString());
        Assert.Equal("GHH LAB, INC.", h.ReceivingApplication.GetString());
        Assert.Equal("GOOD HEALTH HOSPITAL", h.ReceivingFacility.GetString());
        Assert.Equal("ADT^A01^ADT_A01", h.MessageType.GetString());
        Assert.Equal("ADT", h.MessageCode.GetString());
        Assert.Equal("A01", h.TriggerEvent.GetString());
        Assert.Equal("ADT_A01", h.MessageStructure.GetString());
        Assert.Equal("MSG00002", h.MessageControlId.GetString());
        Assert.Equal("P", h.ProcessingId.GetString());
        Assert.Equal("2.5.1", h.VersionId.GetString());
        Assert.Equal("AL", h.AcceptAcknowledgmentType.GetString());
        Assert.Equal("NE", h.ApplicationAcknowledgmentType.GetString());
        Assert.Equal("UNICODE UTF-8", h.CharacterSet.GetString());
        Assert.Equal(Hl7CharacterSet.Utf8, h.CharacterSetKind);
        Assert.True(h.IsEnhancedAcknowledgmentMode);
        Assert.Equal(Hl7Samples.Adt[..Hl7Samples.Adt.IndexOf('\r', StringComparison.Ordinal)], Encoding.UTF8.GetString(h.Segment.Span));
    }

    [Fact]
    public void Reads_fields_as_slices_of_the_message_without_copying()
    {
        var bytes = Hl7Samples.Bytes(Hl7Samples.Orm);
        Assert.Equal(Hl7ReadStatus.Success, Hl7HeaderReader.TryRead(bytes, 8192, out var h));

        Assert.True(h.MessageControlId.Span.Overlaps(bytes));
        Assert.True(h.MessageControlId.ValueEquals("MSG00001"u8));
        Assert.False(h.IsEnhancedAcknowledgmentMode);
        Assert.Equal(Hl7CharacterSet.Ascii, h.CharacterSetKind);
    }

    [Fact]
    public void Keeps_the_whole_hd_field_and_exposes_its_components()
    {
        Assert.Equal(Hl7ReadStatus.Success, Read("MSH|^~\\&|RIS^1.2.3^ISO|HOSP|||||ORU^R01|X1|P|2.3", out var h));

        Assert.Equal("RIS^1.2.3^ISO", h.SendingApplication.GetString());
        Assert.Equal("RIS", h.SendingApplication.GetComponent(1).GetString());
        Assert.Equal("1.2.3", h.SendingApplication.GetComponent(2).GetString());
        Assert.Equal("ISO", h.SendingApplication.GetComponent(3).GetString());
        Assert.True(h.SendingApplication.GetComponent(4).IsEmpty);
        Assert.True(h.MessageStructure.IsEmpty);
    }

    [Fact]
    public void Reads_a_custom_field_separator()
    {
        Assert.Equal(Hl7ReadStatus.Success, Read("MSH*^~\\&*RIS*RAD*PACS*HOSP*2025**ORM^O01*CTRL|1*P*2.5\rPID*1", out var h));

        Assert.Equal((byte)'*', h.Delimiters.Field);
        Assert.Equal("RIS", h.SendingApplication.GetString());
        Assert.Equal("HOSP", h.ReceivingFacility.GetString());
        Assert.Equal("O01", h.TriggerEvent.GetString());
        Assert.Equal("CTRL|1", h.MessageControlId.GetString());
        Assert.Equal("2.5", h.VersionId.GetString());
    }

    [Fact]
    public void Reads_custom_encoding_characters()
    {
        Assert.Equal(Hl7ReadStatus.Success, Read("MSH|@~\\#|RIS@X|RAD|PACS|HOSP|2025||ORM@O01@ORM_O01|C\\S\\1|P|2.4", out var h));

        Assert.Equal(new Hl7Delimiters((byte)'|', (byte)'@', (byte)'~', (byte)'\\', (byte)'#'), h.Delimiters);
        Assert.Equal("ORM", h.MessageCode.GetString());
        Assert.Equal("O01", h.TriggerEvent.GetString());
        Assert.Equal("ORM_O01", h.MessageStructure.GetString());
        Assert.Equal("RIS", h.SendingApplication.GetComponent(1).GetString());
        Assert.Equal("C@1", h.MessageControlId.GetString());
    }

    [Fact]
    public void Reads_a_fifth_encoding_character_for_truncation()
    {
        Assert.Equal(Hl7ReadStatus.Success, Read("MSH|^~\\&#|A|B|C|D|2025||ADT^A01|ID\\P\\1|P|2.7", out var h));

        Assert.Equal((byte)'#', h.Delimiters.Truncation);
        Assert.Equal("^~\\&#", h.EncodingCharacters.GetString());
        Assert.Equal("A", h.SendingApplication.GetString());
        Assert.Equal("ID#1", h.MessageControlId.GetString());
    }

    [Theory]
    [InlineData("\r")]
    [InlineData("\n")]
    [InlineData("\r\n")]
    [InlineData("")]
    public void Ends_msh_at_any_segment_terminator_or_at_the_end_of_the_message(string terminator)
    {
        var message = "MSH|^~\\&|A|B|C|D|2025||ADT^A08|ID7|P|2.5" + terminator + (terminator.Length > 0 ? "EVN|A08" : string.Empty);
        Assert.Equal(Hl7ReadStatus.Success, Read(message, out var h));

        Assert.Equal("2.5", h.VersionId.GetString());
        Assert.True(h.CharacterSet.IsEmpty);
    }

    [Fact]
    public void Reads_the_same_header_from_a_message_split_across_buffers_at_every_point()
    {
        var bytes = Hl7Samples.Bytes(Hl7Samples.Adt);
        var reader = new Hl7HeaderReader();
        for (var first = 0; first <= bytes.Length; first += 3)
        {
            for (var second = first; second <= bytes.Length; second += 5)
            {
                Assert.Equal(Hl7ReadStatus.Success, reader.TryRead(TestSequences.Split(bytes, first, second), out var h));
                Assert.Equal("MSG00002", h.MessageControlId.GetString());
                Assert.Equal("GHH LAB, INC.", h.ReceivingApplication.GetString());
                Assert.Equal("UNICODE UTF-8", h.CharacterSet.GetString());
            }
        }
    }

    [Fact]
    public void Decodes_escape_sequences_only_when_asked()
    {
        Assert.Equal(Hl7ReadStatus.Success, Read("MSH|^~\\&|A\\F\\B\\S\\C\\T\\D\\R\\E\\E\\\\X0D0A\\|F|||||ADT^A01|1|P|2.5", out var h));

        Assert.Equal("A\\F\\B\\S\\C\\T\\D\\R\\E\\E\\\\X0D0A\\", Encoding.ASCII.GetString(h.SendingApplication.Span));
        Assert.Equal("A|B^C&D~E\\\r\n", h.SendingApplication.GetString());
    }

    [Fact]
    public void Decodes_utf8_fields_when_msh18_declares_utf8()
    {
        var message = "MSH|^~\\&|RÖNTGEN|Zürich|PACS|HÔPITAL|2025||ORU^R01|ÄÖÜ-1|P|2.5.1||||||UNICODE UTF-8";
        Assert.Equal(Hl7ReadStatus.Success, Read(message, out var h));

        Assert.Equal(Hl7CharacterSet.Utf8, h.CharacterSetKind);
        Assert.Equal("RÖNTGEN", h.SendingApplication.GetString());
        Assert.Equal("HÔPITAL", h.ReceivingFacility.GetString());
        Assert.Equal("ÄÖÜ-1", h.MessageControlId.GetString());
    }

    [Fact]
    public void Decodes_latin1_fields_when_msh18_declares_8859_1()
    {
        var bytes = Encoding.Latin1.GetBytes("MSH|^~\\&|RÖNTGEN|Zürich|PACS|HOSP|2025||ORU^R01|ID|P|2.3||||||8859/1~UNICODE UTF-8\rPID|1");
        Assert.Equal(Hl7ReadStatus.Success, Hl7HeaderReader.TryRead(bytes, 8192, out var h));

        Assert.Equal(Hl7CharacterSet.Latin1, h.CharacterSetKind);
        Assert.Equal(7, h.SendingApplication.Span.Length);
        Assert.Equal("RÖNTGEN", h.SendingApplication.GetString());
        Assert.Equal("Zürich", h.SendingFacility.GetString());
    }

    [Theory]
    [InlineData("")]
    [InlineData("PID|1||123")]
    [InlineData("MS")]
    [InlineData("MSA|AA|1")]
    [InlineData("\rMSH|^~\\&|A")]
    public void Names_a_message_without_msh(string message)
    {
        Assert.Equal(Hl7ReadStatus.NoMsh, Read(message, out _));
    }

    [Theory]
    [InlineData("MSH|")]
    [InlineData("MSH|^~\\|A|B")]
    [InlineData("MSH|^~\\&$%|A")]
    [InlineData("MSH|^^\\&|A")]
    [InlineData("MSH|^~|&|A")]
    [InlineData("MSHA^~\\&A")]
    [InlineData("MSH|^~\\1|A")]
    [InlineData("MSH\u0001^~\\&\u0001A")]
    public void Names_unusable_delimiters(string message)
    {
        Assert.Equal(Hl7ReadStatus.BadDelimiters, Read(message, out _));
    }

    [Fact]
    public void Unusable_encoding_characters_with_a_usable_field_separator_still_give_msh10_for_a_nak()
    {
        var status = Read("MSH|^~|RIS|RAD|PACS|HOSP|20250101120000||ORM^O01|C7|P|2.5.1\rPID|1", out var header);

        Assert.Equal(Hl7ReadStatus.BadDelimiters, status);
        Assert.Equal("C7", header.MessageControlId.GetString());
        Assert.Equal("RIS", header.SendingApplication.GetString());
        Assert.Equal(Hl7Delimiters.Default, header.Delimiters);
        Assert.True(Read("MSH^~\\&^RIS^RAD^PACS^HOSP^2025^^ORM^C8^P^2.5", out var unusable) == Hl7ReadStatus.BadDelimiters && unusable.MessageControlId.IsEmpty);
    }

    [Fact]
    public void Names_an_msh_segment_longer_than_the_maximum_whether_contiguous_or_split()
    {
        var message = Hl7Samples.Bytes("MSH|^~\\&|" + new string('A', 100) + "|B||||ADT^A01|1|P|2.5\rPID|1");

        Assert.Equal(Hl7ReadStatus.HeaderTooLong, Hl7HeaderReader.TryRead(message, 64, out _));
        Assert.Equal(Hl7ReadStatus.HeaderTooLong, new Hl7HeaderReader(64).TryRead(TestSequences.Split(message, 10, 50), out _));
        Assert.Equal(Hl7ReadStatus.Success, new Hl7HeaderReader(200).TryRead(TestSequences.Split(message, 10, 50), out _));
    }

    [Fact]
    public void Names_a_missing_control_id_and_still_returns_the_fields_it_read()
    {
        Assert.Equal(Hl7ReadStatus.MissingControlId, Read("MSH|^~\\&|RIS|RAD|PACS|HOSP|2025||ORM^O01||P|2.5", out var h));

        Assert.Equal("RIS", h.SendingApplication.GetString());
        Assert.Equal("O01", h.TriggerEvent.GetString());
    }

    [Fact]
    public void Names_a_missing_message_type_and_keeps_the_control_id_for_a_reject()
    {
        Assert.Equal(Hl7ReadStatus.MissingMessageType, Read("MSH|^~\\&|RIS|RAD|PACS|HOSP|2025||^O01|ID9", out var h));

        Assert.Equal("ID9", h.MessageControlId.GetString());
        Assert.True(h.VersionId.IsEmpty);
    }

    [Fact]
    public void Reads_a_truncated_msh_as_far_as_it_goes()
    {
        Assert.Equal(Hl7ReadStatus.MissingControlId, Read("MSH|^~\\&|RIS", out var h));

        Assert.Equal("RIS", h.SendingApplication.GetString());
        Assert.True(h.ReceivingApplication.IsEmpty);
    }

    [Fact]
    public void Reads_a_header_without_allocating()
    {
        var bytes = new ReadOnlySequence<byte>(Hl7Samples.Bytes(Hl7Samples.Adt));
        var split = TestSequences.Split(Hl7Samples.Bytes(Hl7Samples.Adt), 20, 60);
        var reader = new Hl7HeaderReader();
        var pattern = Hl7Pattern.Create("ADT^A0*".Replace("*", string.Empty, StringComparison.Ordinal), receivingApplication: "GHH LAB, INC.");
        reader.TryRead(bytes, out _);
        reader.TryRead(split, out _);

        var before = GC.GetAllocatedBytesForCurrentThread();
        var matched = 0;
        for (var i = 0; i < 100; i++)
        {
            reader.TryRead(i % 2 == 0 ? bytes : split, out var h);
            matched += pattern.Matches(h) ? 0 : 1;
            matched += h.MessageControlId.ValueEquals("MSG00002"u8) ? 1 : 0;
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal(200, matched);
    }
}
