using System.Buffers;
using System.Text;
using ImagingProxy.Mllp;

namespace ImagingProxy.Tests.Mllp;

/// <summary>
/// Plays the pipelines read loop against <see cref="MllpFrameReader"/>: input arrives in chunks, unconsumed bytes stay
/// buffered (as separate buffers, like a pipe's segments), and the end of the stream is classified at the end.
/// </summary>
internal sealed class FrameFeeder(MllpFrameReader reader)
{
    private readonly List<byte[]> _pending = [];

    public List<(MllpReadResult Result, byte[] Bytes)> Events { get; } = [];

    /// <summary>Largest number of bytes ever left buffered after a read was processed.</summary>
    public long MaxBuffered { get; private set; }

    public static List<(MllpReadResult Result, byte[] Bytes)> Run(MllpFrameReader reader, byte[] input, params int[] splits)
    {
        var feeder = new FrameFeeder(reader);
        var start = 0;
        foreach (var split in splits.Append(input.Length))
        {
            feeder.Receive(input[start..split]);
            start = split;
        }

        feeder.Complete();
        return feeder.Events;
    }

    public void Receive(byte[] chunk)
    {
        _pending.Add(chunk);
        var buffer = TestSequences.FromChunks(_pending);
        var guard = 0;
        while (true)
        {
            var before = buffer.Length;
            var result = reader.TryReadFrame(ref buffer, out var message);
            Assert.True(buffer.Length <= before, "The buffer never grows back.");
            if (result == MllpReadResult.NeedMoreData)
            {
                break;
            }

            Assert.True(buffer.Length < before, $"{result} must consume input.");
            Events.Add((result, message.ToArray()));
            Assert.True(++guard < 1_000_000, "No endless loop.");
        }

        _pending.Clear();
        foreach (var segment in buffer)
        {
            _pending.Add(segment.ToArray());
        }

        MaxBuffered = Math.Max(MaxBuffered, buffer.Length);
    }

    public void Complete()
    {
        var buffer = TestSequences.FromChunks(_pending);
        Events.Add((reader.ClassifyEndOfStream(buffer), buffer.ToArray()));
        _pending.Clear();
    }

    public static string Describe(IEnumerable<(MllpReadResult Result, byte[] Bytes)> events) =>
        string.Join(", ", events.Select(e => $"{e.Result}:{Encoding.Latin1.GetString(e.Bytes)}"));
}
