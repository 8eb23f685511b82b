using System.Buffers;
using ImagingProxy.Mllp;

namespace ImagingProxy.Tests.Mllp;

public class MllpFrameWriterTests
{
    [Fact]
    public void Wraps_a_message_in_start_block_and_end_block_carriage_return()
    {
        var writer = new ArrayBufferWriter<byte>();
        MllpFrameWriter.Write(writer, "MSH|^~\\&|A"u8);

        Assert.Equal([0x0B, .. "MSH|^~\\&|A"u8, 0x1C, 0x0D], writer.WrittenSpan.ToArray());
    }

    [Fact]
    public void Writes_a_message_held_in_several_buffers_as_one_frame()
    {
        var writer = new ArrayBufferWriter<byte>();
        var message = Hl7Samples.Bytes(Hl7Samples.Orm);
        MllpFrameWriter.Write(writer, TestSequences.Split(message, 3, 10, 10, 40));

        Assert.Equal(Hl7Samples.Frame(Hl7Samples.Orm), writer.WrittenSpan.ToArray());
    }

    [Fact]
    public void Writes_frames_the_reader_reads_back()
    {
        var writer = new ArrayBufferWriter<byte>();
        MllpFrameWriter.Write(writer, Hl7Samples.Bytes(Hl7Samples.Orm));
        MllpFrameWriter.WriteStartBlock(writer);
        writer.Write(Hl7Samples.Bytes(Hl7Samples.Adt));
        MllpFrameWriter.WriteEndBlock(writer);

        var events = FrameFeeder.Run(new MllpFrameReader(), writer.WrittenSpan.ToArray());
        Assert.Equal([Hl7Samples.Orm, Hl7Samples.Adt], MllpFrameReaderTests.Frames(events));
    }
}
