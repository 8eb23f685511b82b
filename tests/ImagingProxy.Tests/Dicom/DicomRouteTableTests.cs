using ImagingProxy.Configuration;
using ImagingProxy.Dicom;

namespace ImagingProxy.Tests.Dicom;

public sealed class DicomRouteTableTests
{
    private static Dictionary<string, DicomRouteConfig> Routes(params (string Id, DicomRouteConfig Route)[] routes)
        => routes.ToDictionary(r => r.Id, r => r.Route, StringComparer.OrdinalIgnoreCase);

    [Fact]
    public void Exact_called_ae_title_beats_the_wildcard()
    {
        var routes = Routes(("any", new DicomRouteConfig { CalledAeTitle = "*", Cluster = "c-any" }), ("pacs", new DicomRouteConfig { CalledAeTitle = "PACS", Cluster = "c-pacs" }));

        Assert.Equal("pacs", DicomRouteTable.Match(routes, "PACS", "CT1", "dicom").RouteId);
        Assert.Equal("any", DicomRouteTable.Match(routes, "OTHER", "CT1", "dicom").RouteId);
    }

    [Fact]
    public void Rejects_an_unknown_called_ae_title_without_wildcard()
    {
        var routes = Routes(("pacs", new DicomRouteConfig { CalledAeTitle = "PACS", Cluster = "c" }));

        Assert.Equal(DicomRouteMatchResult.CalledAeTitleNotRecognized, DicomRouteTable.Match(routes, "pacs", "CT1", null).Result);
    }

    [Fact]
    public void Rejects_a_calling_ae_title_the_route_does_not_allow()
    {
        var routes = Routes(("pacs", new DicomRouteConfig { CalledAeTitle = "PACS", CallingAeTitles = ["CT1"], Cluster = "c" }));

        Assert.True(DicomRouteTable.Match(routes, "PACS", "CT1", null).IsMatch);
        Assert.Equal(DicomRouteMatchResult.CallingAeTitleNotRecognized, DicomRouteTable.Match(routes, "PACS", "MR1", null).Result);
    }

    [Fact]
    public void Spaces_around_configured_ae_titles_are_not_significant()
    {
        var routes = Routes(("pacs", new DicomRouteConfig { CalledAeTitle = " PACS ", CallingAeTitles = ["CT1  "], Cluster = "c" }));

        Assert.Equal("pacs", DicomRouteTable.Match(routes, "PACS", "CT1", null).RouteId);
        Assert.Equal(DicomRouteMatchResult.CallingAeTitleNotRecognized, DicomRouteTable.Match(routes, "PACS", "MR1", null).Result);
        Assert.Equal(DicomRouteMatchResult.CalledAeTitleNotRecognized, DicomRouteTable.Match(routes, "PAC", "CT1", null).Result);
    }

    [Fact]
    public void A_route_restricted_to_a_listener_is_skipped_on_other_listeners()
    {
        var routes = Routes(
            ("tls", new DicomRouteConfig { CalledAeTitle = "PACS", Listeners = ["dicom-tls"], Cluster = "secure" }),
            ("any", new DicomRouteConfig { CalledAeTitle = "*", Cluster = "plain" }));

        Assert.Equal("tls", DicomRouteTable.Match(routes, "PACS", "CT1", "dicom-tls").RouteId);
        Assert.Equal("any", DicomRouteTable.Match(routes, "PACS", "CT1", "dicom").RouteId);
    }
}
