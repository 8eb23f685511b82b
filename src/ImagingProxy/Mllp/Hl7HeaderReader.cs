using System.Buffers;

namespace ImagingProxy.Mllp;

/// <summary>
/// Reads <see cref="Hl7Header"/> from a message: MSH-1/2 first, then MSH-3..18 as slices, stopping at the end of MSH.
/// Errors are named by <see cref="Hl7ReadStatus"/>; nothing throws on wire input.
/// </summary>
/// <remarks>
/// Segments end with CR (HL7 v2.5 §2.5.2); LF and CRLF are accepted too, and so is a message whose only segment has no
/// terminator (python3-hl7's <c>mllp_send</c> drops the last CR). A message that arrives in several buffers has only its
/// MSH segment copied, bounded by <see cref="MaxHeaderSegmentLength"/>, into a buffer the reader reuses: one reader per
/// connection, and a header read from such a message is valid until the reader's next call.
/// </remarks>
public sealed class Hl7HeaderReader
{
    private const int FirstField = 3;
    private const int LastField = Hl7Header.FieldRanges.LastField;

    private readonly byte[] _copy;

    public Hl7HeaderReader(int maxHeaderSegmentLength = MllpConstants.DefaultMaxHeaderSegmentLength)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxHeaderSegmentLength, 8);
        MaxHeaderSegmentLength = maxHeaderSegmentLength;
        _copy = new byte[maxHeaderSegmentLength + 1];
    }

    /// <summary>Longest MSH segment accepted.</summary>
    public int MaxHeaderSegmentLength { get; }

    /// <summary>Reads the header of a message held in one or several buffers.</summary>
    public Hl7ReadStatus TryRead(in ReadOnlySequence<byte> message, out Hl7Header header)
    {
        if (message.IsSingleSegment)
        {
            return TryRead(message.First, MaxHeaderSegmentLength, out header);
        }

        // Copy buffer by buffer until the MSH terminator, at most MaxHeaderSegmentLength + 1 bytes.
        var copied = 0;
        foreach (var memory in message)
        {
            var span = memory.Span[..Math.Min(memory.Length, _copy.Length - copied)];
            span.CopyTo(_copy.AsSpan(copied));
            copied += span.Length;
            if (copied == _copy.Length || span.IndexOfAny(MllpConstants.CarriageReturn, MllpConstants.LineFeed) >= 0)
            {
                break;
            }
        }

        return TryRead(_copy.AsMemory(0, copied), MaxHeaderSegmentLength, out header);
    }

    /// <summary>Reads the header of a message held in one buffer (no copy: the header slices <paramref name="message"/>).</summary>
    public static Hl7ReadStatus TryRead(ReadOnlyMemory<byte> message, int maxHeaderSegmentLength, out Hl7Header header)
    {
        header = default;
        var span = message.Span;
        var terminator = span.IndexOfAny(MllpConstants.CarriageReturn, MllpConstants.LineFeed);
        var segmentLength = terminator >= 0 ? terminator : span.Length;
        var status = Hl7Delimiters.TryRead(span[..segmentLength], out var delimiters, out var position);
        if (status == Hl7ReadStatus.BadDelimiters && Hl7Delimiters.TryFallback(span[..segmentLength], out delimiters, out position))
        {
            // Read on with MSH-1 and the usual encoding characters, for a NAK on MSH-10; the status stays BadDelimiters.
        }
        else if (status != Hl7ReadStatus.Success)
        {
            return status;
        }

        if (segmentLength > maxHeaderSegmentLength)
        {
            return Hl7ReadStatus.HeaderTooLong;
        }

        // MSH-1 is the separator itself, so the separator after MSH-2 opens MSH-3 (HL7 v2.5 §2.14.9.1).
        var fields = default(Hl7Header.FieldRanges);
        fields[2] = 4..position;
        var fieldsSpan = span[..segmentLength];
        for (var n = FirstField; n <= LastField && position < segmentLength; n++)
        {
            var start = position + 1;
            var next = fieldsSpan[start..].IndexOf(delimiters.Field);
            position = next < 0 ? segmentLength : start + next;
            fields[n] = start..position;
        }

        var segment = message[..segmentLength];
        var characterSetField = new Hl7Field(segment[fields[18]], delimiters, Hl7CharacterSet.Ascii);
        header = new Hl7Header(segment, delimiters, Hl7Escaping.ParseCharacterSet(characterSetField.FirstRepetition.Span), fields);

        return status == Hl7ReadStatus.BadDelimiters ? status
            : header.MessageControlId.IsEmpty ? Hl7ReadStatus.MissingControlId
            : header.MessageCode.IsEmpty ? Hl7ReadStatus.MissingMessageType
            : Hl7ReadStatus.Success;
    }
}
