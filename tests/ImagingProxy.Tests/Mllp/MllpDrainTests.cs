using System.Diagnostics.Metrics;
using ImagingProxy.Mllp;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace ImagingProxy.Tests.Mllp;

/// <summary>
/// Draining (issue 6, MLLP side) over in-memory pipes: Kestrel's close request finishes the message in flight, an idle
/// connection closes at once, the abort at the deadline is counted as <c>drain_deadline</c>.
/// </summary>
public sealed class MllpDrainTests
{
    private static MetricCollector<long> ClosedCollector(MllpHandlerHarness harness)
        => new(harness.Services.GetRequiredService<IMeterFactory>(), "ImagingProxy", "imagingproxy.hl7.connections.closed");

    private static string? ClosedReason(MetricCollector<long> collector)
        => collector.GetMeasurementSnapshot().Select(m => m.Tags["reason"] as string).SingleOrDefault();

    [Fact]
    public async Task Idle_connection_closes_at_once_when_close_is_requested()
    {
        await using var node = new FakeHl7Node();
        await using var harness = new MllpHandlerHarness([node.Address]);
        using var closed = ClosedCollector(harness);
        await harness.SendAsync(MllpHandlerHarness.Message("M1"));
        Assert.Contains("MSA|AA|M1", await harness.ReplyAsync(), StringComparison.Ordinal);

        harness.RequestClose();

        await harness.Handler.WaitAsync(MllpHandlerHarness.Timeout);
        Assert.Null(await harness.ReplyAsync());
        Assert.Equal("shutdown", ClosedReason(closed));
    }

    [Fact]
    public async Task Message_awaiting_its_ack_is_finished_and_relayed_then_the_connection_closes()
    {
        await using var inFlight = await InFlight.StartAsync();
        var (node, harness, closed) = (inFlight.Node, inFlight.Harness, inFlight.Closed);

        harness.RequestClose();
        // No wait here: a handler that gave up the delivery on the close request has no connection left for the AA
        // below (its output is completed), so the ACK assertion fails for it.
        Assert.False(harness.Handler.IsCompleted);
        node.Release();

        Assert.Contains("\rMSA|AA|M1\r", await harness.ReplyAsync(), StringComparison.Ordinal);
        await harness.Handler.WaitAsync(MllpHandlerHarness.Timeout);
        Assert.Null(await harness.ReplyAsync());
        Assert.Equal("shutdown", ClosedReason(closed));
    }

    [Fact]
    public async Task Message_still_arriving_is_received_forwarded_and_answered_before_closing()
    {
        await using var node = new FakeHl7Node();
        await using var harness = new MllpHandlerHarness([node.Address]);
        var frame = new System.Buffers.ArrayBufferWriter<byte>();
        MllpFrameWriter.Write(frame, MllpHandlerHarness.Message("M1"));
        await harness.SendRawAsync(frame.WrittenMemory[..20]);

        harness.RequestClose(); // the first bytes may not have been read yet: they still count as a message arriving
        // No wait here: a handler that closed on the request answers nothing, so the ACK assertion below fails for it.
        Assert.False(harness.Handler.IsCompleted);
        await harness.SendRawAsync(frame.WrittenMemory[20..]);

        Assert.Contains("\rMSA|AA|M1\r", await harness.ReplyAsync(), StringComparison.Ordinal);
        await harness.Handler.WaitAsync(MllpHandlerHarness.Timeout);
    }

    [Fact]
    public async Task Frames_sent_ahead_of_the_ack_are_not_forwarded_once_close_is_requested()
    {
        await using var node = new FakeHl7Node(hold: true);
        await using var harness = new MllpHandlerHarness([node.Address]);
        await harness.SendAsync(MllpHandlerHarness.Message("M1"));
        await harness.SendAsync(MllpHandlerHarness.Message("M2"));
        Assert.Equal("M1", await node.Received.Reader.ReadAsync().AsTask().WaitAsync(MllpHandlerHarness.Timeout));

        harness.RequestClose();
        node.Release();

        Assert.Contains("\rMSA|AA|M1\r", await harness.ReplyAsync(), StringComparison.Ordinal);
        await harness.Handler.WaitAsync(MllpHandlerHarness.Timeout);
        Assert.Null(await harness.ReplyAsync());
        Assert.False(node.Received.Reader.TryRead(out _)); // M2 got no ACK: the sender sends it again elsewhere
    }

    [Fact]
    public async Task The_drain_deadline_stops_waiting_for_the_node_and_counts_drain_deadline()
    {
        await using var inFlight = await InFlight.StartAsync();
        var (node, harness, closed) = (inFlight.Node, inFlight.Harness, inFlight.Closed);
        harness.RequestClose();

        harness.DeadlinePasses();

        await harness.Handler.WaitAsync(TimeSpan.FromSeconds(2)); // well before the 30 s ACK timeout
        Assert.Null(await harness.ReplyAsync());
        Assert.Equal("drain_deadline", ClosedReason(closed));
    }

    [Fact]
    public async Task A_client_reset_while_its_message_awaits_the_ack_is_a_client_abort_once_the_ack_finds_no_one()
    {
        await using var inFlight = await InFlight.StartAsync();
        var (node, harness, closed) = (inFlight.Node, inFlight.Harness, inFlight.Closed);

        Assert.Equal(1, harness.ConnectionHandler.OpenOn(string.Empty));

        harness.Reset();

        // The sender can send no more: its slot is free for a reconnect while the node's answer is still awaited.
        Assert.Equal(0, harness.ConnectionHandler.OpenOn(string.Empty));
        node.Release();

        await harness.Handler.WaitAsync(MllpHandlerHarness.Timeout);
        Assert.Equal("client_aborted", ClosedReason(closed));
        Assert.Equal(1, harness.Pool.IdleCount(node.Address)); // the node's ACK was read: its connection went back whole
    }

    [Fact]
    public async Task A_sender_that_closes_its_side_while_its_message_awaits_the_ack_still_gets_the_ack()
    {
        await using var inFlight = await InFlight.StartAsync();
        var (node, harness, closed) = (inFlight.Node, inFlight.Harness, inFlight.Closed);

        await harness.HalfCloseAsync(); // FIN: the input completes and ConnectionClosed fires, as Kestrel does
        Assert.False(harness.Handler.IsCompleted);
        node.Release();

        Assert.Contains("\rMSA|AA|M1\r", await harness.ReplyAsync(), StringComparison.Ordinal);
        await harness.Handler.WaitAsync(MllpHandlerHarness.Timeout);
        Assert.Equal("client_closed", ClosedReason(closed));
    }

    /// <summary>M1 sent through the handler and held by the node (no ACK until <see cref="FakeHl7Node.Release"/>).</summary>
    private sealed class InFlight : IAsyncDisposable
    {
        private InFlight(FakeHl7Node node, MllpHandlerHarness harness)
        {
            Node = node;
            Harness = harness;
            Closed = ClosedCollector(harness);
        }

        public FakeHl7Node Node { get; }

        public MllpHandlerHarness Harness { get; }

        public MetricCollector<long> Closed { get; }

        public static async Task<InFlight> StartAsync()
        {
            var node = new FakeHl7Node(hold: true);
            var inFlight = new InFlight(node, new MllpHandlerHarness([node.Address]));
            try
            {
                await inFlight.Harness.SendAsync(MllpHandlerHarness.Message("M1"));
                Assert.Equal("M1", await node.Received.Reader.ReadAsync().AsTask().WaitAsync(MllpHandlerHarness.Timeout));
                return inFlight;
            }
            catch
            {
                await inFlight.DisposeAsync();
                throw;
            }
        }

        public async ValueTask DisposeAsync()
        {
            Closed.Dispose();
            await Harness.DisposeAsync();
            await Node.DisposeAsync();
        }
    }
}
