using ImagingProxy.Forwarding;

namespace ImagingProxy.Tests.Forwarding;

public sealed class EncodedSlashPathTests
{
    [Theory]
    // client's decoded path (Kestrel), client's raw path, the path YARP would send -> the raw path sent instead
    [InlineData("/dicom-web/a%2Fb", "/dicom-web/a%2Fb", "/dicom-web/a%2Fb", "/dicom-web/a%2Fb")]
    [InlineData("/dicom-web/a%2Fb", "/dicom-web/a%252Fb", "/dicom-web/a%2Fb", "/dicom-web/a%252Fb")]
    [InlineData("/dicom-web/a%2fb", "/dicom-web/a%2fb", "/dicom-web/a%2fb", "/dicom-web/a%2fb")]
    [InlineData("/dicom-web/é%2F x", "/dicom-web/%C3%A9%2F%20x", "/dicom-web/é%2F x", "/dicom-web/%C3%A9%2F%20x")]
    [InlineData("/pacs1/studies/1.2%2F3", "/pacs1/studies/1.2%2F3", "/studies/1.2%2F3", "/studies/1.2%2F3")]
    [InlineData("/PACS1/studies/1.2%2F3", "/PACS1/studies/1.2%2F3", "/studies/1.2%2F3", "/studies/1.2%2F3")]
    public void The_raw_path_or_its_tail_stands_for_the_path_sent(string client, string raw, string sent, string expected)
    {
        Assert.True(EncodedSlashPath.TryMapRawPath(client, raw, sent, out var mapped));
        Assert.Equal(expected, mapped);
    }

    [Theory]
    // dot segments Kestrel removed before routing: the raw path is not the one routed
    [InlineData("/dicom-web/a%2Fb", "/dicom-web/x/../a%2Fb", "/dicom-web/a%2Fb")]
    // a prefix written with escapes
    [InlineData("/pacs1/a%2Fb", "/pacs%31/a%2Fb", "/a%2Fb")]
    // a path another transform rebuilt (PathPattern, PathSet)
    [InlineData("/pacs1/a%2Fb", "/pacs1/a%2Fb", "/other/a%2Fb")]
    // a raw path whose escapes are not UTF-8
    [InlineData("/a%2F\uFFFD", "/a%2F%FF", "/a%2F\uFFFD")]
    // characters Kestrel accepts that System.Uri turns into a separator or a fragment
    [InlineData("/dicom-web/a%2Fb\\..\\..\\admin", "/dicom-web/a%2Fb\\..\\..\\admin", "/dicom-web/a%2Fb\\..\\..\\admin")]
    [InlineData("/dicom-web/a%2Fb#x", "/dicom-web/a%2Fb#x", "/dicom-web/a%2Fb#x")]
    // dot segments once %2F is a separator: a server that decodes it would step out of the route's base path
    [InlineData("/dicom-web/a%2F..%2F..%2Fadmin", "/dicom-web/a%2F..%2F..%2Fadmin", "/dicom-web/a%2F..%2F..%2Fadmin")]
    [InlineData("/dicom-web/a%2F..%2F..%2Fadmin", "/dicom-web/a%2F%2E%2e%2F..%2Fadmin", "/dicom-web/a%2F..%2F..%2Fadmin")]
    public void Otherwise_the_path_is_left_to_YARP(string client, string raw, string sent)
        => Assert.False(EncodedSlashPath.TryMapRawPath(client, raw, sent, out _));

    [Theory]
    [InlineData("/a%2Fb%252F%2f", "/a%2Fb%2F%2f")]
    [InlineData("/%41%20%C3%A9", "/A é")]
    [InlineData("/100%", "/100%")]
    [InlineData("/%zz", "/%zz")]
    public void Paths_decode_as_Kestrel_decodes_them(string raw, string expected)
        => Assert.Equal(expected, EncodedSlashPath.KestrelDecode(raw));

    [Theory]
    [InlineData("/dicom-web/a%2F..%2Fb", true)]
    [InlineData("/dicom-web/%2e%2E/b%2Fc", true)]
    [InlineData("/dicom-web/a%2F.", true)]
    [InlineData("/./a%2Fb", true)]
    [InlineData("/dicom-web/a%2F...%2Fb", false)]
    [InlineData("/dicom-web/1.2.840%2F3", false)]
    [InlineData("/dicom-web/a..b%2F.c", false)]
    [InlineData("/dicom-web/x%5C..%2F..%5Cadmin", true)]
    [InlineData("/dicom-web/x%5c.%2Fy", true)]
    [InlineData("/dicom-web/x%2F..;%2F..;%2Fadmin", true)]
    [InlineData("/dicom-web/x%2F..;a=1/b", true)]
    [InlineData("/dicom-web/x%2F1.2;a=..%5Cb", false)]
    public void Dot_segments_are_found_with_escaped_slashes_as_separators(string raw, bool expected)
        => Assert.Equal(expected, EncodedSlashPath.HasDotSegment(raw));

    [Theory]
    [InlineData("/dicom-web/1.2%2F3;x=1:@!$&'()*+,=~_-", true)]
    [InlineData("/a\\b", false)]
    [InlineData("/a#b", false)]
    [InlineData("/a b", false)]
    [InlineData("/a%2", false)]
    [InlineData("/a%zz", false)]
    [InlineData("/\u00e9", false)]
    public void Only_rfc_3986_path_characters_are_sent_raw(string raw, bool expected)
        => Assert.Equal(expected, EncodedSlashPath.IsPlainPath(raw));
}
