using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Xml.Linq;
using ImagingProxy.Forwarding;
using ImagingProxy.Telemetry;
using ImagingProxy.Testing;
using ImagingProxy.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;

namespace ImagingProxy.Tests.Forwarding;

/// <summary>
/// XDS.b requests whose destination fails under YARP's forwarder (refused, closed, silent) get a SOAP 1.2
/// <c>env:Receiver</c> fault with YARP's status, not an empty 502/504; viewer routes keep YARP's empty answer.
/// </summary>
public sealed class XdsForwarderFaultTests : IDisposable
{
    private static readonly XNamespace s_env = "http://www.w3.org/2003/05/soap-envelope";
    private static readonly XNamespace s_soap11 = "http://schemas.xmlsoap.org/soap/envelope/";
    private static readonly TimeSpan s_bound = TimeSpan.FromSeconds(30);
    private readonly TestCertificate _certificate = new();
    private readonly ClosedPort _registry = new();

    public void Dispose()
    {
        _registry.Dispose();
        _certificate.Dispose();
    }

    [Fact]
    public async Task A_repository_on_a_closed_port_gets_a_soap_receiver_fault_with_502_a_log_line_and_the_metric()
    {
        using var closed = new ClosedPort();
        var port = closed.Port;
        await using var proxy = await StartAsync($"http://127.0.0.1:{port}/", "", builder => builder.Logging.AddFakeLogging());
        using var transactions = new MetricCollector<long>(proxy.Services.GetRequiredService<IMeterFactory>(), ImagingProxyTelemetry.MeterName, "imagingproxy.xds.transactions");
        using var client = new HttpClient { BaseAddress = proxy.Url("Xds"), Timeout = s_bound };

        using var response = await PostAsync(client, XdsAction.RetrieveDocumentSet);

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("application/soap+xml", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("The repository for ITI-43 could not be reached (connection refused); retry later.", await ReceiverFaultReasonAsync(response));

        var log = Assert.Single(proxy.Services.GetFakeLogCollector().GetSnapshot(), r => r.Id.Id == 403);
        Assert.Equal(LogLevel.Warning, log.Level);
        Assert.Equal($"XDS ITI-43 answered 502 with a SOAP fault: destination 'repository' of cluster 'xds-repository' failed (Request, connection refused).", log.Message);

        await transactions.WaitForMeasurementsAsync(1, s_bound);
        var counted = Assert.Single(transactions.GetMeasurementSnapshot());
        Assert.Equal("ITI-43", counted.Tags["transaction"]);
        Assert.Equal(502, counted.Tags["http.response.status_code"]);
    }

    [Fact]
    public async Task A_soap_11_client_gets_a_soap_11_server_fault_with_500_and_the_log_line_says_500()
    {
        using var closed = new ClosedPort();
        var port = closed.Port;
        await using var proxy = await StartAsync($"http://127.0.0.1:{port}/", "", builder => builder.Logging.AddFakeLogging());
        using var client = new HttpClient { BaseAddress = proxy.Url("Xds"), Timeout = s_bound };

        using var response = await Soap11Request.PostAsync(client, "/axis2/services/xds", XdsAction.RetrieveDocumentSet);

        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        Assert.Equal("text/xml", response.Content.Headers.ContentType?.MediaType);
        var fault = XDocument.Parse(await response.Content.ReadAsStringAsync()).Root!.Element(s_soap11 + "Body")?.Element(s_soap11 + "Fault");
        Assert.NotNull(fault);
        Assert.Equal("soap:Server", fault.Element("faultcode")?.Value);
        Assert.Equal("The repository for ITI-43 could not be reached (connection refused); retry later.", fault.Element("faultstring")?.Value);
        var log = Assert.Single(proxy.Services.GetFakeLogCollector().GetSnapshot(), r => r.Id.Id == 403);
        Assert.StartsWith("XDS ITI-43 answered 500 with a SOAP fault: destination 'repository'", log.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_repository_that_never_answers_gets_a_soap_receiver_fault_with_504_at_the_activity_timeout()
    {
        // Listening but never accepting: the kernel completes the connection, nobody ever answers.
        using var silent = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        silent.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        silent.Listen(16);
        var address = $"http://127.0.0.1:{((IPEndPoint)silent.LocalEndPoint!).Port}/";
        await using var proxy = await StartAsync(address, """ "HttpRequest": { "ActivityTimeout": "00:00:00.500" }, """);
        using var client = new HttpClient { BaseAddress = proxy.Url("Xds"), Timeout = s_bound };

        using var response = await PostAsync(client, XdsAction.ProvideAndRegisterDocumentSet);

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Equal("application/soap+xml", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("The repository for ITI-41 did not answer in time; retry later.", await ReceiverFaultReasonAsync(response));
    }

    public static TheoryData<string, string> DeadBeforeTheAnswer => new()
    {
        { "", "The repository for ITI-43 closed the connection without answering; retry later." },
        { "HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\nContent-Length: 1000\r\n\r\n", "The connection to the repository for ITI-43 broke while it was answering; retry later." },
    };

    [Theory]
    [MemberData(nameof(DeadBeforeTheAnswer))]
    public async Task A_repository_that_dies_before_its_answer_reached_the_client_gets_a_soap_receiver_fault_with_502(string sentBeforeClosing, string reason)
    {
        await using var repository = ScriptedDestination.Start(sentBeforeClosing);
        await using var proxy = await StartAsync(repository.Address, "");
        using var client = new HttpClient { BaseAddress = proxy.Url("Xds"), Timeout = s_bound };

        using var response = await PostAsync(client, XdsAction.RetrieveDocumentSet);

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("application/soap+xml", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(reason, await ReceiverFaultReasonAsync(response));
    }

    [Fact]
    public async Task A_repository_that_stalls_after_its_headers_gets_a_soap_receiver_fault_with_502_at_the_activity_timeout()
    {
        await using var repository = ScriptedDestination.Start("HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\nContent-Length: 1000\r\n\r\n", close: false);
        await using var proxy = await StartAsync(repository.Address, """ "HttpRequest": { "ActivityTimeout": "00:00:00.500" }, """);
        using var client = new HttpClient { BaseAddress = proxy.Url("Xds"), Timeout = s_bound };

        using var response = await PostAsync(client, XdsAction.RetrieveDocumentSet);

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal("The repository for ITI-43 stopped answering; retry later.", await ReceiverFaultReasonAsync(response));
    }

    [Fact]
    public async Task A_download_cut_midway_is_aborted_not_completed_with_a_fault()
    {
        await using var repository = ScriptedDestination.Start("HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\nContent-Length: 100000\r\n\r\n<env:Envelope");
        await using var proxy = await StartAsync(repository.Address, "");
        using var client = new HttpClient { BaseAddress = proxy.Url("Xds"), Timeout = s_bound };

        await Assert.ThrowsAnyAsync<HttpRequestException>(() => PostAsync(client, XdsAction.RetrieveDocumentSet));
    }

    [Fact]
    public async Task A_viewer_route_to_a_closed_port_keeps_yarps_empty_502()
    {
        using var closed = new ClosedPort();
        var clusters = $$"""{ "web": { "Destinations": { "pacs": { "Address": "http://127.0.0.1:{{closed.Port}}/" } } } }""";
        var routes = """{ "all": { "ClusterId": "web", "Match": { "Path": "/{**rest}" } } }""";
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, clusters, routes));
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https"), Timeout = s_bound };

        using var response = await client.GetAsync("/studies");

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Empty(await response.Content.ReadAsByteArrayAsync());
    }

    /// <summary>A proxy whose repository cluster is the one destination <paramref name="address"/> (cluster settings <paramref name="extra"/>, ending in a comma).</summary>
    private Task<TestProxy> StartAsync(string address, string extra, Action<Microsoft.AspNetCore.Builder.WebApplicationBuilder>? configure = null)
    {
        var clusters = $$"""
            {
              "xds-registry": { "Destinations": { "registry": { "Address": "http://127.0.0.1:{{_registry.Port}}/" } } },
              "xds-repository": { {{extra}} "Destinations": { "repository": { "Address": "{{address}}" } } }
            }
            """;
        var imagingProxy = """{ "Xds": { "RegistryCluster": "xds-registry", "RepositoryCluster": "xds-repository" } }""";
        return TestProxy.StartAsync(TestConfig.Build(_certificate, clusters, "{}", imagingProxy), configure);
    }

    private static async Task<HttpResponseMessage> PostAsync(HttpClient client, string action)
    {
        using var content = new StringContent("""<soapenv:Envelope xmlns:soapenv="http://www.w3.org/2003/05/soap-envelope"><soapenv:Body/></soapenv:Envelope>""", Encoding.UTF8);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse($"application/soap+xml; charset=UTF-8; action=\"{action}\"");
        return await client.PostAsync("/axis2/services/xds", content);
    }

    /// <summary>Parses the body as a SOAP 1.2 fault, checks its code is <c>env:Receiver</c>, and returns its reason text.</summary>
    private static async Task<string> ReceiverFaultReasonAsync(HttpResponseMessage response)
    {
        var envelope = XDocument.Parse(await response.Content.ReadAsStringAsync()).Root!;
        Assert.Equal(s_env + "Envelope", envelope.Name);
        var fault = envelope.Element(s_env + "Body")?.Element(s_env + "Fault");
        Assert.NotNull(fault);
        var value = fault.Element(s_env + "Code")?.Element(s_env + "Value");
        Assert.NotNull(value);
        var code = value.Value.Split(':');
        Assert.Equal(s_env, value.GetNamespaceOfPrefix(code[0]));
        Assert.Equal("Receiver", code[1]);
        var text = fault.Element(s_env + "Reason")?.Element(s_env + "Text");
        Assert.NotNull(text);
        return text.Value;
    }
    /// <summary>A destination speaking raw HTTP/1.1: reads each request whole, sends the given bytes, then closes the connection or holds it open.</summary>
    private sealed class ScriptedDestination : IAsyncDisposable
    {
        private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        private readonly CancellationTokenSource _stop = new();
        private readonly byte[] _answer;
        private readonly bool _close;
        private readonly System.Collections.Concurrent.ConcurrentBag<Task> _serving = [];
        private Task _accepting = Task.CompletedTask;

        private ScriptedDestination(string answer, bool close)
        {
            _answer = Encoding.ASCII.GetBytes(answer);
            _close = close;
        }

        public string Address => $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndPoint!).Port}/";

        public static ScriptedDestination Start(string answer, bool close = true)
        {
            var destination = new ScriptedDestination(answer, close);
            destination._listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            destination._listener.Listen(16);
            destination._accepting = destination.AcceptAsync();
            return destination;
        }

        private async Task AcceptAsync()
        {
            try
            {
                while (true)
                {
                    var connection = await _listener.AcceptAsync(_stop.Token);
                    _serving.Add(ServeAsync(connection));
                }
            }
            catch (OperationCanceledException)
            {
            }
        }

        private async Task ServeAsync(Socket connection)
        {
            using (connection)
            {
                try
                {
                    await ReadRequestAsync(connection);
                    await connection.SendAsync(_answer, _stop.Token);
                    if (!_close)
                    {
                        await Task.Delay(Timeout.Infinite, _stop.Token);
                    }

                    connection.Shutdown(SocketShutdown.Both);
                }
                catch (Exception ex) when (ex is SocketException or OperationCanceledException)
                {
                }
            }
        }

        /// <summary>Reads the request head and a Content-Length body, so that closing sends FIN, not RST.</summary>
        private async Task ReadRequestAsync(Socket connection)
        {
            if (await RawHttpRequest.ReadHeadAsync(connection, _stop.Token) is { } request)
            {
                await request.ReadBodyAsync(connection, _stop.Token);
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            _listener.Dispose();
            await Task.WhenAll([_accepting, .. _serving]).WaitAsync(s_bound);
            _stop.Dispose();
        }
    }
}
