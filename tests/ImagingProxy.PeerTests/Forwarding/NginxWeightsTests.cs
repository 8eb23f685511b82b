using System.Text.Json;
using System.Threading.Channels;
using ImagingProxy.PeerTests.Peers;

namespace ImagingProxy.PeerTests.Forwarding;

// Real peers: two nginx (Debian) servers behind an HTTP cluster with destination weights 3 and 1, slow start and active
// health. Server b's health endpoint answers 503 while a file exists.
public sealed class NginxWeightsTests : IAsyncLifetime
{
    private readonly TempDirectory _flags = TempDirectory.Create("imagingproxy-weights-");
    private ChannelReader<string>? _transitions;
    private NginxBehindProxy? _peers;

    private string DownFlag => Path.Combine(_flags.Path, "down");

    public async Task InitializeAsync()
    {
        _peers = await NginxBehindProxy.StartAsync(
            ["""location / { return 200 "a\n"; }""", $$"""location /health { if (-f {{DownFlag}}) { return 503; } return 200; } location / { return 200 "b\n"; }"""],
            nodes => (
                $$"""
                { "web": {
                    "LoadBalancingPolicy": "RoundRobin",
                    "HealthCheck": { "Active": { "Enabled": true, "Interval": "00:00:00.500", "Timeout": "00:00:05", "Path": "/health" } },
                    "Metadata": { "SlowStart": "00:02:00", "ConsecutiveFailuresHealthPolicy.Threshold": "1" },
                    "Destinations": {
                      "a": { "Address": "{{nodes[0].BaseAddress}}", "Metadata": { "Weight": "3" } },
                      "b": { "Address": "{{nodes[1].BaseAddress}}" } } } }
                """,
                """{ "all": { "ClusterId": "web", "Match": { "Path": "/{**rest}" } } }"""));
        _transitions = ViewerSteps.ActiveTransitions(_peers.Proxy, "b");
    }

    public async Task DisposeAsync()
    {
        if (_peers is not null)
        {
            await _peers.DisposeAsync();
        }

        _flags.Dispose();
    }

    [Fact(Timeout = 60_000)]
    public async Task Servers_share_requests_by_their_weights()
    {
        using var client = _peers!.ViewersClient();

        var served = await ViewerSteps.GetAsync(client, 40);

        // Round robin, smooth and weighted: a a b a, ten times.
        Assert.Equal(30, served.Count(s => s == "a\n"));
        Assert.Equal(10, served.Count(s => s == "b\n"));
        Assert.Equal(10, _peers.Nodes[1].AccessLog.Count(line => line.StartsWith("GET /studies", StringComparison.Ordinal)));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_server_back_from_an_outage_gets_a_tenth_of_its_share_at_first()
    {
        using var client = _peers!.ViewersClient();
        await File.WriteAllTextAsync(DownFlag, string.Empty);
        await ViewerSteps.TransitionAsync(_transitions!, "b", "Unhealthy");
        Assert.All(await ViewerSteps.GetAsync(client, 8), s => Assert.Equal("a\n", s));

        File.Delete(DownFlag);
        await ViewerSteps.TransitionAsync(_transitions!, "b", "Healthy");
        var served = await ViewerSteps.GetAsync(client, 44);

        // Weights 3 and 0.1 (a tenth of 1, for two minutes): one or two of 44, where its whole share is 11.
        Assert.InRange(served.Count(s => s == "b\n"), 1, 4);
        var (slowStart, weights) = await StatusAsync();
        Assert.Equal("00:02:00", slowStart);
        Assert.Equal(3, weights["a"]);
        Assert.InRange(weights["b"], 0.1, 0.2);
    }

    /// <summary>The cluster's slow start and each destination's weight now, as <c>/status</c> shows them.</summary>
    private async Task<(string? SlowStart, Dictionary<string, double> Weights)> StatusAsync()
    {
        using var admin = new HttpClient { BaseAddress = _peers!.Proxy.Url("Admin") };
        using var status = JsonDocument.Parse(await admin.GetStringAsync("/status"));
        var cluster = status.RootElement.GetProperty("clusters")[0];
        var weights = new Dictionary<string, double>();
        foreach (var destination in cluster.GetProperty("destinations").EnumerateArray())
        {
            weights[destination.GetProperty("id").GetString()!] = destination.GetProperty("weight").GetDouble();
        }

        return (cluster.GetProperty("slowStart").GetString(), weights);
    }
}
