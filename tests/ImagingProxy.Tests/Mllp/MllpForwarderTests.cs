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
}
