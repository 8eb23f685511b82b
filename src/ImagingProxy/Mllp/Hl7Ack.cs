namespace ImagingProxy.Mllp;

/// <summary>What a proxy needs from a node's acknowledgement: MSA-1, MSA-2 and MSA-3 (HL7 v2.5 §2.14.8).</summary>
/// <remarks>Valid as long as the memory it was read from (see <see cref="Hl7AckReader"/>).</remarks>
public readonly struct Hl7Ack
{
    /// <summary>MSA-1.</summary>
    public AcknowledgmentCode Code { get; init; }

    /// <summary>MSA-2: the MSH-10 of the message acknowledged, raw.</summary>
    public Hl7Field AcknowledgedControlId { get; init; }

    /// <summary>MSA-3 text message (deprecated in later versions in favour of ERR), raw.</summary>
    public Hl7Field Text { get; init; }

    /// <summary>The acknowledgement's own delimiters.</summary>
    public Hl7Delimiters Delimiters { get; init; }

    /// <summary>True for AA and CA.</summary>
    public bool IsAccept => Code is AcknowledgmentCode.ApplicationAccept or AcknowledgmentCode.CommitAccept;

    /// <summary>
    /// Whether MSA-2 equals <paramref name="original"/>'s MSH-10, byte for byte (both as on the wire; a node that
    /// changes delimiters and escaping between request and reply would not match, which HL7 does not expect).
    /// </summary>
    public bool Acknowledges(in Hl7Header original) => AcknowledgedControlId.ValueEquals(original.MessageControlId.Span);
}
