using System.Buffers;

namespace ImagingProxy.Mllp;

/// <summary>
/// Reads MLLP frames (<c>0x0B message 0x1C 0x0D</c>, HL7 v2.5 Appendix C) from a pipe buffer, one reader per connection.
/// </summary>
/// <remarks>
/// <para>
/// The loop is the usual pipelines loop:
/// <code>
/// while ((r = frames.TryReadFrame(ref buffer, out var message)) != MllpReadResult.NeedMoreData) { ... }
/// input.AdvanceTo(buffer.Start, buffer.End);
/// if (result.IsCompleted) { var end = frames.ClassifyEndOfStream(buffer); break; }
/// </code>
/// Every result but <see cref="MllpReadResult.NeedMoreData"/> advances <c>buffer</c>; <c>NeedMoreData</c> may advance
/// it too (while skipping the tail of an oversize frame). The message is a slice of the buffer (no copy), valid until
/// the caller advances the pipe.
/// </para>
/// <para>
/// The reader keeps two pieces of state: how far the open frame has already been searched for its trailer (so a large
/// frame arriving in many reads is scanned once, not once per read), and whether it is skipping an oversize frame.
/// Bytes buffered for one frame never exceed the maximum plus &lt;SB&gt;, &lt;EB&gt; and one read.
/// </para>
/// <para>
/// python3-hl7's <c>mllp_send</c> drops the last segment's CR, so a frame may end <c>...1C 0D</c> with no CR before the
/// trailer: that is a normal frame here (the header reader accepts a segment ended by the end of the message).
/// </para>
/// </remarks>
public sealed class MllpFrameReader
{
    private long _searched;
    private bool _skippingOversizeFrame;

    public MllpFrameReader(int maxFrameSize = MllpConstants.DefaultMaxFrameSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxFrameSize, 1);
        MaxFrameSize = maxFrameSize;
    }

    /// <summary>Largest message (bytes between &lt;SB&gt; and &lt;EB&gt;) accepted.</summary>
    public int MaxFrameSize { get; }

    /// <summary>Reads the next frame, or consumes and reports bytes that cannot be part of one.</summary>
    /// <param name="buffer">The unconsumed input; advanced past whatever was consumed.</param>
    /// <param name="message">
    /// For <see cref="MllpReadResult.Frame"/>, the message (without &lt;SB&gt;, &lt;EB&gt;, &lt;CR&gt;). For
    /// <see cref="MllpReadResult.BytesOutsideFrame"/> and <see cref="MllpReadResult.FrameTooLarge"/>, the discarded bytes.
    /// Empty otherwise.
    /// </param>
    public MllpReadResult TryReadFrame(ref ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> message)
    {
        message = default;
        if (_skippingOversizeFrame && !TrySkipOversizeTail(ref buffer))
        {
            return MllpReadResult.NeedMoreData;
        }

        if (buffer.IsEmpty)
        {
            return MllpReadResult.NeedMoreData;
        }

        if (FirstByte(buffer) != MllpConstants.StartBlock)
        {
            var next = buffer.PositionOf(MllpConstants.StartBlock) ?? buffer.End;
            message = buffer.Slice(buffer.Start, next);
            buffer = buffer.Slice(next);
            _searched = 0;
            return MllpReadResult.BytesOutsideFrame;
        }

        var payload = buffer.Slice(1);
        if (_searched > payload.Length)
        {
            // Not the buffer this state was built on (the caller consumed it): search from the start.
            _searched = 0;
        }

        var end = FindFrameEnd(payload, _searched, out var endIndex, out var searched);
        if (end != FrameEnd.None)
        {
            _searched = 0;
            if (end == FrameEnd.StartBlock)
            {
                // A new <SB> before this frame's trailer: the payload cannot hold 0x0B, so this frame was cut short.
                var next = buffer.GetPosition(1 + endIndex);
                message = buffer.Slice(buffer.Start, next);
                buffer = buffer.Slice(next);
                return endIndex > MaxFrameSize ? MllpReadResult.FrameTooLarge : MllpReadResult.BytesOutsideFrame;
            }

            var frameEnd = buffer.GetPosition(1 + endIndex + 2);
            if (endIndex > MaxFrameSize)
            {
                message = buffer.Slice(buffer.Start, frameEnd);
                buffer = buffer.Slice(frameEnd);
                return MllpReadResult.FrameTooLarge;
            }

            message = payload.Slice(0, endIndex);
            buffer = buffer.Slice(frameEnd);
            return MllpReadResult.Frame;
        }

        // searched == payload.Length, or payload.Length - 1 when the last byte is an <EB> awaiting its <CR>.
        if (searched > MaxFrameSize)
        {
            var keep = buffer.GetPosition(1 + searched);
            message = buffer.Slice(buffer.Start, keep);
            buffer = buffer.Slice(keep);
            _searched = 0;
            _skippingOversizeFrame = true;
            return MllpReadResult.FrameTooLarge;
        }

        _searched = searched;
        return MllpReadResult.NeedMoreData;
    }

    /// <summary>
    /// Names how the stream ended, given what is left after <see cref="TryReadFrame"/> returned
    /// <see cref="MllpReadResult.NeedMoreData"/> on the final read.
    /// </summary>
    public MllpReadResult ClassifyEndOfStream(in ReadOnlySequence<byte> buffer)
    {
        var incomplete = !buffer.IsEmpty || _skippingOversizeFrame;
        _searched = 0;
        _skippingOversizeFrame = false;
        return incomplete ? MllpReadResult.IncompleteFrameAtEndOfStream : MllpReadResult.EndOfStream;
    }

    /// <summary>
    /// True when <paramref name="buffer"/> (what is left after <see cref="MllpReadResult.NeedMoreData"/>) holds the start
    /// of a frame, or an oversize frame is being skipped: a message is arriving.
    /// </summary>
    public bool IsInsideFrame(in ReadOnlySequence<byte> buffer) => !buffer.IsEmpty || _skippingOversizeFrame;

    private static byte FirstByte(in ReadOnlySequence<byte> buffer)
    {
        // The first buffer of a sequence may be empty.
        var first = buffer.FirstSpan;
        return first.IsEmpty ? new SequenceReader<byte>(buffer).TryPeek(out var b) ? b : (byte)0 : first[0];
    }

    /// <summary>
    /// Finds the end of an open frame in <paramref name="payload"/>, searching from <paramref name="from"/>: the first
    /// &lt;EB&gt;&lt;CR&gt; or, if it comes first, a new &lt;SB&gt;. When neither is there, <paramref name="searched"/>
    /// says how many payload bytes are known to hold no frame end.
    /// </summary>
    private static FrameEnd FindFrameEnd(in ReadOnlySequence<byte> payload, long from, out long index, out long searched)
    {
        var reader = new SequenceReader<byte>(payload);
        reader.Advance(from);
        ReadOnlySpan<byte> stops = [MllpConstants.EndBlock, MllpConstants.StartBlock];
        while (reader.TryAdvanceToAny(stops, advancePastDelimiter: false))
        {
            index = reader.Consumed;
            searched = index;
            if (reader.IsNext(MllpConstants.StartBlock, advancePast: true))
            {
                return FrameEnd.StartBlock;
            }

            reader.Advance(1);
            if (!reader.TryPeek(out var next))
            {
                return FrameEnd.None;
            }

            if (next == MllpConstants.CarriageReturn)
            {
                return FrameEnd.Trailer;
            }
        }

        index = -1;
        searched = payload.Length;
        return FrameEnd.None;
    }

    /// <summary>
    /// Skips the rest of an oversize frame up to and including its &lt;EB&gt;&lt;CR&gt;, or up to the next &lt;SB&gt;.
    /// Returns false when the end was not in the buffer (everything that can be discarded was).
    /// </summary>
    private bool TrySkipOversizeTail(ref ReadOnlySequence<byte> buffer)
    {
        var reader = new SequenceReader<byte>(buffer);
        ReadOnlySpan<byte> stops = [MllpConstants.StartBlock, MllpConstants.EndBlock];
        while (reader.TryAdvanceToAny(stops, advancePastDelimiter: false))
        {
            if (reader.IsNext(MllpConstants.StartBlock))
            {
                return EndSkip(ref buffer, reader.Position);
            }

            reader.Advance(1);
            if (!reader.TryPeek(out var next))
            {
                // <EB> is the last byte: keep it so its <CR> can be recognised on the next read.
                buffer = buffer.Slice(reader.Consumed - 1);
                return false;
            }

            if (next == MllpConstants.CarriageReturn)
            {
                reader.Advance(1);
                return EndSkip(ref buffer, reader.Position);
            }
        }

        buffer = buffer.Slice(buffer.End);
        return false;
    }

    private enum FrameEnd
    {
        None,
        Trailer,
        StartBlock,
    }

    private bool EndSkip(ref ReadOnlySequence<byte> buffer, SequencePosition resumeAt)
    {
        buffer = buffer.Slice(resumeAt);
        _skippingOversizeFrame = false;
        return true;
    }
}
