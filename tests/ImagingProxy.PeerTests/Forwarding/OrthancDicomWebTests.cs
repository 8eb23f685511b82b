using System.Net;
using System.Net.Http.Headers;
using ImagingProxy.Health;
using ImagingProxy.PeerTests.Peers;
using ImagingProxy.Testing;
using Microsoft.Extensions.DependencyInjection;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.PeerTests.Forwarding;

// Real peer: Orthanc with the DICOMweb plugin (Debian orthanc, orthanc-dicomweb); dcmtk dump2dcm makes the instances.
public sealed class OrthancDicomWebTests : IAsyncLifetime
{
    private readonly TestCertificate _certificate = new();
    private readonly TestDicomFiles _files = TestDicomFiles.Create();
    private OrthancNode _orthanc = null!;
    private TestDicomFile _stored = null!;
    private TestProxy _proxy = null!;

    public async Task InitializeAsync()
    {
        _orthanc = await OrthancNode.StartAsync(new OrthancOptions { AeTitle = "ORTHANC_W" });
        _stored = await _files.CreateAsync();
        await _orthanc.UploadInstanceAsync(_stored.Path);
        var config = $$"""
            {
              "Kestrel": { "Limits": { "MaxRequestBodySize": 1024 }, "Endpoints": {
                "Viewers": { "Url": "https://127.0.0.1:0", "Certificate": { "Path": "{{_certificate.CertificatePath}}", "KeyPath": "{{_certificate.KeyPath}}" } },
                "Xds": { "Url": "http://127.0.0.1:0" }, "Admin": { "Url": "http://127.0.0.1:0" } } },
              "ReverseProxy": {
                "Routes": {
                  "dicomweb": { "ClusterId": "pacs-web", "Match": { "Path": "/dicom-web/{**rest}" }, "MaxRequestBodySize": -1 },
                  "capped": { "ClusterId": "pacs-web", "Match": { "Path": "/capped/dicom-web/{**rest}" }, "Transforms": [ { "PathRemovePrefix": "/capped" } ] },
                  "expect": { "ClusterId": "pacs-web-expect", "Match": { "Path": "/expect/dicom-web/{**rest}" }, "MaxRequestBodySize": -1, "Transforms": [ { "PathRemovePrefix": "/expect" } ] } },
                "Clusters": {
                  "pacs-web-expect": { "Metadata": { "ExpectContinue": "Large" }, "Destinations": { "orthanc": { "Address": "{{_orthanc.BaseAddress}}" } } },
                  "pacs-web": {
                  "HealthCheck": { "Active": { "Enabled": true, "Interval": "00:00:00.500", "Timeout": "00:00:05", "Path": "/dicom-web/studies", "Query": "?limit=1" } },
                  "Metadata": { "HealthCheck.Headers": "Accept: application/dicom+json" },
                  "Destinations": { "orthanc": { "Address": "{{_orthanc.BaseAddress}}" } } } }
              }
            }
            """;
        _proxy = await TestProxy.StartAsync(config);
    }

    public async Task DisposeAsync()
    {
        await _proxy.DisposeAsync();
        await _orthanc.DisposeAsync();
        _files.Dispose();
        _certificate.Dispose();
    }

    [Fact(Timeout = 120_000)]
    public async Task Qido_and_wado_through_the_proxy_equal_direct_access_with_urls_that_name_the_proxy()
    {
        using var viaProxy = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = _proxy.Url("Viewers", "https") };
        using var direct = new HttpClient { BaseAddress = _orthanc.BaseAddress };
        var study = _stored.StudyInstanceUid;
        var paths = new (string Path, string Accept)[]
        {
            ("/dicom-web/studies?limit=10", "application/dicom+json"),
            ($"/dicom-web/studies/{study}/series", "application/dicom+json"),
            ($"/dicom-web/studies/{study}/metadata", "application/dicom+json"),
            ($"/dicom-web/studies/{study}/series/{_stored.SeriesInstanceUid}/instances/{_stored.SopInstanceUid}", "multipart/related; type=\"application/dicom\""),
            ("/dicom-web/studies/1.2.3.4.5.6.7.8.9/metadata", "application/dicom+json"),
        };
        foreach (var (path, accept) in paths)
        {
            using var expected = await SendAsync(direct, path, accept);
            using var actual = await SendAsync(viaProxy, path, accept);
            Assert.Equal(expected.StatusCode, actual.StatusCode);
            var expectedBody = await expected.Content.ReadAsByteArrayAsync();
            var actualBody = await actual.Content.ReadAsByteArrayAsync();
            if (expected.Content.Headers.ContentType?.MediaType == "multipart/related")
            {
                // Orthanc picks a fresh multipart boundary per response: compare the DICOM part, which must be identical.
                Assert.Equal(expectedBody.Length, actualBody.Length);
                Assert.True(Contains(actualBody, await File.ReadAllBytesAsync(_stored.Path)), "the instance bytes arrive unchanged");
            }
            else
            {
                // Orthanc writes the URLs it returns (RetrieveURL, BulkDataURI) for the client's view, which the proxy
                // tells it in the Forwarded header: the proxy's scheme and address instead of Orthanc's own.
                var proxied = System.Text.Encoding.UTF8.GetString(actualBody);
                Assert.DoesNotContain(_orthanc.BaseAddress.Authority, proxied, StringComparison.Ordinal);
                Assert.Equal(System.Text.Encoding.UTF8.GetString(expectedBody), proxied.Replace(viaProxy.BaseAddress!.GetLeftPart(UriPartial.Authority), direct.BaseAddress!.GetLeftPart(UriPartial.Authority), StringComparison.Ordinal));
            }
        }

        // A study found by QIDO-RS is retrieved through the proxy: its RetrieveURL names the proxy.
        using var found = await SendAsync(viaProxy, $"/dicom-web/studies?StudyInstanceUID={study}", "application/dicom+json");
        var retrieveUrl = System.Text.Json.JsonDocument.Parse(await found.Content.ReadAsStringAsync()).RootElement[0].GetProperty("00081190").GetProperty("Value")[0].GetString();
        Assert.Equal(new Uri(viaProxy.BaseAddress!, $"/dicom-web/studies/{study}").ToString(), retrieveUrl);
        using var retrieved = await SendAsync(viaProxy, new Uri(retrieveUrl!).PathAndQuery + "/metadata", "application/dicom+json");
        Assert.Equal(HttpStatusCode.OK, retrieved.StatusCode);

        // A viewer with the wrong base path: Orthanc's own answer would be its 404 for an unknown URI; the proxy says
        // that no route took the request, and Orthanc never sees it.
        using var wrongBase = await viaProxy.GetAsync("/dicomweb/studies?limit=10");
        Assert.Equal(HttpStatusCode.NotFound, wrongBase.StatusCode);
        Assert.Equal("404 Not Found: no route of listener 'Viewers' matches this request.\n", await wrongBase.Content.ReadAsStringAsync());
    }

    [Fact(Timeout = 120_000)]
    public async Task A_qido_rs_name_query_with_a_raw_caret_finds_the_study_through_the_proxy_as_directly()
    {
        // Orthanc matches QIDO-RS values as written, without decoding them: PatientName=Test^Pat* finds the study, its
        // escaped form Test%5EPat* nothing. Both clients send the query verbatim, as curl and browsers' address bars do.
        var query = $"dicom-web/studies?PatientName=Test^Pat*&StudyInstanceUID={_stored.StudyInstanceUid}";
        var options = new UriCreationOptions { DangerousDisablePathAndQueryCanonicalization = true };
        using var viaProxy = new HttpClient(_certificate.TrustingHandler());
        using var direct = new HttpClient();
        using var expected = await SendAsync(direct, new Uri(_orthanc.BaseAddress + query, options), "application/dicom+json");
        using var actual = await SendAsync(viaProxy, new Uri(_proxy.Url("Viewers", "https") + query, options), "application/dicom+json");

        Assert.Contains(_stored.StudyInstanceUid, await expected.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, actual.StatusCode);
        Assert.Contains(_stored.StudyInstanceUid, await actual.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact(Timeout = 120_000)]
    public async Task Stow_rs_through_the_proxy_stores_the_instance()
    {
        // The route lifts the configured Kestrel:Limits:MaxRequestBodySize (1 KiB) with its own -1.
        var file = await _files.CreateAsync();
        using var content = await StowContentAsync(file);
        Assert.True(content.Headers.ContentLength > 1024);
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = _proxy.Url("Viewers", "https") };
        using var response = await client.PostAsync("/dicom-web/studies", content);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);

        var studies = await _orthanc.GetJsonAsync($"dicom-web/studies?StudyInstanceUID={file.StudyInstanceUid}");
        Assert.Equal(1, studies.GetArrayLength());
    }

    [Fact(Timeout = 120_000)]
    public async Task Kestrel_limits_cap_stow_rs_on_a_route_without_its_own_limit()
    {
        var file = await _files.CreateAsync();
        using var content = await StowContentAsync(file);
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = _proxy.Url("Viewers", "https") };
        using var response = await client.PostAsync("/capped/dicom-web/studies", content);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);

        // Nothing reached Orthanc; a small request on the same route still goes through.
        var studies = await _orthanc.GetJsonAsync($"dicom-web/studies?StudyInstanceUID={file.StudyInstanceUid}");
        Assert.Equal(0, studies.GetArrayLength());
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/capped/dicom-web/studies?StudyInstanceUID={_stored.StudyInstanceUid}");
        request.Headers.Accept.ParseAdd("application/dicom+json");
        using var query = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, query.StatusCode);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_stow_rs_over_1_MiB_with_expect_continue_is_stored_by_orthanc_which_never_answers_100()
    {
        // ExpectContinue Large asks Orthanc first; Orthanc sends no "100 Continue" (it waits for the body), so .NET sends
        // the body after its 1 s Expect100ContinueTimeout and the instances are stored: slower, never lost.
        var files = new[] { await _files.CreateAsync(), await _files.CreateAsync(), await _files.CreateAsync() };
        using var content = await StowContentAsync(files);
        Assert.True(content.Headers.ContentLength > 1 << 20);
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = _proxy.Url("Viewers", "https") };
        using var response = await client.PostAsync("/expect/dicom-web/studies", content);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        foreach (var file in files)
        {
            var studies = await _orthanc.GetJsonAsync($"dicom-web/studies?StudyInstanceUID={file.StudyInstanceUid}");
            Assert.Equal(1, studies.GetArrayLength());
        }
    }

    private static async Task<MultipartContent> StowContentAsync(params TestDicomFile[] files)
    {
        var content = new MultipartContent("related", "ImagingProxyBoundary");
        content.Headers.ContentType!.Parameters.Add(new NameValueHeaderValue("type", "\"application/dicom\""));
        foreach (var file in files)
        {
            var part = new ByteArrayContent(await File.ReadAllBytesAsync(file.Path));
            part.Headers.ContentType = new MediaTypeHeaderValue("application/dicom");
            content.Add(part);
        }

        return content;
    }

    [Fact(Timeout = 120_000)]
    public async Task The_qido_probe_marks_a_live_orthanc_healthy_and_a_killed_one_unhealthy()
    {
        var state = _proxy.Services.GetRequiredService<IProxyStateLookup>();
        var tracker = _proxy.Services.GetRequiredService<DestinationHealthTracker>();
        var healthy = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var unhealthy = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        tracker.Transition += (_, _, kind, _, now) =>
        {
            if (kind == "active")
            {
                (now == DestinationHealth.Unhealthy ? unhealthy : healthy).TrySetResult();
            }
        };

        Assert.True(state.TryGetCluster("pacs-web", out var cluster));
        var destination = cluster.Destinations["orthanc"];
        if (destination.Health.Active != DestinationHealth.Healthy)
        {
            await healthy.Task.WaitAsync(TimeSpan.FromSeconds(30));
        }

        Assert.Equal(DestinationHealth.Healthy, destination.Health.Active);
        await _orthanc.KillAsync();
        await unhealthy.Task.WaitAsync(TimeSpan.FromSeconds(60));
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = _proxy.Url("Viewers", "https") };
        using var response = await client.GetAsync("/dicom-web/studies");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
    }

    [Fact(Timeout = 120_000)]
    public async Task Qido_and_wado_requests_that_meet_a_dead_web_node_are_answered_by_orthanc()
    {
        // No health checks: the dead node stays in the rotation, and each GET that meets it goes on to Orthanc.
        var config = $$"""
            {
              "Kestrel": { "Endpoints": {
                "Viewers": { "Url": "https://127.0.0.1:0", "Certificate": { "Path": "{{_certificate.CertificatePath}}", "KeyPath": "{{_certificate.KeyPath}}" } },
                "Xds": { "Url": "http://127.0.0.1:0" }, "Admin": { "Url": "http://127.0.0.1:0" } } },
              "ReverseProxy": {
                "Routes": { "dicomweb": { "ClusterId": "pacs-web-retry", "Match": { "Path": "/dicom-web/{**rest}" } } },
                "Clusters": { "pacs-web-retry": { "LoadBalancingPolicy": "RoundRobin",
                  "Destinations": { "dead": { "Address": "http://127.0.0.1:{{FreePort.Next()}}/" }, "orthanc": { "Address": "{{_orthanc.BaseAddress}}" } } } }
              }
            }
            """;
        await using var proxy = await TestProxy.StartAsync(config);
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };
        var study = _stored.StudyInstanceUid;
        for (var i = 0; i < 3; i++)
        {
            using var studies = await SendAsync(client, "/dicom-web/studies?limit=10", "application/dicom+json");
            Assert.Equal(HttpStatusCode.OK, studies.StatusCode);
            Assert.Contains(study, await studies.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            using var instance = await SendAsync(client, $"/dicom-web/studies/{study}/series/{_stored.SeriesInstanceUid}/instances/{_stored.SopInstanceUid}", "multipart/related; type=\"application/dicom\"");
            Assert.Equal(HttpStatusCode.OK, instance.StatusCode);
            Assert.True(Contains(await instance.Content.ReadAsByteArrayAsync(), await File.ReadAllBytesAsync(_stored.Path)), "the instance bytes arrive unchanged");
        }

        using var admin = new HttpClient { BaseAddress = proxy.Url("Admin") };
        var metrics = await admin.GetStringAsync("/metrics");
        var retried = metrics.Split('\n').Where(l => l.StartsWith("imagingproxy_http_retries_total{", StringComparison.Ordinal) && l.Contains("cluster=\"pacs-web-retry\"", StringComparison.Ordinal)).ToList();
        var line = Assert.Single(retried);
        Assert.Contains("destination=\"dead\"", line, StringComparison.Ordinal);
        Assert.Contains("error=\"Request\"", line, StringComparison.Ordinal);
        Assert.Equal("3", line.Split(' ')[1]);
    }

    private static Task<HttpResponseMessage> SendAsync(HttpClient client, string path, string accept)
        => SendAsync(client, new Uri(path, UriKind.RelativeOrAbsolute), accept);

    private static Task<HttpResponseMessage> SendAsync(HttpClient client, Uri uri, string accept)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, uri);
        request.Headers.TryAddWithoutValidation("Accept", accept);
        return client.SendAsync(request);
    }

    private static bool Contains(byte[] haystack, byte[] needle) => haystack.AsSpan().IndexOf(needle) >= 0;
}
