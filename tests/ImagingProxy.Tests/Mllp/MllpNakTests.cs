using System.Buffers;
using System.Text;
using ImagingProxy.Mllp;

namespace ImagingProxy.Tests.Mllp;

public sealed class MllpNakTests
{
    private static readonly DateTimeOffset s_now = new(2025, 1, 1, 12, 0, 1, TimeSpan.Zero);

    private static (string Text, Hl7Ack Ack) Nak(string msh)
    {
        var message = Encoding.ASCII.GetBytes(msh + "\rPID|1\r");
        Assert.Equal(Hl7ReadStatus.Success, Hl7HeaderReader.TryRead(message, 1024, out var header));
        var frame = new ArrayBufferWriter<byte>();
        MllpNak.WriteFrame(frame, header, "No healthy node; retry later.", Hl7ErrorCode.ApplicationInternalError, s_now);
        var bytes = frame.WrittenSpan;
        Assert.Equal(MllpConstants.StartBlock, bytes[0]);
        Assert.True(bytes[^2..].SequenceEqual(new byte[] { MllpConstants.EndBlock, MllpConstants.CarriageReturn }));
        var payload = bytes[1..^2].ToArray();
        Assert.Equal(Hl7ReadStatus.Success, Hl7AckReader.TryRead(payload, 4096, out var ack));
        return (Encoding.ASCII.GetString(payload), ack);
    }

    [Fact]
    public void Original_mode_gets_ar_with_msa2_the_control_id_and_err_207()
    {
        var (text, ack) = Nak("MSH|^~\\&|RIS|RAD|PACS|HOSP|20250101120000||ORM^O01^ORM_O01|MSG00042|P|2.5.1");

        Assert.Equal(AcknowledgmentCode.ApplicationReject, ack.Code);
        Assert.Equal("MSG00042", ack.AcknowledgedControlId.GetString());
        Assert.Equal("No healthy node; retry later.", ack.Text.GetString());
        Assert.StartsWith("MSH|^~\\&|PACS|HOSP|RIS|RAD|20250101120001+0000||ACK^O01^ACK|IPX", text, StringComparison.Ordinal);
        Assert.Contains("|P|2.5.1\rMSA|AR|MSG00042|No healthy node; retry later.\rERR|||207^Application internal error^HL70357|E||||No healthy node; retry later.\r", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Enhanced_mode_gets_cr()
    {
        var (_, ack) = Nak("MSH|^~\\&|RIS|RAD|PACS|HOSP|20250101120000||ORM^O01^ORM_O01|MSG00043|P|2.5.1|||AL|NE");

        Assert.Equal(AcknowledgmentCode.CommitReject, ack.Code);
        Assert.Equal("MSG00043", ack.AcknowledgedControlId.GetString());
    }

    [Fact]
    public void Keeps_the_senders_custom_delimiters()
    {
        var (text, ack) = Nak("MSH#$*/%#RIS#RAD#PACS#HOSP#20250101120000##ADT$A08#MSG00044#P#2.3");

        Assert.Equal(AcknowledgmentCode.ApplicationReject, ack.Code);
        Assert.StartsWith("MSH#$*/%#PACS#HOSP#RIS#RAD#", text, StringComparison.Ordinal);
        Assert.Contains("\rMSA#AR#MSG00044#", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Each_nak_has_its_own_control_id()
    {
        var (first, _) = Nak("MSH|^~\\&|RIS|RAD|PACS|HOSP|20250101120000||ORM^O01|A|P|2.5.1");
        var (second, _) = Nak("MSH|^~\\&|RIS|RAD|PACS|HOSP|20250101120000||ORM^O01|A|P|2.5.1");

        Assert.NotEqual(first.Split('|')[9], second.Split('|')[9]);
    }
}
