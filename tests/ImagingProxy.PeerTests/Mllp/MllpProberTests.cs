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
        var probes = await ProbesAsync(addresses, metadata, 1);
        return probes.ToDictionary(p => p.Key, p => p.Value[0]);
    }

    /// <summary>Starts the proxy and returns the first <paramref name="count"/> probe results of each destination, by destination id.</summary>
    private async Task<IReadOnlyDictionary<string, ProbeResult[]>> ProbesAsync(string[] addresses, IReadOnlyDictionary<string, string>? metadata, int count)
    {
        var results = new ConcurrentDictionary<string, ConcurrentQueue<ProbeResult>>();
        var complete = 0;
        var all = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Proxy = await TestProxy.StartAsync(MllpProxyConfig.Create(new Dictionary<string, string[]> { ["orders"] = addresses }, [("*", "orders")], metadata: metadata, activeHealth: true));
        var monitor = Proxy.Services.GetRequiredService<ActiveHealthMonitor>();
        monitor.ProbeCompleted += (_, destination, _, result, _) =>
        {
            var queue = results.GetOrAdd(destination.DestinationId, _ => new ConcurrentQueue<ProbeResult>());
            if (queue.Count < count)
            {
                queue.Enqueue(result);
                if (queue.Count == count && Interlocked.Increment(ref complete) == addresses.Length)
                {
                    all.TrySetResult();
                }
            }
        };
        await all.Task.WaitAsync(s_timeout);
        return results.ToDictionary(r => r.Key, r => r.Value.Take(count).ToArray());
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
        var sent = (await accepts.ReceivedAsync())[0].ControlId;
        Assert.NotEqual("PROBE0001", sent); // each probe has a control id of its own
        Assert.Matches("^P[0-9A-F]{16}$", sent);
    }

    [Fact]
    public async Task Message_probes_to_a_node_that_dedupes_on_msh_10_stay_healthy()
    {
        // A receiver that dedupes on MSH-10 (as the README advises, for at-least-once delivery) answers a control id it
        // has seen with AE: each probe sends its own, so the second probe is no duplicate.
        var dedupes = await NodeAsync("dedupe", "--dedupe");
        var metadata = new Dictionary<string, string>
        {
            [MllpProbeKeys.Kind] = "Message",
            [MllpProbeKeys.Message] = "MSH|^~\\&|IMAGINGPROXY|PROBE|PACS|HOSP|20250101120000||ADT^A08^ADT_A01|PROBE0003|T|2.5.1",
        };

        var results = await ProbesAsync([dedupes.Address], metadata, 2);

        Assert.All(results["orders-node1"], result => Assert.True(result.Healthy, result.Detail));
        var received = await dedupes.ReceivedAsync();
        Assert.True(received.Count >= 2, $"{received.Count} probes received");
        Assert.NotEqual(received[0].ControlId, received[1].ControlId);
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
