using System.Buffers;
using System.Text;
using ImagingProxy.Mllp;

namespace ImagingProxy.PeerTests.Mllp;

/// <summary>Needs python3-hl7 under Debian's /usr/bin/python3: hl7.parse reads the ACKs our writer produces.</summary>
public class PythonHl7AckParsingTests
{
    // Reads one message from stdin in the given codec and prints the fields python3-hl7 sees, one per line.
    private const string Script = """
        import sys, hl7
        data = sys.stdin.buffer.read().decode(sys.argv[1])
        m = hl7.parse(data)
        msh, msa = m.segment("MSH"), m.segment("MSA")
        def field(seg, n):
            return str(seg[n]) if len(seg) > n else ""
        print(field(msa, 1)); print(field(msa, 2)); print(m.unescape(field(msa, 3)))
        print(field(msh, 3)); print(field(msh, 5)); print(field(msh, 9)); print(field(msh, 10)); print(field(msh, 12))
        try:
            err = m.segment("ERR")
            print(field(err, 3)); print(field(err, 4)); print(m.unescape(field(err, 8)))
        except KeyError:
            print("-")
        """;

    private static async Task<string[]> ParseWithPython(byte[] message, string codec = "ascii")
    {
        var (exitCode, output, error) = await PythonHl7.RunAsync(PythonHl7.StartInfo(PythonHl7.Python, "-c", Script, codec), message);
        Assert.True(exitCode == 0, error);
        return output.Split('\n');
    }

    private static byte[] Ack(string original, AcknowledgmentCode code, string text = "", Hl7ErrorCode? error = null)
    {
        Assert.True(Hl7HeaderReader.TryRead(Encoding.UTF8.GetBytes(original), 8192, out var header) == Hl7ReadStatus.Success);
        var writer = new ArrayBufferWriter<byte>();
        Hl7AckWriter.Write(writer, header, code, "PROXY0001", DateTimeOffset.UnixEpoch, text, error);
        return writer.WrittenSpan.ToArray();
    }

    [Fact]
    public async Task Python3_hl7_reads_msa_of_an_accept()
    {
        var lines = await ParseWithPython(Ack("MSH|^~\\&|RIS|RAD|PACS|HOSP|2025||ORM^O01^ORM_O01|MSG00001|P|2.5.1\rPID|1", AcknowledgmentCode.ApplicationAccept));

        Assert.Equal(["AA", "MSG00001", "", "PACS", "RIS", "ACK^O01^ACK", "PROXY0001", "2.5.1", "-"], lines[..9]);
    }

    [Fact]
    public async Task Python3_hl7_reads_msa_and_err_of_an_error_with_escaped_text()
    {
        var lines = await ParseWithPython(Ack(
            "MSH|^~\\&|RIS|RAD|PACS|HOSP|2025||ADT^A08|C-77|P|2.5",
            AcknowledgmentCode.ApplicationError,
            "backend pacs|1 ^down^ & out",
            Hl7ErrorCode.ApplicationInternalError));

        Assert.Equal("AE", lines[0]);
        Assert.Equal("C-77", lines[1]);
        Assert.Equal("backend pacs|1 ^down^ & out", lines[2]);
        Assert.Equal("207^Application internal error^HL70357", lines[8]);
        Assert.Equal("E", lines[9]);
        Assert.Equal("backend pacs|1 ^down^ & out", lines[10]);
    }

    [Fact]
    public async Task Python3_hl7_reads_utf8_text_of_an_ack_to_a_utf8_message()
    {
        var ack = Ack("MSH|^~\\&|RÖNTGEN|RAD|PACS|HOSP|2025||ORU^R01|Ü1|P|2.5.1||||||UNICODE UTF-8", AcknowledgmentCode.CommitReject, "Zürich 東京", Hl7ErrorCode.UnsupportedMessageType);
        var lines = await ParseWithPython(ack, "utf-8");

        Assert.Equal(["CR", "Ü1", "Zürich 東京", "PACS", "RÖNTGEN"], lines[..5]);
        Assert.Equal("200^Unsupported message type^HL70357", lines[8]);
    }
}
