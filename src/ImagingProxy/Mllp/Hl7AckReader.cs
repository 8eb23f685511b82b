using System.Buffers;

namespace ImagingProxy.Mllp;

/// <summary>
/// Reads MSA-1/2/3 from an acknowledgement without parsing the rest of it: MSH for the delimiters, then the first
/// segment named MSA. Only the first <see cref="MaxScanLength"/> bytes are looked at (MSA is the second segment).
/// </summary>
/// <remarks>
/// A reply that spans several buffers has its first <see cref="MaxScanLength"/> bytes copied into a buffer the reader
/// reuses (one reader per connection); a result read from such a reply is valid until the reader's next call.
/// </remarks>
public sealed class Hl7AckReader
{
    private readonly byte[] _copy;

    public Hl7AckReader(int maxScanLength = MllpConstants.DefaultMaxAckScanLength)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxScanLength, 16);
        MaxScanLength = maxScanLength;
        _copy = new byte[maxScanLength];
    }

    /// <summary>How many bytes at the start of a reply are searched for MSA.</summary>
    public int MaxScanLength { get; }

    /// <summary>Reads the acknowledgement in a reply held in one or several buffers.</summary>
    public Hl7ReadStatus TryRead(in ReadOnlySequence<byte> message, out Hl7Ack ack)
    {
        if (message.IsSingleSegment)
        {
            return TryRead(message.First, MaxScanLength, out ack);
        }

        var length = (int)Math.Min(message.Length, _copy.Length);
        message.Slice(0, length).CopyTo(_copy);
        return TryRead(_copy.AsMemory(0, length), MaxScanLength, message.Length > length, out ack);
    }

    /// <summary>Reads the acknowledgement in a reply held in one buffer (the result slices <paramref name="message"/>).</summary>
    public static Hl7ReadStatus TryRead(ReadOnlyMemory<byte> message, int maxScanLength, out Hl7Ack ack)
    {
        var truncated = message.Length > maxScanLength;
        return TryRead(truncated ? message[..maxScanLength] : message, maxScanLength, truncated, out ack);
    }

    private static Hl7ReadStatus TryRead(ReadOnlyMemory<byte> message, int maxScanLength, bool truncated, out Hl7Ack ack)
    {
        ack = default;
        if (truncated)
        {
            // Only whole segments count: drop the one cut by the scan limit.
            var lastTerminator = message.Span.LastIndexOfAny(MllpConstants.CarriageReturn, MllpConstants.LineFeed);
            message = message[..(lastTerminator + 1)];
        }

        var status = Hl7HeaderReader.TryRead(message, maxScanLength, out var header);
        if (status is Hl7ReadStatus.NoMsh or Hl7ReadStatus.BadDelimiters or Hl7ReadStatus.HeaderTooLong)
        {
            return status;
        }

        var d = header.Delimiters;
        var position = header.Segment.Length;
        var span = message.Span;
        while (position < span.Length)
        {
            // Skip the terminator(s) (CR, LF, CRLF, or blank lines) before the next segment.
            if (span[position] is MllpConstants.CarriageReturn or MllpConstants.LineFeed)
            {
                position++;
                continue;
            }

            var rest = span[position..];
            var end = rest.IndexOfAny(MllpConstants.CarriageReturn, MllpConstants.LineFeed);
            var segmentLength = end >= 0 ? end : rest.Length;
            if (segmentLength >= 4 && rest.StartsWith("MSA"u8) && rest[3] == d.Field)
            {
                return ReadMsa(message.Slice(position, segmentLength), header, out ack);
            }

            position += segmentLength;
        }

        return Hl7ReadStatus.NoMsa;
    }

    private static Hl7ReadStatus ReadMsa(ReadOnlyMemory<byte> segment, in Hl7Header header, out Hl7Ack ack)
    {
        var d = header.Delimiters;
        var span = segment.Span;
        Span<Range> fields = stackalloc Range[4];
        var position = 3;
        for (var n = 1; n <= 3 && position < span.Length; n++)
        {
            var start = position + 1;
            var next = span[start..].IndexOf(d.Field);
            position = next < 0 ? span.Length : start + next;
            fields[n] = start..position;
        }

        var codeBytes = new Hl7Field(segment[fields[1]], d, header.CharacterSetKind).GetComponent(1).Span;
        var code = codeBytes.Length != 2 ? AcknowledgmentCode.None : (codeBytes[0], codeBytes[1]) switch
        {
            ((byte)'A', (byte)'A') => AcknowledgmentCode.ApplicationAccept,
            ((byte)'A', (byte)'E') => AcknowledgmentCode.ApplicationError,
            ((byte)'A', (byte)'R') => AcknowledgmentCode.ApplicationReject,
            ((byte)'C', (byte)'A') => AcknowledgmentCode.CommitAccept,
            ((byte)'C', (byte)'E') => AcknowledgmentCode.CommitError,
            ((byte)'C', (byte)'R') => AcknowledgmentCode.CommitReject,
            _ => AcknowledgmentCode.None,
        };

        ack = new Hl7Ack
        {
            Code = code,
            AcknowledgedControlId = new Hl7Field(segment[fields[2]], d, header.CharacterSetKind),
            Text = new Hl7Field(segment[fields[3]], d, header.CharacterSetKind),
            Delimiters = d,
        };

        return code == AcknowledgmentCode.None ? Hl7ReadStatus.UnknownAcknowledgmentCode
            : ack.AcknowledgedControlId.IsEmpty ? Hl7ReadStatus.MissingControlId
            : Hl7ReadStatus.Success;
    }
}
