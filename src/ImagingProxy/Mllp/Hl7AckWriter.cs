using System.Buffers;
using System.Globalization;

namespace ImagingProxy.Mllp;

/// <summary>
/// Writes an HL7 v2 acknowledgement (ACK: MSH, MSA, optional ERR; HL7 v2.5 §2.9, §2.14.8) for a message the proxy
/// answers itself. The message only: frame it with <see cref="MllpFrameWriter"/>.
/// </summary>
/// <remarks>
/// <para>
/// MSH uses the original's delimiters and encoding characters (for an original whose MSH-2 is unusable, read with MSH-1 and
/// <c>^~\&amp;</c>, the ones the acknowledgement is written with); sending and receiving application/facility are
/// swapped (whole fields, copied as bytes); MSH-9 is <c>ACK^&lt;trigger&gt;^ACK</c>; MSH-10 is the new control id given;
/// MSH-11, MSH-12 and MSH-18 are copied (MSH-12 falls back to <see cref="MllpConstants.FallbackVersionId"/> when the
/// original had none). MSA-2 is the original MSH-10, copied as bytes. MSH-15/16 stay empty: nobody acknowledges an ACK.
/// </para>
/// <para>
/// Text (MSA-3, ERR-8) is encoded as described on <see cref="Hl7Escaping"/>: in the sender's declared character set when
/// it is UTF-8 or ISO 8859-1, else ASCII; delimiters escaped. The ERR segment uses the v2.5 layout: ERR-3 error code
/// (CWE, HL7 table 0357), ERR-4 severity <c>E</c>, ERR-8 user message.
/// </para>
/// </remarks>
public static class Hl7AckWriter
{
    private const int TimestampLength = 19; // yyyyMMddHHmmss+zzzz

    /// <summary>Acknowledges a message whose header was read.</summary>
    /// <returns>Bytes written.</returns>
    public static int Write(
        IBufferWriter<byte> writer,
        in Hl7Header original,
        AcknowledgmentCode code,
        ReadOnlySpan<char> messageControlId,
        DateTimeOffset timestamp,
        ReadOnlySpan<char> text = default,
        Hl7ErrorCode? error = null)
    {
        // MSH-2 as the message wrote it when it declares the delimiters the acknowledgement is written with; else (an
        // unusable MSH-2, e.g. MSH|^~|, read with the usual ^~\& for a NAK) the ones actually used, so the NAK reads back.
        var encodingCharacters = Declares(original.EncodingCharacters.Span, original.Delimiters)
            ? original.EncodingCharacters.Span
            : DefaultEncodingCharacters(original.Delimiters);
        return WriteCore(
            writer,
            original.Delimiters,
            encodingCharacters,
            original.ReceivingApplication.Span,
            original.ReceivingFacility.Span,
            original.SendingApplication.Span,
            original.SendingFacility.Span,
            original.TriggerEvent.Span,
            original.ProcessingId.Span,
            original.VersionId.Span,
            original.CharacterSet.Span,
            original.CharacterSetKind,
            original.MessageControlId.Span,
            code,
            messageControlId,
            timestamp,
            text,
            error);
    }

    /// <summary>
    /// Acknowledges a message of which little more than the control id is known (e.g. the header read stopped at a
    /// later field): no sender or receiver to swap, no trigger, ASCII text, version <see cref="MllpConstants.FallbackVersionId"/>.
    /// </summary>
    /// <param name="writer">Where the message goes.</param>
    /// <param name="acknowledgedControlId">The original MSH-10 as on the wire (written to MSA-2 unchanged).</param>
    /// <param name="delimiters">The original's delimiters, or <see cref="Hl7Delimiters.Default"/>.</param>
    /// <param name="code">MSA-1.</param>
    /// <param name="messageControlId">MSH-10 of the acknowledgement.</param>
    /// <param name="timestamp">MSH-7.</param>
    /// <param name="text">MSA-3 and, with an error, ERR-8.</param>
    /// <param name="error">ERR-3; no ERR segment when null.</param>
    /// <returns>Bytes written.</returns>
    public static int Write(
        IBufferWriter<byte> writer,
        ReadOnlySpan<byte> acknowledgedControlId,
        Hl7Delimiters delimiters,
        AcknowledgmentCode code,
        ReadOnlySpan<char> messageControlId,
        DateTimeOffset timestamp,
        ReadOnlySpan<char> text = default,
        Hl7ErrorCode? error = null) => WriteCore(
            writer,
            delimiters,
            DefaultEncodingCharacters(delimiters),
            [],
            [],
            [],
            [],
            [],
            [],
            [],
            [],
            Hl7CharacterSet.Ascii,
            acknowledgedControlId,
            code,
            messageControlId,
            timestamp,
            text,
            error);

    /// <summary>MSA-1 bytes for a code (HL7 table 0008).</summary>
    public static ReadOnlySpan<byte> GetCodeBytes(AcknowledgmentCode code) => code switch
    {
        AcknowledgmentCode.ApplicationAccept => "AA"u8,
        AcknowledgmentCode.ApplicationError => "AE"u8,
        AcknowledgmentCode.ApplicationReject => "AR"u8,
        AcknowledgmentCode.CommitAccept => "CA"u8,
        AcknowledgmentCode.CommitError => "CE"u8,
        AcknowledgmentCode.CommitReject => "CR"u8,
        _ => throw new ArgumentOutOfRangeException(nameof(code), code, "Not an HL7 table 0008 code."),
    };

    /// <summary>The table 0357 description written in ERR-3.2.</summary>
    public static string GetDescription(Hl7ErrorCode error) => error switch
    {
        Hl7ErrorCode.MessageAccepted => "Message accepted",
        Hl7ErrorCode.SegmentSequenceError => "Segment sequence error",
        Hl7ErrorCode.RequiredFieldMissing => "Required field missing",
        Hl7ErrorCode.DataTypeError => "Data type error",
        Hl7ErrorCode.TableValueNotFound => "Table value not found",
        Hl7ErrorCode.ValueTooLong => "Value too long",
        Hl7ErrorCode.UnsupportedMessageType => "Unsupported message type",
        Hl7ErrorCode.UnsupportedEventCode => "Unsupported event code",
        Hl7ErrorCode.UnsupportedProcessingId => "Unsupported processing id",
        Hl7ErrorCode.UnsupportedVersionId => "Unsupported version id",
        Hl7ErrorCode.UnknownKeyIdentifier => "Unknown key identifier",
        Hl7ErrorCode.DuplicateKeyIdentifier => "Duplicate key identifier",
        Hl7ErrorCode.ApplicationRecordLocked => "Application record locked",
        Hl7ErrorCode.ApplicationInternalError => "Application internal error",
        _ => "Error",
    };

    /// <summary>True when <paramref name="encodingCharacters"/> (MSH-2 as written) are exactly <paramref name="d"/>'s.</summary>
    private static bool Declares(ReadOnlySpan<byte> encodingCharacters, in Hl7Delimiters d)
        => encodingCharacters.Length == d.EncodingCharacterCount
            && encodingCharacters[0] == d.Component && encodingCharacters[1] == d.Repetition
            && encodingCharacters[2] == d.Escape && encodingCharacters[3] == d.Subcomponent
            && (!d.HasTruncation || encodingCharacters[4] == d.Truncation);

    private static ReadOnlySpan<byte> DefaultEncodingCharacters(in Hl7Delimiters delimiters) => delimiters.HasTruncation
        ? new[] { delimiters.Component, delimiters.Repetition, delimiters.Escape, delimiters.Subcomponent, delimiters.Truncation }
        : new[] { delimiters.Component, delimiters.Repetition, delimiters.Escape, delimiters.Subcomponent };

    private static int WriteCore(
        IBufferWriter<byte> writer,
        Hl7Delimiters d,
        ReadOnlySpan<byte> encodingCharacters,
        ReadOnlySpan<byte> sendingApplication,
        ReadOnlySpan<byte> sendingFacility,
        ReadOnlySpan<byte> receivingApplication,
        ReadOnlySpan<byte> receivingFacility,
        ReadOnlySpan<byte> triggerEvent,
        ReadOnlySpan<byte> processingId,
        ReadOnlySpan<byte> versionId,
        ReadOnlySpan<byte> characterSet,
        Hl7CharacterSet characterSetKind,
        ReadOnlySpan<byte> acknowledgedControlId,
        AcknowledgmentCode code,
        ReadOnlySpan<char> messageControlId,
        DateTimeOffset timestamp,
        ReadOnlySpan<char> text,
        Hl7ErrorCode? error)
    {
        ArgumentNullException.ThrowIfNull(writer);
        if (d.Field == 0)
        {
            throw new ArgumentException("Delimiters are required; use Hl7Delimiters.Default when unknown.", nameof(d));
        }

        var codeBytes = GetCodeBytes(code);
        if (versionId.IsEmpty)
        {
            versionId = "2.5"u8;
        }

        var errorDescription = error is { } e ? GetDescription(e) : string.Empty;
        var max = 64 + encodingCharacters.Length + sendingApplication.Length + sendingFacility.Length
            + receivingApplication.Length + receivingFacility.Length + triggerEvent.Length + processingId.Length
            + versionId.Length + characterSet.Length + acknowledgedControlId.Length + TimestampLength
            + Hl7Escaping.GetMaxEscapedByteCount(messageControlId.Length)
            + (2 * Hl7Escaping.GetMaxEscapedByteCount(text.Length))
            + Hl7Escaping.GetMaxEscapedByteCount(errorDescription.Length);

        var span = writer.GetSpan(max);
        var w = 0;

        // MSH (HL7 v2.5 §2.14.9): MSH|^~\&|3|4|5|6|7||9|10|11|12||||||18
        Put(span, ref w, "MSH"u8);
        span[w++] = d.Field;
        Put(span, ref w, encodingCharacters);
        Field(span, ref w, d, sendingApplication);
        Field(span, ref w, d, sendingFacility);
        Field(span, ref w, d, receivingApplication);
        Field(span, ref w, d, receivingFacility);
        span[w++] = d.Field;
        w += FormatTimestamp(timestamp, span[w..]);
        span[w++] = d.Field; // MSH-8
        span[w++] = d.Field;
        Put(span, ref w, "ACK"u8);
        if (!triggerEvent.IsEmpty)
        {
            span[w++] = d.Component;
            Put(span, ref w, triggerEvent);
            span[w++] = d.Component;
            Put(span, ref w, "ACK"u8);
        }

        span[w++] = d.Field;
        w += Hl7Escaping.Escape(messageControlId, d, Hl7CharacterSet.Ascii, span[w..]);
        Field(span, ref w, d, processingId);
        Field(span, ref w, d, versionId);
        if (!characterSet.IsEmpty)
        {
            for (var n = 13; n <= 18; n++)
            {
                span[w++] = d.Field;
            }

            Put(span, ref w, characterSet);
        }

        span[w++] = MllpConstants.CarriageReturn;

        // MSA (HL7 v2.5 §2.14.8): MSA|code|control id|text
        Put(span, ref w, "MSA"u8);
        Field(span, ref w, d, codeBytes);
        Field(span, ref w, d, acknowledgedControlId);
        if (!text.IsEmpty)
        {
            span[w++] = d.Field;
            w += Hl7Escaping.Escape(text, d, characterSetKind, span[w..]);
        }

        span[w++] = MllpConstants.CarriageReturn;

        // ERR (HL7 v2.5 §2.15.5): ERR|||code^text^HL70357|E||||user message
        if (error is { } errorCode)
        {
            Put(span, ref w, "ERR"u8);
            span[w++] = d.Field;
            span[w++] = d.Field;
            span[w++] = d.Field;
            ((ushort)errorCode).TryFormat(span[w..], out var digits, default, CultureInfo.InvariantCulture);
            w += digits;
            span[w++] = d.Component;
            w += Hl7Escaping.Escape(errorDescription, d, Hl7CharacterSet.Ascii, span[w..]);
            span[w++] = d.Component;
            Put(span, ref w, "HL70357"u8);
            Field(span, ref w, d, "E"u8);
            if (!text.IsEmpty)
            {
                for (var n = 5; n <= 8; n++)
                {
                    span[w++] = d.Field;
                }

                w += Hl7Escaping.Escape(text, d, characterSetKind, span[w..]);
            }

            span[w++] = MllpConstants.CarriageReturn;
        }

        writer.Advance(w);
        return w;
    }

    private static void Put(Span<byte> span, ref int w, ReadOnlySpan<byte> value)
    {
        value.CopyTo(span[w..]);
        w += value.Length;
    }

    private static void Field(Span<byte> span, ref int w, in Hl7Delimiters d, ReadOnlySpan<byte> value)
    {
        span[w++] = d.Field;
        Put(span, ref w, value);
    }

    /// <summary>MSH-7 as DTM <c>YYYYMMDDHHMMSS+ZZZZ</c>.</summary>
    private static int FormatTimestamp(DateTimeOffset timestamp, Span<byte> destination)
    {
        timestamp.TryFormat(destination, out var written, "yyyyMMddHHmmss", CultureInfo.InvariantCulture);
        var offset = timestamp.Offset;
        destination[written++] = offset < TimeSpan.Zero ? (byte)'-' : (byte)'+';
        var minutes = (int)Math.Abs(offset.TotalMinutes);
        ((minutes / 60 * 100) + (minutes % 60)).TryFormat(destination[written..], out var zone, "0000", CultureInfo.InvariantCulture);
        return written + zone;
    }
}
