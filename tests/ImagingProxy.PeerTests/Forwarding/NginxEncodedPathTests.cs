using System.Net;
using ImagingProxy.PeerTests.Peers;

namespace ImagingProxy.PeerTests.Forwarding;

// Real peer: nginx (Debian) behind the proxy, its access log showing each request line as it arrived.
public sealed class NginxEncodedPathTests : IAsyncLifetime
{
    private NginxBehindProxy? _peers;

    public async Task InitializeAsync()
        => _peers = await NginxBehindProxy.StartAsync(
            ["""location / { return 200 "ok\n"; }"""],
            nodes => (
                $$"""{ "web": { "Destinations": { "nginx": { "Address": "{{nodes[0].BaseAddress}}" } } } }""",
                """
                {
                  "dicomweb": { "ClusterId": "web", "Match": { "Path": "/dicom-web/{**rest}" } },
                  "pacs1": { "ClusterId": "web", "Match": { "Path": "/pacs1/{**rest}" },
                    "Transforms": [ { "PathRemovePrefix": "/pacs1" }, { "QueryValueParameter": "site", "Append": "pacs1" } ] }
                }
                """));

    public async Task DisposeAsync()
    {
        if (_peers is not null)
        {
            await _peers.DisposeAsync();
        }
    }

    [Theory(Timeout = 60_000)]
    [InlineData("/dicom-web/studies/1.2%2F3/series", "/dicom-web/studies/1.2%2F3/series")]
    [InlineData("/dicom-web/studies/1.2%252F3?includefield=%2F", "/dicom-web/studies/1.2%252F3?includefield=%2F")]
    [InlineData("/dicom-web/studies/%C3%A9%2f", "/dicom-web/studies/%C3%A9%2f")]
    [InlineData("/pacs1/studies/1.2%2F3?limit=5", "/studies/1.2%2F3?limit=5&site=pacs1")]
    [InlineData("/dicom-web/studies/1.2.3", "/dicom-web/studies/1.2.3")]
    public async Task An_encoded_slash_reaches_the_server_as_the_client_wrote_it(string sent, string received)
    {
        using var client = _peers!.ViewersClient();
        var marker = Guid.NewGuid().ToString("N");
        var separator = sent.Contains('?', StringComparison.Ordinal) ? '&' : '?';

        using var response = await client.GetAsync(new Uri($"{sent}{separator}m={marker}", UriKind.Relative));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var lines = await _peers.Nodes[0].WaitForAccessLogAsync(lines => lines.Any(line => line.Contains(marker, StringComparison.Ordinal)), TimeSpan.FromSeconds(30));
        var path = lines.Single(line => line.Contains(marker, StringComparison.Ordinal)).Split(' ')[1];
        var expected = received.Contains('?', StringComparison.Ordinal)
            ? received.Insert(received.IndexOf('?', StringComparison.Ordinal) + 1, $"m={marker}&")
            : $"{received}?m={marker}";
        Assert.Equal(SortQuery(expected), SortQuery(path));
    }

    /// <summary>The path with its query parameters in order (the proxy may append the route's parameter anywhere after).</summary>
    private static string SortQuery(string target)
    {
        var query = target.IndexOf('?', StringComparison.Ordinal);
        return query < 0 ? target : target[..query] + "?" + string.Join('&', target[(query + 1)..].Split('&').Order(StringComparer.Ordinal));
    }
}
