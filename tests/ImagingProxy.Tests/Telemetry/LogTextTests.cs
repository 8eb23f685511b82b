using ImagingProxy.Telemetry;

namespace ImagingProxy.Tests.Telemetry;

public sealed class LogTextTests
{
    [Fact]
    public void Text_without_control_characters_is_returned_as_it_is()
    {
        const string text = "urn:ihe:iti:2007:RegistryStoredQuery é";
        Assert.Same(text, LogText.Printable(text));
    }

    [Theory]
    [InlineData("a\r\nb", @"a\x0D\x0Ab")]
    [InlineData("\u001B[31mred", @"\x1B[31mred")]
    [InlineData("tab\tdel\u007Fc1\u0085", @"tab\x09del\x7Fc1\x85")]
    public void Control_characters_are_written_as_hex_escapes(string text, string expected)
        => Assert.Equal(expected, LogText.Printable(text));
}
