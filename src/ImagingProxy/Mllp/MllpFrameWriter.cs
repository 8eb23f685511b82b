using System.Buffers;

namespace ImagingProxy.Mllp;

/// <summary>Writes MLLP frames: <c>0x0B message 0x1C 0x0D</c> (HL7 v2.5 Appendix C).</summary>
public static class MllpFrameWriter
{
    /// <summary>Bytes MLLP adds around a message.</summary>
    public const int FrameOverhead = 3;

    /// <summary>Writes a whole frame around <paramref name="message"/>.</summary>
    public static void Write(IBufferWriter<byte> writer, ReadOnlySpan<byte> message)
    {
        ArgumentNullException.ThrowIfNull(writer);
        var span = writer.GetSpan(message.Length + FrameOverhead);
        span[0] = MllpConstants.StartBlock;
        message.CopyTo(span[1..]);
        span[1 + message.Length] = MllpConstants.EndBlock;
        span[2 + message.Length] = MllpConstants.CarriageReturn;
        writer.Advance(message.Length + FrameOverhead);
    }

    /// <summary>Writes a whole frame around a message held in several buffers (e.g. a frame just read from a pipe).</summary>
    public static void Write(IBufferWriter<byte> writer, in ReadOnlySequence<byte> message)
    {
        ArgumentNullException.ThrowIfNull(writer);
        WriteStartBlock(writer);
        foreach (var segment in message)
        {
            writer.Write(segment.Span);
        }

        WriteEndBlock(writer);
    }

    /// <summary>Writes &lt;SB&gt;; the caller then writes the message (e.g. <see cref="Hl7AckWriter"/>) and <see cref="WriteEndBlock"/>.</summary>
    public static void WriteStartBlock(IBufferWriter<byte> writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        writer.GetSpan(1)[0] = MllpConstants.StartBlock;
        writer.Advance(1);
    }

    /// <summary>Writes the trailer &lt;EB&gt;&lt;CR&gt;.</summary>
    public static void WriteEndBlock(IBufferWriter<byte> writer)
    {
        ArgumentNullException.ThrowIfNull(writer);
        var span = writer.GetSpan(2);
        span[0] = MllpConstants.EndBlock;
        span[1] = MllpConstants.CarriageReturn;
        writer.Advance(2);
    }
}
