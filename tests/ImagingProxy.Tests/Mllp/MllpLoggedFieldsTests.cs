using System.Text;
using ImagingProxy.Mllp;
using Microsoft.Extensions.Logging.Testing;

namespace ImagingProxy.Tests.Mllp;

/// <summary>What of a sender's message reaches the log lines: its fields with their control characters written out.</summary>
public sealed class MllpLoggedFieldsTests
{
    [Fact]
    public async Task A_control_id_with_a_line_feed_or_an_escape_sequence_is_logged_as_text_not_as_a_new_line()
    {
        // MSH-10 spells a line feed as HL7's hex escape (\X0A\, decoded by the codec) and holds a raw ESC byte: written
        // as they decode, they started a forged "info:" line in the console log and coloured the terminal.
        var logs = new FakeLogCollector();
        await using var harness = new MllpHandlerHarness([], logger: new FakeLogger<MllpConnectionHandler>(logs));
        var controlId = "X1\\X0A\\info: ImagingProxy.Forged[1]\u001B[31m";

        await harness.SendAsync(Encoding.ASCII.GetBytes($"MSH|^~\\&|RIS|RAD|PACS|HOSP|20250101120000||ORM^O01|{controlId}|P|2.5.1\rPID|1\r"));

        // The NAK itself copies MSH-10 as the sender wrote it (byte for byte, for the sender to match).
        Assert.Contains($"\rMSA|AR|{controlId}|", await harness.ReplyAsync(), StringComparison.Ordinal);
        var nak = Assert.Single(logs.GetSnapshot(), r => r.Id.Id == 4006);
        Assert.StartsWith(@"MLLP connection test-1: message X1\x0Ainfo: ImagingProxy.Forged[1]\x1B[31m answered with ImagingProxy's NAK (no_destination)", nak.Message, StringComparison.Ordinal);
    }
}
