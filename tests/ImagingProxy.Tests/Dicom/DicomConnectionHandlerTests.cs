using System.Net;
using System.Net.Sockets;
using ImagingProxy.Configuration;
using ImagingProxy.Dicom;
using ImagingProxy.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;

namespace ImagingProxy.Tests.Dicom;

/// <summary>The connection handler over in-memory client pipes with fake time; nodes, when needed, are loopback sockets.</summary>
public sealed class DicomConnectionHandlerTests
{
    private static readonly TimeSpan s_bounded = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task An_associate_rq_after_the_drain_began_is_rejected_transient_local_limit_exceeded()
    {
        await using var harness = new HandlerHarness();
        harness.Lifetime.StopApplication();
        var client = harness.Connect();

        await client.SendAsync(DicomCaptures.AssociateRequest);
        var answer = await client.ReadPduAsync();

        Assert.NotNull(answer);
        Assert.Equal(PduType.AssociateReject, answer.Value.Header.Type);
        Assert.Equal([(byte)AssociateRejectResult.RejectedTransient, (byte)AssociateRejectSource.ServiceProviderPresentation, AssociateRejectReasons.ServiceProviderPresentationLocalLimitExceeded], answer.Value.Pdu[7..10]);
        var summary = await harness.Ended.Task.WaitAsync(s_bounded);
        Assert.Equal(DicomAssociationEndReason.Draining, summary.Reason);
        Assert.Equal(1, harness.Drain.Rejected);
    }

    [Fact]
    public async Task An_associate_rq_over_the_listeners_max_associations_is_rejected_transient_until_one_closes()
    {
        await using var harness = new HandlerHarness(new Dictionary<string, string?> { ["Listeners:l1:Port"] = "0", ["Listeners:l1:MaxAssociations"] = "1" });
        var holderEnded = new TaskCompletionSource<DicomAssociationSummary>(TaskCreationOptions.RunContinuationsAsynchronously);
        var (holder, _) = harness.AcceptAndStart([], "l1");
        harness.Handler.AssociationEnded += summary =>
        {
            if (summary.Reason == DicomAssociationEndReason.ClientClosed)
            {
                holderEnded.TrySetResult(summary);
            }
        };

        // The holder (started at accept, so counted now) has not sent its RQ yet: it counts from the accept.
        var over = harness.Connect("l1");
        await over.SendAsync(DicomCaptures.AssociateRequest);
        var answer = await over.ReadPduAsync();
        Assert.Equal(PduType.AssociateReject, answer!.Value.Header.Type);
        Assert.Equal([(byte)AssociateRejectResult.RejectedTransient, (byte)AssociateRejectSource.ServiceProviderPresentation, AssociateRejectReasons.ServiceProviderPresentationLocalLimitExceeded], answer.Value.Pdu[7..10]);
        Assert.Equal(DicomAssociationEndReason.ListenerLimit, (await harness.Ended.Task.WaitAsync(s_bounded)).Reason);
        Assert.Equal(1, harness.Handler.OpenOn("l1"));

        await holder.Output.CompleteAsync();
        await holderEnded.Task.WaitAsync(s_bounded);
        Assert.Equal(0, harness.Handler.OpenOn("l1"));

        // The slot is free again: the next RQ is routed (no destination here, so the reject is temporary-congestion).
        var next = harness.Connect("l1");
        await next.SendAsync(DicomCaptures.AssociateRequest);
        var routed = await next.ReadPduAsync();
        Assert.Equal(PduType.AssociateReject, routed!.Value.Header.Type);
        Assert.Equal(AssociateRejectReasons.ServiceProviderPresentationTemporaryCongestion, routed.Value.Pdu[9]);
    }

    [Fact]
    public async Task A_connection_over_max_associations_opens_no_early_node_connection()
    {
        using var node = new LoopbackNode();
        await using var harness = new HandlerHarness(
            new Dictionary<string, string?> { ["Listeners:l1:Port"] = "0", ["Listeners:l1:MaxAssociations"] = "1", ["Listeners:l1:EarlyConnect"] = "true" },
            destinationPorts: node.Port);
        using var early = harness.Collect("imagingproxy.dicom.early_connects");
        var (holder, _) = harness.AcceptAndStart([], "l1");
        await node.Accepted.WaitAsync(s_bounded); // the holder's early connection

        var over = harness.Connect("l1");
        await over.SendAsync(DicomCaptures.AssociateRequest);
        Assert.Equal(PduType.AssociateReject, (await over.ReadPduAsync())!.Value.Header.Type);
        Assert.Equal(DicomAssociationEndReason.ListenerLimit, (await harness.Ended.Task.WaitAsync(s_bounded)).Reason);

        // An association with an early connection records it when it ends; the refused one had none.
        Assert.Empty(early.GetMeasurementSnapshot());
        await holder.Output.CompleteAsync();
        await early.WaitForMeasurementsAsync(1).WaitAsync(s_bounded);
        Assert.Equal("unused", Assert.Single(early.GetMeasurementSnapshot()).Tags["outcome"]);
    }

    [Fact]
    public async Task A_connection_that_sends_no_request_when_the_drain_begins_is_closed_after_the_drain_request_wait()
    {
        // ARTIM (30 s) and the drain deadline (18 s) are far: only the drain's shortened wait for the RQ ends it.
        await using var harness = new HandlerHarness(shutdownTimeout: TimeSpan.FromSeconds(20));
        var client = harness.Connect();
        harness.Lifetime.StopApplication();
        var stopped = harness.Time.GetUtcNow();

        await AdvanceUntilAsync(harness, harness.Ended.Task, TimeSpan.FromMilliseconds(100));

        Assert.InRange(harness.Time.GetUtcNow() - stopped, DicomConnectionHandler.DrainRequestWait, DicomConnectionHandler.DrainRequestWait * 1.5);
        Assert.Equal(DicomAssociationEndReason.Shutdown, (await harness.Ended.Task).Reason);
        Assert.True(await client.ClosedWithoutPduAsync());
        Assert.Equal(0, harness.Drain.Rejected);
    }

    [Fact]
    public async Task Kestrels_close_request_alone_also_makes_a_new_association_be_rejected()
    {
        await using var harness = new HandlerHarness();
        using var closeRequested = new CancellationTokenSource();
        var client = harness.Connect(closeRequested.Token);
        await closeRequested.CancelAsync();

        await client.SendAsync(DicomCaptures.AssociateRequest);
        var answer = await client.ReadPduAsync();

        Assert.Equal(PduType.AssociateReject, answer!.Value.Header.Type);
        Assert.Equal(DicomAssociationEndReason.Draining, (await harness.Ended.Task.WaitAsync(s_bounded)).Reason);
    }

    [Fact]
    public async Task A_relaying_association_survives_the_drain_and_ends_released()
    {
        using var node = new LoopbackNode();
        await using var harness = new HandlerHarness(destinationPorts: node.Port);
        var client = harness.Connect();
        await client.SendAsync(DicomCaptures.AssociateRequest);
        Assert.Equal(PduType.AssociateAccept, (await client.ReadPduAsync())!.Value.Header.Type);

        harness.Lifetime.StopApplication();
        await client.SendAsync(DicomCaptures.EchoRequestPData);
        await client.SendAsync(DicomCaptures.ReleaseRequest);
        Assert.Equal(PduType.ReleaseResponse, (await client.ReadPduAsync())!.Value.Header.Type);
        await client.Output.CompleteAsync();

        var summary = await harness.Ended.Task.WaitAsync(s_bounded);
        Assert.Equal(DicomAssociationEndReason.Released, summary.Reason);
        Assert.Equal(LogLevel.Information, Assert.Single(harness.Logger.Collector.GetSnapshot(), r => r.Id.Id == 300).Level);
        Assert.Equal(1, summary.CEchoRequests);
        Assert.Equal([PduType.PDataTransfer, PduType.ReleaseRequest], await node.Closed.WaitAsync(s_bounded));
        Assert.Equal(0, harness.Drain.Aborted);
    }

    [Fact]
    public async Task At_the_drain_deadline_a_relaying_association_gets_a_abort_on_both_sides()
    {
        using var node = new LoopbackNode();
        await using var harness = new HandlerHarness(shutdownTimeout: TimeSpan.FromSeconds(20), destinationPorts: node.Port);
        var client = harness.Connect();
        await client.SendAsync(DicomCaptures.AssociateRequest);
        Assert.Equal(PduType.AssociateAccept, (await client.ReadPduAsync())!.Value.Header.Type);

        harness.Lifetime.StopApplication();
        harness.Time.Advance(harness.Drain.DeadlineAfter);

        var abort = await client.ReadPduAsync();
        Assert.Equal(PduType.Abort, abort!.Value.Header.Type);
        Assert.Equal((byte)AbortSource.ServiceProvider, abort.Value.Pdu[8]);
        Assert.Equal([PduType.Abort], await node.Closed.WaitAsync(s_bounded));
        Assert.Equal(DicomAssociationEndReason.Shutdown, (await harness.Ended.Task.WaitAsync(s_bounded)).Reason);
        Assert.Equal(1, harness.Drain.Aborted);
    }

    // Review 19c: an association still being set up at the drain deadline (its node took the A-ASSOCIATE-RQ and had
    // not answered yet, within ArtimTimeout) ended with a bare TCP close on both sides: the client got neither A-ABORT nor
    // A-ASSOCIATE-RJ, the node no A-ABORT, and no event 312 was logged or counted. README (Draining): what remains at
    // the deadline is aborted and counted; DicomDrain.Decide answers Abort for every stage once the deadline passed.
    [Fact]
    public async Task At_the_drain_deadline_an_association_awaiting_its_nodes_answer_gets_a_abort_on_both_sides()
    {
        using var listener = ListenOnLoopback();
        await using var harness = new HandlerHarness(shutdownTimeout: TimeSpan.FromSeconds(20), destinationPorts: ((IPEndPoint)listener.LocalEndPoint!).Port);
        var client = harness.Connect();
        await client.SendAsync(DicomCaptures.AssociateRequest);
        using var node = await listener.AcceptAsync().WaitAsync(s_bounded);
        await ReceivePduAsync(node); // the node has the RQ and never answers it

        harness.Lifetime.StopApplication();
        harness.Time.Advance(harness.Drain.DeadlineAfter);

        var abort = await client.ReadPduAsync();
        Assert.NotNull(abort);
        Assert.Equal(PduType.Abort, abort.Value.Header.Type);
        Assert.Equal((byte)AbortSource.ServiceProvider, abort.Value.Pdu[8]);
        var toNode = await ReceivePduAsync(node);
        Assert.Equal([(byte)PduType.Abort, (byte)AbortSource.ServiceProvider], new[] { toNode[0], toNode[8] });
        Assert.Equal(DicomAssociationEndReason.Shutdown, (await harness.Ended.Task.WaitAsync(s_bounded)).Reason);
        Assert.Equal(1, harness.Drain.Aborted);
        Assert.Empty(harness.HealthUpdates.Passive); // the drain ended it, not the node
    }

    [Fact]
    public async Task Early_connect_opens_the_node_connection_before_the_request_and_the_association_uses_it()
    {
        using var node = new LoopbackNode();
        await using var harness = new HandlerHarness(EarlyConnectOn("dicom"), destinationPorts: node.Port);
        using var early = harness.Collect("imagingproxy.dicom.early_connects");
        var client = harness.Connect("dicom");

        // Nothing sent yet: the node already has its connection.
        await node.Accepted.WaitAsync(s_bounded);
        Assert.False(node.SawRequest);

        await client.SendAsync(DicomCaptures.AssociateRequest);
        Assert.Equal(PduType.AssociateAccept, (await client.ReadPduAsync())!.Value.Header.Type);
        await client.SendAsync(DicomCaptures.ReleaseRequest);
        Assert.Equal(PduType.ReleaseResponse, (await client.ReadPduAsync())!.Value.Header.Type);
        await client.Output.CompleteAsync();

        var summary = await harness.Ended.Task.WaitAsync(s_bounded);
        Assert.Equal(DicomAssociationEndReason.Released, summary.Reason);
        Assert.Equal(1, summary.Attempts);
        Assert.Equal([PduType.ReleaseRequest], await node.Closed.WaitAsync(s_bounded));
        Assert.Equal("used", early.GetMeasurementSnapshot().Single().Tags["outcome"]);
    }

    [Fact]
    public async Task Early_connect_unused_when_the_association_is_rejected_closes_it_without_a_pdu()
    {
        using var node = new LoopbackNode();
        var config = EarlyConnectOn("dicom");
        config["Routes:any:CalledAeTitle"] = "ONLYTHIS"; // the capture calls another AE title: no route
        await using var harness = new HandlerHarness(config, destinationPorts: node.Port);
        using var early = harness.Collect("imagingproxy.dicom.early_connects");
        var client = harness.Connect("dicom");
        await node.Accepted.WaitAsync(s_bounded);

        await client.SendAsync(DicomCaptures.AssociateRequest);

        Assert.Equal(PduType.AssociateReject, (await client.ReadPduAsync())!.Value.Header.Type);
        Assert.Empty(await node.Closed.WaitAsync(s_bounded));
        Assert.False(node.SawRequest);
        Assert.Equal(DicomAssociationEndReason.NoRoute, (await harness.Ended.Task.WaitAsync(s_bounded)).Reason);
        Assert.Equal("unused", early.GetMeasurementSnapshot().Single().Tags["outcome"]);
    }

    [Fact]
    public async Task An_early_connection_left_unused_releases_its_node_before_the_association_runs_elsewhere()
    {
        using var d0 = new LoopbackNode();
        using var d1 = new LoopbackNode();
        await using var harness = new HandlerHarness(EarlyConnectOn("dicom"), destinationPorts: [d0.Port, d1.Port]);
        var all = harness.Cluster.DestinationsState.AllDestinations;
        var client = harness.Connect("dicom");
        await d0.Accepted.WaitAsync(s_bounded); // the early connection, to d0 (first alphabetically)

        // d0 leaves the available destinations (health, Drain) before the RQ: the association goes to d1.
        harness.Cluster.DestinationsState = new Yarp.ReverseProxy.Model.ClusterDestinationsState(all, [all[1]]);
        await client.SendAsync(DicomCaptures.AssociateRequest);
        Assert.Equal(PduType.AssociateAccept, (await client.ReadPduAsync())!.Value.Header.Type);
        Assert.True(d1.SawRequest);

        // While the association runs on d1, d0 carries nothing (MaxConcurrent, LeastRequests and /status read this).
        Assert.Equal(1, all[1].ConcurrentRequestCount);
        Assert.Equal(0, all[0].ConcurrentRequestCount);
    }

    [Fact]
    public async Task A_closed_early_connection_is_not_taken_by_a_later_attempt_when_its_node_is_back()
    {
        using var d0 = new AcceptingNode();

        // d1 accepts, then d0 comes back among the available destinations (its health recovered), then d1 closes: the
        // first attempt fails and the second goes to d0 on a new connection, not on the closed early one.
        using var d1 = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        d1.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        d1.Listen(4);
        await using var harness = new HandlerHarness(EarlyConnectOn("dicom"), destinationPorts: [d0.Port, ((IPEndPoint)d1.LocalEndPoint!).Port]);
        var all = harness.Cluster.DestinationsState.AllDestinations;
        all[0].ConcurrentRequestCount = 1; // another association runs on d0
        var failing = Task.Run(async () =>
        {
            using var accepted = await d1.AcceptAsync();
            harness.Cluster.DestinationsState = new Yarp.ReverseProxy.Model.ClusterDestinationsState(all, all);
            accepted.Close();
        });
        var client = harness.Connect("dicom");
        await d0.Accepted.WaitAsync(s_bounded); // the early connection, to d0

        harness.Cluster.DestinationsState = new Yarp.ReverseProxy.Model.ClusterDestinationsState(all, [all[1]]); // d0 out before the RQ
        await client.SendAsync(DicomCaptures.AssociateRequest);
        var answer = await client.ReadPduAsync();
        await failing.WaitAsync(s_bounded);

        Assert.Equal(PduType.AssociateAccept, answer?.Header.Type);
        Assert.Equal(2, all[0].ConcurrentRequestCount); // the other association and this one
    }

    /// <summary>Accepts any number of connections; answers each one's first PDU with an A-ASSOCIATE-AC.</summary>
    private sealed class AcceptingNode : IDisposable
    {
        private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        private readonly TaskCompletionSource _accepted = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public AcceptingNode()
        {
            _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            _listener.Listen(8);
            Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
            _ = Task.Run(AcceptAllAsync);
        }

        public int Port { get; }

        public Task Accepted => _accepted.Task;

        public void Dispose() => _listener.Dispose();

        private async Task AcceptAllAsync()
        {
            try
            {
                while (true)
                {
                    var socket = await _listener.AcceptAsync();
                    _accepted.TrySetResult();
                    _ = Task.Run(() => AnswerAsync(socket));
                }
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
                // disposed
            }
        }

        private static async Task AnswerAsync(Socket socket)
        {
            using (socket)
            {
                var buffer = new byte[65536];
                try
                {
                    if (await socket.ReceiveAsync(buffer) > 0)
                    {
                        await socket.SendAsync(DicomCaptures.AssociateAccept);
                    }

                    while (await socket.ReceiveAsync(buffer) > 0)
                    {
                    }
                }
                catch (SocketException)
                {
                }
            }
        }
    }

    private static Dictionary<string, string?> EarlyConnectOn(string listener) => new()
    {
        [$"Listeners:{listener}:Port"] = "104",
        [$"Listeners:{listener}:EarlyConnect"] = "true",
    };

    [Fact]
    public async Task After_release_a_client_that_keeps_its_connection_open_is_closed_when_artim_expires()
    {
        using var node = new LoopbackNode();
        await using var harness = new HandlerHarness(new Dictionary<string, string?> { ["ArtimTimeout"] = "00:00:10" }, destinationPorts: node.Port);
        var client = harness.Connect();
        await client.SendAsync(DicomCaptures.AssociateRequest);
        Assert.Equal(PduType.AssociateAccept, (await client.ReadPduAsync())!.Value.Header.Type);
        await client.SendAsync(DicomCaptures.ReleaseRequest);
        Assert.Equal(PduType.ReleaseResponse, (await client.ReadPduAsync())!.Value.Header.Type);

        // PS3.8 Sta13: the requestor should close now; this one does not.
        var released = harness.Time.GetUtcNow();
        await AdvanceUntilAsync(harness, harness.Ended.Task, TimeSpan.FromSeconds(1));

        Assert.InRange(harness.Time.GetUtcNow() - released, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(15));
        Assert.Equal(DicomAssociationEndReason.Released, (await harness.Ended.Task).Reason);
        Assert.True(await client.ClosedWithoutPduAsync());
        Assert.Equal([PduType.ReleaseRequest], await node.Closed.WaitAsync(s_bounded));
    }

    // A route may name its cluster in another case (YARP finds it whatever the case): the association's metrics, logs
    // and summary carry the cluster's own name, as /status and the destination metrics do.
    [Fact]
    public async Task A_route_naming_its_cluster_in_another_case_reports_the_clusters_own_name()
    {
        using var node = new LoopbackNode();
        await using var harness = new HandlerHarness(new Dictionary<string, string?> { ["Routes:any:Cluster"] = "C" }, destinationPorts: node.Port);
        using var ended = harness.Collect("imagingproxy.dicom.associations");
        var client = harness.Connect();
        await client.SendAsync(DicomCaptures.AssociateRequest);
        Assert.Equal(PduType.AssociateAccept, (await client.ReadPduAsync())!.Value.Header.Type);
        await client.SendAsync(DicomCaptures.ReleaseRequest);
        Assert.Equal(PduType.ReleaseResponse, (await client.ReadPduAsync())!.Value.Header.Type);
        await client.Output.CompleteAsync();

        Assert.Equal("c", (await harness.Ended.Task.WaitAsync(s_bounded)).ClusterId);
        Assert.Equal("c", Assert.Single(ended.GetMeasurementSnapshot()).Tags["cluster"]);
    }

    // Review 19a: after an A-ABORT the association is over (PS3.8 §9.2: the receiver closes the transport, AA-3; the
    // sender starts ARTIM and closes when it expires, AA-1/AA-2). Neither side closing here must not hold the association
    // (its MaxAssociations slot, the node's MaxConcurrent place, the gauge) for the 15-minute idle timeout.
    [Fact]
    public async Task After_a_client_abort_a_node_and_client_that_keep_their_connections_open_are_closed_when_artim_expires()
    {
        using var node = new LoopbackNode();
        await using var harness = new HandlerHarness(new Dictionary<string, string?> { ["ArtimTimeout"] = "00:00:10" }, destinationPorts: node.Port);
        var client = harness.Connect();
        await client.SendAsync(DicomCaptures.AssociateRequest);
        Assert.Equal(PduType.AssociateAccept, (await client.ReadPduAsync())!.Value.Header.Type);

        await client.SendAsync(DicomCaptures.UserAbort);
        var aborted = harness.Time.GetUtcNow();
        await AdvanceUntilAsync(harness, harness.Ended.Task, TimeSpan.FromSeconds(1));

        Assert.InRange(harness.Time.GetUtcNow() - aborted, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(15));
        Assert.Equal(DicomAssociationEndReason.ClientAborted, (await harness.Ended.Task).Reason);
        Assert.True(await client.ClosedWithoutPduAsync());
        Assert.Equal([PduType.Abort], await node.Closed.WaitAsync(s_bounded));
    }

    // Review 19a: an A-RELEASE-RP that answers no A-RELEASE-RQ (PS3.8 Table 9-10, Sta6: an unexpected PDU, AA-8) completes
    // no release. It made the association "released" (metric label and log line), switched its idle timer to ARTIM and
    // hid the abort that followed.
    [Fact]
    public async Task A_release_rp_without_a_release_rq_does_not_make_the_association_released()
    {
        using var node = new LoopbackNode();
        await using var harness = new HandlerHarness(destinationPorts: node.Port);
        var client = harness.Connect();
        await client.SendAsync(DicomCaptures.AssociateRequest);
        Assert.Equal(PduType.AssociateAccept, (await client.ReadPduAsync())!.Value.Header.Type);

        await client.SendAsync(DicomCaptures.ReleaseResponse);
        await client.SendAsync(DicomCaptures.UserAbort);
        await AdvanceUntilAsync(harness, harness.Ended.Task, TimeSpan.FromSeconds(1));

        Assert.Equal(DicomAssociationEndReason.ClientAborted, (await harness.Ended.Task).Reason);
        Assert.Equal([PduType.ReleaseResponse, PduType.Abort], await node.Closed.WaitAsync(s_bounded));
    }

    [Fact]
    public async Task Artim_expiry_with_nothing_sent_closes_the_transport()
    {
        await using var harness = new HandlerHarness();
        var client = harness.Connect();

        await AdvanceUntilAsync(harness, harness.Ended.Task, TimeSpan.FromSeconds(30));

        Assert.Equal(DicomAssociationEndReason.Artim, (await harness.Ended.Task).Reason);
        Assert.True(await client.ClosedWithoutPduAsync());
    }

    [Fact]
    public async Task Artim_expiry_with_a_partial_rq_closes_the_transport()
    {
        await using var harness = new HandlerHarness(new Dictionary<string, string?> { ["ArtimTimeout"] = "00:00:05" });
        var client = harness.Connect();
        await client.SendAsync(DicomCaptures.AssociateRequest[..40]);

        await AdvanceUntilAsync(harness, harness.Ended.Task, TimeSpan.FromSeconds(5));

        Assert.Equal(DicomAssociationEndReason.Artim, (await harness.Ended.Task).Reason);
        Assert.True(await client.ClosedWithoutPduAsync());
    }

    [Fact]
    public async Task Idle_timeout_aborts_both_sides()
    {
        using var node = new LoopbackNode();
        await using var harness = new HandlerHarness(new Dictionary<string, string?> { ["IdleTimeout"] = "00:01:00" }, destinationPorts: node.Port);
        var client = harness.Connect();
        await client.SendAsync(DicomCaptures.AssociateRequest);
        Assert.Equal(PduType.AssociateAccept, (await client.ReadPduAsync())!.Value.Header.Type);

        await AdvanceUntilAsync(harness, harness.Ended.Task, TimeSpan.FromMinutes(1));

        Assert.Equal(DicomAssociationEndReason.Idle, (await harness.Ended.Task).Reason);
        Assert.Equal(PduType.Abort, (await client.ReadPduAsync())!.Value.Header.Type);
        Assert.Equal([PduType.Abort], await node.Closed.WaitAsync(s_bounded));
    }

    [Fact]
    public async Task A_client_that_stops_reading_cannot_hold_the_association_after_it_ends()
    {
        using var listener = ListenOnLoopback();
        await using var harness = new HandlerHarness(destinationPorts: ((IPEndPoint)listener.LocalEndPoint!).Port);

        // The client's pipe pauses its writer at 95 unread bytes (Kestrel's output pipe does at 64 KiB): the node's C-ECHO-RSP
        // (90 bytes) fits, the A-ABORT after it (10 more) does not, and the client reads nothing after its AC.
        var client = harness.Connect(null, new System.IO.Pipelines.PipeOptions(pauseWriterThreshold: 95, resumeWriterThreshold: 1));
        await client.SendAsync(DicomCaptures.AssociateRequest);
        using var node = await listener.AcceptAsync().WaitAsync(s_bounded);
        await ReceivePduAsync(node);
        await node.SendAsync(DicomCaptures.AssociateAccept);
        Assert.Equal(PduType.AssociateAccept, (await client.ReadPduAsync())!.Value.Header.Type);
        var aborted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var registration = client.Context.ConnectionClosed.Register(() => aborted.TrySetResult());

        // The node sends a C-ECHO-RSP and closes: the relay ends and the client's A-ABORT cannot be flushed. After a
        // bounded wait the client's connection is aborted and the association ends, instead of its handler waiting for a
        // reader forever.
        await node.SendAsync(DicomCaptures.EchoResponsePData);
        node.Shutdown(SocketShutdown.Send);
        await AdvanceUntilAsync(harness, harness.Ended.Task, TimeSpan.FromSeconds(1));

        Assert.Equal(DicomAssociationEndReason.NodeClosed, (await harness.Ended.Task).Reason);
        await aborted.Task.WaitAsync(s_bounded);
        await client.Run.WaitAsync(s_bounded);

        // A node that failed the association: its end line is a warning.
        Assert.Equal(LogLevel.Warning, Assert.Single(harness.Logger.Collector.GetSnapshot(), r => r.Id.Id == 300).Level);
    }

    [Fact]
    public async Task A_client_abort_that_arrives_with_its_close_reaches_the_node()
    {
        using var node = new LoopbackNode();
        await using var harness = new HandlerHarness(destinationPorts: node.Port);
        CancellingReader? input = null;
        var client = harness.Connect(null, null, inner => input = new CancellingReader(inner));
        await client.SendAsync(DicomCaptures.AssociateRequest);
        Assert.Equal(PduType.AssociateAccept, (await client.ReadPduAsync())!.Value.Header.Type);

        // The client's A-ABORT and end of stream come back from a read the client's close cancelled.
        input!.CancelFromNowOn();
        await client.SendAsync(DicomCaptures.UserAbort);
        await client.Output.CompleteAsync();

        Assert.Equal(DicomAssociationEndReason.ClientAborted, (await harness.Ended.Task.WaitAsync(s_bounded)).Reason);
        Assert.Equal([PduType.Abort], await node.Closed.WaitAsync(s_bounded));
    }

    [Fact]
    public async Task A_garbage_first_pdu_is_answered_with_a_abort_source_2_reason_1()
    {
        await using var harness = new HandlerHarness();
        var client = harness.Connect();

        await client.SendAsync([0x42, 0x00, 0x00, 0x00, 0x00, 0x04, 0xDE, 0xAD, 0xBE, 0xEF]);
        var abort = await client.ReadPduAsync();

        Assert.Equal(PduType.Abort, abort!.Value.Header.Type);
        Assert.Equal([(byte)AbortSource.ServiceProvider, (byte)AbortReason.UnrecognizedPdu], abort.Value.Pdu[8..10]);
        Assert.Equal(DicomAssociationEndReason.Malformed, (await harness.Ended.Task.WaitAsync(s_bounded)).Reason);
    }

    // Review 20l: a first PDU that was not an A-ASSOCIATE-RQ (an HTTP request on the DICOM port, a P-DATA-TF, a PDU-length
    // over the limit) ended with only the info end line "malformed", though event 303 names the problem of a refused RQ
    // and event 304 that of a broken stream after the AC.
    [Theory]
    [InlineData("474554202f20485454502f312e310d0a0d0a", "unknown PDU type 0x47", "A-ABORT (unrecognized-PDU)", 1)]
    [InlineData("04000000000400000000", "P-DATA-TF before any A-ASSOCIATE-RQ", "A-ABORT (unexpected-PDU)", 2)]
    [InlineData("070000000006000000000000", "A-ABORT with PDU-length 6, not 4", "A-ABORT (unexpected-PDU)", 2)]
    [InlineData("04007f000000", "P-DATA-TF with PDU-length 2130706432, over the limit of", "A-ABORT (invalid-PDU-parameter-value)", 6)] // an RQ over the limit is event 303
    public async Task A_first_pdu_that_is_not_a_request_is_logged_as_a_warning_naming_what_it_was(string hex, string problem, string answer, byte reason)
    {
        await using var harness = new HandlerHarness();
        var client = harness.Connect();

        await client.SendAsync(Convert.FromHexString(hex));
        var abort = await client.ReadPduAsync();

        Assert.Equal(new byte[] { 0x07, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x02, reason }, abort!.Value.Pdu);
        Assert.Equal(DicomAssociationEndReason.Malformed, (await harness.Ended.Task.WaitAsync(s_bounded)).Reason);
        var warning = Assert.Single(harness.Logger.Collector.GetSnapshot(), r => r.Id.Id == 308);
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Contains(problem, warning.Message, StringComparison.Ordinal);
        Assert.Contains("answered with " + answer, warning.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_client_abort_instead_of_a_request_closes_the_transport_without_an_answer()
    {
        // PS3.8 Table 9-10, Sta2: an A-ABORT PDU received is AA-2 (close the transport), not AA-1 (send A-ABORT).
        await using var harness = new HandlerHarness();
        var client = harness.Connect();

        await client.SendAsync(DicomCaptures.UserAbort);

        Assert.True(await client.ClosedWithoutPduAsync());
        Assert.Equal(DicomAssociationEndReason.ClientAborted, (await harness.Ended.Task.WaitAsync(s_bounded)).Reason);
    }

    [Fact]
    public async Task A_release_request_instead_of_a_request_is_answered_with_a_abort_unexpected_pdu()
    {
        // PS3.8 Table 9-10, Sta2: any other PDU is AA-1, an A-ABORT.
        await using var harness = new HandlerHarness();
        var client = harness.Connect();

        await client.SendAsync(DicomCaptures.ReleaseRequest);
        var abort = await client.ReadPduAsync();

        Assert.Equal(Convert.FromHexString("07000000000400000202"), abort!.Value.Pdu);
        Assert.Equal(DicomAssociationEndReason.Malformed, (await harness.Ended.Task.WaitAsync(s_bounded)).Reason);
    }

    public static TheoryData<string, int, byte[], byte, string> InvalidAeTitles => new()
    {
        // Field offset in the PDU (PS3.8 Table 9-11: Called-AE-title at 10, Calling-AE-title at 26), its 16 bytes, the
        // RJ reason (Table 9-21: 3 calling-, 7 called-AE-title-not-recognized), the problem logged.
        { "blank calling", 26, "                "u8.ToArray(), 3, "Calling AE title blank (spaces or NULs only)" },
        { "blank called", 10, "                "u8.ToArray(), 7, "Called AE title blank (spaces or NULs only)" },
        { "control characters in calling", 26, [(byte)'B', (byte)'B', 0x01, 0x07, .. "            "u8], 3, "Calling AE title control character 0x01 at byte 3" },
        { "control character in called", 10, [(byte)'S', (byte)'T', 0x1B, (byte)'R', .. "            "u8], 7, "Called AE title control character 0x1B at byte 3" },
        { "DEL in calling", 26, [(byte)' ', (byte)'A', 0x7F, .. "             "u8], 3, "Calling AE title control character 0x7F at byte 3" },
        { "non-ASCII calling", 26, [.. "ÄÖÜ"u8, .. "          "u8], 3, "Calling AE title non-ASCII byte 0xC3 at byte 1" },
        { "non-ASCII called", 10, [(byte)'P', (byte)'A', (byte)'C', (byte)'S', 0xE9, .. "           "u8], 7, "Called AE title non-ASCII byte 0xE9 at byte 5" },
        { "backslash in called", 10, [.. "STORE\\SCP"u8, .. "       "u8], 7, "Called AE title backslash at byte 6" },
        { "backslash in calling", 26, [.. "CT\\1"u8, .. "            "u8], 3, "Calling AE title backslash at byte 3" },
    };

    [Theory]
    [MemberData(nameof(InvalidAeTitles))]
    public async Task An_invalid_ae_title_is_rejected_permanent_as_not_recognized_and_the_warning_says_why(string title, int offset, byte[] field, byte reason, string problem)
    {
        await using var harness = new HandlerHarness();
        var client = harness.Connect();
        Assert.Equal(AeTitle.Length, field.Length);
        Assert.NotNull(title);

        await client.SendAsync(AssociateParserTests.Patch(DicomCaptures.AssociateRequest, offset, field));
        var answer = await client.ReadPduAsync();

        // PS3.8 Table 9-21: rejected-permanent, DICOM UL service-user, calling- (3) or called-AE-title-not-recognized (7).
        Assert.Equal(new byte[] { 0x03, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x01, 0x01, reason }, answer!.Value.Pdu);
        Assert.Equal(DicomAssociationEndReason.NoRoute, (await harness.Ended.Task.WaitAsync(s_bounded)).Reason);
        var warning = Assert.Single(harness.Logger.Collector.GetSnapshot(), r => r.Id.Id == 303);
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Contains(problem, warning.Message, StringComparison.Ordinal);
        Assert.Contains(reason == 3 ? "(calling-AE-title-not-recognized)" : "(called-AE-title-not-recognized)", warning.Message, StringComparison.Ordinal);
        Assert.Contains(reason == 3 ? "InvalidCallingAeTitle" : "InvalidCalledAeTitle", warning.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_rq_that_does_not_parse_gets_a_abort_and_the_warning_names_the_parse_error()
    {
        await using var harness = new HandlerHarness();
        var client = harness.Connect();

        // The dcmtk RQ with its Presentation Context item's length (at 0x65) running past the PDU.
        await client.SendAsync(AssociateParserTests.Patch(DicomCaptures.AssociateRequest, 0x65, 0xFF, 0xFF));
        var answer = await client.ReadPduAsync();

        Assert.Equal(new byte[] { 0x07, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x02, 0x06 }, answer!.Value.Pdu);
        Assert.Equal(DicomAssociationEndReason.Malformed, (await harness.Ended.Task.WaitAsync(s_bounded)).Reason);
        var warning = Assert.Single(harness.Logger.Collector.GetSnapshot(), r => r.Id.Id == 303);
        Assert.Contains("ItemLengthInvalid: an item or sub-item length runs past its container", warning.Message, StringComparison.Ordinal);
        Assert.Contains("A-ABORT (invalid-PDU-parameter-value)", warning.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_rq_over_max_associate_pdu_length_gets_a_abort_and_the_warning_names_its_length_and_the_setting()
    {
        await using var harness = new HandlerHarness();
        var client = harness.Connect();

        // An A-ASSOCIATE-RQ header announcing 70,000 bytes: over the default MaxAssociatePduLength (64 KiB), not read.
        await client.SendAsync([0x01, 0x00, 0x00, 0x01, 0x11, 0x70, 0x00, 0x01, 0x00, 0x00]);
        var answer = await client.ReadPduAsync();

        Assert.Equal(new byte[] { 0x07, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x02, 0x06 }, answer!.Value.Pdu);
        Assert.Equal(DicomAssociationEndReason.Malformed, (await harness.Ended.Task.WaitAsync(s_bounded)).Reason);
        var warning = Assert.Single(harness.Logger.Collector.GetSnapshot(), r => r.Id.Id == 303);
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Contains("OverMaximumLength: PDU-length 70000 is over MaxAssociatePduLength 65536", warning.Message, StringComparison.Ordinal);
        Assert.Contains("A-ABORT (invalid-PDU-parameter-value)", warning.Message, StringComparison.Ordinal);
    }

    /// <summary>A node's A-ASSOCIATE-RJ: a well-formed transient one, then malformed ones (a node failure).</summary>
    public static TheoryData<string, byte[], bool> NodeRejects => new()
    {
        { "transient", [0x03, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x02, 0x03, 0x01], false },
        { "PDU-length 3", [0x03, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x02, 0x01], true },
        { "PDU-length 5, permanent", [0x03, 0x00, 0x00, 0x00, 0x00, 0x05, 0x00, 0x01, 0x01, 0x07, 0x00], true },
        { "result 0", [0x03, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x01, 0x01], true },
    };

    [Theory]
    [MemberData(nameof(NodeRejects))]
    public async Task A_transient_reject_from_the_node_moves_on_and_a_malformed_one_also_marks_it_unhealthy(string reject, byte[] pdu, bool malformed)
    {
        using var listener = ListenOnLoopback();
        await using var harness = new HandlerHarness(destinationPorts: ((IPEndPoint)listener.LocalEndPoint!).Port);
        var client = harness.Connect();
        await client.SendAsync(DicomCaptures.AssociateRequest);

        using var node = await listener.AcceptAsync().WaitAsync(s_bounded);
        Assert.Equal((byte)PduType.AssociateRequest, (await ReceivePduAsync(node))[0]);
        await node.SendAsync(pdu);

        // The only destination failed: the client gets temporary-congestion, never the node's bytes.
        var answer = await client.ReadPduAsync();
        Assert.Equal(new byte[] { 0x03, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x02, 0x03, 0x01 }, answer!.Value.Pdu);
        Assert.Equal(DicomAssociationEndReason.NoDestination, (await harness.Ended.Task.WaitAsync(s_bounded)).Reason);
        if (!malformed)
        {
            Assert.Empty(harness.HealthUpdates.Passive);
            return;
        }

        Assert.Equal([("d0", Yarp.ReverseProxy.Model.DestinationHealth.Unhealthy)], harness.HealthUpdates.Passive);
        var failed = Assert.Single(harness.Logger.Collector.GetSnapshot(), r => r.Id.Id == 301);
        Assert.Contains("malformed A-ASSOCIATE-RJ", failed.Message, StringComparison.Ordinal);
        Assert.NotNull(reject);
    }

    // Review 20l: a node's A-ABORT instead of an answer to the RQ was logged as "A-ABORT before A-ASSOCIATE-AC", without
    // its source and reason (PS3.8 Table 9-26).
    [Fact]
    public async Task A_node_abort_instead_of_an_answer_fails_the_attempt_naming_its_source_and_reason()
    {
        using var listener = ListenOnLoopback();
        await using var harness = new HandlerHarness(destinationPorts: ((IPEndPoint)listener.LocalEndPoint!).Port);
        var client = harness.Connect();
        await client.SendAsync(DicomCaptures.AssociateRequest);
        using var node = await listener.AcceptAsync().WaitAsync(s_bounded);
        await ReceivePduAsync(node);

        await node.SendAsync(new byte[] { 0x07, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x02, 0x01 });

        Assert.Equal(PduType.AssociateReject, (await client.ReadPduAsync())!.Value.Header.Type);
        Assert.Equal(DicomAssociationEndReason.NoDestination, (await harness.Ended.Task.WaitAsync(s_bounded)).Reason);
        var failed = Assert.Single(harness.Logger.Collector.GetSnapshot(), r => r.Id.Id == 301);
        Assert.True(failed.Message.Contains("A-ABORT before A-ASSOCIATE-AC: A-ABORT from the service-provider (the node's upper layer), unrecognized-PDU", StringComparison.Ordinal), failed.Message);
    }

    [Fact]
    public async Task Garbage_from_the_node_after_the_accept_is_not_relayed_and_both_sides_get_a_abort()
    {
        using var listener = ListenOnLoopback();
        await using var harness = new HandlerHarness(destinationPorts: ((IPEndPoint)listener.LocalEndPoint!).Port);
        var client = harness.Connect();
        await client.SendAsync(DicomCaptures.AssociateRequest);

        using var node = await listener.AcceptAsync().WaitAsync(s_bounded);
        var rq = await ReceivePduAsync(node);
        Assert.Equal((byte)PduType.AssociateRequest, rq[0]);
        await node.SendAsync(DicomCaptures.AssociateAccept);
        Assert.Equal(PduType.AssociateAccept, (await client.ReadPduAsync())!.Value.Header.Type);

        // PDU type 0x42 does not exist (PS3.8 §9.3.1).
        await node.SendAsync(new byte[] { 0x42, 0x00, 0x00, 0x00, 0x00, 0x02, 0xDE, 0xAD });

        var toClient = await client.ReadPduAsync();
        Assert.Equal(PduType.Abort, toClient!.Value.Header.Type);
        Assert.Equal((byte)AbortSource.ServiceProvider, toClient.Value.Pdu[8]);
        var toNode = await ReceivePduAsync(node);
        Assert.Equal([(byte)PduType.Abort, (byte)AbortSource.ServiceProvider, (byte)AbortReason.UnrecognizedPdu], new[] { toNode[0], toNode[8], toNode[9] });
        Assert.Equal(DicomAssociationEndReason.Malformed, (await harness.Ended.Task.WaitAsync(s_bounded)).Reason);
        Assert.Null(await client.ReadPduAsync());
    }

    // Review 19a: an A-ABORT or A-RELEASE-RP and the garbage after it, in one read. The read is not relayed (garbage is
    // not passed on), so the PDU it carried never reaches the client: the proxy's own A-ABORT must (README "Relay": the
    // sender gets A-ABORT, the other side too; PS3.8 §9.1.4: no bare close).
    [Theory]
    [InlineData("07000000000400000200")]
    [InlineData("06000000000400000000")]
    public async Task A_node_pdu_followed_by_garbage_in_one_read_still_leaves_the_client_an_a_abort(string pduHex)
    {
        using var listener = ListenOnLoopback();
        await using var harness = new HandlerHarness(destinationPorts: ((IPEndPoint)listener.LocalEndPoint!).Port);
        var client = harness.Connect();
        await client.SendAsync(DicomCaptures.AssociateRequest);
        using var node = await listener.AcceptAsync().WaitAsync(s_bounded);
        await ReceivePduAsync(node);
        await node.SendAsync(DicomCaptures.AssociateAccept);
        Assert.Equal(PduType.AssociateAccept, (await client.ReadPduAsync())!.Value.Header.Type);

        byte[] burst = [.. Convert.FromHexString(pduHex), 0x42, 0x00, 0x00, 0x00, 0x00, 0x00];
        await node.SendAsync(burst);

        var toClient = await client.ReadPduAsync();
        Assert.NotNull(toClient);
        Assert.Equal(PduType.Abort, toClient.Value.Header.Type);
        Assert.Equal(DicomAssociationEndReason.Malformed, (await harness.Ended.Task.WaitAsync(s_bounded)).Reason);
    }

    [Fact]
    public async Task A_client_abort_followed_by_garbage_in_one_read_still_leaves_the_node_an_a_abort()
    {
        using var node = new LoopbackNode();
        await using var harness = new HandlerHarness(destinationPorts: node.Port);
        var client = harness.Connect();
        await client.SendAsync(DicomCaptures.AssociateRequest);
        Assert.Equal(PduType.AssociateAccept, (await client.ReadPduAsync())!.Value.Header.Type);

        await client.SendAsync([.. DicomCaptures.UserAbort, 0x42, 0x00, 0x00, 0x00, 0x00, 0x00]);

        Assert.Equal(DicomAssociationEndReason.Malformed, (await harness.Ended.Task.WaitAsync(s_bounded)).Reason);
        Assert.Equal([PduType.Abort], await node.Closed.WaitAsync(s_bounded));
    }

    // Review 19a: a node that accepts the TCP connection and never answers the A-ASSOCIATE-RQ. The proxy waited the whole
    // ArtimTimeout (30 s) for it before failing over, the same as the client's own timer (dcmtk's -ta default is 30 s,
    // fo-dicom's 5 s): the client gave up first, the association never reached the healthy node, and because the client
    // left before the proxy's timer fired the hanging node was neither logged as failed (event 301) nor marked
    // passively unhealthy, so the next association went to it again. Failover before acceptance has to fit inside the
    // client's ARTIM (README "Failover before acceptance"; PS3.8 §9.1.2).
    [Fact]
    public async Task A_node_that_never_answers_the_rq_is_failed_over_before_a_client_with_the_same_artim_gives_up()
    {
        using var hanging = ListenOnLoopback();
        using var healthy = new LoopbackNode();
        await using var harness = new HandlerHarness(destinationPorts: [((IPEndPoint)hanging.LocalEndPoint!).Port, healthy.Port]);
        var client = harness.Connect();
        await client.SendAsync(DicomCaptures.AssociateRequest);
        var answer = client.ReadPduAsync();
        var sent = harness.Time.GetUtcNow();

        // The client's own ARTIM is the proxy's default (30 s); it gives up just before that.
        while (!answer.IsCompleted && harness.Time.GetUtcNow() - sent < TimeSpan.FromSeconds(29))
        {
            harness.Time.Advance(TimeSpan.FromSeconds(1));
            await Task.WhenAny(answer, Task.Delay(20));
        }

        Assert.True(answer.IsCompleted, "no answer to the client within its 30 s ARTIM");
        Assert.Equal(PduType.AssociateAccept, (await answer)!.Value.Header.Type);
        Assert.True(healthy.SawRequest);
        Assert.Equal([("d0", Yarp.ReverseProxy.Model.DestinationHealth.Unhealthy)], harness.HealthUpdates.Passive);
    }

    // Review 19a: an A-ASSOCIATE-AC that does not parse (here a 4-byte body; PS3.8 §9.3.3: 68-byte fixed part, an
    // Application Context, Presentation Context and User Information item) was passed to the client as an acceptance:
    // echoscu failed "DUL Illegal associate PDU", the association ended client_closed and the node was neither failed over
    // nor marked unhealthy (README "Failover before acceptance": a malformed answer goes to the next destination).
    [Fact]
    public async Task A_malformed_associate_ac_is_a_failed_attempt_the_node_gets_a_abort_and_the_next_node_takes_the_association()
    {
        using var broken = ListenOnLoopback();
        using var healthy = new LoopbackNode();
        await using var harness = new HandlerHarness(destinationPorts: [((IPEndPoint)broken.LocalEndPoint!).Port, healthy.Port]);
        var client = harness.Connect();
        await client.SendAsync(DicomCaptures.AssociateRequest);
        using var node = await broken.AcceptAsync().WaitAsync(s_bounded);
        await ReceivePduAsync(node);
        await node.SendAsync(new byte[] { 0x02, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x01, 0x00, 0x00 });

        Assert.Equal(PduType.AssociateAccept, (await client.ReadPduAsync())!.Value.Header.Type);
        Assert.True(healthy.SawRequest);
        Assert.Equal([("d0", Yarp.ReverseProxy.Model.DestinationHealth.Unhealthy)], harness.HealthUpdates.Passive);
        var toNode = await ReceivePduAsync(node);
        Assert.Equal([(byte)PduType.Abort, (byte)AbortSource.ServiceProvider], new[] { toNode[0], toNode[8] });
    }

    // Review 19a: a node answering the RQ with something other than AC/RJ/A-ABORT was only disconnected. PS3.8 Table
    // 9-10 (Sta5, AA-8) and §9.1.4: it gets A-ABORT, service-provider, unexpected-PDU (a known type) or unrecognized-PDU
    // (an unknown type), not a bare close.
    [Theory]
    [InlineData("0400000000080000000401030000", 2)]
    [InlineData("05000000000400000000", 2)]
    [InlineData("4200000000020000", 1)]
    public async Task A_node_answering_the_rq_with_an_unexpected_pdu_gets_a_abort(string answerHex, byte reason)
    {
        using var listener = ListenOnLoopback();
        await using var harness = new HandlerHarness(destinationPorts: ((IPEndPoint)listener.LocalEndPoint!).Port);
        var client = harness.Connect();
        await client.SendAsync(DicomCaptures.AssociateRequest);
        using var node = await listener.AcceptAsync().WaitAsync(s_bounded);
        await ReceivePduAsync(node);
        await node.SendAsync(Convert.FromHexString(answerHex));

        Assert.Equal(PduType.AssociateReject, (await client.ReadPduAsync())!.Value.Header.Type);
        var toNode = await ReceivePduAsync(node);
        Assert.Equal([(byte)PduType.Abort, (byte)AbortSource.ServiceProvider, reason], new[] { toNode[0], toNode[8], toNode[9] });
    }

    // Review 20l: a node's A-ABORT after the AC left only the end line "node_aborted", not whether the node's application
    // (source 0) or its upper layer (source 2, and why) ended the association.
    [Theory]
    [InlineData((byte)0, (byte)0, "A-ABORT from the service-user (the node's application)")]
    [InlineData((byte)2, (byte)2, "A-ABORT from the service-provider (the node's upper layer), unexpected-PDU")]
    public async Task A_node_abort_after_the_accept_is_logged_with_its_source_and_reason(byte source, byte reason, string described)
    {
        using var listener = ListenOnLoopback();
        await using var harness = new HandlerHarness(destinationPorts: ((IPEndPoint)listener.LocalEndPoint!).Port);
        var client = harness.Connect();
        await client.SendAsync(DicomCaptures.AssociateRequest);
        using var node = await listener.AcceptAsync().WaitAsync(s_bounded);
        await ReceivePduAsync(node);
        await node.SendAsync(DicomCaptures.AssociateAccept);
        Assert.Equal(PduType.AssociateAccept, (await client.ReadPduAsync())!.Value.Header.Type);

        byte[] abort = [0x07, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, source, reason];
        await node.SendAsync(abort);
        node.Shutdown(SocketShutdown.Both); // PS3.8 AA-3: the node closes after its A-ABORT

        Assert.Equal(abort, (await client.ReadPduAsync())!.Value.Pdu);
        Assert.Equal(DicomAssociationEndReason.NodeAborted, (await harness.Ended.Task.WaitAsync(s_bounded)).Reason);
        var warning = Assert.Single(harness.Logger.Collector.GetSnapshot(), r => r.Id.Id == 315);
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.True(warning.Message.Contains("destination d0 of cluster ", StringComparison.Ordinal) && warning.Message.Contains(described, StringComparison.Ordinal), warning.Message);
    }

    // Review 19a: a broken PDU stream after the AC ended the association with only its info end line ("malformed"),
    // saying neither which side broke it nor how, although the error is known (README: the quality bar asks a log line
    // that names the problem, as event 303 does for a refused RQ; a node that fails the association is a warning).
    [Theory]
    [InlineData(true, "client", "InvalidPdvLength")]
    [InlineData(false, "node", "InvalidPdvLength")]
    public async Task A_broken_pdu_stream_after_the_accept_is_logged_as_a_warning_naming_the_side_and_the_error(bool fromClient, string side, string error)
    {
        using var listener = ListenOnLoopback();
        await using var harness = new HandlerHarness(destinationPorts: ((IPEndPoint)listener.LocalEndPoint!).Port);
        var client = harness.Connect();
        await client.SendAsync(DicomCaptures.AssociateRequest);
        using var node = await listener.AcceptAsync().WaitAsync(s_bounded);
        await ReceivePduAsync(node);
        await node.SendAsync(DicomCaptures.AssociateAccept);
        Assert.Equal(PduType.AssociateAccept, (await client.ReadPduAsync())!.Value.Header.Type);

        // A P-DATA-TF whose PDV item-length (0x20) runs past its PDU-length (8): PS3.8 §9.3.5.
        byte[] broken = [0x04, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x20, 0x01, 0x03, 0x00, 0x00];
        if (fromClient)
        {
            await client.SendAsync(broken);
        }
        else
        {
            await node.SendAsync(broken);
        }

        Assert.Equal(DicomAssociationEndReason.Malformed, (await harness.Ended.Task.WaitAsync(s_bounded)).Reason);
        var warning = Assert.Single(harness.Logger.Collector.GetSnapshot(), r => r.Id.Id == 304);
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Contains($"the {side} ", warning.Message, StringComparison.Ordinal);
        Assert.Contains(error, warning.Message, StringComparison.Ordinal);
    }

    /// <summary>One whole PDU from a node-side socket (bounded).</summary>
    private static async Task<byte[]> ReceivePduAsync(Socket socket)
    {
        var header = new byte[PduHeader.Size];
        await ReceiveExactlyAsync(socket, header);
        var length = (int)System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(2));
        var pdu = new byte[PduHeader.Size + length];
        header.CopyTo(pdu, 0);
        await ReceiveExactlyAsync(socket, pdu.AsMemory(PduHeader.Size));
        return pdu;
    }

    private static async Task ReceiveExactlyAsync(Socket socket, Memory<byte> buffer)
    {
        while (!buffer.IsEmpty)
        {
            var n = await socket.ReceiveAsync(buffer).AsTask().WaitAsync(s_bounded);
            Assert.NotEqual(0, n);
            buffer = buffer[n..];
        }
    }

    [Fact]
    public async Task An_oversize_rq_length_is_answered_with_a_abort_before_anything_is_buffered()
    {
        await using var harness = new HandlerHarness();
        var client = harness.Connect();

        // A-ASSOCIATE-RQ announcing 1 MiB, above the 64 KiB association PDU limit.
        await client.SendAsync([0x01, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x01]);
        var abort = await client.ReadPduAsync();

        Assert.Equal(PduType.Abort, abort!.Value.Header.Type);
        Assert.Equal([(byte)AbortSource.ServiceProvider, (byte)AbortReason.InvalidPduParameterValue], abort.Value.Pdu[8..10]);
        Assert.Equal(DicomAssociationEndReason.Malformed, (await harness.Ended.Task.WaitAsync(s_bounded)).Reason);
    }

    [Fact]
    public async Task Failover_tries_at_most_max_attempts_destinations_then_rejects_with_temporary_congestion()
    {
        using ClosedPort first = new(), second = new(), third = new();
        await using var harness = new HandlerHarness(new Dictionary<string, string?> { ["MaxAttempts"] = "2" }, destinationPorts: [first.Port, second.Port, third.Port]);
        using var failovers = harness.Collect("imagingproxy.dicom.failovers");
        var client = harness.Connect();

        await client.SendAsync(DicomCaptures.AssociateRequest);
        var answer = await client.ReadPduAsync();

        Assert.Equal(PduType.AssociateReject, answer!.Value.Header.Type);
        Assert.Equal([(byte)AssociateRejectResult.RejectedTransient, (byte)AssociateRejectSource.ServiceProviderPresentation, AssociateRejectReasons.ServiceProviderPresentationTemporaryCongestion], answer.Value.Pdu[7..10]);
        var summary = await harness.Ended.Task.WaitAsync(s_bounded);
        Assert.Equal(DicomAssociationEndReason.NoDestination, summary.Reason);
        Assert.Equal(2, summary.Attempts);
        var failed = failovers.GetMeasurementSnapshot();
        Assert.Equal(2, failed.Count);
        Assert.Equal(2, failed.Select(m => m.Tags["destination"]).Distinct().Count());
    }

    [Fact]
    public async Task Association_counter_carries_end_reason_and_limited_ae_title_labels()
    {
        await using var harness = new HandlerHarness();
        using var collector = harness.Collect("imagingproxy.dicom.associations");
        harness.Lifetime.StopApplication();

        // The harness's limiter lets 2 distinct AE titles through: ECHOSCU and STORESCP from the capture, then "other".
        var first = harness.Connect();
        await first.SendAsync(DicomCaptures.AssociateRequest);
        await first.Run.WaitAsync(s_bounded);
        var second = harness.Connect();
        var request = DicomCaptures.AssociateRequest;
        Assert.True(AeTitleRewriter.TryRewriteCalledAeTitle(request, "SOMEWHERE"));
        await second.SendAsync(request);
        await second.Run.WaitAsync(s_bounded);

        var measurements = collector.GetMeasurementSnapshot();
        Assert.Equal(2, measurements.Count);
        Assert.All(measurements, m => Assert.Equal("draining", m.Tags["end_reason"]));
        Assert.Equal("ECHOSCU", measurements[0].Tags["dicom.calling_ae_title"]);
        Assert.Equal("STORESCP", measurements[0].Tags["dicom.called_ae_title"]);
        Assert.Equal("other", measurements[1].Tags["dicom.called_ae_title"]);
        Assert.Equal("ECHOSCU", measurements[1].Tags["dicom.calling_ae_title"]);
    }

    [Fact]
    public void Failover_settings_are_read_with_defaults_and_bounds()
    {
        static DicomFailoverSettings Read(string? attempts, string? timeout) => DicomProxySettings.ReadFailover(
            new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["MaxAttempts"] = attempts, ["ConnectTimeout"] = timeout }).Build());

        Assert.Equal(new DicomFailoverSettings(ProxyDefaults.MaxAttempts, ProxyDefaults.ConnectTimeout), Read(null, null));
        Assert.Equal(new DicomFailoverSettings(5, TimeSpan.FromMilliseconds(750)), Read("5", "00:00:00.750"));
        Assert.Equal(new DicomFailoverSettings(ProxyDefaults.MaxAttempts, ProxyDefaults.ConnectTimeout), Read("0", "-00:00:01"));
        Assert.Equal(DicomFailoverSettings.MaxAttemptsLimit, Read("1000", null).MaxAttempts);
    }

    /// <summary>
    /// Moves fake time by <paramref name="step"/> until <paramref name="done"/> completes: the handler arms its timer
    /// at a moment the test cannot observe, so each step is a whole timeout and the first armed timer fires (bounded).
    /// </summary>
    private static async Task AdvanceUntilAsync(HandlerHarness harness, Task done, TimeSpan step)
    {
        using var bound = new CancellationTokenSource(s_bounded);
        while (!done.IsCompleted)
        {
            harness.Time.Advance(step);
            await Task.WhenAny(done, Task.Delay(20, bound.Token));
            bound.Token.ThrowIfCancellationRequested();
        }
    }

    /// <summary>A listening loopback socket: a node whose every byte the test writes itself.</summary>
    private static Socket ListenOnLoopback()
    {
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        return listener;
    }
}
