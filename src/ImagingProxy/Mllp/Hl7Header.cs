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
    /// <summary>The MSH segment without its terminator.</summary>
    public ReadOnlyMemory<byte> Segment { get; init; }

    /// <summary>MSH-1 and MSH-2.</summary>
    public Hl7Delimiters Delimiters { get; init; }

    /// <summary>MSH-18 first repetition, as far as the codec distinguishes it.</summary>
    public Hl7CharacterSet CharacterSetKind { get; init; }

    /// <summary>MSH-2 Encoding Characters (<c>^~\&amp;</c>), raw.</summary>
    public Hl7Field EncodingCharacters { get; init; }

    /// <summary>MSH-3 Sending Application (HD).</summary>
    public Hl7Field SendingApplication { get; init; }

    /// <summary>MSH-4 Sending Facility (HD).</summary>
    public Hl7Field SendingFacility { get; init; }

    /// <summary>MSH-5 Receiving Application (HD).</summary>
    public Hl7Field ReceivingApplication { get; init; }

    /// <summary>MSH-6 Receiving Facility (HD).</summary>
    public Hl7Field ReceivingFacility { get; init; }

    /// <summary>MSH-9 Message Type (MSG): message code ^ trigger event ^ message structure.</summary>
    public Hl7Field MessageType { get; init; }

    /// <summary>MSH-10 Message Control ID: echoed in MSA-2 of the acknowledgement.</summary>
    public Hl7Field MessageControlId { get; init; }

    /// <summary>MSH-11 Processing ID (P, T, D).</summary>
    public Hl7Field ProcessingId { get; init; }

    /// <summary>MSH-12 Version ID (2.3, 2.5.1 ...).</summary>
    public Hl7Field VersionId { get; init; }

    /// <summary>MSH-15 Accept Acknowledgment Type (AL, NE, ER, SU; HL7 table 0155).</summary>
    public Hl7Field AcceptAcknowledgmentType { get; init; }

    /// <summary>MSH-16 Application Acknowledgment Type (AL, NE, ER, SU; HL7 table 0155).</summary>
    public Hl7Field ApplicationAcknowledgmentType { get; init; }

    /// <summary>MSH-18 Character Set (HL7 table 0211), raw (may repeat).</summary>
    public Hl7Field CharacterSet { get; init; }

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
}
