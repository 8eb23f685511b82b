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
}
