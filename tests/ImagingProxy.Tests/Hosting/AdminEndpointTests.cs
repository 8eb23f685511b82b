using System.Net;
using System.Text.Json;
using ImagingProxy.Testing;

namespace ImagingProxy.Tests.Hosting;

/// <summary>Admin paths live only on the Admin endpoint; proxy routes never there; TLS on Viewers with the configured certificate.</summary>
public sealed class AdminEndpointTests : IAsyncLifetime
{
    private readonly TestCertificate _certificate = new();
    private TestBackend _backend = null!;
    private TestProxy _proxy = null!;

    public async Task InitializeAsync()
    {
        _backend = await TestBackend.StartAsync("pacs1");
        var clusters = $$"""
            {
              "web": {{TestConfig.Cluster("", _backend)}},
              "pacs-dicom": {
                "Metadata": { "Protocol": "Dicom" },
                "Destinations": { "pacs1": { "Address": "tcp://127.0.0.1:11112", "Metadata": { "AeTitle": "PACS1" } } }
              },
              "ris-hl7": {
                "LoadBalancingPolicy": "RoundRobin",
                "Metadata": { "Protocol": "Mllp" },
                "Destinations": { "ris1": { "Address": "tcp://127.0.0.1:2575" } }
              }
            }
            """;
        _proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, clusters, """{ "all": { "ClusterId": "web", "Match": { "Path": "/{**rest}" } } }"""));
    }

    public async Task DisposeAsync()
    {
        await _proxy.DisposeAsync();
        await _backend.DisposeAsync();
        _certificate.Dispose();
    }

    [Fact]
    public async Task Health_readiness_and_status_answer_on_the_admin_endpoint()
    {
        using var admin = new HttpClient { BaseAddress = _proxy.Url("Admin") };
        Assert.Equal("ok\n", await admin.GetStringAsync("/healthz"));
        Assert.Equal("ready\n", await admin.GetStringAsync("/readyz"));

        using var status = JsonDocument.Parse(await admin.GetStringAsync("/status"));
        var clusters = status.RootElement.GetProperty("clusters").EnumerateArray().ToDictionary(c => c.GetProperty("id").GetString()!);
        var dicom = clusters["pacs-dicom"];
        Assert.Equal("Dicom", dicom.GetProperty("protocol").GetString());
        var destination = dicom.GetProperty("destinations")[0];
        Assert.Equal("pacs1", destination.GetProperty("id").GetString());
        Assert.Equal("tcp://127.0.0.1:11112", destination.GetProperty("address").GetString());
        Assert.Equal("Unknown", destination.GetProperty("health").GetProperty("active").GetString());
        Assert.Equal("Unknown", destination.GetProperty("health").GetProperty("passive").GetString());
        Assert.True(destination.GetProperty("since").TryGetDateTimeOffset(out _));
        Assert.Equal("Http", clusters["web"].GetProperty("protocol").GetString());
        var listeners = status.RootElement.GetProperty("listeners").EnumerateArray().Select(l => l.GetProperty("name").GetString()).ToList();
        Assert.Contains("Viewers", listeners);
        Assert.Contains("Admin", listeners);
    }

    [Fact]
    public async Task Status_names_the_load_balancing_policy_each_protocol_picks_its_destinations_with()
    {
        using var admin = new HttpClient { BaseAddress = _proxy.Url("Admin") };
        using var status = JsonDocument.Parse(await admin.GetStringAsync("/status"));
        var policies = status.RootElement.GetProperty("clusters").EnumerateArray()
            .ToDictionary(c => c.GetProperty("id").GetString()!, c => c.GetProperty("loadBalancingPolicy").GetString());

        // Unset: YARP's default for HTTP, the fewest open associations for DICOM (DicomDestinationSelector).
        Assert.Equal("PowerOfTwoChoices", policies["web"]);
        Assert.Equal("LeastRequests", policies["pacs-dicom"]);

        // An HL7 cluster's new connections follow the policy it names.
        Assert.Equal("RoundRobin", policies["ris-hl7"]);
    }

    [Theory]
    [InlineData("/metrics")]
    [InlineData("/status")]
    [InlineData("/healthz")]
    [InlineData("/readyz")]
    public async Task Admin_paths_answer_GET_and_HEAD_only(string path)
    {
        using var admin = new HttpClient { BaseAddress = _proxy.Url("Admin") };
        using (var get = await admin.GetAsync(path))
        {
            Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        }

        using (var head = await admin.SendAsync(new HttpRequestMessage(HttpMethod.Head, path)))
        {
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        }

        // 404, not 405: this configuration's catch-all proxy route matches the path for every method, on another listener.
        using var post = await admin.PostAsync(path, new StringContent(""));
        Assert.Equal(HttpStatusCode.NotFound, post.StatusCode);
    }

    [Fact]
    public async Task Admin_paths_are_not_reachable_on_the_viewers_port()
    {
        using var viewers = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = _proxy.Url("Viewers", "https") };
        foreach (var path in new[] { "/status", "/healthz", "/readyz", "/metrics" })
        {
            using var response = await viewers.GetAsync(path);
            Assert.Equal("pacs1", response.Headers.GetValues("X-Backend").Single());
            Assert.Contains($"hello from pacs1: {path}", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Proxy_routes_are_not_served_on_the_admin_port()
    {
        using var admin = new HttpClient { BaseAddress = _proxy.Url("Admin") };
        using var response = await admin.GetAsync("/dicom-web/studies");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Empty(_backend.Requests);
    }

    [Fact]
    public async Task Viewers_endpoint_terminates_tls_with_the_configured_certificate()
    {
        using var trusting = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = _proxy.Url("Viewers", "https") };
        using var ok = await trusting.GetAsync("/studies");
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);

        using var strict = new HttpClient { BaseAddress = _proxy.Url("Viewers", "https") };
        await Assert.ThrowsAsync<HttpRequestException>(() => strict.GetAsync("/studies"));

        using var plain = new HttpClient { BaseAddress = _proxy.Url("Viewers", "http") };
        await Assert.ThrowsAnyAsync<Exception>(() => plain.GetAsync("/studies"));
    }

    [Fact]
    public async Task Metrics_are_exported_for_prometheus_on_the_admin_endpoint()
    {
        using var admin = new HttpClient { BaseAddress = _proxy.Url("Admin") };
        var text = await admin.GetStringAsync("/metrics");
        Assert.Contains("# TYPE", text, StringComparison.Ordinal);
    }
}
