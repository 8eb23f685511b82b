using System.Buffers;
using ImagingProxy.Mllp;

namespace ImagingProxy.Tests.Mllp;

public class MllpFrameReaderTests
{
    private static readonly byte[] s_ormFrame = Hl7Samples.Frame(Hl7Samples.Orm);
    private static readonly byte[] s_adtFrame = Hl7Samples.Frame(Hl7Samples.Adt);

    [Fact]
    public void Reads_a_frame_received_in_one_piece_as_a_slice_of_the_buffer()
    {
        var buffer = new ReadOnlySequence<byte>(s_ormFrame);
        var result = new MllpFrameReader().TryReadFrame(ref buffer, out var message);

        Assert.Equal(MllpReadResult.Frame, result);
        Assert.Equal(Hl7Samples.Bytes(Hl7Samples.Orm), message.ToArray());
        Assert.True(buffer.IsEmpty);
        Assert.True(message.First.Span.Overlaps(s_ormFrame), "The message is not a copy.");
    }

    [Fact]
    public void Reads_a_frame_split_at_every_single_point()
    {
        for (var split = 0; split <= s_ormFrame.Length; split++)
        {
            var events = FrameFeeder.Run(new MllpFrameReader(), s_ormFrame, split);
            AssertFrames(events, Hl7Samples.Orm);
        }
    }

    [Fact]
    public void Reads_a_frame_split_at_every_pair_of_points()
    {
        for (var first = 0; first <= s_ormFrame.Length; first++)
        {
            for (var second = first; second <= s_ormFrame.Length; second++)
            {
                AssertFrames(FrameFeeder.Run(new MllpFrameReader(), s_ormFrame, first, second), Hl7Samples.Orm);
            }
        }
    }

    [Fact]
    public void Reads_a_frame_arriving_one_byte_per_read()
    {
        var splits = Enumerable.Range(1, s_ormFrame.Length - 1).ToArray();
        AssertFrames(FrameFeeder.Run(new MllpFrameReader(), s_ormFrame, splits), Hl7Samples.Orm);
    }

    [Fact]
    public void Reads_two_frames_split_at_every_point()
    {
        byte[] input = [.. s_ormFrame, .. s_adtFrame];
        for (var split = 0; split <= input.Length; split++)
        {
            AssertFrames(FrameFeeder.Run(new MllpFrameReader(), input, split), Hl7Samples.Orm, Hl7Samples.Adt);
        }
    }

    [Fact]
    public void Reads_many_frames_from_one_read()
    {
        var messages = Enumerable.Range(0, 1000).Select(i => Hl7Samples.Orm.Replace("MSG00001", $"MSG{i:D5}", StringComparison.Ordinal)).ToArray();
        var input = messages.SelectMany(Hl7Samples.Frame).ToArray();

        AssertFrames(FrameFeeder.Run(new MllpFrameReader(), input), messages);
    }

    [Theory]
    [InlineData("\r")]
    [InlineData("\n")]
    [InlineData("\r\n")]
    public void Relays_messages_with_any_segment_terminator_unchanged(string terminator)
    {
        var message = Hl7Samples.Orm.Replace("\r", terminator, StringComparison.Ordinal) + terminator;
        AssertFrames(FrameFeeder.Run(new MllpFrameReader(), Hl7Samples.Frame(message)), message);
    }

    [Fact]
    public void Reads_a_frame_whose_last_segment_has_no_carriage_return_as_mllp_send_writes_it()
    {
        // python3-hl7's mllp_send strips the final CR: the frame ends "...^C4" 1C 0D.
        Assert.EndsWith("^C4", Hl7Samples.Orm, StringComparison.Ordinal);
        for (var split = 0; split <= s_ormFrame.Length; split++)
        {
            AssertFrames(FrameFeeder.Run(new MllpFrameReader(), s_ormFrame, split), Hl7Samples.Orm);
        }
    }

    [Fact]
    public void Keeps_an_end_block_not_followed_by_carriage_return_inside_the_message()
    {
        var message = "MSH|^~\\&|A\u001cB|C";
        AssertFrames(FrameFeeder.Run(new MllpFrameReader(), Hl7Samples.Frame(message)), message);
    }

    [Fact]
    public void Reads_an_empty_frame()
    {
        AssertFrames(FrameFeeder.Run(new MllpFrameReader(), [0x0B, 0x1C, 0x0D]), string.Empty);
    }

    [Fact]
    public void Reports_bytes_before_the_start_block_once_and_then_reads_the_frame()
    {
        byte[] input = [.. "junk\r\n"u8, .. s_ormFrame];
        var events = FrameFeeder.Run(new MllpFrameReader(), input);

        Assert.Equal(3, events.Count);
        Assert.Equal(MllpReadResult.BytesOutsideFrame, events[0].Result);
        Assert.Equal("junk\r\n"u8.ToArray(), events[0].Bytes);
        Assert.Equal(MllpReadResult.Frame, events[1].Result);
        Assert.Equal(MllpReadResult.EndOfStream, events[2].Result);
    }

    [Fact]
    public void Reports_stray_line_breaks_between_frames_and_loses_no_frame_at_any_split_point()
    {
        byte[] input = [.. s_ormFrame, (byte)'\r', (byte)'\n', .. s_adtFrame, (byte)'\n'];
        for (var split = 0; split <= input.Length; split++)
        {
            var events = FrameFeeder.Run(new MllpFrameReader(), input, split);
            Assert.Equal([Hl7Samples.Orm, Hl7Samples.Adt], Frames(events));
            Assert.Equal(3, events.Where(e => e.Result == MllpReadResult.BytesOutsideFrame).Sum(e => e.Bytes.Length));
            Assert.Equal(MllpReadResult.EndOfStream, events[^1].Result);
        }
    }

    [Fact]
    public void Accepts_a_frame_of_exactly_the_maximum_size()
    {
        var message = new string('A', 64);
        AssertFrames(FrameFeeder.Run(new MllpFrameReader(maxFrameSize: 64), Hl7Samples.Frame(message)), message);
    }

    [Fact]
    public void Rejects_a_frame_one_byte_over_the_maximum()
    {
        var events = FrameFeeder.Run(new MllpFrameReader(maxFrameSize: 64), Hl7Samples.Frame(new string('A', 65)));

        Assert.Equal([MllpReadResult.FrameTooLarge, MllpReadResult.EndOfStream], events.Select(e => e.Result));
    }

    [Fact]
    public void Skips_an_oversize_frame_reported_once_then_reads_the_next_frame_at_every_split_point()
    {
        var big = Hl7Samples.Frame("MSH|^~\\&|" + new string('X', 500));
        byte[] input = [.. big, .. s_ormFrame];
        for (var split = 0; split <= input.Length; split++)
        {
            var reader = new MllpFrameReader(maxFrameSize: 200);
            var events = FrameFeeder.Run(reader, input, split);

            Assert.Equal(1, events.Count(e => e.Result == MllpReadResult.FrameTooLarge));
            Assert.DoesNotContain(events, e => e.Result == MllpReadResult.BytesOutsideFrame);
            Assert.Equal([Hl7Samples.Orm], Frames(events));
            Assert.Equal(MllpReadResult.EndOfStream, events[^1].Result);
        }
    }

    [Fact]
    public void Resynchronises_on_the_next_start_block_when_an_oversize_frame_has_no_trailer()
    {
        byte[] input = [0x0B, .. new byte[300].Select(_ => (byte)'X'), .. s_ormFrame];
        for (var split = 0; split <= input.Length; split += 7)
        {
            var events = FrameFeeder.Run(new MllpFrameReader(maxFrameSize: 200), input, split);

            Assert.Equal(1, events.Count(e => e.Result == MllpReadResult.FrameTooLarge));
            Assert.Equal([Hl7Samples.Orm], Frames(events));
        }
    }

    [Fact]
    public void Drops_a_frame_cut_short_by_a_new_start_block_and_reads_the_new_frame()
    {
        byte[] input = [.. s_ormFrame[..40], .. s_adtFrame];
        for (var split = 0; split <= input.Length; split++)
        {
            var events = FrameFeeder.Run(new MllpFrameReader(), input, split);

            Assert.Equal([MllpReadResult.BytesOutsideFrame, MllpReadResult.Frame, MllpReadResult.EndOfStream], events.Select(e => e.Result));
            Assert.Equal(s_ormFrame[..40], events[0].Bytes);
            Assert.Equal([Hl7Samples.Adt], Frames(events));
        }
    }

    [Fact]
    public void Keeps_memory_bounded_while_an_endless_frame_streams_in()
    {
        var feeder = new FrameFeeder(new MllpFrameReader(maxFrameSize: 1024));
        feeder.Receive([0x0B]);
        var chunk = Enumerable.Repeat((byte)'X', 100).ToArray();
        for (var i = 0; i < 1000; i++)
        {
            feeder.Receive(chunk);
        }

        Assert.True(feeder.MaxBuffered <= 1024 + 1, $"Buffered {feeder.MaxBuffered} bytes.");
        Assert.Equal([MllpReadResult.FrameTooLarge], feeder.Events.Select(e => e.Result));
        feeder.Receive([0x1C]);
        feeder.Receive([0x0D, .. s_ormFrame]);
        feeder.Complete();
        Assert.Equal([Hl7Samples.Orm], Frames(feeder.Events));
        Assert.Equal(MllpReadResult.EndOfStream, feeder.Events[^1].Result);
    }

    [Fact]
    public void Names_end_of_stream_inside_a_frame_at_every_truncation_point()
    {
        for (var length = 1; length < s_ormFrame.Length; length++)
        {
            var events = FrameFeeder.Run(new MllpFrameReader(), s_ormFrame[..length]);

            Assert.Equal(MllpReadResult.IncompleteFrameAtEndOfStream, events[^1].Result);
            Assert.Equal(s_ormFrame[..length], events[^1].Bytes);
            Assert.DoesNotContain(events, e => e.Result == MllpReadResult.Frame);
        }
    }

    [Fact]
    public void Names_end_of_stream_inside_an_oversize_frame()
    {
        var events = FrameFeeder.Run(new MllpFrameReader(maxFrameSize: 10), Hl7Samples.Bytes("\vMSH|^~\\&|AAAAAAAAAAAAAAAA"));

        Assert.Equal([MllpReadResult.FrameTooLarge, MllpReadResult.IncompleteFrameAtEndOfStream], events.Select(e => e.Result));
    }

    [Fact]
    public void Names_a_clean_end_of_stream_between_frames()
    {
        var events = FrameFeeder.Run(new MllpFrameReader(), s_ormFrame);

        Assert.Equal(MllpReadResult.EndOfStream, events[^1].Result);
    }

    [Fact]
    public void Reads_a_large_frame_arriving_in_many_small_reads()
    {
        var message = "MSH|^~\\&|" + new string('Y', 1_000_000);
        var frame = Hl7Samples.Frame(message);
        var splits = Enumerable.Range(1, (frame.Length - 1) / 997).Select(i => i * 997).ToArray();

        AssertFrames(FrameFeeder.Run(new MllpFrameReader(), frame, splits), message);
    }

    internal static string[] Frames(IEnumerable<(MllpReadResult Result, byte[] Bytes)> events) =>
        events.Where(e => e.Result == MllpReadResult.Frame).Select(e => System.Text.Encoding.UTF8.GetString(e.Bytes)).ToArray();

    private static void AssertFrames(List<(MllpReadResult Result, byte[] Bytes)> events, params string[] messages)
    {
        Assert.True(
            events.Count == messages.Length + 1 && events.Take(messages.Length).All(e => e.Result == MllpReadResult.Frame),
            FrameFeeder.Describe(events));
        Assert.Equal(messages, Frames(events));
        Assert.Equal(MllpReadResult.EndOfStream, events[^1].Result);
    }
}
