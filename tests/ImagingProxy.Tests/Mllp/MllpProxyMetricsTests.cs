using System.Diagnostics;
using System.Diagnostics.Metrics;
using ImagingProxy.Telemetry;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace ImagingProxy.Tests.Mllp;

/// <summary>MllpProxyMetrics through a real handler: labels, the message-type limiter, the hl7.message activity, enhanced-mode ACK relay.</summary>
public sealed class MllpProxyMetricsTests
{
    [Fact]
    public async Task Relayed_message_is_counted_with_its_labels_and_message_types_beyond_the_limit_become_other()
    {
        await using var node = new FakeHl7Node();
        await using var harness = new MllpHandlerHarness([node.Address], messageTypes: new TagValueLimiter(null, 1));
        var factory = harness.Services.GetRequiredService<IMeterFactory>();
        using var messages = new MetricCollector<long>(factory, "ImagingProxy", "imagingproxy.hl7.messages");
        using var durations = new MetricCollector<double>(factory, "ImagingProxy", "imagingproxy.hl7.ack.duration");

        await harness.SendAsync(MllpHandlerHarness.Message("M1", "ORM^O01^ORM_O01"));
        await harness.ReplyAsync();
        await harness.SendAsync(MllpHandlerHarness.Message("M2", "ADT^A01^ADT_A01"));
        await harness.ReplyAsync();
        await harness.SendAsync(MllpHandlerHarness.Message("M3", "ORM^O01"));
        await harness.ReplyAsync();

        // The ACK is relayed before the message is counted: wait for the third measurement, not a race.
        await messages.WaitForMeasurementsAsync(3, MllpHandlerHarness.Timeout);
        await durations.WaitForMeasurementsAsync(3, MllpHandlerHarness.Timeout);
        var snapshot = messages.GetMeasurementSnapshot();
        Assert.Equal(["ORM^O01", "other", "ORM^O01"], snapshot.Select(m => m.Tags["message_type"]));
        Assert.All(snapshot, m =>
        {
            Assert.Equal("0", m.Tags["route"]);
            Assert.Equal("c", m.Tags["cluster"]);
            Assert.Equal("d0", m.Tags["destination"]);
            Assert.Equal("AA", m.Tags["ack_code"]);
        });
        Assert.Equal(3, durations.GetMeasurementSnapshot().Count);
    }

    [Fact]
    public async Task Nak_and_rejected_frames_are_counted_by_reason()
    {
        await using var harness = new MllpHandlerHarness([]);
        var factory = harness.Services.GetRequiredService<IMeterFactory>();
        using var naks = new MetricCollector<long>(factory, "ImagingProxy", "imagingproxy.hl7.naks");
        using var rejected = new MetricCollector<long>(factory, "ImagingProxy", "imagingproxy.hl7.frames.rejected");

        await harness.SendRawAsync("junk"u8.ToArray());
        await harness.SendAsync(MllpHandlerHarness.Message("M1"));
        Assert.Contains("MSA|AR|M1", await harness.ReplyAsync(), StringComparison.Ordinal);
        await naks.WaitForMeasurementsAsync(1, MllpHandlerHarness.Timeout);

        Assert.Equal("no_destination", naks.GetMeasurementSnapshot().Single().Tags["reason"]);
        Assert.Equal("bytes_outside_frame", rejected.GetMeasurementSnapshot().Single().Tags["reason"]);
    }

    [Fact]
    public async Task A_message_type_no_route_takes_does_not_use_up_the_label_places_of_routed_ones()
    {
        // One label place. A type no route takes comes first (answered AR): it is counted as other and leaves the place
        // to the routed ORM^O01 after it.
        await using var node = new FakeHl7Node();
        await using var harness = new MllpHandlerHarness([node.Address], messageTypes: new TagValueLimiter(null, 1),
            settings: new() { ["ImagingProxy:Mllp:Routes:0:MessageType"] = "ORM^*" });
        using var messages = new MetricCollector<long>(harness.Services.GetRequiredService<IMeterFactory>(), "ImagingProxy", "imagingproxy.hl7.messages");

        await harness.SendAsync(MllpHandlerHarness.Message("M1", "ZZS^Z01"));
        Assert.Contains("MSA|AR|M1", await harness.ReplyAsync(), StringComparison.Ordinal);
        await harness.SendAsync(MllpHandlerHarness.Message("M2", "ORM^O01"));
        Assert.Contains("MSA|AA|M2", await harness.ReplyAsync(), StringComparison.Ordinal);

        await messages.WaitForMeasurementsAsync(1, MllpHandlerHarness.Timeout);
        Assert.Equal("ORM^O01", messages.GetMeasurementSnapshot().Single().Tags["message_type"]);
    }

    [Fact]
    public async Task Message_activity_carries_type_route_cluster_destination_and_ack_code_but_no_control_id()
    {
        // The activity stops after the ACK is flushed to the sender: wait for it to stop, not for the reply.
        var stopped = new TaskCompletionSource<Activity>(TaskCreationOptions.RunContinuationsAsynchronously);
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == ImagingProxyTelemetry.MeterName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                if (activity.OperationName == "hl7.message" && activity.GetTagItem("hl7.message_type") as string == "ZZT^Z99")
                {
                    stopped.TrySetResult(activity);
                }
            },
        };
        ActivitySource.AddActivityListener(listener);
        await using var node = new FakeHl7Node();

        // The route names its cluster in another case: the span carries the cluster's own name, as the metrics do.
        await using var harness = new MllpHandlerHarness([node.Address], settings: new() { ["ImagingProxy:Mllp:Routes:0:Cluster"] = "C" });

        await harness.SendAsync(MllpHandlerHarness.Message("SECRET42", "ZZT^Z99"));
        await harness.ReplyAsync();

        var activity = await stopped.Task.WaitAsync(MllpHandlerHarness.Timeout);

        Assert.Equal("0", activity.GetTagItem("imagingproxy.route"));
        Assert.Equal("c", activity.GetTagItem("imagingproxy.cluster"));
        Assert.Equal("d0", activity.GetTagItem("imagingproxy.destination"));
        Assert.Equal("AA", activity.GetTagItem("hl7.ack_code"));
        Assert.DoesNotContain(activity.TagObjects, t => t.Value?.ToString()?.Contains("SECRET42", StringComparison.Ordinal) == true);
    }

    [Fact]
    public async Task Enhanced_mode_accept_ack_is_relayed_byte_for_byte_as_the_node_sent_it()
    {
        await using var node = new FakeHl7Node(ackCode: "CA");
        await using var harness = new MllpHandlerHarness([node.Address]);

        await harness.SendAsync(MllpHandlerHarness.Message("E1", extraMsh: "|||AL|NE"));
        var reply = await harness.ReplyAsync();

        Assert.Equal("MSH|^~\\&|PACS|HOSP|RIS|RAD|20250101120000||ACK^O01^ACK|AE1|P|2.5.1\rMSA|CA|E1\r", reply);
    }
}
