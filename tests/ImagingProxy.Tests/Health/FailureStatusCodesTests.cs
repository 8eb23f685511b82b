using ImagingProxy.Health;

namespace ImagingProxy.Tests.Health;

public sealed class FailureStatusCodesTests
{
    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData(" , ")]
    public void An_empty_list_counts_no_status(string? text)
    {
        Assert.True(FailureStatusCodes.TryParse(text, out var codes, out var invalid));
        Assert.Null(codes);
        Assert.Null(invalid);
    }

    [Fact]
    public void Listed_codes_count_and_no_other()
    {
        Assert.True(FailureStatusCodes.TryParse("429, 500 503,599", out var codes, out _));

        foreach (var status in (int[])[429, 500, 503, 599])
        {
            Assert.True(codes!.Contains(status), status.ToString());
        }

        foreach (var status in (int[])[0, 200, 404, 428, 430, 499, 501, 502, 504, 598, 600, 1023, -1])
        {
            Assert.False(codes!.Contains(status), status.ToString());
        }
    }

    [Fact]
    public void Five_xx_stands_for_every_code_from_500_to_599()
    {
        Assert.True(FailureStatusCodes.TryParse("5xx", out var codes, out _));

        for (var status = 0; status < 700; status++)
        {
            Assert.Equal(status is >= 500 and <= 599, codes!.Contains(status));
        }
    }

    [Theory]
    [InlineData("503,404", "404")]
    [InlineData("200", "200")]
    [InlineData("5xx;503", "5xx;503")]
    [InlineData("0503", "0503")]
    [InlineData("٥٠٣", "٥٠٣")]
    [InlineData("4xx", "4xx")]
    public void Anything_else_is_named(string text, string expected)
    {
        Assert.False(FailureStatusCodes.TryParse(text, out var codes, out var invalid));
        Assert.Null(codes);
        Assert.Equal(expected, invalid);
    }
}
