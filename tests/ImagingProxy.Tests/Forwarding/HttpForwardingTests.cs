using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;
using ImagingProxy.Health;
using ImagingProxy.Telemetry;
using ImagingProxy.Testing;
using ImagingProxy.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Tests.Forwarding;

/// <summary>Viewer traffic through YARP on the Viewers endpoint (TLS), against in-process Kestrel backends.</summary>
public sealed class HttpForwardingTests : IAsyncLifetime
{
    private readonly TestCertificate _certificate = new();
    private TestBackend _a = null!;
    private TestBackend _b = null!;

    public async Task InitializeAsync()
    {
        _a = await TestBackend.StartAsync("a");
        _b = await TestBackend.StartAsync("b");
    }

    public async Task DisposeAsync()
    {
        await _a.DisposeAsync();
        await _b.DisposeAsync();
        _certificate.Dispose();
    }

    private const string AllRoute = """{ "all": { "ClusterId": "web", "Match": { "Path": "/{**rest}" } } }""";

    [Fact]
    public async Task Responses_through_the_proxy_equal_direct_access()
    {
        var config = TestConfig.Build(_certificate, $$"""{ "web": {{TestConfig.Cluster("", _a)}} }""", AllRoute);
        await using var proxy = await TestProxy.StartAsync(config);
        using var viaProxy = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };
        using var direct = new HttpClient { BaseAddress = _a.Url };

        foreach (var path in new[] { "/studies?limit=1", "/status/404", "/status/500", "/status/204", "/big?bytes=1000000" })
        {
            using var expected = await direct.GetAsync(path);
            using var actual = await viaProxy.GetAsync(path);
            Assert.Equal(expected.StatusCode, actual.StatusCode);
            Assert.Equal(await expected.Content.ReadAsByteArrayAsync(), await actual.Content.ReadAsByteArrayAsync());
        }

        var body = new byte[300_000];
        Random.Shared.NextBytes(body);
        using var postDirect = await direct.PostAsync("/studies", new ByteArrayContent(body));
        using var postProxy = await viaProxy.PostAsync("/studies", new ByteArrayContent(body));
        Assert.Equal(await postDirect.Content.ReadAsStringAsync(), await postProxy.Content.ReadAsStringAsync());

        using var forwarded = await viaProxy.GetAsync("/studies");
        Assert.Equal("127.0.0.1", forwarded.Headers.GetValues("X-Forwarded-For-Seen").Single());
        Assert.Equal("https", forwarded.Headers.GetValues("X-Forwarded-Proto-Seen").Single());
        Assert.Equal($"proto=https;host={viaProxy.BaseAddress!.Authority}", forwarded.Headers.GetValues("Forwarded-Seen").Single());
    }

    [Fact(Timeout = 60_000)]
    public async Task A_server_at_its_MaxConcurrent_is_passed_over_and_a_full_cluster_answers_503()
    {
        var cluster = $$"""
            { "web": { "LoadBalancingPolicy": "FirstAlphabetical", "Destinations": {
                "a": { "Address": "{{_a.Url}}", "Metadata": { "MaxConcurrent": "1" } },
                "b": { "Address": "{{_b.Url}}", "Metadata": { "MaxConcurrent": "1" } } } } }
            """;
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, cluster, AllRoute));
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };
        using var release = new CancellationTokenSource();

        // a (first alphabetically) holds a request in flight: the next goes to b.
        var held = client.GetAsync("/delay?ms=30000", release.Token);
        await WaitForAsync(() => _a.Requests.Contains("GET /delay?ms=30000"));
        using (var toB = await client.GetAsync("/studies"))
        {
            Assert.Equal("b", toB.Headers.GetValues("X-Backend").Single());
        }

        // b holds one too: the cluster is full.
        var heldOnB = client.GetAsync("/delay?ms=30000", release.Token);
        await WaitForAsync(() => _b.Requests.Contains("GET /delay?ms=30000"));
        using (var full = await client.GetAsync("/studies"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, full.StatusCode);
            Assert.Equal("5", full.Headers.RetryAfter?.ToString());
            Assert.Contains("is at its MaxConcurrent", await full.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        await release.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => held);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => heldOnB);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_full_destination_is_no_retry_candidate_so_the_open_ones_answer_reaches_the_client()
    {
        // a is full (one request held on it); b is open but answers 503, a status in Retry.StatusCodes: as when a is
        // unavailable, b's own answer reaches the client whole and nothing is retried.
        var cluster = $$"""
            { "web": { "LoadBalancingPolicy": "FirstAlphabetical", "Metadata": { "Retry.StatusCodes": "503" }, "Destinations": {
                "a": { "Address": "{{_a.Url}}", "Metadata": { "MaxConcurrent": "1" } },
                "b": { "Address": "{{_b.Url}}" } } } }
            """;
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, cluster, AllRoute));
        using var retries = new MetricCollector<long>(proxy.Services.GetRequiredService<IMeterFactory>(), ImagingProxyTelemetry.MeterName, "imagingproxy.http.retries");
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };
        using var release = new CancellationTokenSource();
        var held = client.GetAsync("/delay?ms=30000", release.Token);
        await WaitForAsync(() => _a.Requests.Contains("GET /delay?ms=30000"));
        _b.FailWith = 503;

        using (var response = await client.GetAsync("/studies"))
        {
            Assert.Equal("status 503 from b", await response.Content.ReadAsStringAsync());
            Assert.Equal("b", response.Headers.GetValues("X-Backend").Single());
        }

        Assert.Empty(retries.GetMeasurementSnapshot());
        await release.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => held);
    }

    [Theory(Timeout = 60_000)]
    [InlineData("Redistribute", HttpStatusCode.OK)]
    [InlineData("Return503Error", HttpStatusCode.ServiceUnavailable)]
    public async Task An_affinity_to_a_full_destination_follows_the_clusters_failure_policy(string policy, HttpStatusCode expected)
    {
        var cluster = $$"""
            { "web": { "LoadBalancingPolicy": "FirstAlphabetical",
              "SessionAffinity": { "Enabled": true, "Policy": "HashCookie", "FailurePolicy": "{{policy}}", "AffinityKeyName": "aff" },
              "Destinations": {
                "a": { "Address": "{{_a.Url}}", "Metadata": { "MaxConcurrent": "1" } },
                "b": { "Address": "{{_b.Url}}" } } } }
            """;
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, cluster, AllRoute));
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };
        string cookie;
        using (var first = await client.GetAsync("/studies"))
        {
            Assert.Equal("a", first.Headers.GetValues("X-Backend").Single());
            cookie = first.Headers.GetValues("Set-Cookie").Single().Split(';')[0];
        }

        using var other = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };
        using var release = new CancellationTokenSource();
        var held = other.GetAsync("/delay?ms=30000", release.Token);
        await WaitForAsync(() => _a.Requests.Contains("GET /delay?ms=30000"));
        using var request = new HttpRequestMessage(HttpMethod.Get, "/studies");
        request.Headers.Add("Cookie", cookie);
        using (var pinned = await client.SendAsync(request))
        {
            Assert.Equal(expected, pinned.StatusCode);
            if (expected == HttpStatusCode.OK)
            {
                Assert.Equal("b", pinned.Headers.GetValues("X-Backend").Single());
            }
        }

        await release.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => held);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_read_every_primary_failed_goes_to_a_backup_and_a_listed_answer_is_replaced_by_the_backups()
    {
        // The primary's port is closed (no health checks yet know it): the GET is retried on the backup at once.
        using var closed = new ClosedPort();
        var cluster = $$"""
            { "web": { "Metadata": { "Retry.StatusCodes": "503" }, "Destinations": {
                "primary": { "Address": "http://127.0.0.1:{{closed.Port}}/" },
                "dr": { "Address": "{{_b.Url}}", "Metadata": { "Backup": "true" } } } } }
            """;
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, cluster, AllRoute));
        using var retries = new MetricCollector<long>(proxy.Services.GetRequiredService<IMeterFactory>(), ImagingProxyTelemetry.MeterName, "imagingproxy.http.retries");
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };

        using (var response = await client.GetAsync("/studies"))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("b", response.Headers.GetValues("X-Backend").Single());
        }

        var retry = Assert.Single(retries.GetMeasurementSnapshot());
        Assert.Equal("primary", retry.Tags["destination"]);

        // A primary that answers a listed status: its answer is kept back and the backup's reaches the client.
        var answering = $$"""
            { "web": { "Metadata": { "Retry.StatusCodes": "503" }, "Destinations": {
                "primary": { "Address": "{{_a.Url}}" },
                "dr": { "Address": "{{_b.Url}}", "Metadata": { "Backup": "true" } } } } }
            """;
        await using var second = await TestProxy.StartAsync(TestConfig.Build(_certificate, answering, AllRoute));
        using var secondClient = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = second.Url("Viewers", "https") };
        _a.FailWith = 503;
        using (var response = await secondClient.GetAsync("/studies"))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("b", response.Headers.GetValues("X-Backend").Single());
            Assert.False(response.Headers.Contains("X-Failed"));
        }

        // A POST is never sent twice, backups or not: the primary's 503 reaches the client.
        using (var post = await secondClient.PostAsync("/studies", new StringContent("{}")))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, post.StatusCode);
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task A_backup_at_its_MaxConcurrent_is_no_retry_candidate_so_the_primarys_answer_reaches_the_client()
    {
        var cluster = $$"""
            { "web": { "Metadata": { "Retry.StatusCodes": "503" }, "Destinations": {
                "primary": { "Address": "{{_a.Url}}" },
                "dr": { "Address": "{{_b.Url}}", "Metadata": { "Backup": "true", "MaxConcurrent": "1" } } } } }
            """;
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, cluster, AllRoute));
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };
        using var release = new CancellationTokenSource();
        _a.FailWith = 503;

        // The primary's 503 sends this one to dr, which holds it: dr is at its MaxConcurrent.
        var held = client.GetAsync("/delay?ms=30000", release.Token);
        await WaitForAsync(() => _b.Requests.Contains("GET /delay?ms=30000"));

        using (var response = await client.GetAsync("/studies"))
        {
            Assert.Equal("status 503 from a", await response.Content.ReadAsStringAsync());
            Assert.DoesNotContain("GET /studies", _b.Requests);
        }

        await release.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => held);
    }

    [Fact(Timeout = 60_000)]
    public async Task Under_strict_affinity_a_read_is_not_sent_to_a_backup_that_would_pin_the_client_there()
    {
        // Return503Error: a backup's answer would set the client's affinity to a destination that leaves the rotation
        // while the primary is fine, and every later request of that client would get 503.
        var cluster = $$"""
            { "web": { "Metadata": { "Retry.StatusCodes": "503" },
              "SessionAffinity": { "Enabled": true, "Policy": "HashCookie", "FailurePolicy": "Return503Error", "AffinityKeyName": "aff" },
              "Destinations": {
                "primary": { "Address": "{{_a.Url}}" },
                "dr": { "Address": "{{_b.Url}}", "Metadata": { "Backup": "true" } } } } }
            """;
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, cluster, AllRoute));
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };

        _a.FailWith = 503;
        using (var first = await client.GetAsync("/studies"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, first.StatusCode);
            Assert.Equal("a", first.Headers.GetValues("X-Backend").Single());
        }

        _a.FailWith = 0;
        using var second = await client.GetAsync("/studies");
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Empty(_b.Requests);
    }

    private static async Task WaitForAsync(Func<bool> condition)
    {
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (!condition())
        {
            await Task.Delay(20, bound.Token);
        }
    }

    [Fact]
    public async Task A_route_that_turns_forwarding_headers_off_gets_no_Forwarded_header_either()
    {
        var routes = """{ "all": { "ClusterId": "web", "Match": { "Path": "/{**rest}" }, "Transforms": [ { "X-Forwarded": "Off" } ] } }""";
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, $$"""{ "web": {{TestConfig.Cluster("", _a)}} }""", routes));
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };

        using var response = await client.GetAsync("/studies");

        Assert.Equal(string.Empty, response.Headers.GetValues("X-Forwarded-For-Seen").Single());
        Assert.Equal(string.Empty, response.Headers.GetValues("Forwarded-Seen").Single());
    }

    [Fact]
    public async Task Affinity_keeps_a_client_on_one_destination()
    {
        var cluster = TestConfig.Cluster("""
            "LoadBalancingPolicy": "RoundRobin",
            "SessionAffinity": { "Enabled": true, "Policy": "HashCookie", "AffinityKeyName": ".Affinity" }
            """, _a, _b);
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, $$"""{ "web": {{cluster}} }""", AllRoute));
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };

        var withoutCookie = new HashSet<string>();
        string? cookie = null;
        for (var i = 0; i < 4; i++)
        {
            using var response = await client.GetAsync("/studies");
            withoutCookie.Add(response.Headers.GetValues("X-Backend").Single());
            cookie ??= response.Headers.GetValues("Set-Cookie").Single().Split(';')[0];
        }

        Assert.Equal(2, withoutCookie.Count);
        var pinned = new HashSet<string>();
        for (var i = 0; i < 10; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/studies");
            request.Headers.Add("Cookie", cookie);
            using var response = await client.SendAsync(request);
            pinned.Add(response.Headers.GetValues("X-Backend").Single());
        }

        Assert.Single(pinned);
    }

    [Fact]
    public async Task A_dead_destination_stops_receiving_traffic()
    {
        var cluster = TestConfig.Cluster("""
            "LoadBalancingPolicy": "RoundRobin",
            "HealthCheck": { "Active": { "Enabled": true, "Interval": "00:00:00.200", "Timeout": "00:00:01", "Path": "/health" } },
            "Metadata": { "ConsecutiveFailuresHealthPolicy.Threshold": "1" }
            """, _a, _b);
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, $$"""{ "web": {{cluster}} }""", AllRoute));
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };
        var tracker = proxy.Services.GetRequiredService<DestinationHealthTracker>();
        var down = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        tracker.Transition += (_, destination, kind, _, now) =>
        {
            if (destination == "b" && kind == "active" && now == DestinationHealth.Unhealthy)
            {
                down.TrySetResult();
            }
        };

        await _b.DisposeAsync();
        await down.Task.WaitAsync(TimeSpan.FromSeconds(60));

        for (var i = 0; i < 20; i++)
        {
            using var response = await client.GetAsync("/studies");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("a", response.Headers.GetValues("X-Backend").Single());
        }

        _b = await TestBackend.StartAsync("b");
    }

    [Fact]
    public async Task A_cluster_with_no_healthy_destination_answers_503_instead_of_panicking()
    {
        var cluster = TestConfig.Cluster("""
            "HealthCheck": { "Active": { "Enabled": true, "Interval": "00:00:00.200", "Timeout": "00:00:01", "Path": "/health" } }
            """, _a);
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, $$"""{ "web": {{cluster}} }""", AllRoute));
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };
        var tracker = proxy.Services.GetRequiredService<DestinationHealthTracker>();
        var down = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        tracker.Transition += (_, _, _, _, now) =>
        {
            if (now == DestinationHealth.Unhealthy)
            {
                down.TrySetResult();
            }
        };

        _a.Unhealthy = true;
        await down.Task.WaitAsync(TimeSpan.FromSeconds(60));
        var before = _a.Requests.Count(r => !r.Contains("/health", StringComparison.Ordinal));
        using var response = await client.GetAsync("/studies");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Contains("no healthy server in cluster 'web'", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);

        // Said as text, as the 404 and 413 answers are (a browser would otherwise sniff the body's type).
        Assert.Equal("text/plain; charset=utf-8", response.Content.Headers.ContentType?.ToString());
        Assert.Equal(TimeSpan.FromSeconds(10), response.Headers.RetryAfter?.Delta);
        Assert.Equal(before, _a.Requests.Count(r => !r.Contains("/health", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task A_route_timeout_ends_a_slow_request_with_504_and_cuts_a_long_response_both_logged_and_counted()
    {
        var routes = """{ "slow": { "ClusterId": "web", "Timeout": "00:00:00.500", "Match": { "Path": "/{**rest}" } } }""";
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, $$"""{ "web": {{TestConfig.Cluster("", _a)}} }""", routes), builder => builder.Logging.AddFakeLogging());
        using var requests = new MetricCollector<long>(proxy.Services.GetRequiredService<IMeterFactory>(), ImagingProxyTelemetry.MeterName, "imagingproxy.http.requests");
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };
        using var fast = await client.GetAsync("/delay?ms=1");
        Assert.Equal(HttpStatusCode.OK, fast.StatusCode);
        using var slow = await client.GetAsync("/delay?ms=10000");
        Assert.Equal(HttpStatusCode.GatewayTimeout, slow.StatusCode);

        // A download that outlasts the Timeout (the client reads nothing of it) is cut: the Timeout bounds the whole exchange.
        using (var download = await client.GetAsync("/big?bytes=1000000000", HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.OK, download.StatusCode);
            await requests.WaitForMeasurementsAsync(3, TimeSpan.FromSeconds(20));
        }

        var timedOut = requests.GetMeasurementSnapshot().Where(m => (string?)m.Tags["error"] == "RequestTimeout").Select(m => m.Tags["http.response.status_code"]).ToList();
        Assert.Equal([504, 200], timedOut);
        var logged = proxy.Services.GetFakeLogCollector().GetSnapshot().Where(r => r.Id.Id == 411).Select(r => r.Message).ToList();
        Assert.Equal(2, logged.Count);
        Assert.Contains("Request GET /delay (route slow, destination a) reached its route Timeout: answered 504.", logged);
        Assert.Contains("Request GET /big (route slow, destination a) reached its route Timeout: the response was cut short.", logged);
    }

    [Fact]
    public async Task A_request_no_route_matches_gets_a_404_that_says_so_logged_and_counted()
    {
        var routes = """
            { "dicomweb": { "ClusterId": "web", "Match": { "Path": "/dicom-web/{**rest}" } },
              "reads": { "ClusterId": "web", "Match": { "Path": "/wado/{**rest}", "Methods": [ "GET" ] } } }
            """;
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, $$"""{ "web": {{TestConfig.Cluster("", _a)}} }""", routes), builder => builder.Logging.AddFakeLogging());
        using var unrouted = new MetricCollector<long>(proxy.Services.GetRequiredService<IMeterFactory>(), ImagingProxyTelemetry.MeterName, "imagingproxy.http.unrouted");
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };

        // A viewer set up with /dicomweb instead of /dicom-web.
        using var wrongBase = await client.GetAsync("/dicomweb/studies?limit=1");
        Assert.Equal(HttpStatusCode.NotFound, wrongBase.StatusCode);
        Assert.Equal("404 Not Found: no route of listener 'Viewers' matches this request.\n", await wrongBase.Content.ReadAsStringAsync());
        using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/nothing"));
        Assert.Equal(HttpStatusCode.NotFound, head.StatusCode);

        // Anyone can reach this answer: a path that decodes to a line break and a terminal escape stays encoded in the log.
        using var forged = await client.GetAsync("/x%0D%0A2099-01-01%20fake%1B%5B31m");
        Assert.Equal(HttpStatusCode.NotFound, forged.StatusCode);

        // A path only a route for other methods matches gets routing's 405, logged and counted too; matched requests
        // are untouched.
        using var post = await client.PostAsync("/wado/x", new ByteArrayContent([1]));
        Assert.Equal(HttpStatusCode.MethodNotAllowed, post.StatusCode);
        Assert.Equal(["GET"], post.Content.Headers.Allow);
        using var routed = await client.GetAsync("/dicom-web/studies");
        Assert.Equal(HttpStatusCode.OK, routed.StatusCode);

        // The Admin endpoint's unknown paths keep their plain 404.
        using var admin = new HttpClient { BaseAddress = proxy.Url("Admin") };
        using var adminMiss = await admin.GetAsync("/nothing");
        Assert.Equal(HttpStatusCode.NotFound, adminMiss.StatusCode);
        Assert.Equal(string.Empty, await adminMiss.Content.ReadAsStringAsync());

        Assert.Equal(["Viewers 404", "Viewers 404", "Viewers 404", "Viewers 405"], unrouted.GetMeasurementSnapshot().Select(m => $"{m.Tags["listener"]} {m.Tags["http.response.status_code"]}"));
        var logged = proxy.Services.GetFakeLogCollector().GetSnapshot().Where(r => r.Id.Id is 414 or 415).Select(r => r.Message).ToList();
        Assert.Equal(
            [
                "Request GET /dicomweb/studies from 127.0.0.1 on listener Viewers matches no route: answered 404.",
                "Request HEAD /nothing from 127.0.0.1 on listener Viewers matches no route: answered 404.",
                "Request GET /x%0D%0A2099-01-01%20fake%1B%5B31m from 127.0.0.1 on listener Viewers matches no route: answered 404.",
                "Request POST /wado/x from 127.0.0.1 on listener Viewers: no route for this path takes POST; answered 405.",
            ],
            logged);
        Assert.DoesNotContain(_a.Requests, r => r.StartsWith("GET /dicomweb", StringComparison.Ordinal) || r.StartsWith("POST /wado", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_body_declared_over_the_routes_limit_gets_413_before_anything_reaches_the_server()
    {
        var routes = """{ "capped": { "ClusterId": "web", "MaxRequestBodySize": 1000, "Match": { "Path": "/{**rest}" } } }""";
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, $$"""{ "web": {{TestConfig.Cluster("", _a)}} }""", routes), builder => builder.Logging.AddFakeLogging());
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };

        using var small = await client.PostAsync("/up", new ByteArrayContent(new byte[1000]));
        Assert.Equal(HttpStatusCode.OK, small.StatusCode);
        using var large = await client.PostAsync("/up", new ByteArrayContent(new byte[5000]));

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, large.StatusCode);
        Assert.Single(_a.Requests, r => r == "POST /up");
        Assert.Equal("413 Payload Too Large: the request body (5000 bytes) is over the limit of 1000 bytes for route 'capped'.\n", await large.Content.ReadAsStringAsync());
        var logged = Assert.Single(proxy.Services.GetFakeLogCollector().GetSnapshot(), r => r.Id.Id == 412);
        Assert.Equal("Request POST /up (route capped) refused with 413 before forwarding: Content-Length 5000 is over the limit of 1000 bytes.", logged.Message);
    }

    [Fact]
    public async Task A_body_declared_over_the_limit_on_http2_gets_413_without_a_connection_header_warning()
    {
        // HTTP/2 has no Connection header (RFC 9113 §8.2.2): Kestrel drops it from a response with a warning (event 41)
        // that blames the application, once per refused upload.
        var routes = """{ "capped": { "ClusterId": "web", "MaxRequestBodySize": 1000, "Match": { "Path": "/{**rest}" } } }""";
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, $$"""{ "web": {{TestConfig.Cluster("", _a)}} }""", routes), builder => builder.Logging.AddFakeLogging());
        using var client = new HttpClient(_certificate.TrustingHandler())
        {
            BaseAddress = proxy.Url("Viewers", "https"),
            DefaultRequestVersion = HttpVersion.Version20,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };

        using var large = await client.PostAsync("/up", new ByteArrayContent(new byte[5000]));

        Assert.Equal(HttpVersion.Version20, large.Version);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, large.StatusCode);
        Assert.Empty(_a.Requests);
        var logged = proxy.Services.GetFakeLogCollector().GetSnapshot();
        Assert.Single(logged, r => r.Id.Id == 412);
        Assert.DoesNotContain(logged, r => r.Category == "Microsoft.AspNetCore.Server.Kestrel" && r.Level >= LogLevel.Warning);
    }

    [Fact]
    public async Task Passive_health_takes_a_destination_out_after_transport_failures()
    {
        var cluster = TestConfig.Cluster("""
            "LoadBalancingPolicy": "RoundRobin",
            "HealthCheck": { "Passive": { "Enabled": true, "ReactivationPeriod": "00:05:00" } }
            """, _a, _b);
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, $$"""{ "web": {{cluster}} }""", AllRoute));
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };
        var tracker = proxy.Services.GetRequiredService<DestinationHealthTracker>();
        var down = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        tracker.Transition += (_, destination, kind, _, now) =>
        {
            if (destination == "b" && kind == "passive" && now == DestinationHealth.Unhealthy)
            {
                down.TrySetResult();
            }
        };

        await _b.DisposeAsync();

        // Each GET that meets b is sent on to a (HttpRetryStep): the client sees none of the failures passive health counts.
        for (var i = 0; i < 40 && !down.Task.IsCompleted; i++)
        {
            using var response = await client.GetAsync("/studies");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        await down.Task.WaitAsync(TimeSpan.FromSeconds(30));
        for (var i = 0; i < 10; i++)
        {
            using var response = await client.GetAsync("/studies");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("a", response.Headers.GetValues("X-Backend").Single());
        }

        _b = await TestBackend.StartAsync("b");
    }

    [Fact]
    public async Task A_viewer_that_abandons_downloads_does_not_take_a_healthy_destination_out()
    {
        // A viewer scrolling through a series cancels the frames it no longer needs: YARP reports each as a forwarder
        // error (the client's), which its own passive policy counted against the destination.
        var cluster = TestConfig.Cluster("""
            "HealthCheck": { "Passive": { "Enabled": true, "ReactivationPeriod": "00:05:00" } }
            """, _a);
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, $$"""{ "web": {{cluster}} }""", AllRoute));
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };
        var tracker = proxy.Services.GetRequiredService<DestinationHealthTracker>();
        var transitions = new HealthTransitions(tracker);
        using var metrics = new MetricCollector<long>(proxy.Services.GetRequiredService<IMeterFactory>(), ImagingProxyTelemetry.MeterName, "imagingproxy.http.requests");

        for (var i = 0; i < 20; i++)
        {
            using var response = await client.GetAsync("/big?bytes=64000000", HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await using var body = await response.Content.ReadAsStreamAsync();
            var first = new byte[16 * 1024];
            await body.ReadExactlyAsync(first);
        }

        // Each abandoned download is recorded (as a client-side forwarder error) once the proxy has seen it end.
        await metrics.WaitForMeasurementsAsync(20, TimeSpan.FromSeconds(30));
        Assert.All(metrics.GetMeasurementSnapshot(), m => Assert.NotEqual("none", m.Tags["error"]));
        using var after = await client.GetAsync("/studies");
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
        Assert.NotEqual(DestinationHealth.Unhealthy, proxy.Services.GetRequiredService<IProxyStateLookup>().GetClusters().Single().Destinations["a"].Health.Passive);
        Assert.DoesNotContain("a passive Unhealthy", transitions.Seen);
    }

    [Fact]
    public async Task A_get_that_a_dead_destination_refused_goes_to_another_one_and_a_post_is_never_sent_twice()
    {
        using var dead = new ClosedPort();
        var cluster = $$"""
            { "LoadBalancingPolicy": "RoundRobin",
              "Destinations": { "a": { "Address": "{{_a.Url}}" }, "dead": { "Address": "http://127.0.0.1:{{dead.Port}}/" } } }
            """;
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, $$"""{ "retry-refused": {{cluster}} }""", RouteTo("retry-refused")), builder => builder.Logging.AddFakeLogging());
        using var retries = new MetricCollector<long>(proxy.Services.GetRequiredService<IMeterFactory>(), ImagingProxyTelemetry.MeterName, "imagingproxy.http.retries");
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };

        // Round robin alternates: every other request meets the dead destination first.
        for (var i = 0; i < 6; i++)
        {
            using var request = new HttpRequestMessage(i % 2 == 0 ? HttpMethod.Get : HttpMethod.Head, "/studies");
            using var response = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("a", response.Headers.GetValues("X-Backend").Single());
        }

        var retried = retries.GetMeasurementSnapshot();
        Assert.Equal(3, retried.Count);
        Assert.All(retried, m => Assert.Equal(("dead", "Request"), ((string?)m.Tags["destination"], (string?)m.Tags["error"])));
        var logged = proxy.Services.GetFakeLogCollector().GetSnapshot().Where(r => r.Id.Id == 413).Select(r => r.Message).ToList();
        Assert.Equal(3, logged.Count);
        Assert.All(logged, m => Assert.Matches(@"^Request (GET|HEAD) /studies: destination 'dead' of cluster 'retry-refused' failed before answering \(Request: .+\); sent to another destination, attempt 2 of at most 3\.$", m));

        // A POST may have been stored by the server that failed: it is answered 502, never sent again.
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 4; i++)
        {
            using var response = await client.PostAsync("/up", new ByteArrayContent(new byte[100]));
            statuses.Add(response.StatusCode);
        }

        Assert.Equal(2, statuses.Count(s => s == HttpStatusCode.BadGateway));
        Assert.Equal(2, statuses.Count(s => s == HttpStatusCode.OK));
        Assert.Equal(2, _a.Requests.Count(r => r == "POST /up"));
        Assert.Equal(3, retries.GetMeasurementSnapshot().Count);
    }

    [Fact]
    public async Task A_get_whose_connection_could_not_be_opened_in_time_goes_to_another_destination_by_default()
    {
        // A server that is powered off or behind a firewall that drops packets: no refusal comes, the connection is never
        // opened, and YARP's client gives up at its ConnectTimeout (15 s). The request never reached that server, so the
        // default Retry.On (Connect: "could not be opened in time", README) sends it to another destination.
        using var unreachable = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        unreachable.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        unreachable.Listen(0);
        var endPoint = (IPEndPoint)unreachable.LocalEndPoint!;
        var backlog = new List<Socket>();
        try
        {
            // The listener never accepts: once its backlog is full the kernel drops further SYNs, so connects hang.
            for (var i = 0; i < 3; i++)
            {
                var filler = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { Blocking = false };
                backlog.Add(filler);
                try
                {
                    filler.Connect(endPoint);
                }
                catch (SocketException e) when (e.SocketErrorCode is SocketError.WouldBlock or SocketError.InProgress)
                {
                }
            }

            var cluster = $$"""
                { "LoadBalancingPolicy": "FirstAlphabetical",
                  "Destinations": { "b": { "Address": "{{_a.Url}}" }, "a-unreachable": { "Address": "http://127.0.0.1:{{endPoint.Port}}/" } } }
                """;
            await using var proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, $$"""{ "retry-unreachable": {{cluster}} }""", RouteTo("retry-unreachable")));
            using var retries = new MetricCollector<long>(proxy.Services.GetRequiredService<IMeterFactory>(), ImagingProxyTelemetry.MeterName, "imagingproxy.http.retries");
            using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https"), Timeout = TimeSpan.FromSeconds(60) };

            using var response = await client.GetAsync("/studies");

            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("a", response.Headers.GetValues("X-Backend").Single());
            var retried = Assert.Single(retries.GetMeasurementSnapshot());
            Assert.Equal(("a-unreachable", "RequestTimedOut"), ((string?)retried.Tags["destination"], (string?)retried.Tags["error"]));
        }
        finally
        {
            foreach (var socket in backlog)
            {
                socket.Dispose();
            }
        }
    }

    [Theory]
    [InlineData(null)]
    [InlineData("BeforeResponse")]
    public async Task A_get_that_a_silent_destination_took_is_sent_on_only_with_retry_on_before_response(string? retryOn)
    {
        // Accepts connections (the kernel completes them into the backlog) and never answers a request: the request
        // reached a server, which may be working on it (an expensive query), so by default it is not sent to another.
        using var silent = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        silent.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        silent.Listen(16);
        var metadata = retryOn is null ? "" : $$""" "Metadata": { "Retry.On": "{{retryOn}}" }, """;
        var cluster = $$"""
            { "LoadBalancingPolicy": "FirstAlphabetical", "HttpRequest": { "ActivityTimeout": "00:00:02" }, {{metadata}}
              "Destinations": { "b": { "Address": "{{_a.Url}}" }, "a-silent": { "Address": "http://127.0.0.1:{{((IPEndPoint)silent.LocalEndPoint!).Port}}/" } } }
            """;
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, $$"""{ "retry-silent": {{cluster}} }""", RouteTo("retry-silent")));
        using var retries = new MetricCollector<long>(proxy.Services.GetRequiredService<IMeterFactory>(), ImagingProxyTelemetry.MeterName, "imagingproxy.http.retries");
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };

        using var response = await client.GetAsync("/studies");

        if (retryOn is null)
        {
            Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
            Assert.Empty(retries.GetMeasurementSnapshot());
        }
        else
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("a", response.Headers.GetValues("X-Backend").Single());
            var retried = Assert.Single(retries.GetMeasurementSnapshot());
            Assert.Equal(("a-silent", "RequestTimedOut"), ((string?)retried.Tags["destination"], (string?)retried.Tags["error"]));
        }
    }

    [Fact]
    public async Task A_client_pinned_with_the_strict_affinity_failure_policy_is_not_sent_elsewhere()
    {
        // FailurePolicy Return503Error: the operator wants a pinned client never moved. Its request to a dead pinned
        // destination gets that destination's 502, not a retry that the affinity step then refuses with 503.
        var cluster = TestConfig.Cluster("""
            "LoadBalancingPolicy": "RoundRobin",
            "SessionAffinity": { "Enabled": true, "Policy": "HashCookie", "FailurePolicy": "Return503Error", "AffinityKeyName": ".Strict" }
            """, _a, _b);
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, $$"""{ "retry-strict": {{cluster}} }""", RouteTo("retry-strict")), builder => builder.Logging.AddFakeLogging());
        using var retries = new MetricCollector<long>(proxy.Services.GetRequiredService<IMeterFactory>(), ImagingProxyTelemetry.MeterName, "imagingproxy.http.retries");
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };
        var cookieForB = await AffinityCookieOfAsync(client, "b");
        await _b.DisposeAsync();

        using var pinned = new HttpRequestMessage(HttpMethod.Get, "/studies");
        pinned.Headers.Add("Cookie", cookieForB);
        using var failed = await client.SendAsync(pinned);
        Assert.Equal(HttpStatusCode.BadGateway, failed.StatusCode);

        // A client not pinned yet is still retried.
        for (var i = 0; i < 4; i++)
        {
            using var fresh = await client.GetAsync("/studies");
            Assert.Equal(HttpStatusCode.OK, fresh.StatusCode);
        }

        var logged = proxy.Services.GetFakeLogCollector().GetSnapshot().Where(r => r.Id.Id == 413).ToList();
        Assert.Equal(retries.GetMeasurementSnapshot().Count, logged.Count);
        Assert.InRange(logged.Count, 1, 2);
        _b = await TestBackend.StartAsync("b");
    }

    /// <summary>The affinity cookie (<c>name=value</c>) that pins a client to <paramref name="backend"/>, from the first answers of a round-robin cluster.</summary>
    private static async Task<string> AffinityCookieOfAsync(HttpClient client, string backend)
    {
        for (var i = 0; i < 4; i++)
        {
            using var response = await client.GetAsync("/studies");
            if (response.Headers.GetValues("X-Backend").Single() == backend)
            {
                return response.Headers.GetValues("Set-Cookie").Single().Split(';')[0];
            }
        }

        throw new InvalidOperationException($"no answer from {backend} in 4 round-robin requests");
    }

    [Fact]
    public async Task After_a_retry_the_destination_that_answered_takes_over_the_clients_affinity()
    {
        var cluster = TestConfig.Cluster("""
            "LoadBalancingPolicy": "RoundRobin",
            "SessionAffinity": { "Enabled": true, "Policy": "HashCookie", "AffinityKeyName": ".Affinity" }
            """, _a, _b);
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, $$"""{ "retry-affinity": {{cluster}} }""", RouteTo("retry-affinity")));
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };
        var cookieForB = await AffinityCookieOfAsync(client, "b");
        await _b.DisposeAsync();

        using var request = new HttpRequestMessage(HttpMethod.Get, "/studies");
        request.Headers.Add("Cookie", cookieForB);
        using var retried = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, retried.StatusCode);
        Assert.Equal("a", retried.Headers.GetValues("X-Backend").Single());
        var cookieForA = retried.Headers.GetValues("Set-Cookie").Single().Split(';')[0];
        Assert.NotEqual(cookieForB, cookieForA);
        using var next = new HttpRequestMessage(HttpMethod.Get, "/studies");
        next.Headers.Add("Cookie", cookieForA);
        using var pinned = await client.SendAsync(next);
        Assert.Equal("a", pinned.Headers.GetValues("X-Backend").Single());
        _b = await TestBackend.StartAsync("b");
    }

    [Fact]
    public async Task A_retried_requests_trace_names_the_destination_that_answered_and_records_the_retry()
    {
        // Listeners are process-wide: the activity of this test's cluster is the one wanted.
        var stopped = new TaskCompletionSource<Activity>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == "Yarp.ReverseProxy",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                if (activity.TagObjects.Any(t => t is { Key: "proxy.cluster_id", Value: "retry-trace" }))
                {
                    stopped.TrySetResult(activity);
                }
            },
        };
        ActivitySource.AddActivityListener(listener);
        using var dead = new ClosedPort();
        var cluster = $$"""
            { "LoadBalancingPolicy": "FirstAlphabetical",
              "Destinations": { "a-dead": { "Address": "http://127.0.0.1:{{dead.Port}}/" }, "b": { "Address": "{{_a.Url}}" } } }
            """;
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, $$"""{ "retry-trace": {{cluster}} }""", RouteTo("retry-trace")));
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };

        using var response = await client.GetAsync("/studies");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        // The activity stops as the response completes, just after the client has it.
        var forwarded = await stopped.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(["b"], forwarded.TagObjects.Where(t => t.Key == "proxy.destination_id").Select(t => (string?)t.Value));
        Assert.Single(forwarded.TagObjects, t => t.Key == "proxy.cluster_id");
        var retry = Assert.Single(forwarded.Events);
        Assert.Equal("imagingproxy.retry", retry.Name);
        Assert.Equal("a-dead", retry.Tags.Single(t => t.Key == "proxy.destination_id").Value);
    }

    [Fact]
    public async Task Retry_max_attempts_of_one_turns_retries_off()
    {
        using var dead = new ClosedPort();
        var cluster = $$"""
            { "LoadBalancingPolicy": "RoundRobin", "Metadata": { "Retry.MaxAttempts": "1" },
              "Destinations": { "a": { "Address": "{{_a.Url}}" }, "dead": { "Address": "http://127.0.0.1:{{dead.Port}}/" } } }
            """;
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, $$"""{ "retry-off": {{cluster}} }""", RouteTo("retry-off")));
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };

        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 4; i++)
        {
            using var response = await client.GetAsync("/studies");
            statuses.Add(response.StatusCode);
        }

        Assert.Equal(2, statuses.Count(s => s == HttpStatusCode.BadGateway));
    }

    [Fact]
    public async Task A_get_answered_with_a_status_in_Retry_StatusCodes_is_sent_on_and_the_client_sees_only_the_other_answer()
    {
        var cluster = TestConfig.Cluster("""
            "LoadBalancingPolicy": "RoundRobin", "Metadata": { "Retry.StatusCodes": "502, 503" }
            """, _a, _b);
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, $$"""{ "retry-status": {{cluster}} }""", RouteTo("retry-status")), builder => builder.Logging.AddFakeLogging());
        using var retries = new MetricCollector<long>(proxy.Services.GetRequiredService<IMeterFactory>(), ImagingProxyTelemetry.MeterName, "imagingproxy.http.retries");
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };
        _b.FailWith = 503;

        for (var i = 0; i < 4; i++)
        {
            using var response = await client.GetAsync("/studies");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("a", response.Headers.GetValues("X-Backend").Single());
            Assert.False(response.Headers.Contains("X-Failed"));
            Assert.Equal("hello from a: /studies", await response.Content.ReadAsStringAsync());
        }

        // Round robin counts the retries' picks too: b took one to three of the GETs, each answered by a in the end.
        var atB = _b.Requests.Count(r => r == "GET /studies");
        Assert.InRange(atB, 1, 3);
        Assert.Equal(4, _a.Requests.Count(r => r == "GET /studies"));
        Assert.All(retries.GetMeasurementSnapshot(), m => Assert.Equal(("b", "Status503"), ((string?)m.Tags["destination"], (string?)m.Tags["error"])));
        Assert.Equal(atB, retries.GetMeasurementSnapshot().Count);
        var logged = proxy.Services.GetFakeLogCollector().GetSnapshot().Where(r => r.Id.Id == 416).ToList();
        Assert.Equal(atB, logged.Count);
        Assert.Equal("Request GET /studies: destination 'b' of cluster 'retry-status' answered 503, a status in Retry.StatusCodes; sent to another destination, attempt 2 of at most 3.", logged[0].Message);

        // A HEAD is a read too.
        for (var i = 0; i < 2; i++)
        {
            using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/studies"));
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);
            Assert.Equal("a", head.Headers.GetValues("X-Backend").Single());
        }
    }

    [Fact]
    public async Task Answers_not_listed_in_Retry_StatusCodes_and_posts_reach_the_client_as_the_server_sent_them()
    {
        var cluster = TestConfig.Cluster("""
            "LoadBalancingPolicy": "RoundRobin", "Metadata": { "Retry.StatusCodes": "503" }
            """, _a, _b);
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, $$"""{ "retry-status-other": {{cluster}} }""", RouteTo("retry-status-other")));
        using var retries = new MetricCollector<long>(proxy.Services.GetRequiredService<IMeterFactory>(), ImagingProxyTelemetry.MeterName, "imagingproxy.http.retries");
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };

        _b.FailWith = 500;
        var gets = new List<string>();
        for (var i = 0; i < 4; i++)
        {
            using var response = await client.GetAsync("/studies");
            gets.Add($"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }

        _b.FailWith = 503;
        var posts = new List<string>();
        for (var i = 0; i < 4; i++)
        {
            using var response = await client.PostAsync("/up", new StringContent("study"));
            posts.Add($"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }

        Assert.Equal(2, gets.Count(g => g == "500 status 500 from b"));
        Assert.Equal(2, posts.Count(p => p == "503 status 503 from b"));
        Assert.Empty(retries.GetMeasurementSnapshot());
    }

    [Fact]
    public async Task When_every_destination_answers_a_listed_status_the_client_gets_the_last_answer_whole()
    {
        var cluster = TestConfig.Cluster("""
            "LoadBalancingPolicy": "RoundRobin", "Metadata": { "Retry.StatusCodes": "5xx" }
            """, _a, _b);
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, $$"""{ "retry-status-all": {{cluster}} }""", RouteTo("retry-status-all")));
        using var retries = new MetricCollector<long>(proxy.Services.GetRequiredService<IMeterFactory>(), ImagingProxyTelemetry.MeterName, "imagingproxy.http.retries");
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };
        _a.FailWith = 503;
        _b.FailWith = 504;

        using var response = await client.GetAsync("/studies");

        // Two destinations, two attempts: the second's answer goes through with its body and headers.
        var backend = response.Headers.GetValues("X-Backend").Single();
        Assert.Equal(backend == "a" ? HttpStatusCode.ServiceUnavailable : HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Equal(backend, response.Headers.GetValues("X-Failed").Single());
        Assert.Equal($"status {(int)response.StatusCode} from {backend}", await response.Content.ReadAsStringAsync());
        Assert.Single(retries.GetMeasurementSnapshot());
        Assert.Equal(2, _a.Requests.Count + _b.Requests.Count);
    }

    [Fact]
    public async Task The_answer_of_the_last_attempt_Retry_MaxAttempts_allows_goes_through_whole_while_destinations_are_left()
    {
        await using var c = await TestBackend.StartAsync("c");
        var cluster = TestConfig.Cluster("""
            "LoadBalancingPolicy": "RoundRobin", "Metadata": { "Retry.StatusCodes": "5xx", "Retry.MaxAttempts": "2" }
            """, _a, _b, c);
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(_certificate, $$"""{ "retry-status-max": {{cluster}} }""", RouteTo("retry-status-max")));
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };
        _a.FailWith = 503;
        _b.FailWith = 504;
        c.FailWith = 502;

        using var response = await client.GetAsync("/studies");

        // Two attempts, a third destination left: the second answer is the client's, not a 502 of the proxy's.
        var backend = response.Headers.GetValues("X-Backend").Single();
        Assert.Equal(backend, response.Headers.GetValues("X-Failed").Single());
        Assert.Equal($"status {(int)response.StatusCode} from {backend}", await response.Content.ReadAsStringAsync());
        Assert.Equal(2, _a.Requests.Count + _b.Requests.Count + c.Requests.Count);
    }

    private static string RouteTo(string cluster) => $$"""{ "all": { "ClusterId": "{{cluster}}", "Match": { "Path": "/{**rest}" } } }""";
    [Fact]
    public async Task A_w3c_trace_context_reaches_the_backend_in_the_same_trace()
    {
        var config = TestConfig.Build(_certificate, $$"""{ "web": {{TestConfig.Cluster("", _a)}} }""", AllRoute);
        await using var proxy = await TestProxy.StartAsync(config);
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };
        const string TraceId = "4bf92f3577b34da6a3ce929d0e0e4736";
        using var request = new HttpRequestMessage(HttpMethod.Get, "/studies");
        request.Headers.TryAddWithoutValidation("traceparent", $"00-{TraceId}-00f067aa0ba902b7-01");

        using var response = await client.SendAsync(request);

        var seen = response.Headers.GetValues("X-Traceparent-Seen").Single();
        Assert.StartsWith($"00-{TraceId}-", seen, StringComparison.Ordinal);
    }
}
