using System.Buffers;
using System.Diagnostics.Metrics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using ImagingProxy.Mllp;
using ImagingProxy.Tests.Support;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Time.Testing;

namespace ImagingProxy.Tests.Mllp;

/// <summary>Inbound idle timeout, pooled-connection expiry, attempts and the delivery budget (Polly retry pipeline).</summary>
public sealed class MllpTimeoutTests
{
    [Fact]
    public async Task Inbound_connection_idle_for_the_idle_timeout_is_closed()
    {
        var time = new ArmedTimeProvider(TimeSpan.FromMinutes(10));
        await using var harness = new MllpHandlerHarness([], time, new() { ["ImagingProxy:Mllp:IdleTimeout"] = "00:10:00" });
        using var closed = new MetricCollector<long>(harness.Services.GetRequiredService<IMeterFactory>(), "ImagingProxy", "imagingproxy.hl7.connections.closed");

        // The handler's read armed the idle timer.
        await time.ArmedAsync(MllpHandlerHarness.Timeout);
        time.Advance(TimeSpan.FromMinutes(10) - TimeSpan.FromTicks(1));
        Assert.False(harness.Handler.IsCompleted);
        time.Advance(TimeSpan.FromTicks(1));

        await harness.Handler.WaitAsync(MllpHandlerHarness.Timeout);
        Assert.Equal("idle_timeout", closed.GetMeasurementSnapshot().Single().Tags["reason"]);
    }

    [Theory]
    [InlineData("MSH-2 not usable")]
    [InlineData("over MaxFrameSize")]
    public async Task The_first_message_over_max_connections_gets_the_limits_nak_and_the_close_whatever_else_is_wrong_with_it(string problem)
    {
        // README (MaxConnections): a connection over the limit gets AR/CR (ERR 207, listener_limit) for its first message
        // and is then closed. A first message with its own fault (an unusable MSH-2, over MaxFrameSize) got that fault's
        // NAK instead and the connection stayed open, over the limit, until AckTimeout.
        await using var harness = new MllpHandlerHarness([], settings: new()
        {
            ["ImagingProxy:Mllp:MaxFrameSize"] = "256",
            ["ImagingProxy:Mllp:Listeners:hl7:Port"] = "2575",
            ["ImagingProxy:Mllp:Listeners:hl7:MaxConnections"] = "1",
        }, listener: "hl7");
        using var closed = new MetricCollector<long>(harness.Services.GetRequiredService<IMeterFactory>(), "ImagingProxy", "imagingproxy.hl7.connections.closed");
        using var naks = new MetricCollector<long>(harness.Services.GetRequiredService<IMeterFactory>(), "ImagingProxy", "imagingproxy.hl7.naks");
        await harness.SendAsync(MllpHandlerHarness.Message("M1"));
        Assert.Contains("\rMSA|AR|M1|", await harness.ReplyAsync(), StringComparison.Ordinal);

        var toProxy = new Pipe();
        var fromProxy = new Pipe();
        var over = harness.ConnectAnother("over-1", new MllpHandlerHarness.Duplex(toProxy.Reader, fromProxy.Writer));
        var message = problem == "MSH-2 not usable"
            ? "MSH|^~|RIS|RAD|PACS|HOSP|20250101120000||ORM^O01|X1|P|2.5.1\rPID|1\r"u8.ToArray()
            : [.. MllpHandlerHarness.Message("X1"), .. "OBX|1|"u8, .. new byte[300].Select(_ => (byte)'x'), (byte)'\r'];
        MllpFrameWriter.Write(toProxy.Writer, message);
        await toProxy.Writer.FlushAsync();

        await over.WaitAsync(MllpHandlerHarness.Timeout);
        Assert.True(fromProxy.Reader.TryRead(out var result));
        var reply = System.Text.Encoding.ASCII.GetString(result.Buffer.ToArray());
        Assert.Contains("\rMSA|AR|X1|", reply, StringComparison.Ordinal);
        Assert.Contains("\rERR|||207^", reply, StringComparison.Ordinal);
        Assert.Contains("already has its 1 connection(s) open", reply, StringComparison.Ordinal);
        Assert.Equal("listener_limit", closed.GetMeasurementSnapshot().Single().Tags["reason"]);
        Assert.Contains(naks.GetMeasurementSnapshot(), m => (string?)m.Tags["reason"] == "listener_limit");
        await toProxy.Writer.CompleteAsync();
    }

    [Fact]
    public async Task A_connection_over_max_connections_that_trickles_bytes_is_closed_ackTimeout_after_its_accept()
    {
        // README (MaxConnections): a connection over the limit holds no slot and is closed after AckTimeout; bytes that
        // never make a message must not keep it open, or any number of such connections would stay open uncounted.
        var time = new ArmedTimeProvider(TimeSpan.FromSeconds(7));
        var logs = new FakeLogCollector();
        await using var harness = new MllpHandlerHarness([], time, new()
        {
            ["ImagingProxy:Mllp:AckTimeout"] = "00:00:07",
            ["ImagingProxy:Mllp:Listeners:hl7:Port"] = "2575",
            ["ImagingProxy:Mllp:Listeners:hl7:MaxConnections"] = "1",
        }, listener: "hl7", logger: new FakeLogger<MllpConnectionHandler>(logs));
        using var closed = new MetricCollector<long>(harness.Services.GetRequiredService<IMeterFactory>(), "ImagingProxy", "imagingproxy.hl7.connections.closed");

        // The harness's connection holds the only slot once it has answered a message.
        await harness.SendAsync(MllpHandlerHarness.Message("M1"));
        Assert.Contains("\rMSA|AR|M1|", await harness.ReplyAsync(), StringComparison.Ordinal);

        // A writer that waits until the handler consumed what it wrote (bytes outside a frame are consumed as read).
        var toProxy = new Pipe(new PipeOptions(pauseWriterThreshold: 1, resumeWriterThreshold: 1));
        var fromProxy = new Pipe();
        var over = harness.ConnectAnother("over-1", new MllpHandlerHarness.Duplex(toProxy.Reader, fromProxy.Writer));
        await time.ArmedAsync(MllpHandlerHarness.Timeout);
        time.Advance(TimeSpan.FromSeconds(5));
        await toProxy.Writer.WriteAsync("\r\n"u8.ToArray()).AsTask().WaitAsync(MllpHandlerHarness.Timeout);
        time.Advance(TimeSpan.FromSeconds(2));

        await over.WaitAsync(MllpHandlerHarness.Timeout);
        Assert.Equal("idle_timeout", closed.GetMeasurementSnapshot().Single().Tags["reason"]);
        Assert.Contains(logs.GetSnapshot(), r => r.Id.Id == 4010 && r.Message.Contains("for 00:00:07", StringComparison.Ordinal));
        Assert.False(harness.Handler.IsCompleted);
        await toProxy.Writer.CompleteAsync();
    }

    [Fact]
    public async Task A_sender_that_stops_inside_a_frame_is_closed_after_ackTimeout_without_an_idle_timeout()
    {
        // Without IdleTimeout (the default) a sender that sent the start of a message and then nothing held the bytes it
        // had sent (up to MaxFrameSize, 16 MiB: 40 such connections held 640 MB of the proxy's memory) and its
        // MaxConnections slot for as long as it kept the connection open. Inside a frame, a byte must come within AckTimeout.
        var time = new ArmedTimeProvider(TimeSpan.FromSeconds(7));
        var logs = new FakeLogCollector();
        await using var harness = new MllpHandlerHarness([], time, new() { ["ImagingProxy:Mllp:AckTimeout"] = "00:00:07" }, logger: new FakeLogger<MllpConnectionHandler>(logs));
        using var closed = new MetricCollector<long>(harness.Services.GetRequiredService<IMeterFactory>(), "ImagingProxy", "imagingproxy.hl7.connections.closed");

        // Between messages nothing is armed; the start of a frame arms the frame's wait.
        await harness.SendAsync(MllpHandlerHarness.Message("M1"));
        Assert.Contains("\rMSA|AR|M1|", await harness.ReplyAsync(), StringComparison.Ordinal);
        await harness.SendRawAsync("\u000BMSH|^~\\&|RIS|RAD|PACS|HOSP|20250101120000||ORM^O01|M2|P|2.5.1\rOBX|1|"u8.ToArray());
        await time.ArmedAsync(MllpHandlerHarness.Timeout);
        time.Advance(TimeSpan.FromSeconds(7) - TimeSpan.FromTicks(1));
        Assert.False(harness.Handler.IsCompleted);
        time.Advance(TimeSpan.FromTicks(1));

        await harness.Handler.WaitAsync(MllpHandlerHarness.Timeout);
        Assert.Equal("idle_timeout", closed.GetMeasurementSnapshot().Single().Tags["reason"]);
        Assert.Contains(logs.GetSnapshot(), r => r.Id.Id == 4010 && r.Message.Contains("for 00:00:07; closing (inside a frame: True)", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Inbound_connection_has_no_idle_timeout_by_default()
    {
        var time = new FakeTimeProvider();
        await using var harness = new MllpHandlerHarness([], time);
        using var closed = new MetricCollector<long>(harness.Services.GetRequiredService<IMeterFactory>(), "ImagingProxy", "imagingproxy.hl7.connections.closed");
        await harness.SendAsync(MllpHandlerHarness.Message("M1"));
        Assert.Contains("\rMSA|AR|M1|", await harness.ReplyAsync(), StringComparison.Ordinal);

        time.Advance(TimeSpan.FromDays(1));

        // A day without a byte later, the connection still answers.
        await harness.SendAsync(MllpHandlerHarness.Message("M2"));
        Assert.Contains("\rMSA|AR|M2|", await harness.ReplyAsync(), StringComparison.Ordinal);
        Assert.False(harness.Handler.IsCompleted);
        Assert.Empty(closed.GetMeasurementSnapshot());
    }

    [Fact]
    public async Task Pooled_node_connection_idle_past_the_pool_idle_timeout_is_closed()
    {
        var time = new FakeTimeProvider();
        await using var node = new FakeHl7Node();
        await using var pool = new MllpNodePool(time);
        var connection = await pool.RentAsync(node.Address, 1024, TimeSpan.FromSeconds(5), CancellationToken.None);
        await pool.ReturnAsync(connection, TimeSpan.FromSeconds(60));
        await WaitUntilAsync(() => node.OpenConnections == 1);

        time.Advance(TimeSpan.FromSeconds(55));
        Assert.Equal(1, pool.IdleCount(node.Address));
        time.Advance(TimeSpan.FromSeconds(10)); // the sweep timer fires

        await WaitUntilAsync(() => pool.IdleCount(node.Address) == 0 && node.OpenConnections == 0);
    }

    [Fact]
    public async Task A_pooled_connection_opened_with_other_tls_settings_is_kept_for_its_own_renters()
    {
        // Two clusters may reach one address with different Tls settings: neither closes the other's idle connections.
        await using var node = new FakeHl7Node();
        await using var pool = new MllpNodePool(TimeProvider.System);
        var first = await pool.RentAsync(node.Address, 1024, TimeSpan.FromSeconds(5), CancellationToken.None);
        first.TlsSettings = "cluster-a";
        await pool.ReturnAsync(first, TimeSpan.FromSeconds(60));

        var second = await pool.RentAsync(node.Address, 1024, TimeSpan.FromSeconds(5), tls: null, tlsSettings: "cluster-b", CancellationToken.None);
        await pool.ReturnAsync(second, TimeSpan.FromSeconds(60));
        var again = await pool.RentAsync(node.Address, 1024, TimeSpan.FromSeconds(5), tls: null, tlsSettings: "cluster-a", CancellationToken.None);

        Assert.Same(first, again);
        Assert.NotSame(first, second);
        Assert.Equal(1, pool.IdleCount(node.Address));
        await pool.DiscardAsync(again);
    }

    [Fact]
    public async Task Expired_pooled_connection_is_never_rented()
    {
        var time = new FakeTimeProvider();
        await using var node = new FakeHl7Node();
        await using var pool = new MllpNodePool(time);
        var first = await pool.RentAsync(node.Address, 1024, TimeSpan.FromSeconds(5), CancellationToken.None);
        await pool.ReturnAsync(first, TimeSpan.FromSeconds(60));
        var again = await pool.RentAsync(node.Address, 1024, TimeSpan.FromSeconds(5), CancellationToken.None);
        Assert.Same(first, again);
        await pool.ReturnAsync(again, TimeSpan.FromSeconds(60));

        time.SetUtcNow(time.GetUtcNow() + TimeSpan.FromSeconds(61)); // timestamp moves; rent checks expiry itself
        var fresh = await pool.RentAsync(node.Address, 1024, TimeSpan.FromSeconds(5), CancellationToken.None);

        Assert.NotSame(first, fresh);
        await pool.DiscardAsync(fresh);
    }

    [Fact]
    public async Task Max_attempts_bounds_the_nodes_tried_and_retries_are_counted()
    {
        await using var harness = new MllpHandlerHarness(["tcp://127.0.0.1:1", "tcp://127.0.0.1:2", "tcp://127.0.0.1:3"], settings: new() { ["ImagingProxy:Mllp:MaxAttempts"] = "2" });
        using var retries = new MetricCollector<long>(harness.Services.GetRequiredService<IMeterFactory>(), "ImagingProxy", "imagingproxy.hl7.retries");

        await harness.SendAsync(MllpHandlerHarness.Message("M1"));
        var reply = await harness.ReplyAsync();

        Assert.Contains("\rMSA|AR|M1|No node of cluster 'c' acknowledged the message after 2 attempt(s)", reply, StringComparison.Ordinal);
        var retry = Assert.Single(retries.GetMeasurementSnapshot());
        Assert.Equal(1, retry.Value);
        Assert.Equal("c", retry.Tags["cluster"]);
        Assert.Contains(retry.Tags["destination"] as string, (string[])["d0", "d1", "d2"]);
    }

    [Fact]
    public async Task Retry_is_counted_against_the_destination_that_failed()
    {
        // The forwarder's rotation starts at the second destination for the first message: d1 (closed) fails, d0 acknowledges.
        await using var node = new FakeHl7Node();
        await using var harness = new MllpHandlerHarness([node.Address, "tcp://127.0.0.1:1"], settings: new() { ["ImagingProxy:Mllp:MaxAttempts"] = "2" });
        var factory = harness.Services.GetRequiredService<IMeterFactory>();
        using var retries = new MetricCollector<long>(factory, "ImagingProxy", "imagingproxy.hl7.retries");
        using var messages = new MetricCollector<long>(factory, "ImagingProxy", "imagingproxy.hl7.messages");

        await harness.SendAsync(MllpHandlerHarness.Message("M1"));
        var reply = await harness.ReplyAsync();

        Assert.Contains("\rMSA|AA|M1", reply, StringComparison.Ordinal);
        var retry = Assert.Single(retries.GetMeasurementSnapshot());
        Assert.Equal(1, retry.Value);
        Assert.Equal("c", retry.Tags["cluster"]);
        Assert.Equal("d1", retry.Tags["destination"]);
        Assert.Equal("d0", Assert.Single(messages.GetMeasurementSnapshot()).Tags["destination"]);
    }

    [Fact]
    public async Task A_message_the_socket_cannot_take_at_once_is_sent_whole_on_the_sticky_connection_and_answered_with_its_own_ack()
    {
        // 8 MiB exceed what a loopback socket takes in one send: the second message's send completes later, after its
        // attempt has left the synchronous path.
        await using var node = new FakeHl7Node();
        await using var harness = new MllpHandlerHarness([node.Address]);
        await harness.SendAsync(MllpHandlerHarness.Message("S1"));
        Assert.Contains("\rMSA|AA|S1", await harness.ReplyAsync(), StringComparison.Ordinal);

        var large = MllpHandlerHarness.Message("S2", extraMsh: "\rOBX|1|ED|PDF||" + new string('A', 8 * 1024 * 1024));
        var sending = harness.SendAsync(large); // the harness pipe lets its writer go once the proxy took the frame
        var reply = await harness.ReplyAsync();
        await sending.WaitAsync(MllpHandlerHarness.Timeout);

        Assert.Contains("\rMSA|AA|S2", reply, StringComparison.Ordinal);
        Assert.Equal("S1", await node.Received.Reader.ReadAsync().AsTask().WaitAsync(MllpHandlerHarness.Timeout));
        Assert.Equal("S2", await node.Received.Reader.ReadAsync().AsTask().WaitAsync(MllpHandlerHarness.Timeout));
        Assert.Equal(1, node.OpenConnections);
    }

    [Fact]
    public async Task An_ack_over_the_frame_limit_is_not_relayed_and_the_message_goes_to_another_node()
    {
        // d1 answers with an ACK frame larger than MaxFrameSize: that attempt fails (its connection is dropped) and d0 acknowledges.
        await using var good = new FakeHl7Node();
        await using var oversize = new FakeHl7Node(ackCode: new string('A', 600));
        await using var harness = new MllpHandlerHarness([good.Address, oversize.Address], settings: new()
        {
            ["ImagingProxy:Mllp:MaxAttempts"] = "2",
            ["ImagingProxy:Mllp:MaxFrameSize"] = "512",
        });
        using var retries = new MetricCollector<long>(harness.Services.GetRequiredService<IMeterFactory>(), "ImagingProxy", "imagingproxy.hl7.retries");

        await harness.SendAsync(MllpHandlerHarness.Message("M1"));
        var reply = await harness.ReplyAsync();

        Assert.Equal("M1", await oversize.Received.Reader.ReadAsync().AsTask().WaitAsync(MllpHandlerHarness.Timeout));
        Assert.Equal("M1", await good.Received.Reader.ReadAsync().AsTask().WaitAsync(MllpHandlerHarness.Timeout));
        Assert.Contains("\rMSA|AA|M1", reply, StringComparison.Ordinal);
        Assert.DoesNotContain("AAAA", reply, StringComparison.Ordinal);
        Assert.Equal("d1", Assert.Single(retries.GetMeasurementSnapshot()).Tags["destination"]);
    }

    [Fact]
    public async Task Delivery_timeout_bounds_the_wait_of_the_sender_across_attempts()
    {
        await using var slow = new FakeHl7Node(hold: true);
        await using var harness = new MllpHandlerHarness([slow.Address], settings: new()
        {
            ["ImagingProxy:Mllp:AckTimeout"] = "00:00:20",
            ["ImagingProxy:Mllp:DeliveryTimeout"] = "00:00:00.300",
        });

        await AssertRejectedWithinAsync(harness, TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task A_sender_that_stopped_reading_is_aborted_once_a_reply_waited_the_send_timeout()
    {
        // The node's ACK is larger than the reply pipe takes while the sender reads nothing.
        var time = new ArmedTimeProvider(MllpReplyWriter.SendTimeout);
        await using var node = new FakeHl7Node(ackCode: new string('A', 100 * 1024));
        await using var harness = new MllpHandlerHarness([node.Address], time);
        using var closed = new MetricCollector<long>(harness.Services.GetRequiredService<IMeterFactory>(), "ImagingProxy", "imagingproxy.hl7.connections.closed");

        await harness.SendAsync(MllpHandlerHarness.Message("M1"));
        await time.ArmedAsync(MllpHandlerHarness.Timeout);
        time.Advance(MllpReplyWriter.SendTimeout);

        await harness.Handler.WaitAsync(MllpHandlerHarness.Timeout);
        Assert.Equal("reply_timeout", closed.GetMeasurementSnapshot().Single().Tags["reason"]);
    }

    [Fact]
    public async Task Delivery_timeout_bounds_a_connect_that_does_not_complete()
    {
        // A tls:// node whose listener never accepts: TCP connects (the kernel's backlog), the TLS handshake never ends.
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        await using var harness = new MllpHandlerHarness([$"tls://127.0.0.1:{((IPEndPoint)silent.LocalEndpoint).Port}"], settings: new()
        {
            ["ImagingProxy:Mllp:ConnectTimeout"] = "00:00:30",
            ["ImagingProxy:Mllp:AckTimeout"] = "00:00:20",
            ["ImagingProxy:Mllp:DeliveryTimeout"] = "00:00:00.300",
        });

        await AssertRejectedWithinAsync(harness, TimeSpan.FromSeconds(10)); // without the bound the connect alone waits 30 s
    }

    /// <summary>M1 gets ImagingProxy's AR once the 300 ms DeliveryTimeout is spent, within <paramref name="atMost"/>.</summary>
    private static async Task AssertRejectedWithinAsync(MllpHandlerHarness harness, TimeSpan atMost)
    {
        var started = TimeProvider.System.GetTimestamp();

        await harness.SendAsync(MllpHandlerHarness.Message("M1"));
        var reply = await harness.ReplyAsync();

        Assert.Contains("\rMSA|AR|M1|", reply, StringComparison.Ordinal);
        Assert.InRange(TimeProvider.System.GetElapsedTime(started), TimeSpan.FromMilliseconds(250), atMost);
    }

    [Fact]
    public void Retry_pipeline_follows_max_attempts()
    {
        var table = MllpRouteTable.Load(new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ImagingProxy:Mllp:MaxAttempts"] = "1",
            ["ImagingProxy:Mllp:ConnectTimeout"] = "00:00:02",
            ["ImagingProxy:Mllp:PoolIdleTimeout"] = "00:00:30",
        }).Build());

        Assert.Equal(1, table.MaxAttempts);
        Assert.Equal(TimeSpan.FromSeconds(2), table.ConnectTimeout);
        Assert.Equal(TimeSpan.FromSeconds(30), table.PoolIdleTimeout);
        Assert.Null(table.IdleTimeout);
        Assert.Null(table.DeliveryTimeout);
        Assert.Same(Polly.ResiliencePipeline<MllpAttemptResult>.Empty, MllpForwarder.BuildPipeline(table, TimeProvider.System));
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + MllpHandlerHarness.Timeout;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not reached in time");
            await Task.Delay(20);
        }
    }
}
