using ImagingProxy.Health;
using ImagingProxy.PeerTests.Peers;
using Microsoft.Extensions.DependencyInjection;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.PeerTests.Forwarding;

// Real peer: nginx (Debian) as a PACS web node whose WADO-RS-style probe URL answers 200 only to the exact Accept header a
// WADO-RS retrieve sends (a media type with parameters), and 406 to anything else.
public sealed class NginxProbeHeadersTests : IAsyncLifetime
{
    private readonly TaskCompletionSource<DestinationHealth> _firstProbe = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private NginxBehindProxy? _peers;

    public async Task InitializeAsync()
    {
        _peers = await NginxBehindProxy.StartAsync(
            ["""location = /probe { if ($http_accept != 'multipart/related; type="application/dicom"') { return 406; } return 200 "up\n"; }"""],
            nodes => (
                $$"""
                { "web": {
                    "HealthCheck": { "Active": { "Enabled": true, "Interval": "00:00:00.500", "Timeout": "00:00:05", "Path": "/probe" } },
                    "Metadata": { "HealthCheck.Headers": "Accept: multipart/related; type=\"application/dicom\"" },
                    "Destinations": { "nginx": { "Address": "{{nodes[0].BaseAddress}}" } } } }
                """,
                """{ "all": { "ClusterId": "web", "Match": { "Path": "/{**rest}" } } }"""));
        _peers.Proxy.Services.GetRequiredService<DestinationHealthTracker>().Transition += (_, _, kind, _, now) =>
        {
            if (kind == "active")
            {
                _firstProbe.TrySetResult(now);
            }
        };
    }

    public async Task DisposeAsync()
    {
        if (_peers is not null)
        {
            await _peers.DisposeAsync();
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task A_probe_header_whose_value_has_parameters_reaches_the_server_whole()
    {
        // The first probe may have run before the handler was added: then its result is already the destination's.
        Assert.True(_peers!.Proxy.Services.GetRequiredService<IProxyStateLookup>().TryGetCluster("web", out var cluster));
        var health = cluster.Destinations["nginx"].Health.Active;
        if (health == DestinationHealth.Unknown)
        {
            health = await _firstProbe.Task.WaitAsync(TimeSpan.FromSeconds(30));
        }

        Assert.Equal(DestinationHealth.Healthy, health);
    }
}
