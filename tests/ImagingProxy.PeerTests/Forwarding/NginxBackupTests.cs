using System.Text.Json;
using System.Threading.Channels;
using ImagingProxy.PeerTests.Peers;

namespace ImagingProxy.PeerTests.Forwarding;

// Real peers: two nginx (Debian) servers behind an HTTP cluster with active health; b is a backup (a disaster-recovery
// site). Server a's health endpoint answers 503 while a file exists.
public sealed class NginxBackupTests : IAsyncLifetime
{
    private readonly TempDirectory _flags = TempDirectory.Create("imagingproxy-backup-");
    private ChannelReader<string>? _transitions;
    private NginxBehindProxy? _peers;

    private string DownFlag => Path.Combine(_flags.Path, "down");

    public async Task InitializeAsync()
    {
        _peers = await NginxBehindProxy.StartAsync(
            [$$"""location /health { if (-f {{DownFlag}}) { return 503; } return 200; } location / { return 200 "a\n"; }""", """location / { return 200 "b\n"; }"""],
            nodes => (
                $$"""
                { "web": {
                    "LoadBalancingPolicy": "RoundRobin",
                    "HealthCheck": { "Active": { "Enabled": true, "Interval": "00:00:00.500", "Timeout": "00:00:05", "Path": "/health" } },
                    "Metadata": { "ConsecutiveFailuresHealthPolicy.Threshold": "1" },
                    "Destinations": {
                      "a": { "Address": "{{nodes[0].BaseAddress}}" },
                      "b": { "Address": "{{nodes[1].BaseAddress}}", "Metadata": { "Backup": "true" } } } } }
                """,
                """{ "all": { "ClusterId": "web", "Match": { "Path": "/{**rest}" } } }"""));
        _transitions = ViewerSteps.ActiveTransitions(_peers.Proxy, "a");
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
    public async Task The_backup_serves_only_while_the_primary_is_down()
    {
        using var client = _peers!.ViewersClient();
        Assert.All(await ViewerSteps.GetAsync(client, 6), s => Assert.Equal("a\n", s));

        await File.WriteAllTextAsync(DownFlag, string.Empty);
        await ViewerSteps.TransitionAsync(_transitions!, "a", "Unhealthy");
        Assert.All(await ViewerSteps.GetAsync(client, 6), s => Assert.Equal("b\n", s));
        Assert.True(await AvailableAsync("b"));

        File.Delete(DownFlag);
        await ViewerSteps.TransitionAsync(_transitions!, "a", "Healthy");
        Assert.All(await ViewerSteps.GetAsync(client, 6), s => Assert.Equal("a\n", s));
        Assert.False(await AvailableAsync("b"));
        Assert.Equal(6, _peers.Nodes[1].AccessLog.Count(line => line.StartsWith("GET /studies", StringComparison.Ordinal)));
    }

    /// <summary>Whether <c>/status</c> shows the destination available (and b marked as a backup).</summary>
    private async Task<bool> AvailableAsync(string id)
    {
        using var admin = new HttpClient { BaseAddress = _peers!.Proxy.Url("Admin") };
        using var status = JsonDocument.Parse(await admin.GetStringAsync("/status"));
        foreach (var destination in status.RootElement.GetProperty("clusters")[0].GetProperty("destinations").EnumerateArray())
        {
            if (destination.GetProperty("id").GetString() == id)
            {
                Assert.Equal(id == "b", destination.TryGetProperty("backup", out var backup) && backup.GetBoolean());
                return destination.GetProperty("available").GetBoolean();
            }
        }

        throw new Xunit.Sdk.XunitException($"no destination {id} in /status");
    }
}
