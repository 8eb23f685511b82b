using System.Diagnostics.Metrics;
using System.Text.Json;
using ImagingProxy.Balancing;
using ImagingProxy.Dicom;
using ImagingProxy.PeerTests.Operations;
using ImagingProxy.PeerTests.Peers;
using ImagingProxy.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using static ImagingProxy.PeerTests.Dicom.DicomProxyHarness;

namespace ImagingProxy.PeerTests.Dicom;

/// <summary>
/// Destination metadata <c>MaxConcurrent</c> (a PACS licensed for so many associations) against two real storescp
/// nodes and dcmtk's echoscu: a full node is passed over, a full cluster answers A-ASSOCIATE-RJ, or with the cluster's
/// <c>QueueTimeout</c> waits for a place. Needs dcmtk.
/// </summary>
public sealed class DestinationLimitTests
{
    [Fact(Timeout = 120_000)]
    public async Task A_node_at_its_MaxConcurrent_is_passed_over_and_a_full_cluster_rejects_the_association()
    {
        await using var scpA = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS" });
        await using var scpB = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS" });
        await using var proxy = await TestProxy.StartAsync(TestProxy.Config(
            $$"""
            { "pacs": { "LoadBalancingPolicy": "FirstAlphabetical", "Metadata": { "Protocol": "Dicom" }, "Destinations": {
                "a": { "Address": "tcp://127.0.0.1:{{scpA.Port}}", "Metadata": { "MaxConcurrent": "1" } },
                "b": { "Address": "tcp://127.0.0.1:{{scpB.Port}}", "Metadata": { "MaxConcurrent": "1" } } } } }
            """,
            DicomProxyHarness.Dicom(Route("pacs", "PACS", "pacs"))));
        using var recorder = Record(proxy);
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(60));

        // a (first alphabetically) holds one association: the next goes to b.
        await using var second = await HeldAssociation.ConnectAsync(proxy.Port("dicom"), cancel.Token);
        var first = await HeldAssociation.ConnectAsync(proxy.Port("dicom"), cancel.Token);
        try
        {
            Assert.Equal(PduType.AssociateAccept, (await first.RequestAsync("PACS", cancel.Token)).Type);
            var toB = await Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS", cancellationToken: cancel.Token);
            Assert.True(toB.Succeeded, toB.ToString());
            Assert.Equal("b", (await recorder.WaitAsync(1))[0].DestinationId);

            // Both full: refused in the protocol, before any node is asked.
            Assert.Equal(PduType.AssociateAccept, (await second.RequestAsync("PACS", cancel.Token)).Type);
            var refused = await Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS", cancellationToken: cancel.Token);
            Assert.False(refused.Succeeded);
            Assert.Contains("Association Rejected", refused.Output, StringComparison.OrdinalIgnoreCase);
            Assert.Equal(DicomAssociationEndReason.NoDestination, (await recorder.WaitAsync(2))[1].Reason);

            using var admin = new HttpClient { BaseAddress = proxy.Url("Admin") };
            using var status = JsonDocument.Parse(await admin.GetStringAsync("/status", cancel.Token));
            foreach (var destination in status.RootElement.GetProperty("clusters")[0].GetProperty("destinations").EnumerateArray())
            {
                Assert.Equal(1, destination.GetProperty("maxConcurrent").GetInt32());
                Assert.Equal(1, destination.GetProperty("activeRequests").GetInt32());
            }

            // a's association ends: a takes associations again.
            Assert.Equal(PduType.ReleaseResponse, await first.ReleaseAsync(cancel.Token));
        }
        finally
        {
            await first.DisposeAsync();
        }

        var released = (await recorder.WaitAsync(3))[2];
        Assert.Equal(("a", DicomAssociationEndReason.Released), (released.DestinationId, released.Reason));

        // b still holds the second association: the next one can only go to a.
        var again = await Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS", cancellationToken: cancel.Token);
        Assert.True(again.Succeeded, again.ToString());
        Assert.Equal("a", (await recorder.WaitAsync(4))[3].DestinationId);
    }

    [Fact(Timeout = 120_000)]
    public async Task With_QueueTimeout_an_association_at_a_full_cluster_waits_and_takes_the_place_released()
    {
        await using var scp = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS" });
        await using var proxy = await StartQueuedAsync(scp.Port, "00:00:30");
        using var recorder = Record(proxy);
        var meters = proxy.Services.GetRequiredService<IMeterFactory>();
        using var queued = new MetricCollector<long>(meters, DicomProxyMetrics.MeterName, "imagingproxy.dicom.associations.queued");
        using var waits = new MetricCollector<double>(meters, DicomProxyMetrics.MeterName, "imagingproxy.dicom.queue.wait.duration");
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(60));

        // The node's one place is taken: echoscu's association waits in the queue (not refused) until it is released.
        var result = await EchoBehindHeldAssociationAsync(proxy, queued, cancel.Token);
        Assert.True(result.Succeeded, result.ToString());
        var ended = await recorder.WaitAsync(2);
        Assert.All(ended, summary => Assert.Equal(("a", DicomAssociationEndReason.Released), (summary.DestinationId, summary.Reason)));
        Assert.Equal(QueueResults.Placed, waits.GetMeasurementSnapshot().Single().Tags["result"]);
        Assert.Equal([1, -1], queued.GetMeasurementSnapshot().Select(m => m.Value)); // in the queue, and out of it
    }

    [Fact(Timeout = 120_000)]
    public async Task With_QueueTimeout_waiting_associations_take_the_places_released_in_the_order_they_came()
    {
        await using var scp = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS" });
        await using var proxy = await StartQueuedAsync(scp.Port, "00:00:30");
        using var queued = new MetricCollector<long>(proxy.Services.GetRequiredService<IMeterFactory>(), DicomProxyMetrics.MeterName, "imagingproxy.dicom.associations.queued");
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(60));

        // The node's one place is held; two associations queue for it, one after the other.
        var held = await HeldAssociation.ConnectAsync(proxy.Port("dicom"), cancel.Token);
        Assert.Equal(PduType.AssociateAccept, (await held.RequestAsync("PACS", cancel.Token)).Type);
        var first = await HeldAssociation.ConnectAsync(proxy.Port("dicom"), cancel.Token);
        var firstAnswer = first.RequestAsync("PACS", cancel.Token);
        await queued.WaitForMeasurementsAsync(1, TimeSpan.FromSeconds(30));
        await using var second = await HeldAssociation.ConnectAsync(proxy.Port("dicom"), cancel.Token);
        var secondAnswer = second.RequestAsync("PACS", cancel.Token);
        await queued.WaitForMeasurementsAsync(2, TimeSpan.FromSeconds(30));

        // Each association that ends (released, its connection closed) gives its place to the one that has waited longest.
        Assert.Equal(PduType.ReleaseResponse, await held.ReleaseAsync(cancel.Token));
        await held.DisposeAsync();
        Assert.Same(firstAnswer, await Task.WhenAny(firstAnswer, secondAnswer));
        Assert.Equal(PduType.AssociateAccept, (await firstAnswer).Type);
        Assert.False(secondAnswer.IsCompleted);
        Assert.Equal(PduType.ReleaseResponse, await first.ReleaseAsync(cancel.Token));
        await first.DisposeAsync();
        Assert.Equal(PduType.AssociateAccept, (await secondAnswer).Type);
        Assert.Equal(PduType.ReleaseResponse, await second.ReleaseAsync(cancel.Token));
    }

    [Fact(Timeout = 120_000)]
    public async Task With_QueueTimeout_a_waiting_association_whose_client_left_leaves_the_queue_and_the_next_takes_the_place()
    {
        await using var scp = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS" });
        await using var proxy = await StartQueuedAsync(scp.Port, "00:00:30");
        using var recorder = Record(proxy);
        var meters = proxy.Services.GetRequiredService<IMeterFactory>();
        using var queued = new MetricCollector<long>(meters, DicomProxyMetrics.MeterName, "imagingproxy.dicom.associations.queued");
        using var waits = new MetricCollector<double>(meters, DicomProxyMetrics.MeterName, "imagingproxy.dicom.queue.wait.duration");
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(60));

        // The node's one place is held; a modality queues first and gives up (closes its connection), echoscu queues after it.
        var held = await HeldAssociation.ConnectAsync(proxy.Port("dicom"), cancel.Token);
        Assert.Equal(PduType.AssociateAccept, (await held.RequestAsync("PACS", cancel.Token)).Type);
        var gone = await HeldAssociation.ConnectAsync(proxy.Port("dicom"), cancel.Token);
        var goneAnswer = gone.RequestAsync("PACS", cancel.Token);
        await queued.WaitForMeasurementsAsync(1, TimeSpan.FromSeconds(30));
        var echo = Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS", cancellationToken: cancel.Token);
        await queued.WaitForMeasurementsAsync(2, TimeSpan.FromSeconds(30));
        await gone.DisposeAsync();
        await Assert.ThrowsAnyAsync<Exception>(() => goneAnswer);

        // Its wait ends without a place and without a node asked for it; the place released goes to echoscu.
        var left = (await recorder.WaitAsync(1))[0];
        Assert.Null(left.DestinationId);
        Assert.Equal(QueueResults.Abandoned, Assert.Single(waits.GetMeasurementSnapshot()).Tags["result"]);
        Assert.Equal(PduType.ReleaseResponse, await held.ReleaseAsync(cancel.Token));
        await held.DisposeAsync();
        var result = await echo;
        Assert.True(result.Succeeded, result.ToString());
        var ended = await recorder.WaitAsync(3);
        Assert.Equal(2, ended.Count(summary => summary is { DestinationId: "a", Reason: DicomAssociationEndReason.Released }));
        Assert.Equal([QueueResults.Abandoned, QueueResults.Placed], waits.GetMeasurementSnapshot().Select(m => m.Tags["result"]));
        Assert.Equal(0, queued.GetMeasurementSnapshot().Sum(m => m.Value)); // nobody left in the queue
    }

    [Fact(Timeout = 120_000)]
    public async Task With_QueueTimeout_an_association_no_place_is_freed_for_is_rejected_when_it_expires()
    {
        await using var scp = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS" });
        await using var proxy = await StartQueuedAsync(scp.Port, "00:00:01");
        using var recorder = Record(proxy);
        using var waits = new MetricCollector<double>(proxy.Services.GetRequiredService<IMeterFactory>(), DicomProxyMetrics.MeterName, "imagingproxy.dicom.queue.wait.duration");
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(60));

        await using var held = await HeldAssociation.ConnectAsync(proxy.Port("dicom"), cancel.Token);
        Assert.Equal(PduType.AssociateAccept, (await held.RequestAsync("PACS", cancel.Token)).Type);
        var refused = await Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS", cancellationToken: cancel.Token);

        Assert.False(refused.Succeeded);
        Assert.Contains("Association Rejected", refused.Output, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(DicomAssociationEndReason.NoDestination, (await recorder.WaitAsync(1))[0].Reason);
        var wait = waits.GetMeasurementSnapshot().Single();
        Assert.Equal(QueueResults.TimedOut, wait.Tags["result"]);
        Assert.True(wait.Value >= 1, $"left the queue after {wait.Value} s, before its QueueTimeout of 1 s");
    }

    [Fact(Timeout = 120_000)]
    public async Task With_QueueTimeout_an_association_the_primary_failed_waits_for_a_place_at_the_full_backup()
    {
        // The primary's port is closed (no passive health: it stays available), the backup (a disaster-recovery PACS)
        // has one place. Each association tries the primary, then the backup.
        await using var dr = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS" });
        await using var proxy = await TestProxy.StartAsync(TestProxy.Config(
            $$"""
            { "pacs": { "Metadata": { "Protocol": "Dicom", "QueueTimeout": "00:00:30" }, "Destinations": {
                "primary": { "Address": "tcp://127.0.0.1:{{FreePort.Next()}}" },
                "dr": { "Address": "tcp://127.0.0.1:{{dr.Port}}", "Metadata": { "Backup": "true", "MaxConcurrent": "1" } } } } }
            """,
            DicomProxyHarness.Dicom(Route("pacs", "PACS", "pacs"))));
        using var recorder = Record(proxy);
        var meters = proxy.Services.GetRequiredService<IMeterFactory>();
        using var queued = new MetricCollector<long>(meters, DicomProxyMetrics.MeterName, "imagingproxy.dicom.associations.queued");
        using var waits = new MetricCollector<double>(meters, DicomProxyMetrics.MeterName, "imagingproxy.dicom.queue.wait.duration");
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(60));

        // The backup's one place is taken: echoscu's association, failed by the primary, waits for it until it is released.
        var result = await EchoBehindHeldAssociationAsync(proxy, queued, cancel.Token);
        Assert.True(result.Succeeded, result.ToString());
        var ended = await recorder.WaitAsync(2);
        Assert.All(ended, summary => Assert.Equal(("dr", DicomAssociationEndReason.Released), (summary.DestinationId, summary.Reason)));
        Assert.Equal(QueueResults.Placed, waits.GetMeasurementSnapshot().Single().Tags["result"]);
    }

    /// <summary>
    /// Holds an association through the proxy (taking the one place there is), runs echoscu, waits until its association
    /// is in the queue (still unanswered), releases the held association and returns echoscu's result.
    /// </summary>
    private static async Task<DcmtkResult> EchoBehindHeldAssociationAsync(TestProxy proxy, MetricCollector<long> queued, CancellationToken cancellationToken)
    {
        Task<DcmtkResult> echo;
        await using (var held = await HeldAssociation.ConnectAsync(proxy.Port("dicom"), cancellationToken))
        {
            Assert.Equal(PduType.AssociateAccept, (await held.RequestAsync("PACS", cancellationToken)).Type);
            echo = Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS", cancellationToken: cancellationToken);
            await queued.WaitForMeasurementsAsync(1, TimeSpan.FromSeconds(30));
            Assert.False(echo.IsCompleted);
            Assert.Equal(PduType.ReleaseResponse, await held.ReleaseAsync(cancellationToken));
        }

        return await echo;
    }

    /// <summary>A proxy whose DICOM cluster has one node with one place (<c>MaxConcurrent</c> 1) and the given <c>QueueTimeout</c>.</summary>
    private static Task<TestProxy> StartQueuedAsync(int port, string queueTimeout)
        => TestProxy.StartAsync(TestProxy.Config(
            $$"""
            { "pacs": { "Metadata": { "Protocol": "Dicom", "QueueTimeout": "{{queueTimeout}}" }, "Destinations": {
                "a": { "Address": "tcp://127.0.0.1:{{port}}", "Metadata": { "MaxConcurrent": "1" } } } } }
            """,
            DicomProxyHarness.Dicom(Route("pacs", "PACS", "pacs"))));
}
