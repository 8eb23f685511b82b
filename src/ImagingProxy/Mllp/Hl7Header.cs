using System.Runtime.CompilerServices;

namespace ImagingProxy.Mllp;

/// <summary>
/// The MSH fields a proxy routes, logs and acknowledges on (HL7 v2.5 §2.14.9), read without parsing the rest of the
/// message (the idea of nHapi's PreParser). Fields are slices of <see cref="Segment"/>; nothing is decoded until asked.
/// </summary>
/// <remarks>
/// Valid as long as the memory it was read from: the message itself, or for a message that spanned several buffers the
/// <see cref="Hl7HeaderReader"/>'s copy of the MSH segment, until that reader's next call.
/// </remarks>
public readonly struct Hl7Header
{
    // MSH-2 .. MSH-18 as ranges of Segment (index n: MSH-n; 0 and 1 unused). Ranges rather than Hl7Field values: the
    // header is copied several times per message (into async state), and 13 fields of memory slices made each copy
    // 400+ bytes with 13 object references (a write barrier each); ranges leave one reference, the segment's.
    private readonly FieldRanges _fields;

    internal Hl7Header(ReadOnlyMemory<byte> segment, Hl7Delimiters delimiters, Hl7CharacterSet characterSetKind, in FieldRanges fields)
    {
        Segment = segment;
        Delimiters = delimiters;
        CharacterSetKind = characterSetKind;
        _fields = fields;
    }

    /// <summary>The MSH segment without its terminator.</summary>
    public ReadOnlyMemory<byte> Segment { get; }

    /// <summary>MSH-1 and MSH-2.</summary>
    public Hl7Delimiters Delimiters { get; }

    /// <summary>MSH-18 first repetition, as far as the codec distinguishes it.</summary>
    public Hl7CharacterSet CharacterSetKind { get; }

    /// <summary>MSH-2 Encoding Characters (<c>^~\&amp;</c>), raw.</summary>
    public Hl7Field EncodingCharacters => Field(2);

    /// <summary>MSH-3 Sending Application (HD).</summary>
    public Hl7Field SendingApplication => Field(3);

    /// <summary>MSH-4 Sending Facility (HD).</summary>
    public Hl7Field SendingFacility => Field(4);

    /// <summary>MSH-5 Receiving Application (HD).</summary>
    public Hl7Field ReceivingApplication => Field(5);

    /// <summary>MSH-6 Receiving Facility (HD).</summary>
    public Hl7Field ReceivingFacility => Field(6);

    /// <summary>MSH-9 Message Type (MSG): message code ^ trigger event ^ message structure.</summary>
    public Hl7Field MessageType => Field(9);

    /// <summary>MSH-10 Message Control ID: echoed in MSA-2 of the acknowledgement.</summary>
    public Hl7Field MessageControlId => Field(10);

    /// <summary>MSH-11 Processing ID (P, T, D).</summary>
    public Hl7Field ProcessingId => Field(11);

    /// <summary>MSH-12 Version ID (2.3, 2.5.1 ...).</summary>
    public Hl7Field VersionId => Field(12);

    /// <summary>MSH-15 Accept Acknowledgment Type (AL, NE, ER, SU; HL7 table 0155).</summary>
    public Hl7Field AcceptAcknowledgmentType => Field(15);

    /// <summary>MSH-16 Application Acknowledgment Type (AL, NE, ER, SU; HL7 table 0155).</summary>
    public Hl7Field ApplicationAcknowledgmentType => Field(16);

    /// <summary>MSH-18 Character Set (HL7 table 0211), raw (may repeat).</summary>
    public Hl7Field CharacterSet => Field(18);

    /// <summary>MSH-9.1 Message Code (ADT, ORM ...).</summary>
    public Hl7Field MessageCode => MessageType.GetComponent(1);

    /// <summary>MSH-9.2 Trigger Event (A01, O01 ...).</summary>
    public Hl7Field TriggerEvent => MessageType.GetComponent(2);

    /// <summary>MSH-9.3 Message Structure (ADT_A01 ...).</summary>
    public Hl7Field MessageStructure => MessageType.GetComponent(3);

    /// <summary>
    /// Enhanced acknowledgment mode: MSH-15 or MSH-16 valued (HL7 v2.5 §2.9.3). Then a commit ack (CA/CE/CR) is
    /// expected; otherwise original mode (AA/AE/AR).
    /// </summary>
    public bool IsEnhancedAcknowledgmentMode => !AcceptAcknowledgmentType.IsEmpty || !ApplicationAcknowledgmentType.IsEmpty;

    /// <summary>
    /// MSH-15 is <c>NE</c> (HL7 v2.5 §2.9.3, table 0155): the sender asked never to get an accept acknowledgment, so a
    /// receiver sends none.
    /// </summary>
    public bool IsAcceptAcknowledgmentNever => AcceptAcknowledgmentType.ValueEquals("NE"u8);

    private Hl7Field Field(int number) => new(Segment[_fields[number]], Delimiters, CharacterSetKind);

    /// <summary>Where MSH-2 .. MSH-18 are in the segment (<see cref="Hl7HeaderReader"/> fills it).</summary>
    [InlineArray(LastField + 1)]
    internal struct FieldRanges
    {
        public const int LastField = 18;

        private Range _first;
    }
}
