using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using ImagingProxy.Forwarding;
using ImagingProxy.Telemetry;
using ImagingProxy.Testing;
using ImagingProxy.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;

namespace ImagingProxy.Tests.Forwarding;

/// <summary>XDS.b on the Xds endpoint: routed by the SOAP action in Content-Type, never by reading the body.</summary>
public sealed class XdsRoutingTests : IAsyncLifetime
{
    private readonly TestCertificate _certificate = new();
    private TestBackend _registry = null!;
    private TestBackend _repository = null!;
    private TestProxy _proxy = null!;
    private HttpClient _client = null!;

    public async Task InitializeAsync()
    {
        _registry = await TestBackend.StartAsync("registry");
        _repository = await TestBackend.StartAsync("repository");
        var clusters = $$"""
            {
              "xds-registry": {{TestConfig.Cluster("", _registry)}},
              "xds-repository": {{TestConfig.Cluster("", _repository)}}
            }
            """;
        var imagingProxy = """{ "Xds": { "RegistryCluster": "xds-registry", "RepositoryCluster": "xds-repository" } }""";
        _proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, clusters, "{}", imagingProxy));
        _client = new HttpClient { BaseAddress = _proxy.Url("Xds") };
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _proxy.DisposeAsync();
        await _registry.DisposeAsync();
        await _repository.DisposeAsync();
        _certificate.Dispose();
    }

    public static TheoryData<string, string> Transactions => new()
    {
        { XdsAction.RegistryStoredQuery, "registry" },
        { XdsAction.RegisterDocumentSet, "registry" },
        { XdsAction.ProvideAndRegisterDocumentSet, "repository" },
        { XdsAction.RetrieveDocumentSet, "repository" },
    };

    [Theory]
    [MemberData(nameof(Transactions))]
    public async Task A_simple_soap_request_reaches_the_cluster_its_action_names(string action, string expected)
    {
        using var content = new StringContent(Envelope(action), Encoding.UTF8);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse($"application/soap+xml; charset=UTF-8; action=\"{action}\"");
        using var response = await _client.PostAsync("/axis2/services/xds", content);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(expected, response.Headers.GetValues("X-Backend").Single());
        Assert.StartsWith($"{expected} POST /axis2/services/xds", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Transactions))]
    public async Task An_mtom_request_reaches_the_cluster_its_action_names(string action, string expected)
    {
        var boundary = "MIMEBoundary_" + Guid.NewGuid().ToString("N");
        var body = $"--{boundary}\r\nContent-Type: application/xop+xml; charset=UTF-8; type=\"application/soap+xml\"\r\nContent-ID: <0.root@example.org>\r\n\r\n{Envelope(action)}\r\n"
            + $"--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-ID: <1.doc@example.org>\r\n\r\n{new string('x', 100_000)}\r\n--{boundary}--\r\n";
        using var content = new ByteArrayContent(Encoding.UTF8.GetBytes(body));
        content.Headers.TryAddWithoutValidation("Content-Type",
            $"multipart/related; boundary={boundary}; type=\"application/xop+xml\"; start=\"<0.root@example.org>\"; start-info=\"application/soap+xml\"; action=\"{action}\"");
        using var response = await _client.PostAsync("/xds", content);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(expected, response.Headers.GetValues("X-Backend").Single());
        Assert.Contains(Encoding.UTF8.GetByteCount(body).ToString(System.Globalization.CultureInfo.InvariantCulture), await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_request_without_action_gets_a_soap_sender_fault()
    {
        using var content = new StringContent(Envelope("urn:ihe:iti:2007:RegistryStoredQuery"), Encoding.UTF8);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse("application/soap+xml; charset=UTF-8");
        using var response = await _client.PostAsync("/xds", content);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/soap+xml", response.Content.Headers.ContentType?.MediaType);
        var text = await response.Content.ReadAsStringAsync();
        Assert.Contains("<env:Value>env:Sender</env:Value>", text, StringComparison.Ordinal);
        Assert.Contains("No SOAP action", text, StringComparison.Ordinal);
        Assert.Empty(_registry.Requests);
        Assert.Empty(_repository.Requests);
    }

    [Fact]
    public async Task A_request_with_an_unknown_action_gets_a_soap_sender_fault()
    {
        using var content = new StringContent(Envelope("urn:ihe:iti:2007:CrossGatewayQuery"), Encoding.UTF8);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse("application/soap+xml; charset=UTF-8; action=\"urn:ihe:iti:2007:CrossGatewayQuery\"");
        using var response = await _client.PostAsync("/xds", content);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var text = await response.Content.ReadAsStringAsync();
        Assert.Contains("Unknown SOAP action", text, StringComparison.Ordinal);
        Assert.Contains("urn:ihe:iti:2007:CrossGatewayQuery", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_soap_11_request_is_routed_by_its_soapaction_and_refused_with_soap_11_faults()
    {
        using var served = await Soap11Request.PostAsync(_client, "/xds", XdsAction.RegistryStoredQuery);
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        Assert.Equal("registry", served.Headers.GetValues("X-Backend").Single());

        using var refused = await Soap11Request.PostAsync(_client, "/xds", "urn:ihe:iti:2007:CrossGatewayQuery");
        Assert.Equal(HttpStatusCode.InternalServerError, refused.StatusCode);
        Assert.Equal("text/xml", refused.Content.Headers.ContentType?.MediaType);
        var text = await refused.Content.ReadAsStringAsync();
        Assert.Contains("<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"", text, StringComparison.Ordinal);
        Assert.Contains("<faultcode>soap:Client</faultcode>", text, StringComparison.Ordinal);
        Assert.StartsWith("Unknown SOAP action 'urn:ihe:iti:2007:CrossGatewayQuery'", Soap11FaultString(text), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_soap_11_request_to_a_cluster_without_healthy_servers_gets_a_soap_11_server_fault_with_500_and_retry_after()
    {
        await using var proxy = await StartWithOneClusterDownAsync("xds-registry", _registry);
        using var client = new HttpClient { BaseAddress = proxy.Url("Xds") };

        using var refused = await Soap11Request.PostAsync(client, "/xds", XdsAction.RegistryStoredQuery);

        Assert.Equal(HttpStatusCode.InternalServerError, refused.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(10), refused.Headers.RetryAfter?.Delta);
        Assert.Equal("text/xml", refused.Content.Headers.ContentType?.MediaType);
        var text = await refused.Content.ReadAsStringAsync();
        Assert.Contains("<faultcode>soap:Server</faultcode>", text, StringComparison.Ordinal);
        Assert.Equal("No healthy server in cluster 'xds-registry' for ITI-18; retry later.", Soap11FaultString(text));
    }

    [Fact]
    public async Task A_request_with_two_different_actions_gets_a_soap_sender_fault_and_reaches_no_server()
    {
        using var content = new StringContent(Envelope(XdsAction.RegistryStoredQuery), Encoding.UTF8);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse($"application/soap+xml; action=\"{XdsAction.RegistryStoredQuery}\"; action=\"{XdsAction.RetrieveDocumentSet}\"");
        using var transactions = new MetricCollector<long>(_proxy.Services.GetRequiredService<IMeterFactory>(), ImagingProxyTelemetry.MeterName, "imagingproxy.xds.transactions");
        using var response = await _client.PostAsync("/xds", content);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var text = await response.Content.ReadAsStringAsync();
        Assert.Contains("<env:Value>env:Sender</env:Value>", text, StringComparison.Ordinal);
        Assert.Contains("Two different SOAP actions", text, StringComparison.Ordinal);
        await transactions.WaitForMeasurementsAsync(1, TimeSpan.FromSeconds(10));
        Assert.Equal("conflicting", Assert.Single(transactions.GetMeasurementSnapshot()).Tags["transaction"]);
        Assert.Empty(_registry.Requests);
        Assert.Empty(_repository.Requests);
    }

    [Fact]
    public async Task A_request_that_is_not_a_post_gets_405_with_a_soap_sender_fault_and_reaches_no_server()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/xds");
        request.Headers.TryAddWithoutValidation("SOAPAction", XdsAction.RegistryStoredQuery);
        using var transactions = new MetricCollector<long>(_proxy.Services.GetRequiredService<IMeterFactory>(), ImagingProxyTelemetry.MeterName, "imagingproxy.xds.transactions");
        using var response = await _client.SendAsync(request);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        await transactions.WaitForMeasurementsAsync(1, TimeSpan.FromSeconds(10));
        var counted = Assert.Single(transactions.GetMeasurementSnapshot());
        Assert.Equal(("ITI-18", (object?)405), ((string?)counted.Tags["transaction"], counted.Tags["http.response.status_code"]));
        Assert.Equal(["POST"], response.Content.Headers.Allow);
        Assert.Contains("<env:Value>env:Sender</env:Value>", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Empty(_registry.Requests);
    }

    [Fact]
    public async Task Xds_requests_are_not_served_on_the_viewers_endpoint()
    {
        using var handler = _certificate.TrustingHandler();
        using var viewers = new HttpClient(handler) { BaseAddress = _proxy.Url("Viewers", "https") };
        using var content = new StringContent(Envelope(XdsAction.RegistryStoredQuery), Encoding.UTF8);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse($"application/soap+xml; action=\"{XdsAction.RegistryStoredQuery}\"");
        using var response = await viewers.PostAsync("/xds", content);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Theory]
    [InlineData("xds-registry", XdsAction.RegistryStoredQuery, "ITI-18", XdsAction.ProvideAndRegisterDocumentSet, "repository")]
    [InlineData("xds-repository", XdsAction.ProvideAndRegisterDocumentSet, "ITI-41", XdsAction.RegistryStoredQuery, "registry")]
    public async Task A_cluster_without_healthy_servers_gets_a_soap_receiver_fault_with_503_while_the_other_serves(
        string downCluster, string refusedAction, string refusedTransaction, string servedAction, string servedBy)
    {
        await using var proxy = await StartWithOneClusterDownAsync(downCluster, downCluster == "xds-registry" ? _registry : _repository);
        using var client = new HttpClient { BaseAddress = proxy.Url("Xds") };

        using var refused = await PostAsync(client, refusedAction);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(10), refused.Headers.RetryAfter?.Delta);
        Assert.Equal("application/soap+xml", refused.Content.Headers.ContentType?.MediaType);
        var text = await refused.Content.ReadAsStringAsync();
        Assert.Contains("<env:Value>env:Receiver</env:Value>", text, StringComparison.Ordinal);
        Assert.Contains(refusedTransaction, text, StringComparison.Ordinal);

        // Each transaction is checked against its own cluster's health, not the route's default cluster (the registry).
        using var served = await PostAsync(client, servedAction);
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        Assert.Equal(servedBy, served.Headers.GetValues("X-Backend").Single());
    }

    [Fact]
    public async Task A_transaction_without_a_configured_cluster_gets_a_soap_receiver_fault_and_a_log_line()
    {
        var clusters = $$"""{ "xds-registry": {{TestConfig.Cluster("", _registry)}} }""";
        await using var proxy = await TestProxy.StartAsync(
            TestConfig.Build(_certificate, clusters, "{}", """{ "Xds": { "RegistryCluster": "xds-registry" } }"""),
            builder => builder.Logging.AddFakeLogging());
        using var client = new HttpClient { BaseAddress = proxy.Url("Xds") };

        using var refused = await PostAsync(client, XdsAction.RetrieveDocumentSet);

        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Contains("<env:Value>env:Receiver</env:Value>", await refused.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        var log = Assert.Single(proxy.Services.GetFakeLogCollector().GetSnapshot(), r => r.Id.Id == 402);
        Assert.Equal(LogLevel.Warning, log.Level);
        Assert.Equal("XDS ITI-43 refused: no cluster serves it (ImagingProxy:Xds:RepositoryCluster is not set).", log.Message);
    }

    [Fact]
    public async Task Passive_health_judges_a_moved_transaction_by_the_settings_of_the_cluster_it_went_to()
    {
        // The Xds route's own cluster is the registry: YARP's passive middleware hands the policy the route's cluster
        // even for an ITI-41 moved to the repository. The repository's FailureStatusCodes must apply, and its destination
        // must leave the repository's rotation.
        var clusters = $$"""
            {
              "xds-registry": {{TestConfig.Cluster("", _registry)}},
              "xds-repository": {{TestConfig.Cluster("""
                "HealthCheck": { "Passive": { "Enabled": true, "ReactivationPeriod": "00:05:00" } },
                "Metadata": { "TransportFailureRateHealthPolicy.FailureStatusCodes": "503" }
                """, _repository)}}
            }
            """;
        var imagingProxy = """{ "Xds": { "RegistryCluster": "xds-registry", "RepositoryCluster": "xds-repository" } }""";
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, clusters, "{}", imagingProxy));
        using var client = new HttpClient { BaseAddress = proxy.Url("Xds") };
        var tracker = proxy.Services.GetRequiredService<ImagingProxy.Health.DestinationHealthTracker>();
        var wentOut = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        tracker.Transition += (cluster, destination, kind, _, now) =>
        {
            if (destination == "repository" && kind == "passive" && now == Yarp.ReverseProxy.Model.DestinationHealth.Unhealthy)
            {
                wentOut.TrySetResult(cluster);
            }
        };

        for (var i = 0; i < 10; i++)
        {
            using var content = new StringContent(Envelope(XdsAction.ProvideAndRegisterDocumentSet), Encoding.UTF8);
            content.Headers.ContentType = MediaTypeHeaderValue.Parse($"application/soap+xml; action=\"{XdsAction.ProvideAndRegisterDocumentSet}\"");
            using var response = await client.PostAsync("/status/503", content);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
            Assert.Equal("repository", response.Headers.GetValues("X-Backend").Single());
        }

        Assert.Equal("xds-repository", await wentOut.Task.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.True(proxy.Services.GetRequiredService<Yarp.ReverseProxy.IProxyStateLookup>().TryGetCluster("xds-repository", out var repository));
        // YARP's updater recomputes the cluster's available destinations on a thread-pool task.
        for (var i = 0; i < 100 && repository.DestinationsState.AvailableDestinations.Count > 0; i++)
        {
            await Task.Delay(100);
        }

        Assert.Empty(repository.DestinationsState.AvailableDestinations);
        using var refused = await PostAsync(client, XdsAction.ProvideAndRegisterDocumentSet);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        var fault = await refused.Content.ReadAsStringAsync();
        Assert.Contains("No healthy server in cluster", fault, StringComparison.Ordinal);
        Assert.Contains("xds-repository", fault, StringComparison.Ordinal);
    }

    /// <summary>A proxy whose cluster <paramref name="downCluster"/> (of <paramref name="down"/>) has active probes and has gone down.</summary>
    private async Task<TestProxy> StartWithOneClusterDownAsync(string downCluster, TestBackend down)
    {
        const string Probed = """
            "HealthCheck": { "Active": { "Enabled": true, "Interval": "00:00:00.200", "Timeout": "00:00:01", "Path": "/health" } }
            """;
        var clusters = $$"""
            {
              "xds-registry": {{TestConfig.Cluster(downCluster == "xds-registry" ? Probed : "", _registry)}},
              "xds-repository": {{TestConfig.Cluster(downCluster == "xds-repository" ? Probed : "", _repository)}}
            }
            """;
        var imagingProxy = """{ "Xds": { "RegistryCluster": "xds-registry", "RepositoryCluster": "xds-repository" } }""";
        var proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, clusters, "{}", imagingProxy));
        var tracker = Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetRequiredService<ImagingProxy.Health.DestinationHealthTracker>(proxy.Services);
        var wentDown = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        tracker.Transition += (cluster, _, _, _, now) =>
        {
            if (cluster == downCluster && now == Yarp.ReverseProxy.Model.DestinationHealth.Unhealthy)
            {
                wentDown.TrySetResult();
            }
        };
        down.Unhealthy = true;
        await wentDown.Task.WaitAsync(TimeSpan.FromSeconds(60));
        return proxy;
    }

    private static async Task<HttpResponseMessage> PostAsync(HttpClient client, string action)
    {
        using var content = new StringContent(Envelope(action), Encoding.UTF8);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse($"application/soap+xml; action=\"{action}\"");
        return await client.PostAsync("/xds", content);
    }

    private static string Soap11FaultString(string envelope)
        => System.Xml.Linq.XDocument.Parse(envelope).Descendants("faultstring").Single().Value;

    private static string Envelope(string action) => $"""
        <soapenv:Envelope xmlns:soapenv="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://www.w3.org/2005/08/addressing">
          <soapenv:Header><wsa:Action soapenv:mustUnderstand="1">{action}</wsa:Action></soapenv:Header>
          <soapenv:Body/>
        </soapenv:Envelope>
        """;
}
