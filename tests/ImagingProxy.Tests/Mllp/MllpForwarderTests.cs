using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using ImagingProxy.Mllp;
using ImagingProxy.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Tests.Mllp;

/// <summary>Which node connection a message goes out on, and which ACK comes back (MllpForwarder through the handler).</summary>
public sealed class MllpForwarderTests
{
    [Fact]
    public async Task An_unsolicited_frame_still_arriving_is_never_relayed_as_the_next_messages_ack()
    {
        // After each ACK the node starts a late frame; its trailer comes just before the next ACK.
        await using var node = new FakeHl7Node { AckPrefix = "\u001c\r", AckSuffix = "\vMSA|AA|late" };
        await using var harness = new MllpHandlerHarness([node.Address]);
        await harness.SendAsync(MllpHandlerHarness.Message("M1"));
        Assert.Contains("\rMSA|AA|M1", await harness.ReplyAsync(), StringComparison.Ordinal);

        await harness.SendAsync(MllpHandlerHarness.Message("M2"));

        Assert.Contains("\rMSA|AA|M2", await harness.ReplyAsync(), StringComparison.Ordinal);
        Assert.Equal("M1", await node.Received.Reader.ReadAsync().AsTask().WaitAsync(MllpHandlerHarness.Timeout));
        Assert.Equal("M2", await node.Received.Reader.ReadAsync().AsTask().WaitAsync(MllpHandlerHarness.Timeout));
    }

    [Fact]
    public async Task A_late_second_answer_to_the_previous_message_is_dropped_and_the_wait_goes_on_for_this_ones()
    {
        // The node answers M1, then, when M2 arrives (after the proxy's check before the send), M1 again (AE) before M2.
        await using var node = new FakeHl7Node { RepeatPreviousAck = true };
        await using var harness = new MllpHandlerHarness([node.Address]);
        using var dropped = new MetricCollector<long>(harness.Services.GetRequiredService<IMeterFactory>(), "ImagingProxy", "imagingproxy.hl7.node_frames.dropped");
        await harness.SendAsync(MllpHandlerHarness.Message("M1"));
        Assert.Contains("\rMSA|AA|M1", await harness.ReplyAsync(), StringComparison.Ordinal);

        await harness.SendAsync(MllpHandlerHarness.Message("M2"));
        await harness.SendAsync(MllpHandlerHarness.Message("M3"));

        Assert.Contains("\rMSA|AA|M2", await harness.ReplyAsync(), StringComparison.Ordinal);
        Assert.Contains("\rMSA|AA|M3", await harness.ReplyAsync(), StringComparison.Ordinal);
        Assert.Equal(2, dropped.GetMeasurementSnapshot().Sum(m => m.Value)); // M1's and M2's second answers
        Assert.All(dropped.GetMeasurementSnapshot(), m => Assert.Equal("d0", m.Tags["destination"]));
    }

    [Fact]
    public async Task A_late_answer_to_a_message_before_the_previous_one_is_dropped_and_the_wait_goes_on_for_this_ones()
    {
        // Enhanced mode: the node commits each message (CA) and sends the application ACK of the message two back just
        // before the commit ACK of the one in flight, in the same write. That frame answers M1, not M3: relayed for M3, it
        // hid M3's own answer (dropped before M4 as unsolicited), never an ACK paired with the wrong message.
        await using var node = new FakeHl7Node(ackCode: "CA") { RepeatPreviousAck = true, RepeatAckBack = 2 };
        await using var harness = new MllpHandlerHarness([node.Address]);
        using var dropped = new MetricCollector<long>(harness.Services.GetRequiredService<IMeterFactory>(), "ImagingProxy", "imagingproxy.hl7.node_frames.dropped");
        foreach (var id in new[] { "M1", "M2", "M3", "M4" })
        {
            await harness.SendAsync(MllpHandlerHarness.Message(id, extraMsh: "|||AL|AL"));
            Assert.Contains($"\rMSA|CA|{id}\r", await harness.ReplyAsync(), StringComparison.Ordinal);
        }

        Assert.Equal(2, dropped.GetMeasurementSnapshot().Sum(m => m.Value)); // M1's and M2's late answers
    }

    [Fact]
    public async Task After_the_sticky_node_closed_its_idle_connection_the_next_message_goes_to_the_same_node_on_a_new_connection()
    {
        // Either node may be picked first; the one picked closes its connection after the ACK, as an idle close would.
        await using var a = new FakeHl7Node { CloseAfterAck = true };
        await using var b = new FakeHl7Node { CloseAfterAck = true };
        await using var harness = new MllpHandlerHarness([a.Address, b.Address]);
        await harness.SendAsync(MllpHandlerHarness.Message("M1"));
        Assert.Contains("\rMSA|AA|M1", await harness.ReplyAsync(), StringComparison.Ordinal);
        var (sticky, other) = a.Received.Reader.TryRead(out var first) ? (a, b) : (b, a);
        Assert.Equal("M1", first ?? await sticky.Received.Reader.ReadAsync().AsTask().WaitAsync(MllpHandlerHarness.Timeout));
        await sticky.Closed.Reader.ReadAsync().AsTask().WaitAsync(MllpHandlerHarness.Timeout);

        await harness.SendAsync(MllpHandlerHarness.Message("M2"));

        Assert.Contains("\rMSA|AA|M2", await harness.ReplyAsync(), StringComparison.Ordinal);
        Assert.False(other.Received.Reader.TryRead(out _)); // a node records a message before it acknowledges it
        Assert.True(sticky.Received.Reader.TryRead(out var second));
        Assert.Equal("M2", second);
    }

    [Fact]
    public async Task A_message_failing_over_after_its_nodes_free_retry_gets_one_on_the_next_node_too_whose_pooled_connection_went_stale()
    {
        // A rolling restart of the receivers: d1 restarted first, so the connection to it waiting in the pool (returned by a
        // sender that left) is closed; then d0, the sticky node, stops. The message's sticky connection fails (its free
        // retry on a new connection is refused: d0 is down), and it fails over to d1, whose pooled connection fails as
        // well: d1's own free retry on a new connection delivers it, and d1, which is up, is not marked unhealthy.
        await using var a = new FakeHl7Node { CloseAfterAck = true };
        await using var b = new FakeHl7Node { CloseAfterAck = true };
        var health = new PassiveHealthRecorder();
        await using var harness = new MllpHandlerHarness([a.Address, b.Address], health: health);
        var all = harness.Cluster.DestinationsState.AllDestinations;
        harness.Cluster.DestinationsState = new ClusterDestinationsState(all, [all[0]]);
        await harness.SendAsync(MllpHandlerHarness.Message("M1"));
        Assert.Contains("\rMSA|AA|M1", await harness.ReplyAsync(), StringComparison.Ordinal);
        await a.Closed.Reader.ReadAsync().AsTask().WaitAsync(MllpHandlerHarness.Timeout);
        harness.Cluster.DestinationsState = new ClusterDestinationsState(all, all);

        using var timeout = new CancellationTokenSource(MllpHandlerHarness.Timeout);
        var pooled = await harness.Pool.RentAsync(b.Address, MllpConstants.DefaultMaxFrameSize, MllpHandlerHarness.Timeout, timeout.Token);
        Assert.True(await pooled.SendAsync(new ReadOnlySequence<byte>(MllpHandlerHarness.Message("P1")), timeout.Token));
        Assert.True(await pooled.ReceiveAsync(new ArrayBufferWriter<byte>(), timeout.Token));
        await b.Closed.Reader.ReadAsync().AsTask().WaitAsync(MllpHandlerHarness.Timeout);
        await harness.Pool.ReturnAsync(pooled, TimeSpan.FromMinutes(1));
        await a.DisposeAsync();

        await harness.SendAsync(MllpHandlerHarness.Message("M2"));

        Assert.Contains("\rMSA|AA|M2", await harness.ReplyAsync(), StringComparison.Ordinal);
        Assert.Equal(["P1", "M2"], Drain(b));
        Assert.Equal(["d0:Unhealthy"], health.Marked);
    }

    [Theory]
    [InlineData("3", "CA")] // another node and attempt left: the refusal is not the answer
    [InlineData("1", "CR")] // no attempt left: the node's refusal is
    public async Task A_commit_reject_sends_the_message_to_another_node_with_RetryOnReject_and_marks_no_node_unhealthy(string maxAttempts, string answer)
    {
        // Enhanced mode (MSH-15 AL). A new forwarder's first pick among two idle nodes is d1 (its rotation starts
        // there): the rejecting node, asserted below.
        await using var accepting = new FakeHl7Node(ackCode: "CA");
        await using var rejecting = new FakeHl7Node(ackCode: "CR");
        var health = new PassiveHealthRecorder();
        await using var harness = new MllpHandlerHarness(
            [accepting.Address, rejecting.Address], settings: new() { ["ImagingProxy:Mllp:MaxAttempts"] = maxAttempts }, health: health,
            clusterMetadata: new Dictionary<string, string> { ["Mllp.RetryOnReject"] = "true" });
        using var retries = new MetricCollector<long>(harness.Services.GetRequiredService<IMeterFactory>(), "ImagingProxy", "imagingproxy.hl7.retries");

        var replies = new List<string>();
        for (var i = 1; i <= 4; i++)
        {
            await harness.SendAsync(MllpHandlerHarness.Message($"M{i}", extraMsh: "|||AL|NE"));
            replies.Add((await harness.ReplyAsync())!);
        }

        var rejected = Drain(rejecting);
        var accepted = Drain(accepting);
        Assert.Empty(health.Marked);
        if (answer == "CA")
        {
            // M1 was refused, then accepted by the other node, where the connection stays: every message is accepted.
            Assert.All(replies, (reply, i) => Assert.Contains($"\rMSA|CA|M{i + 1}", reply, StringComparison.Ordinal));
            Assert.Equal(["M1", "M2", "M3", "M4"], accepted);
            Assert.Equal(["M1"], rejected);
            Assert.Equal("d1", Assert.Single(retries.GetMeasurementSnapshot()).Tags["destination"]);

            // The refusing node's connection is kept, once, in the pool (not discarded, not also left sticky).
            Assert.Equal(1, harness.Pool.IdleCount(rejecting.Address));
            Assert.Equal(1, rejecting.OpenConnections);
        }
        else
        {
            // One attempt: the node's CR is the answer, and the connection stays on that node.
            Assert.All(replies, (reply, i) => Assert.Contains($"\rMSA|CR|M{i + 1}", reply, StringComparison.Ordinal));
            Assert.Equal(["M1", "M2", "M3", "M4"], rejected);
            Assert.Empty(accepted);
            Assert.Empty(retries.GetMeasurementSnapshot());
        }
    }

    [Theory]
    [InlineData("AE")] // an error in processing: the message may be partly applied
    [InlineData("AR|M0")] // MSA-2 is not the message's MSH-10: a protocol error, relayed, never retried
    public async Task With_RetryOnReject_an_error_or_a_refusal_of_another_message_is_relayed_not_retried(string msa)
    {
        await using var accepting = new FakeHl7Node();
        await using var answering = new FakeHl7Node(ackCode: msa); // d1: a new forwarder's first pick
        await using var harness = new MllpHandlerHarness(
            [accepting.Address, answering.Address], clusterMetadata: new Dictionary<string, string> { ["Mllp.RetryOnReject"] = "true" });
        using var retries = new MetricCollector<long>(harness.Services.GetRequiredService<IMeterFactory>(), "ImagingProxy", "imagingproxy.hl7.retries");

        await harness.SendAsync(MllpHandlerHarness.Message("M1"));

        Assert.Contains($"\rMSA|{msa}|M1\r", await harness.ReplyAsync(), StringComparison.Ordinal);
        Assert.Equal(["M1"], Drain(answering));
        Assert.Empty(Drain(accepting));
        Assert.Empty(retries.GetMeasurementSnapshot());
    }

    [Fact]
    public async Task A_refusal_is_relayed_as_it_is_when_the_delivery_budget_ends_before_another_node_gets_the_message()
    {
        // The refusal comes 5 ms before the end of DeliveryTimeout: less than the 10 ms backoff before a second attempt.
        // Dropped, it would become ImagingProxy's own AR ("retry later") although no other node was ever tried.
        var time = new ArmedTimeProvider(MllpForwarder.FirstBackoff);
        await using var accepting = new FakeHl7Node();
        await using var rejecting = new FakeHl7Node(hold: true, ackCode: "AR");
        await using var harness = new MllpHandlerHarness(
            [accepting.Address, rejecting.Address], time, new()
            {
                ["ImagingProxy:Mllp:AckTimeout"] = "00:00:30",
                ["ImagingProxy:Mllp:DeliveryTimeout"] = "00:00:10",
            },
            clusterMetadata: new Dictionary<string, string> { ["Mllp.RetryOnReject"] = "true" });
        using var messages = new MetricCollector<long>(harness.Services.GetRequiredService<IMeterFactory>(), "ImagingProxy", "imagingproxy.hl7.messages");

        await harness.SendAsync(MllpHandlerHarness.Message("M1"));
        Assert.Equal("M1", await rejecting.Received.Reader.ReadAsync().AsTask().WaitAsync(MllpHandlerHarness.Timeout));
        time.Advance(TimeSpan.FromSeconds(10) - TimeSpan.FromMilliseconds(5));
        rejecting.Release();

        var reply = harness.ReplyAsync();
        if (await Task.WhenAny(reply, time.ArmedAsync(MllpHandlerHarness.Timeout)) != reply)
        {
            time.Advance(MllpForwarder.FirstBackoff); // the retry pipeline's backoff
        }

        Assert.Contains("|AM1|", await reply, StringComparison.Ordinal); // the node's own ACK (its MSH-10)
        Assert.Contains("\rMSA|AR|M1\r", await reply, StringComparison.Ordinal);
        Assert.Empty(Drain(accepting));
        var relayed = Assert.Single(messages.GetMeasurementSnapshot());
        Assert.Equal(("d1", "AR"), ((string?)relayed.Tags["destination"], (string?)relayed.Tags["ack_code"]));
    }

    [Fact]
    public async Task A_message_with_msh15_ne_goes_to_one_node_once_and_gets_no_reply()
    {
        // The nodes send no accept ACK for an NE message (as receivers do); a missing ACK would time out at once.
        await using var a = new FakeHl7Node();
        await using var b = new FakeHl7Node();
        var health = new PassiveHealthRecorder();
        await using var harness = new MllpHandlerHarness([a.Address, b.Address], settings: new() { ["ImagingProxy:Mllp:AckTimeout"] = "00:00:00.200" }, health: health);
        using var messages = new MetricCollector<long>(harness.Services.GetRequiredService<IMeterFactory>(), "ImagingProxy", "imagingproxy.hl7.messages");

        await harness.SendAsync(MllpHandlerHarness.Message("N1", extraMsh: "|||NE|AL"));
        await harness.SendAsync(MllpHandlerHarness.Message("M2"));

        // The first reply is M2's ACK: N1 got none.
        Assert.Contains("\rMSA|AA|M2", await harness.ReplyAsync(), StringComparison.Ordinal);
        var (fromA, fromB) = (Drain(a), Drain(b));
        Assert.Equal(["N1", "M2"], fromA.Count > 0 ? fromA : fromB);
        Assert.Empty(fromA.Count > 0 ? fromB : fromA);
        Assert.Empty(health.Marked);
        Assert.Equal(["no_ack_requested", "AA"], messages.GetMeasurementSnapshot().Select(m => (string)m.Tags["ack_code"]!));
    }

    [Fact]
    public async Task A_message_with_msh15_ne_after_the_node_closed_its_idle_connection_goes_out_on_a_new_one()
    {
        // Nothing would notice the close while sending an NE message (no ACK is read): it must not be written into it.
        await using var node = new FakeHl7Node { CloseAfterAck = true };
        await using var harness = new MllpHandlerHarness([node.Address]);
        await harness.SendAsync(MllpHandlerHarness.Message("M1"));
        Assert.Contains("\rMSA|AA|M1", await harness.ReplyAsync(), StringComparison.Ordinal);
        await node.Closed.Reader.ReadAsync().AsTask().WaitAsync(MllpHandlerHarness.Timeout);

        await harness.SendAsync(MllpHandlerHarness.Message("N2", extraMsh: "|||NE|AL"));
        await harness.SendAsync(MllpHandlerHarness.Message("M3"));

        Assert.Contains("\rMSA|AA|M3", await harness.ReplyAsync(), StringComparison.Ordinal);
        Assert.Equal(["M1", "N2", "M3"], Drain(node));
    }

    [Theory]
    [InlineData("00:00:20", "00:00:00.300", false)] // the delivery budget ended the ACK wait: not the node's doing
    [InlineData("00:00:00.300", "00:00:20", true)] // the node's own AckTimeout passed
    public async Task A_node_is_marked_unhealthy_for_its_own_ack_timeout_not_for_the_end_of_the_delivery_budget(string ackTimeout, string deliveryTimeout, bool marked)
    {
        await using var slow = new FakeHl7Node(hold: true);
        var health = new PassiveHealthRecorder();
        await using var harness = new MllpHandlerHarness([slow.Address], settings: new()
        {
            ["ImagingProxy:Mllp:AckTimeout"] = ackTimeout,
            ["ImagingProxy:Mllp:DeliveryTimeout"] = deliveryTimeout,
            ["ImagingProxy:Mllp:MaxAttempts"] = "1",
        }, health: health);

        await harness.SendAsync(MllpHandlerHarness.Message("M1"));

        Assert.Contains("\rMSA|AR|M1|", await harness.ReplyAsync(), StringComparison.Ordinal);
        Assert.Equal(marked ? ["d0:Unhealthy"] : [], health.Marked);
    }

    [Fact]
    public async Task A_message_with_msh15_ne_that_no_node_takes_gets_no_nak_and_is_counted()
    {
        await using var harness = new MllpHandlerHarness(["tcp://127.0.0.1:1"]);
        using var rejected = new MetricCollector<long>(harness.Services.GetRequiredService<IMeterFactory>(), "ImagingProxy", "imagingproxy.hl7.frames.rejected");

        await harness.SendAsync(MllpHandlerHarness.Message("N1", extraMsh: "|||NE|AL"));
        await harness.SendAsync(MllpHandlerHarness.Message("M2"));

        // The first reply is M2's NAK: N1 got none.
        Assert.Contains("\rMSA|AR|M2|", await harness.ReplyAsync(), StringComparison.Ordinal);
        Assert.Equal("undelivered", Assert.Single(rejected.GetMeasurementSnapshot()).Tags["reason"]);
    }

    // Review 20l: a node that answered without MLLP framing (a receiver that writes a bare ACK, or an address pointing at
    // a web server) was logged as "connection closed before an ACK" or "no ACK within 30 s", as a silent node is, and the
    // operator looked for a network problem; the attempt's line now says what the node sent instead.
    [Theory]
    [InlineData("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", "the node sent {n} byte(s) outside an MLLP frame (not <VT>...<FS><CR>), discarded")]
    [InlineData("\vMSH|^~\\&|N|N|R|R|2025||ACK|A1|P|2.5\rMSA|AA|M1\r\u001c", "{n} byte(s) of a frame whose end (<FS><CR>) never came")]
    public async Task An_answer_without_mllp_framing_is_named_in_the_attempts_failure(string answer, string named)
    {
        answer = System.Text.RegularExpressions.Regex.Unescape(answer);
        named = named.Replace("{n}", answer.Length.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var logs = new Microsoft.Extensions.Logging.Testing.FakeLogCollector();
        await using var harness = new MllpHandlerHarness(
            [$"tcp://127.0.0.1:{((System.Net.IPEndPoint)listener.LocalEndpoint).Port}"],
            forwarderLogger: new Microsoft.Extensions.Logging.Testing.FakeLogger<MllpForwarder>(logs));
        await harness.SendAsync(MllpHandlerHarness.Message("M1"));

        // The node reads the message, answers with the bytes given and closes.
        using (var node = await listener.AcceptSocketAsync().WaitAsync(MllpHandlerHarness.Timeout))
        {
            var received = new List<byte>();
            var buffer = new byte[4096];
            while (received.Count < 2 || received[^2] != 0x1C || received[^1] != 0x0D)
            {
                var count = await node.ReceiveAsync(buffer.AsMemory()).AsTask().WaitAsync(MllpHandlerHarness.Timeout);
                Assert.NotEqual(0, count);
                received.AddRange(buffer.AsSpan(0, count));
            }

            await node.SendAsync(System.Text.Encoding.ASCII.GetBytes(answer));
            node.Shutdown(System.Net.Sockets.SocketShutdown.Both);
        }

        Assert.Contains("\rMSA|AR|M1|", await harness.ReplyAsync(), StringComparison.Ordinal);
        var failed = Assert.Single(logs.GetSnapshot(), r => r.Id.Id == 4101);
        Assert.Contains("connection closed before an ACK", failed.Message, StringComparison.Ordinal);
        Assert.True(failed.Message.Contains(named, StringComparison.Ordinal), failed.Message);
    }

    private static List<string> Drain(FakeHl7Node node)
    {
        var ids = new List<string>();
        while (node.Received.Reader.TryRead(out var id))
        {
            ids.Add(id);
        }

        return ids;
    }

    /// <summary>Records passive health changes (the cluster then enables passive health).</summary>
    private sealed class PassiveHealthRecorder : IDestinationHealthUpdater
    {
        public ConcurrentQueue<string> Marked { get; } = new();

        public void SetActive(ClusterState cluster, IEnumerable<NewActiveDestinationHealth> newHealthStates)
        {
        }

        public void SetPassive(ClusterState cluster, DestinationState destination, DestinationHealth newHealth, TimeSpan reactivationPeriod)
            => Marked.Enqueue($"{destination.DestinationId}:{newHealth}");
    }
}
