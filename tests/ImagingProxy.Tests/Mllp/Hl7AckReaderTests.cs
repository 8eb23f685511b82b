using System.Text;
using ImagingProxy.Mllp;

namespace ImagingProxy.Tests.Mllp;

public class Hl7AckReaderTests
{
    private const string CapturedAck = "MSH|^~\\&|PACS|HOSP|RIS|RADIOLOGY|20250101120001||ACK^O01^ACK|ACK00001|P|2.5.1\rMSA|AA|MSG00001\r";

    private static Hl7ReadStatus Read(string reply, out Hl7Ack ack) =>
        Hl7AckReader.TryRead(Encoding.UTF8.GetBytes(reply), MllpConstants.DefaultMaxAckScanLength, out ack);

    [Fact]
    public void Reads_msa_from_the_captured_python3_hl7_ack()
    {
        Assert.Equal(Hl7ReadStatus.Success, Read(CapturedAck, out var ack));

        Assert.Equal(AcknowledgmentCode.ApplicationAccept, ack.Code);
        Assert.Equal("MSG00001", ack.AcknowledgedControlId.GetString());
        Assert.True(ack.Text.IsEmpty);
        Assert.True(ack.IsAccept);
    }

    [Theory]
    [InlineData("AA", AcknowledgmentCode.ApplicationAccept)]
    [InlineData("AE", AcknowledgmentCode.ApplicationError)]
    [InlineData("AR", AcknowledgmentCode.ApplicationReject)]
    [InlineData("CA", AcknowledgmentCode.CommitAccept)]
    [InlineData("CE", AcknowledgmentCode.CommitError)]
    [InlineData("CR", AcknowledgmentCode.CommitReject)]
    public void Reads_every_code_of_table_0008(string code, AcknowledgmentCode expected)
    {
        Assert.Equal(Hl7ReadStatus.Success, Read($"MSH|^~\\&|A|B|C|D|1||ACK|2|P|2.5\rMSA|{code}|ID|text\rERR|||207", out var ack));

        Assert.Equal(expected, ack.Code);
        Assert.Equal("text", ack.Text.GetString());
    }

    [Theory]
    [InlineData("\n")]
    [InlineData("\r\n")]
    [InlineData("\r\r")]
    public void Reads_msa_after_any_segment_terminator(string terminator)
    {
        Assert.Equal(Hl7ReadStatus.Success, Read(CapturedAck.Replace("\r", terminator, StringComparison.Ordinal), out var ack));
        Assert.Equal("MSG00001", ack.AcknowledgedControlId.GetString());
    }

    [Fact]
    public void Reads_msa_with_custom_delimiters_and_no_final_terminator()
    {
        Assert.Equal(Hl7ReadStatus.Success, Read("MSH*@~!&*A*B*C*D*1**ACK@A01*2*P*2.5\rMSA*CE*X!F!1", out var ack));

        Assert.Equal(AcknowledgmentCode.CommitError, ack.Code);
        Assert.Equal("X*1", ack.AcknowledgedControlId.GetString());
    }

    [Fact]
    public void Reads_the_same_ack_split_across_buffers_at_every_point()
    {
        var bytes = Encoding.ASCII.GetBytes(CapturedAck);
        var reader = new Hl7AckReader();
        for (var first = 0; first <= bytes.Length; first++)
        {
            for (var second = first; second <= bytes.Length; second += 3)
            {
                Assert.Equal(Hl7ReadStatus.Success, reader.TryRead(TestSequences.Split(bytes, first, second), out var ack));
                Assert.Equal(AcknowledgmentCode.ApplicationAccept, ack.Code);
                Assert.True(ack.AcknowledgedControlId.ValueEquals("MSG00001"u8));
            }
        }
    }

    [Theory]
    [InlineData("PID|1", Hl7ReadStatus.NoMsh)]
    [InlineData("MSH|^~|x", Hl7ReadStatus.BadDelimiters)]
    [InlineData("MSH|^~\\&|A|B|C|D|1||ACK|2|P|2.5\rERR|||207", Hl7ReadStatus.NoMsa)]
    [InlineData("MSH|^~\\&|A|B|C|D|1||ACK|2|P|2.5", Hl7ReadStatus.NoMsa)]
    [InlineData("MSH|^~\\&|A|B|C|D|1||ACK|2|P|2.5\rMSA|OK|1", Hl7ReadStatus.UnknownAcknowledgmentCode)]
    [InlineData("MSH|^~\\&|A|B|C|D|1||ACK|2|P|2.5\rMSA|AAA|1", Hl7ReadStatus.UnknownAcknowledgmentCode)]
    [InlineData("MSH|^~\\&|A|B|C|D|1||ACK|2|P|2.5\rMSA|AA", Hl7ReadStatus.MissingControlId)]
    [InlineData("MSH|^~\\&|A|B|C|D|1||ACK|2|P|2.5\rMSAX|AA|1", Hl7ReadStatus.NoMsa)]
    public void Names_what_is_wrong_with_a_reply(string reply, Hl7ReadStatus expected)
    {
        Assert.Equal(expected, Read(reply, out _));
    }

    [Fact]
    public void Looks_for_msa_only_within_the_scan_limit()
    {
        var reply = "MSH|^~\\&|A|B|C|D|1||ACK|2|P|2.5\rZZZ|" + new string('x', 100) + "\rMSA|AA|1\r";

        Assert.Equal(Hl7ReadStatus.NoMsa, Hl7AckReader.TryRead(Encoding.ASCII.GetBytes(reply), 64, out _));
        Assert.Equal(Hl7ReadStatus.NoMsa, new Hl7AckReader(64).TryRead(TestSequences.Split(Encoding.ASCII.GetBytes(reply), 30), out _));
        Assert.Equal(Hl7ReadStatus.Success, new Hl7AckReader(200).TryRead(TestSequences.Split(Encoding.ASCII.GetBytes(reply), 30), out _));
    }
}
