using System.Buffers;
using ImagingProxy.Mllp;

namespace ImagingProxy.Tests.Mllp;

/// <summary>
/// Random input with fixed seeds: no exception escapes, nothing hangs, every reported result consumes input, and
/// well-formed frames mixed into noise still come out whole.
/// </summary>
public class MllpFuzzTests
{
    private static readonly byte[] s_alphabet = [0x0B, 0x1C, 0x0D, 0x0A, (byte)'M', (byte)'S', (byte)'H', (byte)'|', (byte)'^', (byte)'~', (byte)'\\', (byte)'&', (byte)'A', (byte)'1', (byte)'#', (byte)'*'];

    private static byte[] RandomInput(Random random, int length)
    {
        var bytes = new byte[length];
        var mode = random.Next(3);
        for (var i = 0; i < length; i++)
        {
            bytes[i] = mode switch
            {
                0 => (byte)random.Next(256),
                1 => s_alphabet[random.Next(s_alphabet.Length)],
                _ => random.Next(20) == 0 ? s_alphabet[random.Next(4)] : (byte)random.Next(0x20, 0x7F),
            };
        }

        return bytes;
    }

    private static int[] RandomSplits(Random random, int length) =>
        Enumerable.Range(0, random.Next(6)).Select(_ => random.Next(length + 1)).Order().ToArray();

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void Frame_reader_survives_random_bytes_and_random_block_positions(int seed)
    {
        var random = new Random(seed);
        for (var round = 0; round < 2000; round++)
        {
            var input = RandomInput(random, random.Next(0, 300));
            var reader = new MllpFrameReader(maxFrameSize: random.Next(1, 200));
            var events = FrameFeeder.Run(reader, input, RandomSplits(random, input.Length));

            Assert.True(events[^1].Result is MllpReadResult.EndOfStream or MllpReadResult.IncompleteFrameAtEndOfStream);
            Assert.All(events.SkipLast(1), e => Assert.True(e.Result is MllpReadResult.Frame or MllpReadResult.BytesOutsideFrame or MllpReadResult.FrameTooLarge));
            Assert.All(events.Where(e => e.Result == MllpReadResult.Frame), e => Assert.True(e.Bytes.Length <= reader.MaxFrameSize));
            Assert.All(events.Where(e => e.Result == MllpReadResult.Frame), e => Assert.DoesNotContain((byte)0x0B, e.Bytes));
        }
    }

    [Theory]
    [InlineData(11)]
    [InlineData(12)]
    public void Frame_reader_recovers_every_good_frame_that_follows_noise(int seed)
    {
        var random = new Random(seed);
        var good = Hl7Samples.Frame(Hl7Samples.Orm);
        for (var round = 0; round < 500; round++)
        {
            // Noise without <SB> cannot swallow a following frame; noise may end mid-"frame" only if it holds an <SB>.
            var noise = RandomInput(random, random.Next(0, 400)).Where(b => b != 0x0B).ToArray();
            byte[] input = [.. noise, .. good, .. noise, .. good];
            var events = FrameFeeder.Run(new MllpFrameReader(maxFrameSize: 256), input, RandomSplits(random, input.Length));

            Assert.Equal([Hl7Samples.Orm, Hl7Samples.Orm], MllpFrameReaderTests.Frames(events));
        }
    }

    [Theory]
    [InlineData(21)]
    [InlineData(22)]
    public void Header_and_ack_readers_survive_random_and_truncated_messages(int seed)
    {
        var random = new Random(seed);
        var headers = new Hl7HeaderReader(maxHeaderSegmentLength: 128);
        var acks = new Hl7AckReader(maxScanLength: 128);
        var pattern = Hl7Pattern.Create("ADT^A01", sendingApplication: "ADT1");
        var samples = new[] { Hl7Samples.Bytes(Hl7Samples.Adt), Hl7Samples.Bytes(Hl7Samples.Orm), Hl7Samples.Bytes("MSH|^~\\&|A|B|C|D|1||ACK|2|P|2.5\rMSA|AA|1\r") };
        for (var round = 0; round < 5000; round++)
        {
            byte[] input;
            if (random.Next(2) == 0)
            {
                input = [.. "MSH"u8, .. RandomInput(random, random.Next(0, 200))];
            }
            else
            {
                var sample = samples[random.Next(samples.Length)];
                input = sample[..random.Next(sample.Length + 1)];
                if (input.Length > 0 && random.Next(2) == 0)
                {
                    input[random.Next(input.Length)] = s_alphabet[random.Next(s_alphabet.Length)];
                }
            }

            var sequence = TestSequences.Split(input, RandomSplits(random, input.Length));
            var status = headers.TryRead(sequence, out var header);
            if (status is not (Hl7ReadStatus.NoMsh or Hl7ReadStatus.BadDelimiters or Hl7ReadStatus.HeaderTooLong)
                || (status == Hl7ReadStatus.BadDelimiters && !header.MessageControlId.IsEmpty))
            {
                _ = pattern.Matches(header);
                _ = header.MessageControlId.GetString();
                _ = header.SendingApplication.GetComponent(2).GetString();
                Hl7AckWriter.Write(new ArrayBufferWriter<byte>(), header, AcknowledgmentCode.ApplicationReject, "X", DateTimeOffset.UnixEpoch, "t", Hl7ErrorCode.ApplicationInternalError);
            }

            if (acks.TryRead(sequence, out var ack) is Hl7ReadStatus.Success)
            {
                _ = ack.AcknowledgedControlId.GetString();
            }
        }
    }
}
