using System.Text;
using ImagingProxy.Mllp;

namespace ImagingProxy.Tests.Mllp;

public class Hl7EscapingTests
{
    private static string Escape(string text, Hl7Delimiters delimiters, Hl7CharacterSet characterSet = Hl7CharacterSet.Ascii)
    {
        var buffer = new byte[Hl7Escaping.GetMaxEscapedByteCount(text.Length)];
        var length = Hl7Escaping.Escape(text, delimiters, characterSet, buffer);
        return (characterSet == Hl7CharacterSet.Latin1 ? Encoding.Latin1 : Encoding.UTF8).GetString(buffer, 0, length);
    }

    [Fact]
    public void Unescapes_like_python3_hl7()
    {
        // shared/docs/protocols.md §3.2 [captured]
        var raw = Encoding.ASCII.GetBytes("Pipe \\F\\ caret \\S\\ amp \\T\\ tilde \\R\\ backslash \\E\\ hex \\X0D\\ end");

        Assert.Equal("Pipe | caret ^ amp & tilde ~ backslash \\ hex \r end", Hl7Escaping.Decode(raw, Hl7Delimiters.Default, Hl7CharacterSet.Ascii));
    }

    [Fact]
    public void Escapes_like_python3_hl7()
    {
        Assert.Equal("a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f", Escape("a|b^c&d~e\\f", Hl7Delimiters.Default));
    }

    [Fact]
    public void Keeps_sequences_it_does_not_decode_as_written()
    {
        var raw = Encoding.ASCII.GetBytes("line\\.br\\next \\H\\bold\\N\\ \\Xzz\\ \\unterminated");

        Assert.Equal("line\\.br\\next \\H\\bold\\N\\ \\Xzz\\ \\unterminated", Hl7Escaping.Decode(raw, Hl7Delimiters.Default, Hl7CharacterSet.Ascii));
    }

    [Fact]
    public void Escapes_with_the_message_s_own_delimiters()
    {
        var custom = new Hl7Delimiters((byte)'*', (byte)'@', (byte)'~', (byte)'!', (byte)'#');

        Assert.Equal("a!F!b!S!c!T!d!E!e|^", Escape("a*b@c#d!e|^", custom));
        Assert.Equal("a*b@c#d!e|^", Hl7Escaping.Decode(Encoding.ASCII.GetBytes("a!F!b!S!c!T!d!E!e|^"), custom, Hl7CharacterSet.Ascii));
    }

    [Fact]
    public void Turns_control_characters_into_spaces_so_text_cannot_end_a_segment_or_a_frame()
    {
        Assert.Equal("a b c d e", Escape("a\rb\nc\u000bd\u001ce", Hl7Delimiters.Default));
    }

    [Fact]
    public void Writes_text_in_the_declared_character_set()
    {
        Assert.Equal("Zürich 東京", Escape("Zürich 東京", Hl7Delimiters.Default, Hl7CharacterSet.Utf8));
        Assert.Equal("Zürich ??", Escape("Zürich 東京", Hl7Delimiters.Default, Hl7CharacterSet.Latin1));
        Assert.Equal("Z?rich ??", Escape("Zürich 東京", Hl7Delimiters.Default, Hl7CharacterSet.Ascii));
        Assert.Equal("Z?rich", Escape("Zürich", Hl7Delimiters.Default, Hl7CharacterSet.Other));
    }

    [Theory]
    [InlineData("", Hl7CharacterSet.Ascii)]
    [InlineData("ASCII", Hl7CharacterSet.Ascii)]
    [InlineData("UNICODE UTF-8", Hl7CharacterSet.Utf8)]
    [InlineData("8859/1", Hl7CharacterSet.Latin1)]
    [InlineData("8859/2", Hl7CharacterSet.Other)]
    [InlineData("ISO IR87", Hl7CharacterSet.Other)]
    public void Recognises_the_character_sets_of_hl7_table_0211_it_handles(string value, Hl7CharacterSet expected)
    {
        Assert.Equal(expected, Hl7Escaping.ParseCharacterSet(Encoding.ASCII.GetBytes(value)));
    }

    [Fact]
    public void Decodes_undeclared_8bit_text_without_losing_characters()
    {
        Assert.Equal("Zürich", Hl7Escaping.Decode(Encoding.Latin1.GetBytes("Zürich"), Hl7Delimiters.Default, Hl7CharacterSet.Ascii));
        Assert.Equal("Zürich", Hl7Escaping.Decode(Encoding.UTF8.GetBytes("Zürich"), Hl7Delimiters.Default, Hl7CharacterSet.Ascii));
    }

    [Fact]
    public void Decodes_hex_escapes_before_the_character_set()
    {
        // \XC3BC\ is "ü" in UTF-8.
        Assert.Equal("Zürich", Hl7Escaping.Decode("Z\\XC3BC\\rich"u8, Hl7Delimiters.Default, Hl7CharacterSet.Utf8));
    }
}
