namespace ImagingProxy.Mllp;

/// <summary>The character sets the codec distinguishes, from MSH-18 (HL7 table 0211, first repetition).</summary>
/// <remarks>
/// Message bytes are relayed unchanged; the character set only matters when the proxy turns field bytes into text
/// (logging) or writes text of its own (acknowledgements).
/// </remarks>
public enum Hl7CharacterSet : byte
{
    /// <summary>MSH-18 empty or <c>ASCII</c>: the HL7 default.</summary>
    Ascii = 0,

    /// <summary><c>UNICODE UTF-8</c>.</summary>
    Utf8,

    /// <summary><c>8859/1</c> (ISO Latin-1).</summary>
    Latin1,

    /// <summary>Any other value (8859/2..15, ISO IR87, GB 18030...): decoded leniently, written as ASCII.</summary>
    Other,
}
