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
    private const int LastField = 18;

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
        if (status != Hl7ReadStatus.Success)
        {
            return status;
        }

        if (segmentLength > maxHeaderSegmentLength)
        {
            return Hl7ReadStatus.HeaderTooLong;
        }

        // MSH-1 is the separator itself, so the separator after MSH-2 opens MSH-3 (HL7 v2.5 §2.14.9.1).
        Span<Range> ranges = stackalloc Range[LastField + 1];
        var fieldsSpan = span[..segmentLength];
        for (var n = FirstField; n <= LastField && position < segmentLength; n++)
        {
            var start = position + 1;
            var next = fieldsSpan[start..].IndexOf(delimiters.Field);
            position = next < 0 ? segmentLength : start + next;
            ranges[n] = start..position;
        }

        var segment = message[..segmentLength];
        var characterSetField = new Hl7Field(segment[ranges[18]], delimiters, Hl7CharacterSet.Ascii);
        var characterSet = Hl7Escaping.ParseCharacterSet(characterSetField.FirstRepetition.Span);
        header = new Hl7Header
        {
            Segment = segment,
            Delimiters = delimiters,
            CharacterSetKind = characterSet,
            EncodingCharacters = new Hl7Field(segment.Slice(4, delimiters.EncodingCharacterCount), delimiters, characterSet),
            SendingApplication = new Hl7Field(segment[ranges[3]], delimiters, characterSet),
            SendingFacility = new Hl7Field(segment[ranges[4]], delimiters, characterSet),
            ReceivingApplication = new Hl7Field(segment[ranges[5]], delimiters, characterSet),
            ReceivingFacility = new Hl7Field(segment[ranges[6]], delimiters, characterSet),
            MessageType = new Hl7Field(segment[ranges[9]], delimiters, characterSet),
            MessageControlId = new Hl7Field(segment[ranges[10]], delimiters, characterSet),
            ProcessingId = new Hl7Field(segment[ranges[11]], delimiters, characterSet),
            VersionId = new Hl7Field(segment[ranges[12]], delimiters, characterSet),
            AcceptAcknowledgmentType = new Hl7Field(segment[ranges[15]], delimiters, characterSet),
            ApplicationAcknowledgmentType = new Hl7Field(segment[ranges[16]], delimiters, characterSet),
            CharacterSet = new Hl7Field(segment[ranges[18]], delimiters, characterSet),
        };

        return header.MessageControlId.IsEmpty ? Hl7ReadStatus.MissingControlId
            : header.MessageCode.IsEmpty ? Hl7ReadStatus.MissingMessageType
            : Hl7ReadStatus.Success;
    }
}
