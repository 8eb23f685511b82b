using System.Net;
using System.Net.Sockets;
using System.Text;
using ImagingProxy.Health;
using ImagingProxy.Testing;
using ImagingProxy.Tests.Support;
using Microsoft.Extensions.DependencyInjection;

namespace ImagingProxy.Tests.Forwarding;

/// <summary>
/// Uploads to a server that refuses them from their headers (401/403/413) without reading the body
/// (<see cref="ImagingProxy.Forwarding.ExpectContinue"/>).
/// </summary>
public sealed class ExpectContinueTests : IAsyncLifetime
{
    private const string AllRoute = """{ "all": { "ClusterId": "web", "Match": { "Path": "/{**rest}" } } }""";
    private readonly TestCertificate _certificate = new();
    private readonly RefusingServer _server = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _certificate.Dispose();
    }

    [Fact]
    public async Task A_large_upload_refused_from_its_headers_gets_the_servers_answer_and_the_server_stays_in()
    {
        await using var proxy = await TestProxy.StartAsync(Config("""
            "Metadata": { "ExpectContinue": "Large" },
            "HealthCheck": { "Passive": { "Enabled": true, "ReactivationPeriod": "00:05:00" } }
            """));
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };
        var tracker = proxy.Services.GetRequiredService<DestinationHealthTracker>();
        var transitions = new HealthTransitions(tracker);

        // Enough refusals for YARP's passive policy (at least 10 requests, 30% failed) had they counted as failures.
        for (var i = 0; i < 12; i++)
        {
            using var response = await client.PostAsync("/dicom-web/studies", new ByteArrayContent(new byte[2 << 20]));
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
            Assert.Equal("Forbidden", await response.Content.ReadAsStringAsync());
        }

        Assert.Equal(12, _server.Heads.Count);
        Assert.All(_server.Heads, head => Assert.Contains("Expect: 100-continue", head, StringComparison.OrdinalIgnoreCase));
        Assert.Equal(0, _server.BodyBytes);

        // Still routed to: a 503 here would mean passive health took the server out.
        using var after = await client.GetAsync("/dicom-web/studies");
        Assert.Equal(HttpStatusCode.Forbidden, after.StatusCode);
        Assert.DoesNotContain("d1 passive Unhealthy", transitions.Seen);
    }

    [Fact]
    public async Task Without_expect_continue_the_same_refusal_reaches_the_client_as_a_502()
    {
        // The default (Never): YARP 2.3 sends the body at once, the server's close resets the connection under it, and
        // the client gets 502 for what was the server's 403.
        await using var proxy = await TestProxy.StartAsync(Config(string.Empty));
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };

        using var response = await client.PostAsync("/dicom-web/studies", new ByteArrayContent(new byte[16 << 20]));

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.DoesNotContain("Expect:", _server.Heads.Single(), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task A_small_body_goes_without_asking_unless_the_cluster_says_Always()
    {
        _server.ReadBodiesSentWithoutExpect = true;
        await using (var proxy = await TestProxy.StartAsync(Config("""
            "Metadata": { "ExpectContinue": "Large" }
            """)))
        {
            using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };
            using var response = await client.PostAsync("/xds/registry", new ByteArrayContent(new byte[4096]));
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
            Assert.DoesNotContain("Expect:", _server.Heads.Single(), StringComparison.OrdinalIgnoreCase);
            Assert.Equal(4096, _server.BodyBytes);
        }

        await using (var proxy = await TestProxy.StartAsync(Config("""
            "Metadata": { "ExpectContinue": "Always" }
            """)))
        {
            using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };
            using var response = await client.PostAsync("/xds/registry", new ByteArrayContent(new byte[4096]));
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
            Assert.Contains("Expect: 100-continue", _server.Heads[^1], StringComparison.OrdinalIgnoreCase);
        }
    }

    [Fact]
    public async Task A_body_of_unknown_length_asks_first()
    {
        await using var proxy = await TestProxy.StartAsync(Config("""
            "Metadata": { "ExpectContinue": "Large" }
            """));
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };

        // No Content-Length: the client sends it chunked.
        using var content = new StreamContent(new MemoryStream(new byte[4096]));
        using var request = new HttpRequestMessage(HttpMethod.Post, "/dicom-web/studies") { Content = content };
        request.Headers.TransferEncodingChunked = true;
        using var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Contains("Expect: 100-continue", _server.Heads.Single(), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task A_client_that_asks_first_itself_is_passed_on_as_it_is()
    {
        // The default (Never) adds nothing, and takes nothing away: the client's own Expect reaches the server.
        await using var proxy = await TestProxy.StartAsync(Config(string.Empty));
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/dicom-web/studies") { Content = new ByteArrayContent(new byte[2 << 20]) };
        request.Headers.ExpectContinue = true;

        using var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Contains("Expect: 100-continue", _server.Heads.Single(), StringComparison.OrdinalIgnoreCase);
        Assert.Equal(0, _server.BodyBytes);
    }

    [Fact]
    public async Task An_xds_request_asks_first_as_the_cluster_it_goes_to_says()
    {
        // One route serves XDS; each request goes to the registry or the repository cluster by its SOAP action. The
        // repository (the refusing server) asks for 100-continue, the registry (a Kestrel backend) does not.
        await using var registry = await TestBackend.StartAsync("registry");
        var clusters = $$"""
            {
              "xds-registry": {{TestConfig.Cluster("", registry)}},
              "xds-repository": { "Metadata": { "ExpectContinue": "Always" }, "Destinations": { "d1": { "Address": "http://127.0.0.1:{{_server.Port}}/" } } }
            }
            """;
        var imagingProxy = """{ "Xds": { "RegistryCluster": "xds-registry", "RepositoryCluster": "xds-repository" } }""";
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, clusters, "{}", imagingProxy));
        using var client = new HttpClient { BaseAddress = proxy.Url("Xds") };

        using var provide = await client.PostAsync("/xds", Soap(ImagingProxy.Forwarding.XdsAction.ProvideAndRegisterDocumentSet));
        using var query = await client.PostAsync("/xds", Soap(ImagingProxy.Forwarding.XdsAction.RegistryStoredQuery));

        Assert.Equal(HttpStatusCode.Forbidden, provide.StatusCode);
        Assert.Contains("Expect: 100-continue", _server.Heads.Single(), StringComparison.OrdinalIgnoreCase);
        Assert.Equal(HttpStatusCode.OK, query.StatusCode);
        Assert.Equal("registry", query.Headers.GetValues("X-Backend").Single());
    }

    private static StringContent Soap(string action)
    {
        var content = new StringContent("<Envelope xmlns=\"http://www.w3.org/2003/05/soap-envelope\"><Body/></Envelope>", Encoding.UTF8);
        content.Headers.ContentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse($"application/soap+xml; charset=UTF-8; action=\"{action}\"");
        return content;
    }

    [Fact]
    public async Task A_server_that_takes_longer_than_a_second_to_refuse_gets_its_answer_relayed_within_ExpectContinueTimeout()
    {
        // .NET sends the body after 1 s without an answer: under a refusal that came at 3 s the client got a 502.
        _server.RefuseAfter = TimeSpan.FromSeconds(3);
        await using var proxy = await TestProxy.StartAsync(Config("""
            "Metadata": { "ExpectContinue": "Always", "ExpectContinueTimeout": "00:00:20" }
            """));
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };

        using var response = await client.PostAsync("/dicom-web/studies", new ByteArrayContent(new byte[256 << 10]));

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal(0, _server.BodiesPendingAtRefusal);
    }

    private string Config(string cluster)
        => TestConfig.Build(_certificate, $$"""
            { "web": { {{(cluster.Length > 0 ? cluster + "," : string.Empty)}} "Destinations": { "d1": { "Address": "http://127.0.0.1:{{_server.Port}}/" } } } }
            """, AllRoute);

    /// <summary>
    /// Answers every request with 403 as soon as it has the headers and closes the connection, reading no body, as a PACS
    /// refusing a STOW-RS does; with <see cref="ReadBodiesSentWithoutExpect"/>, it first reads a body that came without
    /// <c>Expect: 100-continue</c> (its Content-Length).
    /// </summary>
    private sealed class RefusingServer : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly CancellationTokenSource _stop = new();
        private readonly List<string> _heads = [];
        private readonly Task _serving;
        private long _bodyBytes;
        private int _bodiesPending;

        public RefusingServer()
        {
            _listener.Start();
            _serving = ServeAsync();
        }

        public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

        public bool ReadBodiesSentWithoutExpect { get; set; }

        /// <summary>How long the server thinks before refusing (an authorisation that asks another service).</summary>
        public TimeSpan RefuseAfter { get; set; }

        /// <summary>Requests whose body had begun to arrive by the time the server refused them.</summary>
        public int BodiesPendingAtRefusal => Volatile.Read(ref _bodiesPending);

        public IReadOnlyList<string> Heads
        {
            get
            {
                lock (_heads)
                {
                    return [.. _heads];
                }
            }
        }

        /// <summary>Body bytes read (those that came in the same reads as the headers included).</summary>
        public long BodyBytes => Interlocked.Read(ref _bodyBytes);

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            _listener.Stop();
            await _serving;
            _stop.Dispose();
        }

        private async Task ServeAsync()
        {
            while (true)
            {
                Socket socket;
                try
                {
                    socket = await _listener.AcceptSocketAsync(_stop.Token);
                }
                catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
                {
                    return;
                }

                try
                {
                    await RefuseAsync(socket);
                }
                catch (Exception ex) when (ex is SocketException or OperationCanceledException)
                {
                    // The proxy went away first.
                }
                finally
                {
                    socket.Dispose();
                }
            }
        }

        private async Task RefuseAsync(Socket socket)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            timeout.CancelAfter(TimeSpan.FromSeconds(30));
            if (await RawHttpRequest.ReadHeadAsync(socket, timeout.Token) is not { } request)
            {
                return;
            }

            lock (_heads)
            {
                _heads.Add(request.Head);
            }

            if (ReadBodiesSentWithoutExpect && !request.Head.Contains("Expect: 100-continue", StringComparison.OrdinalIgnoreCase))
            {
                await request.ReadBodyAsync(socket, timeout.Token);
            }

            var body = request.BodyBytesRead;
            Interlocked.Add(ref _bodyBytes, body);
            if (RefuseAfter > TimeSpan.Zero)
            {
                await Task.Delay(RefuseAfter, timeout.Token);
                if (body > 0 || socket.Available > 0)
                {
                    Interlocked.Increment(ref _bodiesPending);
                }
            }

            await socket.SendAsync("HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\nConnection: close\r\n\r\nForbidden"u8.ToArray(), timeout.Token);
        }
    }
}
