using ImagingProxy.Testing;

namespace ImagingProxy.Tests.Telemetry;

/// <summary>Traces go to an OTLP collector only when one is configured; the collector here is an in-process HTTP endpoint.</summary>
public sealed class OtlpExportTests : IAsyncLifetime
{
    private readonly TestCertificate _certificate = new();
    private TestBackend _web = null!;
    private TestBackend _collector = null!;

    public async Task InitializeAsync()
    {
        _web = await TestBackend.StartAsync("web");
        _collector = await TestBackend.StartAsync("collector");
    }

    public async Task DisposeAsync()
    {
        await _web.DisposeAsync();
        await _collector.DisposeAsync();
        _certificate.Dispose();
    }

    private string Config(string telemetry) => TestConfig.Build(_certificate, $$"""{ "web": {{TestConfig.Cluster("", _web)}} }""",
        """{ "all": { "ClusterId": "web", "Match": { "Path": "/{**rest}" } } }""", $$"""{ "Telemetry": {{telemetry}} }""");

    private async Task ProxyOneRequestAndStopAsync(string config)
    {
        var proxy = await TestProxy.StartAsync(config);
        using (var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") })
        {
            using var response = await client.GetAsync("/studies");
            response.EnsureSuccessStatusCode();
        }

        await proxy.DisposeAsync(); // stopping flushes the batch exporter
    }

    [Fact]
    public async Task Proxied_requests_are_exported_as_otlp_traces_when_an_endpoint_is_configured()
    {
        await ProxyOneRequestAndStopAsync(Config($$"""{ "OtlpEndpoint": "{{_collector.Url}}v1/traces", "OtlpProtocol": "HttpProtobuf" }"""));

        Assert.Contains("POST /v1/traces", _collector.Requests);
    }

    [Fact]
    public async Task No_traces_leave_the_proxy_by_default()
    {
        await ProxyOneRequestAndStopAsync(Config("{}"));

        Assert.Empty(_collector.Requests);
    }
}
