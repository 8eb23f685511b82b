using System.Net;
using System.Net.Http.Headers;
using System.Text;
using ImagingProxy.Forwarding;
using ImagingProxy.Testing;

namespace ImagingProxy.Tests.Balancing;

/// <summary>
/// XDS: the route's cluster is the registry; ITI-41/43 are moved to the repository cluster, whose own weights decide
/// (YARP hands a load-balancing policy the route's cluster). In-process backends.
/// </summary>
public sealed class XdsWeightsTests
{
    [Fact(Timeout = 60_000)]
    public async Task The_repository_clusters_weights_balance_the_requests_moved_to_it()
    {
        using var certificate = new TestCertificate();
        await using var registry = await TestBackend.StartAsync("registry");
        await using var r1 = await TestBackend.StartAsync("r1");
        await using var r2 = await TestBackend.StartAsync("r2");
        var clusters = $$"""
            {
              "xds-registry": {{TestConfig.Cluster("", registry)}},
              "xds-repository": { "LoadBalancingPolicy": "RoundRobin", "Destinations": {
                  "r1": { "Address": "{{r1.Url}}", "Metadata": { "Weight": "9" } },
                  "r2": { "Address": "{{r2.Url}}" } } }
            }
            """;
        var settings = """{ "Xds": { "RegistryCluster": "xds-registry", "RepositoryCluster": "xds-repository" } }""";
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(certificate, clusters, "{}", settings));
        using var client = new HttpClient { BaseAddress = proxy.Url("Xds") };

        var served = new List<string>();
        for (var i = 0; i < 20; i++)
        {
            using var content = new StringContent(Envelope(XdsAction.RetrieveDocumentSet), Encoding.UTF8);
            content.Headers.ContentType = MediaTypeHeaderValue.Parse($"application/soap+xml; charset=UTF-8; action=\"{XdsAction.RetrieveDocumentSet}\"");
            using var response = await client.PostAsync("/xds", content);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            served.Add(response.Headers.GetValues("X-Backend").Single());
        }

        // Weights 9 and 1, smooth round robin: 18 and 2 (the registry has no weights: YARP's round robin would give 10 and 10).
        Assert.Equal(18, served.Count(s => s == "r1"));
        Assert.Equal(2, served.Count(s => s == "r2"));
    }

    private static string Envelope(string action) => $"""
        <soapenv:Envelope xmlns:soapenv="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://www.w3.org/2005/08/addressing">
          <soapenv:Header><wsa:Action soapenv:mustUnderstand="1">{action}</wsa:Action></soapenv:Header>
          <soapenv:Body/>
        </soapenv:Envelope>
        """;
}
