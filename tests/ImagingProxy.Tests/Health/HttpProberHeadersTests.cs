using ImagingProxy.Health;

namespace ImagingProxy.Tests.Health;

public sealed class HttpProberHeadersTests
{
    [Fact]
    public void A_header_value_with_media_type_parameters_is_sent_whole()
    {
        var headers = HttpProber.ParseHeaders("Accept: multipart/related; type=\"application/dicom\"; transfer-syntax=*");

        Assert.Equal([new("Accept", "multipart/related; type=\"application/dicom\"; transfer-syntax=*")], headers);
    }

    [Theory]
    [InlineData("Accept: application/dicom+json; Authorization: Basic dXNlcjpwYXNz")]
    [InlineData("Accept: application/dicom+json\nAuthorization: Basic dXNlcjpwYXNz")]
    [InlineData(" Accept : application/dicom+json ;Authorization:Basic dXNlcjpwYXNz;\n")]
    public void Headers_are_separated_by_lines_or_by_a_semicolon_before_a_header_name(string text)
    {
        Assert.Equal([new("Accept", "application/dicom+json"), new("Authorization", "Basic dXNlcjpwYXNz")], HttpProber.ParseHeaders(text));
    }

    [Fact]
    public void A_parameter_holding_a_colon_stays_in_its_value()
    {
        var headers = HttpProber.ParseHeaders("Accept: multipart/related; type=\"application/xop+xml\"; start-info=\"urn:x\"; X-Probe: 1");

        Assert.Equal([new("Accept", "multipart/related; type=\"application/xop+xml\"; start-info=\"urn:x\""), new("X-Probe", "1")], headers);
    }

    [Theory]
    [InlineData("")]
    [InlineData("no header here")]
    [InlineData(": value")]
    public void Text_without_a_header_name_gives_no_header(string text) => Assert.Empty(HttpProber.ParseHeaders(text));
}
