using System.Buffers;

namespace ImagingProxy.Tests.Mllp;

/// <summary>Builds multi-buffer <see cref="ReadOnlySequence{T}"/>s, so parsers see every split point of their input.</summary>
internal static class TestSequences
{
    /// <summary>Splits <paramref name="data"/> into buffers at the given (ascending) offsets; empty buffers are kept.</summary>
    public static ReadOnlySequence<byte> Split(ReadOnlySpan<byte> data, params int[] splits)
    {
        var chunks = new List<byte[]>();
        var start = 0;
        foreach (var split in splits)
        {
            chunks.Add(data[start..split].ToArray());
            start = split;
        }

        chunks.Add(data[start..].ToArray());
        return FromChunks(chunks);
    }

    public static ReadOnlySequence<byte> FromChunks(IReadOnlyList<byte[]> chunks)
    {
        if (chunks.Count == 0)
        {
            return ReadOnlySequence<byte>.Empty;
        }

        var first = new Segment(chunks[0], 0);
        var last = first;
        for (var i = 1; i < chunks.Count; i++)
        {
            last = last.Append(chunks[i]);
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(byte[] data, long runningIndex)
        {
            Memory = data;
            RunningIndex = runningIndex;
        }

        public Segment Append(byte[] data)
        {
            var next = new Segment(data, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
