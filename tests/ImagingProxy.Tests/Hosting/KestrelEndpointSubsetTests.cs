using ImagingProxy.Configuration;
using ImagingProxy.Hosting;
using Microsoft.Extensions.Configuration;

namespace ImagingProxy.Tests.Hosting;

/// <summary>The Kestrel section split between the data server and the admin server, following every reload.</summary>
public sealed class KestrelEndpointSubsetTests
{
    private static readonly Dictionary<string, string?> s_kestrel = new()
    {
        ["Kestrel:Certificates:Default:Path"] = "default.crt",
        ["Kestrel:EndpointDefaults:Protocols"] = "Http1",
        ["Kestrel:Endpoints:Viewers:Url"] = "https://127.0.0.1:443",
        ["Kestrel:Endpoints:Viewers:Certificate:Path"] = "viewers.crt",
        ["Kestrel:Endpoints:Xds:Url"] = "http://127.0.0.1:17035",
        ["Kestrel:Endpoints:admin:Url"] = "http://127.0.0.1:9901",
        ["ImagingProxy:DrainTimeout"] = "00:05:00",
    };

    [Fact]
    public void Only_keeps_the_named_endpoint_and_everything_outside_endpoints()
    {
        using var root = new ConfigurationManager();
        root.AddInMemoryCollection(s_kestrel);
        var admin = KestrelEndpointSubset.Only(root.GetSection("Kestrel"), EndpointNames.Admin);

        Assert.Equal(["admin"], admin.GetSection("Endpoints").GetChildren().Select(e => e.Key));
        Assert.Equal("http://127.0.0.1:9901", admin["Endpoints:Admin:Url"]);
        Assert.Equal("default.crt", admin["Certificates:Default:Path"]);
        Assert.Equal("Http1", admin["EndpointDefaults:Protocols"]);
        Assert.Null(admin["ImagingProxy:DrainTimeout"]);
    }

    [Fact]
    public void Without_keeps_every_other_endpoint_with_all_its_keys()
    {
        using var root = new ConfigurationManager();
        root.AddInMemoryCollection(s_kestrel);
        var data = KestrelEndpointSubset.Without(root.GetSection("Kestrel"), EndpointNames.Admin);

        Assert.Equal(["Viewers", "Xds"], data.GetSection("Endpoints").GetChildren().Select(e => e.Key).Order(StringComparer.Ordinal));
        Assert.Equal("viewers.crt", data["Endpoints:Viewers:Certificate:Path"]);
        Assert.Equal("default.crt", data["Certificates:Default:Path"]);
    }

    [Fact]
    public void A_reload_of_the_source_reaches_the_subset_and_fires_its_reload_token()
    {
        var provider = new LastGoodConfigurationProvider();
        provider.Replace(s_kestrel);
        var root = new ConfigurationBuilder().Add(provider).Build();
        var admin = KestrelEndpointSubset.Only(root.GetSection("Kestrel"), EndpointNames.Admin);
        var reloaded = false;
        using var registration = admin.GetReloadToken().RegisterChangeCallback(_ => reloaded = true, null);

        provider.Replace(new Dictionary<string, string?>(s_kestrel) { ["Kestrel:Endpoints:admin:Url"] = "http://127.0.0.1:9902" });

        Assert.True(reloaded);
        Assert.Equal("http://127.0.0.1:9902", admin["Endpoints:Admin:Url"]);
    }
}
