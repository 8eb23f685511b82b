namespace ImagingProxy.Mllp;

/// <summary>
/// The delimiters a message declares in MSH-1 (field separator) and MSH-2 (encoding characters: component, repetition,
/// escape, subcomponent and, from v2.7, truncation), HL7 v2.5 §2.5.4. Always read from each message.
/// </summary>
public readonly record struct Hl7Delimiters(byte Field, byte Component, byte Repetition, byte Escape, byte Subcomponent, byte Truncation = 0)
{
    /// <summary>The usual <c>|^~\&amp;</c>.</summary>
    public static Hl7Delimiters Default { get; } = new((byte)'|', (byte)'^', (byte)'~', (byte)'\\', (byte)'&');

    /// <summary>True when MSH-2 declares a fifth (truncation) character.</summary>
    public bool HasTruncation => Truncation != 0;

    /// <summary>Number of encoding characters in MSH-2 (4 or 5).</summary>
    public int EncodingCharacterCount => HasTruncation ? 5 : 4;

    /// <summary>Reads MSH-1 and MSH-2 from the start of an MSH segment (<c>MSH|^~\&amp;|...</c>).</summary>
    /// <param name="segment">The MSH segment, without its terminator.</param>
    /// <param name="delimiters">The delimiters.</param>
    /// <param name="consumed">Bytes up to the end of MSH-2 (the next byte, if any, is the field separator before MSH-3).</param>
    public static Hl7ReadStatus TryRead(ReadOnlySpan<byte> segment, out Hl7Delimiters delimiters, out int consumed)
    {
        delimiters = default;
        consumed = 0;
        if (segment.Length < 4 || !segment.StartsWith("MSH"u8))
        {
            return Hl7ReadStatus.NoMsh;
        }

        var field = segment[3];
        var encoding = segment[4..];
        var end = encoding.IndexOf(field);
        if (end >= 0)
        {
            encoding = encoding[..end];
        }

        if (encoding.Length is < 4 or > 5)
        {
            return Hl7ReadStatus.BadDelimiters;
        }

        Span<byte> all = stackalloc byte[6];
        all[0] = field;
        encoding.CopyTo(all[1..]);
        all = all[..(1 + encoding.Length)];
        for (var i = 0; i < all.Length; i++)
        {
            if (!IsUsableDelimiter(all[i]) || all[(i + 1)..].Contains(all[i]))
            {
                return Hl7ReadStatus.BadDelimiters;
            }
        }

        delimiters = new Hl7Delimiters(field, encoding[0], encoding[1], encoding[2], encoding[3], encoding.Length == 5 ? encoding[4] : (byte)0);
        consumed = 4 + encoding.Length;
        return Hl7ReadStatus.Success;
    }

    /// <summary>
    /// For an MSH whose MSH-2 is not usable (<see cref="Hl7ReadStatus.BadDelimiters"/>) but whose MSH-1 is: that field
    /// separator with the usual encoding characters, and where MSH-2 ends (at the next field separator), so that MSH-10
    /// can still be found and the message answered with a NAK. False when MSH-1 itself is not usable or is one of the
    /// usual encoding characters.
    /// </summary>
    public static bool TryFallback(ReadOnlySpan<byte> segment, out Hl7Delimiters delimiters, out int consumed)
    {
        delimiters = default;
        consumed = 0;
        if (segment.Length < 4 || !segment.StartsWith("MSH"u8) || !IsUsableDelimiter(segment[3]) || "^~\\&"u8.Contains(segment[3]))
        {
            return false;
        }

        var end = segment[4..].IndexOf(segment[3]);
        delimiters = Default with { Field = segment[3] };
        consumed = end < 0 ? segment.Length : 4 + end;
        return true;
    }

    /// <summary>Delimiters are printable ASCII punctuation: not letters or digits, not space, not control bytes.</summary>
    private static bool IsUsableDelimiter(byte b) => b is > 0x20 and < 0x7F && !char.IsAsciiLetterOrDigit((char)b);
}
