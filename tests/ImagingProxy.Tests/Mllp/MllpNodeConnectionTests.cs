using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Text;
using ImagingProxy.Mllp;

namespace ImagingProxy.Tests.Mllp;

/// <summary>The node side of a message: one frame out, one ACK frame back, over a real loopback socket pair.</summary>
public sealed class MllpNodeConnectionTests : IAsyncLifetime
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(10);
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private Socket _node = null!;
    private MllpNodeConnection _connection = null!;

    public async Task InitializeAsync()
    {
        _listener.Start();
        var client = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        var accept = _listener.AcceptSocketAsync();
        await client.ConnectAsync((IPEndPoint)_listener.LocalEndpoint);
        _node = await accept.WaitAsync(s_timeout);
        _connection = new MllpNodeConnection("tcp://127.0.0.1:1", client, maxFrameSize: 64);
    }

    public async Task DisposeAsync()
    {
        await _connection.DisposeAsync();
        _node.Dispose();
        _listener.Stop();
    }

    [Fact]
    public async Task Sends_the_message_framed_and_unchanged_in_one_frame()
    {
        Assert.True(await _connection.SendAsync(new ReadOnlySequence<byte>("MSH|^~\\&|A\rPID|1"u8.ToArray()), CancellationToken.None));

        var expected = "\vMSH|^~\\&|A\rPID|1\u001c\r"u8.ToArray();
        Assert.Equal(expected, await ReadNodeAsync(expected.Length));
        Assert.True(_connection.Used);
    }

    [Fact]
    public async Task An_ack_arriving_byte_by_byte_is_read_whole()
    {
        var ack = new ArrayBufferWriter<byte>();
        var receive = _connection.ReceiveAsync(ack, CancellationToken.None).AsTask();
        foreach (var b in "\vMSA|AA|1\u001c\r"u8.ToArray())
        {
            await _node.SendAsync(new[] { b });
        }

        Assert.True(await receive.WaitAsync(s_timeout));
        Assert.Equal("MSA|AA|1", Encoding.ASCII.GetString(ack.WrittenSpan));
    }

    [Fact]
    public async Task A_frame_sent_while_no_message_was_in_flight_is_discarded_before_the_next_message()
    {
        var first = new ArrayBufferWriter<byte>();
        // One read brings the ACK and a late second frame; only the first is this message's ACK.
        await _node.SendAsync("\vMSA|AA|1\u001c\r\vMSA|AA|late\u001c\r"u8.ToArray());
        Assert.True(await _connection.ReceiveAsync(first, CancellationToken.None).AsTask().WaitAsync(s_timeout));
        Assert.Equal("MSA|AA|1", Encoding.ASCII.GetString(first.WrittenSpan));

        // Another unsolicited frame arrives while idle.
        await _node.SendAsync("\vMSA|AA|later\u001c\r"u8.ToArray());
        await WaitUntilReadableAsync();
        await SecondMessageGetsItsOwnAckAsync(unsolicited: 2);
    }

    [Fact]
    public async Task A_late_frame_that_came_with_the_ack_is_never_the_next_messages_ack()
    {
        Assert.True(await _connection.SendAsync(new ReadOnlySequence<byte>("MSH|1"u8.ToArray()), CancellationToken.None));
        await _node.SendAsync("\vMSA|AA|1\u001c\r\vMSA|AA|late\u001c\r"u8.ToArray());
        var first = new ArrayBufferWriter<byte>();
        Assert.True(await _connection.ReceiveAsync(first, CancellationToken.None).AsTask().WaitAsync(s_timeout));

        // Nothing else arrives before the next message: the late frame is still in the connection's buffer.
        await SecondMessageGetsItsOwnAckAsync(unsolicited: 1);
    }

    [Fact]
    public async Task A_connection_partway_through_an_unsolicited_frame_takes_no_further_message()
    {
        // A late frame whose trailer has not arrived: it would end after the send and pass for the message's ACK.
        await _node.SendAsync("\vMSA|AA|late"u8.ToArray());
        await WaitUntilReadableAsync();

        Assert.False(await _connection.SendAsync(new ReadOnlySequence<byte>("MSH|2"u8.ToArray()), CancellationToken.None));
        Assert.Equal(0, _node.Available);
    }

    [Fact]
    public async Task An_oversize_unsolicited_frame_and_a_late_frame_after_it_are_both_discarded()
    {
        Assert.True(await _connection.SendAsync(new ReadOnlySequence<byte>("MSH|1"u8.ToArray()), CancellationToken.None));
        await _node.SendAsync("\vMSA|AA|1\u001c\r"u8.ToArray());
        Assert.True(await _connection.ReceiveAsync(new ArrayBufferWriter<byte>(), CancellationToken.None).AsTask().WaitAsync(s_timeout));

        // While idle: a frame over the 64-byte limit, then a well-formed late frame, in one write.
        var stray = Encoding.ASCII.GetBytes("\v" + new string('A', 200) + "\u001c\r\vMSA|AA|late\u001c\r");
        await _node.SendAsync(stray);
        await WaitUntilReadableAsync(stray.Length);
        await SecondMessageGetsItsOwnAckAsync(unsolicited: 2);
    }

    [Fact]
    public async Task A_cancelled_wait_ends_the_connections_receiving()
    {
        using var cancel = new CancellationTokenSource();
        var receive = _connection.ReceiveAsync(new ArrayBufferWriter<byte>(), cancel.Token).AsTask();
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => receive.WaitAsync(s_timeout));

        // The connection takes no further message: its answer could not be read (the caller discards the connection).
        Assert.False(await _connection.SendAsync(new ReadOnlySequence<byte>("MSH|2"u8.ToArray()), CancellationToken.None));
        Assert.Equal(0, _node.Available);
    }

    [Fact]
    public async Task A_connection_whose_last_answer_was_never_read_takes_no_further_message()
    {
        // The first message's ACK receive was posted before its send and never awaited: whatever it brings could not
        // be told from the next message's ACK.
        Assert.True(await _connection.SendAsync(new ReadOnlySequence<byte>("MSH|1"u8.ToArray()), CancellationToken.None));
        await ReadNodeAsync("\vMSH|1\u001c\r".Length);

        Assert.False(await _connection.SendAsync(new ReadOnlySequence<byte>("MSH|2"u8.ToArray()), CancellationToken.None));
        Assert.False(await _connection.SendAsync(new ReadOnlySequence<byte>("MSH|3"u8.ToArray()), CancellationToken.None, noAck: true));
        Assert.Equal(0, _node.Available);
    }

    [Fact]
    public async Task A_message_without_ack_after_an_acknowledged_one_drops_what_came_after_the_ack()
    {
        Assert.True(await _connection.SendAsync(new ReadOnlySequence<byte>("MSH|1"u8.ToArray()), CancellationToken.None));
        await _node.SendAsync("\vMSA|AA|1\u001c\r"u8.ToArray());
        var first = new ArrayBufferWriter<byte>();
        Assert.True(await _connection.ReceiveAsync(first, CancellationToken.None).AsTask().WaitAsync(s_timeout));

        // A late frame while idle; the next message (MSH-15 NE) posts no receive and drops it.
        await _node.SendAsync("\vMSA|AA|late\u001c\r"u8.ToArray());
        await WaitUntilReadableAsync();
        Assert.True(await _connection.SendAsync(new ReadOnlySequence<byte>("MSH|2"u8.ToArray()), CancellationToken.None, noAck: true));
        Assert.Equal(1, _connection.UnsolicitedFrames);

        // And the message after it gets its own ACK.
        Assert.True(await _connection.SendAsync(new ReadOnlySequence<byte>("MSH|3"u8.ToArray()), CancellationToken.None));
        await _node.SendAsync("\vMSA|AA|3\u001c\r"u8.ToArray());
        var third = new ArrayBufferWriter<byte>();
        Assert.True(await _connection.ReceiveAsync(third, CancellationToken.None).AsTask().WaitAsync(s_timeout));
        Assert.Equal("MSA|AA|3", Encoding.ASCII.GetString(third.WrittenSpan));
    }

    [Fact]
    public async Task An_ack_over_the_frame_limit_ends_the_exchange()
    {
        await _node.SendAsync(Encoding.ASCII.GetBytes("\v" + new string('A', 200) + "\u001c\r"));

        Assert.False(await _connection.ReceiveAsync(new ArrayBufferWriter<byte>(), CancellationToken.None).AsTask().WaitAsync(s_timeout));
    }

    [Fact]
    public async Task A_node_that_closes_before_acknowledging_is_reported()
    {
        _node.Shutdown(SocketShutdown.Send);

        Assert.False(await _connection.ReceiveAsync(new ArrayBufferWriter<byte>(), CancellationToken.None).AsTask().WaitAsync(s_timeout));
    }

    [Fact]
    public async Task Waiting_for_an_ack_stops_when_cancelled()
    {
        using var cancel = new CancellationTokenSource();
        var receive = _connection.ReceiveAsync(new ArrayBufferWriter<byte>(), cancel.Token).AsTask();
        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => receive.WaitAsync(s_timeout));
    }

    private async Task<byte[]> ReadNodeAsync(int count)
    {
        var buffer = new byte[count];
        var filled = 0;
        while (filled < count)
        {
            var n = await _node.ReceiveAsync(buffer.AsMemory(filled)).AsTask().WaitAsync(s_timeout);
            Assert.NotEqual(0, n);
            filled += n;
        }

        return buffer;
    }

    /// <summary>Polls the proxy-side socket until the node's bytes arrived (bounded); loopback delivery is not instant.</summary>
    private async Task WaitUntilReadableAsync(int count = 1)
    {
        var deadline = DateTime.UtcNow + s_timeout;
        while (_connection.BytesWaiting < count && DateTime.UtcNow < deadline)
        {
            await Task.Delay(5);
        }

        Assert.True(_connection.BytesWaiting >= count);
    }

    /// <summary>Message 2 goes out and gets exactly its own ACK; <paramref name="unsolicited"/> frames were dropped so far.</summary>
    private async Task SecondMessageGetsItsOwnAckAsync(int unsolicited)
    {
        Assert.True(await _connection.SendAsync(new ReadOnlySequence<byte>("MSH|2"u8.ToArray()), CancellationToken.None));
        await _node.SendAsync("\vMSA|AA|2\u001c\r"u8.ToArray());
        var second = new ArrayBufferWriter<byte>();
        Assert.True(await _connection.ReceiveAsync(second, CancellationToken.None).AsTask().WaitAsync(s_timeout));
        Assert.Equal("MSA|AA|2", Encoding.ASCII.GetString(second.WrittenSpan));
        Assert.Equal(unsolicited, _connection.UnsolicitedFrames);
    }
}
