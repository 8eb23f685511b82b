using System.Collections.Concurrent;
using ImagingProxy.Health;
using ImagingProxy.Mllp;
using ImagingProxy.PeerTests.Peers;
using ImagingProxy.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace ImagingProxy.PeerTests.Mllp;

/// <summary>
/// Needs python3-hl7 under /usr/bin/python3 (tests/peers/hl7_node.py answering AA, AE or AR): MLLP active health
/// through the proxy's own monitor, Connect and Message probes.
/// </summary>
public sealed class MllpProberTests() : MllpPeerFixture("mllp-probe-")
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(30);

    /// <summary>Starts the proxy and returns the first probe result of each destination, by destination id.</summary>
    private async Task<IReadOnlyDictionary<string, ProbeResult>> FirstProbesAsync(string[] addresses, IReadOnlyDictionary<string, string>? metadata)
    {
        var results = new ConcurrentDictionary<string, ProbeResult>();
        var all = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Proxy = await TestProxy.StartAsync(MllpProxyConfig.Create(new Dictionary<string, string[]> { ["orders"] = addresses }, [("*", "orders")], metadata: metadata, activeHealth: true));
        var monitor = Proxy.Services.GetRequiredService<ActiveHealthMonitor>();
        monitor.ProbeCompleted += (_, destination, _, result, _) =>
        {
            results.TryAdd(destination.DestinationId, result);
            if (results.Count == addresses.Length)
            {
                all.TrySetResult();
            }
        };
        await all.Task.WaitAsync(s_timeout);
        return results;
    }

    [Fact]
    public async Task Connect_probe_is_the_default_and_fails_for_a_closed_port()
    {
        var up = await NodeAsync("up");

        var results = await FirstProbesAsync([up.Address, $"tcp://127.0.0.1:{FreePort.Next()}"], metadata: null);

        Assert.True(results["orders-node1"].Healthy, results["orders-node1"].Detail);
        Assert.False(results["orders-node2"].Healthy);
        Assert.Empty(await up.ReceivedAsync()); // a Connect probe sends no message
    }

    [Fact]
    public async Task Message_probe_is_healthy_on_aa_and_unhealthy_on_ar_or_ae_unless_ae_is_accepted()
    {
        var accepts = await NodeAsync("aa");
        var rejects = await NodeAsync("ar", "--ack", "AR");
        var errors = await NodeAsync("ae", "--ack", "AE");
        var metadata = new Dictionary<string, string>
        {
            [MllpProbeKeys.Kind] = "Message",
            [MllpProbeKeys.Message] = "MSH|^~\\&|IMAGINGPROXY|PROBE|PACS|HOSP|20250101120000||ADT^A08^ADT_A01|PROBE0001|T|2.5.1\nEVN|A08|20250101120000",
        };

        var results = await FirstProbesAsync([accepts.Address, rejects.Address, errors.Address], metadata);

        Assert.True(results["orders-node1"].Healthy, results["orders-node1"].Detail);
        Assert.False(results["orders-node2"].Healthy, results["orders-node2"].Detail);
        Assert.False(results["orders-node3"].Healthy, results["orders-node3"].Detail);
        Assert.Equal("PROBE0001", (await accepts.ReceivedAsync())[0].ControlId);
    }

    [Fact]
    public async Task Message_probe_counts_ae_as_healthy_when_configured()
    {
        var errors = await NodeAsync("ae", "--ack", "AE");
        var metadata = new Dictionary<string, string>
        {
            [MllpProbeKeys.Kind] = "Message",
            [MllpProbeKeys.Message] = "MSH|^~\\&|IMAGINGPROXY|PROBE|PACS|HOSP|20250101120000||ADT^A08^ADT_A01|PROBE0002|T|2.5.1",
            [MllpProbeKeys.AcceptError] = "true",
        };

        var results = await FirstProbesAsync([errors.Address], metadata);

        Assert.True(results["orders-node1"].Healthy, results["orders-node1"].Detail);
    }
}
