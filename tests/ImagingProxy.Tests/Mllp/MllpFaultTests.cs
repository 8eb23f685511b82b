using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Tests.Mllp;

/// <summary>A fault inside ImagingProxy while delivering (not a node's failure) is answered, counted and survived.</summary>
public sealed class MllpFaultTests
{
    [Fact]
    public async Task A_fault_while_delivering_gets_an_ar_nak_with_the_control_id_and_is_counted_and_the_connection_goes_on()
    {
        // The node's port is closed, so the attempt fails and marks it unhealthy, and marking it throws here.
        await using var harness = new MllpHandlerHarness(["tcp://127.0.0.1:1"], health: new ThrowingHealthUpdates());
        using var naks = new MetricCollector<long>(harness.Services.GetRequiredService<IMeterFactory>(), "ImagingProxy", "imagingproxy.hl7.naks");

        await harness.SendAsync(MllpHandlerHarness.Message("F1"));
        var first = await harness.ReplyAsync();
        await harness.SendAsync(MllpHandlerHarness.Message("F2"));
        var second = await harness.ReplyAsync();

        Assert.Contains("\rMSA|AR|F1|ImagingProxy failed while delivering the message", first, StringComparison.Ordinal);
        Assert.Contains("\rMSA|AR|F2|", second, StringComparison.Ordinal);
        Assert.Contains(naks.GetMeasurementSnapshot(), m => (string?)m.Tags["reason"] == "internal_error");
    }

    private sealed class ThrowingHealthUpdates : IDestinationHealthUpdater
    {
        public void SetActive(ClusterState cluster, IEnumerable<NewActiveDestinationHealth> newHealthStates)
        {
        }

        public void SetPassive(ClusterState cluster, DestinationState destination, DestinationHealth newHealth, TimeSpan reactivationPeriod)
            => throw new InvalidOperationException("health state unavailable");
    }
}
