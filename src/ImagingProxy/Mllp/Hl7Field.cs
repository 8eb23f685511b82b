namespace ImagingProxy.Mllp;

/// <summary>
/// One field (or component) of an HL7 v2 segment as it is on the wire: a slice of the message bytes, still escaped,
/// plus what is needed to turn it into text on demand. Reading a field never allocates; <see cref="GetString"/> does.
/// </summary>
public readonly struct Hl7Field
{
    private readonly Hl7Delimiters _delimiters;

    public Hl7Field(ReadOnlyMemory<byte> raw, Hl7Delimiters delimiters, Hl7CharacterSet characterSet)
    {
        Raw = raw;
        _delimiters = delimiters;
        CharacterSet = characterSet;
    }

    /// <summary>The bytes as on the wire (escape sequences not decoded).</summary>
    public ReadOnlyMemory<byte> Raw { get; }

    /// <summary>The character set <see cref="GetString"/> decodes with (from MSH-18).</summary>
    public Hl7CharacterSet CharacterSet { get; }

    public ReadOnlySpan<byte> Span => Raw.Span;

    public bool IsEmpty => Raw.IsEmpty;

    /// <summary>
    /// Component <paramref name="number"/> (1-based) of the first repetition; empty when absent. A field without
    /// component separators is its own first component.
    /// </summary>
    public Hl7Field GetComponent(int number)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(number, 1);
        var span = Raw.Span;
        var repetition = span.IndexOf(_delimiters.Repetition);
        var length = repetition >= 0 ? repetition : span.Length;
        var start = 0;
        for (var n = 1; n < number; n++)
        {
            var next = span[start..length].IndexOf(_delimiters.Component);
            if (next < 0)
            {
                return new Hl7Field(ReadOnlyMemory<byte>.Empty, _delimiters, CharacterSet);
            }

            start += next + 1;
        }

        var end = span[start..length].IndexOf(_delimiters.Component);
        return new Hl7Field(Raw[start..(end >= 0 ? start + end : length)], _delimiters, CharacterSet);
    }

    /// <summary>The first repetition of the field (MSH-18 may repeat).</summary>
    public Hl7Field FirstRepetition
    {
        get
        {
            var repetition = Raw.Span.IndexOf(_delimiters.Repetition);
            return repetition < 0 ? this : new Hl7Field(Raw[..repetition], _delimiters, CharacterSet);
        }
    }

    /// <summary>Byte-exact (so case-sensitive) comparison of the raw value.</summary>
    public bool ValueEquals(ReadOnlySpan<byte> value) => Raw.Span.SequenceEqual(value);

    /// <summary>The value with escape sequences decoded (HL7 v2.5 §2.7) and bytes decoded per MSH-18.</summary>
    public string GetString() => Hl7Escaping.Decode(Raw.Span, _delimiters, CharacterSet);

    /// <summary>
    /// <see cref="GetString"/> for a log line: a control character the sender wrote (raw, or as <c>\X0A\</c>) shows as
    /// <c>\x0A</c> (<see cref="Telemetry.LogText"/>), so a control id cannot forge a line.
    /// </summary>
    public string GetLogString() => Telemetry.LogText.Printable(GetString());

    public override string ToString() => GetString();
}
