using System.Diagnostics.Metrics;
using System.Net;
using ImagingProxy.Balancing;
using ImagingProxy.PeerTests.Peers;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace ImagingProxy.PeerTests.Forwarding;

// Real peer: an nginx (Debian) server with MaxConcurrent 1 and the cluster's QueueTimeout; /slow sends a 16 KiB file at
// 4 KiB/s (nginx limit_rate), so a viewer's download holds the server's one place for about four seconds.
public sealed class NginxQueueTests : IAsyncLifetime
{
    private readonly TempDirectory _files = TempDirectory.Create("imagingproxy-queue-");
    private NginxBehindProxy? _peers;

    public async Task InitializeAsync()
    {
        var body = Path.Combine(_files.Path, "frames.bin");
        await File.WriteAllBytesAsync(body, new byte[16 * 1024]);
        _peers = await NginxBehindProxy.StartAsync(
            [$$"""location = /slow { limit_rate 4k; default_type application/octet-stream; alias {{body}}; } location / { return 200 "ok\n"; }"""],
            nodes => (
                $$"""
                { "web": {
                    "Metadata": { "QueueTimeout": "00:00:30" },
                    "Destinations": { "a": { "Address": "{{nodes[0].BaseAddress}}", "Metadata": { "MaxConcurrent": "1" } } } } }
                """,
                """{ "all": { "ClusterId": "web", "Match": { "Path": "/{**rest}" } } }"""));
    }

    public async Task DisposeAsync()
    {
        if (_peers is not null)
        {
            await _peers.DisposeAsync();
        }

        _files.Dispose();
    }

    [Fact(Timeout = 60_000)]
    public async Task A_request_to_a_full_server_waits_in_the_queue_and_is_served_when_the_download_ends()
    {
        var meters = _peers!.Proxy.Services.GetRequiredService<IMeterFactory>();
        using var queued = new MetricCollector<long>(meters, "ImagingProxy", "imagingproxy.http.requests.queued");
        using var waits = new MetricCollector<double>(meters, "ImagingProxy", "imagingproxy.http.queue.wait.duration");
        using var client = _peers.ViewersClient();

        // The slow download holds the server's one place until its last byte.
        using var download = await client.GetAsync("/slow", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, download.StatusCode);

        // A second request finds the server full: it waits (without a queue it got 503 at once) ...
        var second = client.GetAsync("/studies");
        await queued.WaitForMeasurementsAsync(1, TimeSpan.FromSeconds(30));
        Assert.False(second.IsCompleted);

        // ... and is served once the download has ended.
        Assert.Equal(16 * 1024, (await download.Content.ReadAsByteArrayAsync()).Length);
        using var answer = await second;
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        Assert.Equal("ok\n", await answer.Content.ReadAsStringAsync());
        Assert.Equal(QueueResults.Placed, Assert.Single(waits.GetMeasurementSnapshot()).Tags["result"]);
        await _peers.Nodes[0].WaitForAccessLogAsync(lines => lines.Any(line => line.StartsWith("GET /studies", StringComparison.Ordinal)), TimeSpan.FromSeconds(10));
    }
}
