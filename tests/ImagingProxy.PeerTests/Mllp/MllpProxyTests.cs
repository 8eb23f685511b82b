using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;
using ImagingProxy.Mllp;
using ImagingProxy.PeerTests.Peers;
using ImagingProxy.Telemetry;
using ImagingProxy.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace ImagingProxy.PeerTests.Mllp;

/// <summary>
/// Needs python3-hl7 under /usr/bin/python3 (tests/peers/hl7_node.py as the receiving nodes) and /usr/bin/mllp_send:
/// HL7 messages through ImagingProxy's MLLP proxy, in-process on port 0.
/// </summary>
public sealed class MllpProxyTests() : MllpPeerFixture("mllp-proxy-")
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(60);

    private async Task<int> ProxyAsync(string config)
    {
        Proxy = await TestProxy.StartAsync(config);
        return Proxy.Port("hl7");
    }

    private static string Id(int connection, int i) => $"C{connection}M{i:D4}";

    [Fact]
    public async Task Connections_go_to_the_nodes_by_their_weights()
    {
        var a = await NodeAsync("a");
        var b = await NodeAsync("b");
        var port = await ProxyAsync(MllpProxyConfig.Create(new Dictionary<string, string[]> { ["orders"] = [a.Address, b.Address] }, [("*", "orders")],
            destinationMetadata: [new Dictionary<string, string> { ["Weight"] = "3" }, new Dictionary<string, string> { ["Weight"] = "1" }]));
        using var timeout = new CancellationTokenSource(s_timeout);

        // Eight connections, opened one after another and kept open: each sticks to the node with the fewest connections
        // per unit of weight when its first message comes (weights 3 and 1: six and two, where equal weights give four each).
        await OneMessageOnEachOfAsync(8, port, timeout.Token);

        Assert.Equal(6, (await a.ReceivedAsync()).Count);
        Assert.Equal(2, (await b.ReceivedAsync()).Count);
    }

    [Fact]
    public async Task Connections_follow_the_clusters_load_balancing_policy()
    {
        var a = await NodeAsync("a");
        var b = await NodeAsync("b");
        var port = await ProxyAsync(MllpProxyConfig.Create(new Dictionary<string, string[]> { ["orders"] = [a.Address, b.Address] }, [("*", "orders")],
            loadBalancingPolicy: "FirstAlphabetical"));
        using var timeout = new CancellationTokenSource(s_timeout);

        // Four connections kept open: FirstAlphabetical sends each to orders-node1 (the fewest connections would give two each).
        await OneMessageOnEachOfAsync(4, port, timeout.Token);

        Assert.Equal(4, (await a.ReceivedAsync()).Count);
        Assert.Empty(await b.ReceivedAsync());
    }

    /// <summary>
    /// Opens <paramref name="count"/> connections one after another, each kept open while the next opens, and sends one
    /// message on each (acknowledged AA); then closes them all.
    /// </summary>
    private static async Task OneMessageOnEachOfAsync(int count, int port, CancellationToken cancellationToken)
    {
        var clients = new List<MllpClient>();
        try
        {
            for (var c = 0; c < count; c++)
            {
                var client = await MllpClient.ConnectAsync(port, cancellationToken);
                clients.Add(client);
                Assert.Equal(AcknowledgmentCode.ApplicationAccept, (await client.SendAsync(MllpClient.Message(Id(c, 0)), cancellationToken))?.Code);
            }
        }
        finally
        {
            foreach (var client in clients)
            {
                await client.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task A_message_the_primary_cannot_take_goes_to_the_backup_node()
    {
        // The primary's port is closed; the backup (a disaster-recovery receiver) takes the message in the same delivery.
        var dr = await NodeAsync("dr");
        using var closed = new ClosedPort();
        var port = await ProxyAsync(MllpProxyConfig.Create(
            new Dictionary<string, string[]> { ["orders"] = [$"tcp://127.0.0.1:{closed.Port}", dr.Address] }, [("*", "orders")],
            destinationMetadata: [new Dictionary<string, string>(), new Dictionary<string, string> { ["Backup"] = "true" }]));
        using var timeout = new CancellationTokenSource(s_timeout);

        await using var client = await MllpClient.ConnectAsync(port, timeout.Token);
        var reply = await client.SendAsync(MllpClient.Message(Id(0, 0)), timeout.Token);

        Assert.Equal(AcknowledgmentCode.ApplicationAccept, reply?.Code);
        Assert.Equal([Id(0, 0)], (await dr.ReceivedAsync()).Select(r => r.ControlId));
    }

    [Fact]
    public async Task A_node_at_its_MaxConcurrent_takes_no_new_connection_and_a_full_cluster_naks()
    {
        var a = await NodeAsync("a");
        var b = await NodeAsync("b");
        var one = new Dictionary<string, string> { ["MaxConcurrent"] = "1" };
        var port = await ProxyAsync(MllpProxyConfig.Create(new Dictionary<string, string[]> { ["orders"] = [a.Address, b.Address] }, [("*", "orders")], destinationMetadata: [one, one]));
        using var timeout = new CancellationTokenSource(s_timeout);

        // Each connection keeps its node connection while it is open: one on each node fills the cluster.
        await using var first = await MllpClient.ConnectAsync(port, timeout.Token);
        Assert.Equal(AcknowledgmentCode.ApplicationAccept, (await first.SendAsync(MllpClient.Message(Id(0, 0)), timeout.Token))?.Code);
        await using var second = await MllpClient.ConnectAsync(port, timeout.Token);
        Assert.Equal(AcknowledgmentCode.ApplicationAccept, (await second.SendAsync(MllpClient.Message(Id(1, 0)), timeout.Token))?.Code);
        Assert.Single(await a.ReceivedAsync());
        Assert.Single(await b.ReceivedAsync());

        await using var third = await MllpClient.ConnectAsync(port, timeout.Token);
        var refused = await third.SendAsync(MllpClient.Message(Id(2, 0)), timeout.Token);
        Assert.Equal(AcknowledgmentCode.ApplicationReject, refused?.Code);
        Assert.Equal(Id(2, 0), refused?.ControlId);
        Assert.Contains("MaxConcurrent", refused?.Text, StringComparison.Ordinal);

        // The first connection closes and gives its node connection back: the third's next message is taken.
        using var closed = new MetricCollector<long>(Proxy!.Services.GetRequiredService<IMeterFactory>(), ImagingProxyTelemetry.MeterName, "imagingproxy.hl7.connections.closed");
        await first.DisposeAsync();
        await closed.WaitForMeasurementsAsync(1, s_timeout);
        var accepted = await SendUntilAcceptedAsync(third, Id(2, 1), timeout.Token);
        Assert.Equal(Id(2, 1), accepted.ControlId);
        Assert.Equal(3, (await a.ReceivedAsync()).Count + (await b.ReceivedAsync()).Count);
    }

    [Fact]
    public async Task First_messages_arriving_at_once_never_take_a_node_past_its_MaxConcurrent()
    {
        var a = await NodeAsync("a");
        var port = await ProxyAsync(MllpProxyConfig.Create(new Dictionary<string, string[]> { ["orders"] = [a.Address] }, [("*", "orders")],
            destinationMetadata: [new Dictionary<string, string> { ["MaxConcurrent"] = "1" }]));
        var pool = Proxy!.Services.GetRequiredService<MllpNodePool>();
        using var timeout = new CancellationTokenSource(s_timeout);

        // Eight connections send their first message at the same moment, three times: one is taken each time (its node
        // connection is opened while the others are picked), the others get AR.
        for (var round = 0; round < 3; round++)
        {
            var clients = new List<MllpClient>();
            for (var i = 0; i < 8; i++)
            {
                clients.Add(await MllpClient.ConnectAsync(port, timeout.Token));
            }

            var replies = await Task.WhenAll(clients.Select((c, i) => c.SendAsync(MllpClient.Message(Id((round * 10) + i, 0)), timeout.Token)));
            Assert.Equal(1, replies.Count(r => r?.Code == AcknowledgmentCode.ApplicationAccept));
            Assert.Equal(7, replies.Count(r => r?.Code == AcknowledgmentCode.ApplicationReject));
            foreach (var client in clients)
            {
                await client.DisposeAsync();
            }

            // The taken connection's node connection goes back to the pool once its client connection has closed.
            while (pool.LoadOf(a.Address) > 0)
            {
                await Task.Delay(20, timeout.Token);
            }
        }
    }

    /// <summary>
    /// Sends the message until a node accepts it: the closed connection's node connection goes back to the pool an instant
    /// after its close is counted (no event marks it), so an AR NAK or two may come first; bounded by the test's timeout.
    /// </summary>
    private static async Task<MllpReply> SendUntilAcceptedAsync(MllpClient client, string controlId, CancellationToken cancellationToken)
    {
        while (true)
        {
            var reply = await client.SendAsync(MllpClient.Message(controlId), cancellationToken);
            Assert.NotNull(reply);
            if (reply.Code == AcknowledgmentCode.ApplicationAccept)
            {
                return reply;
            }

            Assert.Equal(AcknowledgmentCode.ApplicationReject, reply.Code);
            await Task.Delay(50, cancellationToken);
        }
    }

    [Fact]
    public async Task Relays_hundreds_of_messages_over_several_connections_with_each_ack_matching_its_control_id()
    {
        var a = await NodeAsync("a");
        var b = await NodeAsync("b");
        var port = await ProxyAsync(MllpProxyConfig.Create(new Dictionary<string, string[]> { ["orders"] = [a.Address, b.Address] }, [("*", "orders")]));
        using var timeout = new CancellationTokenSource(s_timeout);

        const int Connections = 4;
        const int PerConnection = 100;
        var replies = await Task.WhenAll(Enumerable.Range(0, Connections).Select(async c =>
        {
            await using var client = await MllpClient.ConnectAsync(port, timeout.Token);
            var seen = new List<MllpReply?>();
            for (var i = 0; i < PerConnection; i++)
            {
                seen.Add(await client.SendAsync(MllpClient.Message(Id(c, i)), timeout.Token));
            }

            return seen;
        }));

        for (var c = 0; c < Connections; c++)
        {
            for (var i = 0; i < PerConnection; i++)
            {
                var reply = replies[c][i];
                Assert.NotNull(reply);
                Assert.Equal(AcknowledgmentCode.ApplicationAccept, reply.Code);
                Assert.Equal(Id(c, i), reply.ControlId);
                Assert.StartsWith("MSH|^~\\&|PACS|HOSP|RIS|RAD|", reply.Text, StringComparison.Ordinal); // the node's own ACK, unchanged
            }
        }

        var atA = (await a.ReceivedAsync()).Select(r => r.ControlId).ToList();
        var atB = (await b.ReceivedAsync()).Select(r => r.ControlId).ToList();
        Assert.Equal(Connections * PerConnection, atA.Count + atB.Count);
        Assert.Equal(Enumerable.Range(0, Connections).SelectMany(c => Enumerable.Range(0, PerConnection).Select(i => Id(c, i))).Order(), atA.Concat(atB).Order());
        Assert.NotEmpty(atA);
        Assert.NotEmpty(atB);

        // Sticky: each connection's messages all went to one node, in the order sent.
        for (var c = 0; c < Connections; c++)
        {
            var prefix = $"C{c}M";
            var onA = atA.Where(id => id.StartsWith(prefix, StringComparison.Ordinal)).ToList();
            var onB = atB.Where(id => id.StartsWith(prefix, StringComparison.Ordinal)).ToList();
            Assert.True(onA.Count == 0 || onB.Count == 0, $"connection {c} was spread over both nodes");
            Assert.Equal(Enumerable.Range(0, PerConnection).Select(i => Id(c, i)), onA.Count > 0 ? onA : onB);
        }
    }

    [Fact]
    public async Task Mllp_send_gets_each_message_acknowledged_by_a_node_through_theProxy()
    {
        var a = await NodeAsync("a");
        var port = await ProxyAsync(MllpProxyConfig.Create(new Dictionary<string, string[]> { ["orders"] = [a.Address] }, [("*", "orders")]));
        var ids = Enumerable.Range(1, 5).Select(i => $"SEND{i:D3}").ToArray();
        var file = Path.Combine(Folder, "messages.hl7");
        await File.WriteAllTextAsync(file, string.Join("\r\n\r\n", ids.Select(id => Encoding.ASCII.GetString(MllpClient.Message(id)).TrimEnd('\r').Replace("\r", "\r\n", StringComparison.Ordinal))) + "\r\n");

        var (exitCode, output, error) = await PythonHl7.RunAsync(PythonHl7.StartInfo("/usr/bin/mllp_send", "--loose", "-p", port.ToString(CultureInfo.InvariantCulture), "-f", file, "127.0.0.1"));

        Assert.True(exitCode == 0, error);
        foreach (var id in ids)
        {
            Assert.Contains($"MSA|AA|{id}", output, StringComparison.Ordinal);
        }

        Assert.Equal(ids, (await a.ReceivedAsync()).Select(r => r.ControlId));
    }

    [Fact]
    public async Task Routes_by_message_type_to_two_clusters_first_match_winning()
    {
        var adt = await NodeAsync("adt");
        var orders = await NodeAsync("orders");
        var port = await ProxyAsync(MllpProxyConfig.Create(
            new Dictionary<string, string[]> { ["adt"] = [adt.Address], ["orders"] = [orders.Address] },
            [("ADT^*", "adt"), ("ORM^O01", "orders"), ("*", "adt")]));
        using var timeout = new CancellationTokenSource(s_timeout);
        await using var client = await MllpClient.ConnectAsync(port, timeout.Token);

        var replies = new List<MllpReply?>();
        for (var i = 0; i < 10; i++)
        {
            replies.Add(await client.SendAsync(MllpClient.Message($"ADT{i}", "ADT^A08^ADT_A01"), timeout.Token));
            replies.Add(await client.SendAsync(MllpClient.Message($"ORM{i}", "ORM^O01^ORM_O01"), timeout.Token));
            replies.Add(await client.SendAsync(MllpClient.Message($"ORU{i}", "ORU^R01^ORU_R01"), timeout.Token));
        }

        Assert.All(replies, r => Assert.Equal(AcknowledgmentCode.ApplicationAccept, r!.Code));
        var atAdt = (await adt.ReceivedAsync()).Select(r => r.ControlId).ToList();
        var atOrders = (await orders.ReceivedAsync()).Select(r => r.ControlId).ToList();
        Assert.Equal(Enumerable.Range(0, 10).Select(i => $"ORM{i}"), atOrders);
        Assert.Equal(Enumerable.Range(0, 10).SelectMany(i => new[] { $"ADT{i}", $"ORU{i}" }), atAdt);
    }

    [Fact]
    public async Task After_a_rolling_restart_of_the_nodes_a_message_failing_over_reaches_the_node_that_is_back()
    {
        var a = await NodeAsync("a");
        var b = await NodeAsync("b");
        var port = await ProxyAsync(MllpProxyConfig.Create(new Dictionary<string, string[]> { ["orders"] = [a.Address, b.Address] }, [("*", "orders")], ackTimeout: "00:00:05", passiveHealth: true));
        using var closed = new MetricCollector<long>(Proxy!.Services.GetRequiredService<IMeterFactory>(), ImagingProxyTelemetry.MeterName, "imagingproxy.hl7.connections.closed");
        using var timeout = new CancellationTokenSource(s_timeout);

        // Two senders: the first sticks to one node, the second to the other (fewer connections); the second leaves, and
        // its node connection waits in the pool.
        await using var staying = await MllpClient.ConnectAsync(port, timeout.Token);
        Assert.Equal(AcknowledgmentCode.ApplicationAccept, (await staying.SendAsync(MllpClient.Message(Id(0, 0)), timeout.Token))?.Code);
        await using (var leaving = await MllpClient.ConnectAsync(port, timeout.Token))
        {
            Assert.Equal(AcknowledgmentCode.ApplicationAccept, (await leaving.SendAsync(MllpClient.Message(Id(1, 0)), timeout.Token))?.Code);
        }

        await closed.WaitForMeasurementsAsync(1, s_timeout);
        var (sticky, other) = (await a.ReceivedAsync()).Any(r => r.ControlId == Id(0, 0)) ? (a, b) : (b, a);
        Assert.Equal([Id(1, 0)], (await other.ReceivedAsync()).Select(r => r.ControlId));

        // The rolling restart: the other node restarts (the pooled connection to it is closed), then the sticky node stops.
        await other.KillAsync();
        var restarted = await NodeAsync("restarted", "--port", other.Port.ToString(CultureInfo.InvariantCulture));
        await sticky.KillAsync();

        // The sticky connection fails, and so does its free retry on a new one (the node is down); the message fails over
        // to the restarted node, whose pooled connection is closed too: it gets its own retry on a new connection.
        var reply = await staying.SendAsync(MllpClient.Message(Id(0, 1)), timeout.Token);
        Assert.Equal(AcknowledgmentCode.ApplicationAccept, reply?.Code);
        Assert.Equal(Id(0, 1), reply?.ControlId);

        // The restarted node was not marked unhealthy: it takes the next message too.
        Assert.Equal(AcknowledgmentCode.ApplicationAccept, (await staying.SendAsync(MllpClient.Message(Id(0, 2)), timeout.Token))?.Code);
        Assert.Equal([Id(0, 1), Id(0, 2)], (await restarted.ReceivedAsync()).Select(r => r.ControlId));
    }

    [Fact]
    public async Task Node_killed_while_messages_flow_loses_no_message_the_sender_saw_accepted()
    {
        var a = await NodeAsync("a");
        var b = await NodeAsync("b");
        var port = await ProxyAsync(MllpProxyConfig.Create(new Dictionary<string, string[]> { ["orders"] = [a.Address, b.Address] }, [("*", "orders")], ackTimeout: "00:00:05", passiveHealth: true));
        using var timeout = new CancellationTokenSource(s_timeout);

        const int Connections = 4;
        const int PerConnection = 150;
        var acknowledged = 0;
        var killAt = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var results = new ConcurrentDictionary<string, AcknowledgmentCode>();
        var senders = Enumerable.Range(0, Connections).Select(c => Task.Run(async () =>
        {
            await using var client = await MllpClient.ConnectAsync(port, timeout.Token);
            for (var i = 0; i < PerConnection; i++)
            {
                var reply = await client.SendAsync(MllpClient.Message(Id(c, i)), timeout.Token);
                Assert.NotNull(reply);
                Assert.Equal(Id(c, i), reply.ControlId);
                results[Id(c, i)] = reply.Code;
                if (Interlocked.Increment(ref acknowledged) == Connections * PerConnection / 4)
                {
                    killAt.TrySetResult();
                }
            }
        })).ToArray();

        await killAt.Task.WaitAsync(timeout.Token);
        await a.KillAsync();
        await Task.WhenAll(senders);

        var delivered = (await a.ReceivedAsync()).Concat(await b.ReceivedAsync()).Select(r => r.ControlId).ToHashSet();
        Assert.Equal(Connections * PerConnection, results.Count);
        Assert.All(results, r => Assert.True(r.Value is AcknowledgmentCode.ApplicationAccept or AcknowledgmentCode.ApplicationReject, $"{r.Key}: {r.Value}"));
        foreach (var (id, code) in results)
        {
            if (code == AcknowledgmentCode.ApplicationAccept)
            {
                Assert.Contains(id, delivered);
            }
        }

        // Only messages the sender saw rejected may be missing; the survivor took the rest after the kill.
        Assert.All(results.Where(r => !delivered.Contains(r.Key)), r => Assert.Equal(AcknowledgmentCode.ApplicationReject, r.Value));
        Assert.NotEmpty(await b.ReceivedAsync());
        Assert.True(results.Count(r => r.Value == AcknowledgmentCode.ApplicationAccept) > Connections * PerConnection * 3 / 4);
    }

    [Fact]
    public async Task AllNodes_down_answers_ar_with_msa2_set_and_an_err_segment()
    {
        var port = await ProxyAsync(MllpProxyConfig.Create(
            new Dictionary<string, string[]> { ["orders"] = [$"tcp://127.0.0.1:{FreePort.Next()}", $"tcp://127.0.0.1:{FreePort.Next()}"] },
            [("*", "orders")]));
        using var timeout = new CancellationTokenSource(s_timeout);
        await using var client = await MllpClient.ConnectAsync(port, timeout.Token);

        var reply = await client.SendAsync(MllpClient.Message("DOWN0001"), timeout.Token);
        var enhanced = await client.SendAsync(MllpClient.Message("DOWN0002", extraMsh: "|||AL|NE"), timeout.Token);

        Assert.NotNull(reply);
        Assert.Equal(AcknowledgmentCode.ApplicationReject, reply.Code);
        Assert.Equal("DOWN0001", reply.ControlId);
        Assert.Contains("\rERR|||207^", reply.Text, StringComparison.Ordinal);
        Assert.Contains("retry later", reply.Text, StringComparison.Ordinal);
        Assert.NotNull(enhanced);
        Assert.Equal(AcknowledgmentCode.CommitReject, enhanced.Code);
        Assert.Equal("DOWN0002", enhanced.ControlId);
    }

    [Fact]
    public async Task Node_that_never_acks_times_out_and_the_message_goes_to_another_node()
    {
        var silent = await NodeAsync("silent", "--no-ack");
        var good = await NodeAsync("good");
        var port = await ProxyAsync(MllpProxyConfig.Create(new Dictionary<string, string[]> { ["orders"] = [silent.Address, good.Address] }, [("*", "orders")], ackTimeout: "00:00:01"));
        using var timeout = new CancellationTokenSource(s_timeout);

        // Two connections: at least one starts on the silent node (least-rented pick).
        var replies = await Task.WhenAll(Enumerable.Range(0, 2).Select(async c =>
        {
            await using var client = await MllpClient.ConnectAsync(port, timeout.Token);
            return await client.SendAsync(MllpClient.Message(Id(c, 0)), timeout.Token);
        }));

        Assert.All(replies, r => Assert.Equal(AcknowledgmentCode.ApplicationAccept, r!.Code));
        Assert.Equal([Id(0, 0), Id(1, 0)], (await good.ReceivedAsync()).Select(r => r.ControlId).Order());
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_message_a_node_rejects_goes_to_another_node_only_with_RetryOnReject(bool retryOnReject)
    {
        var rejecting = await NodeAsync("rejecting", "--ack", "AR");
        var good = await NodeAsync("good");
        var metadata = retryOnReject ? new Dictionary<string, string> { ["Mllp.RetryOnReject"] = "true" } : null;
        var port = await ProxyAsync(MllpProxyConfig.Create(new Dictionary<string, string[]> { ["orders"] = [rejecting.Address, good.Address] }, [("*", "orders")], metadata: metadata));
        using var timeout = new CancellationTokenSource(s_timeout);
        using var retries = new MetricCollector<long>(Proxy!.Services.GetRequiredService<IMeterFactory>(), ImagingProxyTelemetry.MeterName, "imagingproxy.hl7.retries");

        // Two connections, three messages each, one after the other: each connection's first message goes to the node
        // with the fewest rented connections, so the rejecting node gets at least one.
        var replies = new List<(string ControlId, MllpReply Reply)>();
        for (var c = 0; c < 2; c++)
        {
            await using var client = await MllpClient.ConnectAsync(port, timeout.Token);
            for (var i = 0; i < 3; i++)
            {
                replies.Add((Id(c, i), (await client.SendAsync(MllpClient.Message(Id(c, i)), timeout.Token))!));
            }
        }

        Assert.All(replies, r => Assert.Equal(r.ControlId, r.Reply.ControlId));
        var rejected = (await rejecting.ReceivedAsync()).Select(r => r.ControlId).ToList();
        Assert.NotEmpty(rejected);
        var accepted = (await good.ReceivedAsync()).Select(r => r.ControlId).ToList();
        if (retryOnReject)
        {
            // Every message reached the good node and was accepted there; the rejected ones went there after their refusal.
            Assert.All(replies, r => Assert.Equal(AcknowledgmentCode.ApplicationAccept, r.Reply.Code));
            Assert.Equal(replies.Select(r => r.ControlId).Order(), accepted.Order());
            Assert.Equal(rejected.Count, retries.GetMeasurementSnapshot().Count);
        }
        else
        {
            // The node's own AR reaches the sender, not ImagingProxy's (which says "retry later").
            var refused = replies.Where(r => r.Reply.Code == AcknowledgmentCode.ApplicationReject).ToList();
            Assert.Equal(rejected.Order(), refused.Select(r => r.ControlId).Order());
            Assert.All(refused, r => Assert.DoesNotContain("retry later", r.Reply.Text, StringComparison.Ordinal));
            Assert.Empty(retries.GetMeasurementSnapshot());
        }
    }

    [Fact]
    public async Task When_every_node_rejects_the_sender_gets_the_last_nodes_answer()
    {
        var first = await NodeAsync("first", "--ack", "AR");
        var second = await NodeAsync("second", "--ack", "AR");
        var port = await ProxyAsync(MllpProxyConfig.Create(
            new Dictionary<string, string[]> { ["orders"] = [first.Address, second.Address] }, [("*", "orders")],
            metadata: new Dictionary<string, string> { ["Mllp.RetryOnReject"] = "true" }));
        using var timeout = new CancellationTokenSource(s_timeout);
        await using var client = await MllpClient.ConnectAsync(port, timeout.Token);

        var reply = await client.SendAsync(MllpClient.Message("REJ00001"), timeout.Token);

        Assert.NotNull(reply);
        Assert.Equal(AcknowledgmentCode.ApplicationReject, reply.Code);
        Assert.Equal("REJ00001", reply.ControlId);
        Assert.DoesNotContain("retry later", reply.Text, StringComparison.Ordinal);
        Assert.Equal(["REJ00001"], (await first.ReceivedAsync()).Select(r => r.ControlId));
        Assert.Equal(["REJ00001"], (await second.ReceivedAsync()).Select(r => r.ControlId));
    }

    [Fact]
    public async Task A_connection_over_the_listeners_max_connections_gets_ar_for_its_first_message_and_is_closed()
    {
        var a = await NodeAsync("a");
        var port = await ProxyAsync(MllpProxyConfig.Create(new Dictionary<string, string[]> { ["orders"] = [a.Address] }, [("*", "orders")], ackTimeout: "00:00:02", maxConnections: 1));
        var handler = Proxy!.Services.GetRequiredService<MllpConnectionHandler>();
        using var closed = new MetricCollector<long>(Proxy!.Services.GetRequiredService<IMeterFactory>(), ImagingProxyTelemetry.MeterName, "imagingproxy.hl7.connections.closed");
        using var timeout = new CancellationTokenSource(s_timeout);
        var first = await MllpClient.ConnectAsync(port, timeout.Token);
        Assert.Equal(AcknowledgmentCode.ApplicationAccept, (await first.SendAsync(MllpClient.Message("HOLD0001"), timeout.Token))!.Code);

        await using (var over = await MllpClient.ConnectAsync(port, timeout.Token))
        {
            var reply = await over.SendAsync(MllpClient.Message("OVER0001"), timeout.Token);
            Assert.Equal(AcknowledgmentCode.ApplicationReject, reply!.Code);
            Assert.Equal("OVER0001", reply.ControlId);
            Assert.Contains("\rERR|||207^", reply.Text, StringComparison.Ordinal);
            Assert.Contains("already has its 1 connection(s) open", reply.Text, StringComparison.Ordinal);
            Assert.Null(await over.ReceiveAsync(timeout.Token)); // the proxy closed it
        }

        // A connection over the limit holds no slot, and one that sends nothing is closed after AckTimeout.
        await using (var silent = await MllpClient.ConnectAsync(port, timeout.Token))
        {
            Assert.Null(await silent.ReceiveAsync(timeout.Token));
        }

        Assert.Equal(1, handler.OpenOn("hl7"));

        // The first connection goes on; the node never saw the refused message.
        Assert.Equal(AcknowledgmentCode.ApplicationAccept, (await first.SendAsync(MllpClient.Message("HOLD0002"), timeout.Token))!.Code);
        Assert.Equal(["HOLD0001", "HOLD0002"], (await a.ReceivedAsync()).Select(r => r.ControlId));

        // Once the first has closed, a new connection is served.
        await first.DisposeAsync();
        await closed.WaitForMeasurementsAsync(3).WaitAsync(timeout.Token);
        Assert.Equal(["client_closed", "idle_timeout", "listener_limit"], closed.GetMeasurementSnapshot().Select(m => (string)m.Tags["reason"]!).Order());
        Assert.Equal(0, handler.OpenOn("hl7"));
        await using var next = await MllpClient.ConnectAsync(port, timeout.Token);
        Assert.Equal(AcknowledgmentCode.ApplicationAccept, (await next.SendAsync(MllpClient.Message("NEXT0001"), timeout.Token))!.Code);
    }

    [Fact]
    public async Task No_route_answers_ar_with_unsupported_message_type()
    {
        var a = await NodeAsync("a");
        var port = await ProxyAsync(MllpProxyConfig.Create(new Dictionary<string, string[]> { ["orders"] = [a.Address] }, [("ORM^*", "orders")]));
        using var timeout = new CancellationTokenSource(s_timeout);
        await using var client = await MllpClient.ConnectAsync(port, timeout.Token);

        var reply = await client.SendAsync(MllpClient.Message("NOROUTE1", "SIU^S12^SIU_S12"), timeout.Token);
        var next = await client.SendAsync(MllpClient.Message("ROUTED01"), timeout.Token);

        Assert.Equal(AcknowledgmentCode.ApplicationReject, reply!.Code);
        Assert.Equal("NOROUTE1", reply.ControlId);
        Assert.Contains("ERR|||200^", reply.Text, StringComparison.Ordinal);
        Assert.Equal(AcknowledgmentCode.ApplicationAccept, next!.Code);
        Assert.Equal(["ROUTED01"], (await a.ReceivedAsync()).Select(r => r.ControlId));
    }

    [Fact]
    public async Task Bad_input_gets_the_right_nak_or_close_and_the_next_good_message_works()
    {
        var a = await NodeAsync("a");
        var port = await ProxyAsync(MllpProxyConfig.Create(new Dictionary<string, string[]> { ["orders"] = [a.Address] }, [("*", "orders")], maxFrameSize: 1024));
        using var timeout = new CancellationTokenSource(s_timeout);
        await using var client = await MllpClient.ConnectAsync(port, timeout.Token);

        // Garbage (and stray CR/LF) before <SB>: dropped, the frame after it is relayed.
        var afterGarbage = await client.SendRawAsync(Frame("GARBAGE\r\n"u8.ToArray(), MllpClient.Message("GOOD0001")), timeout.Token);
        Assert.Equal(("GOOD0001", AcknowledgmentCode.ApplicationAccept), (afterGarbage!.ControlId, afterGarbage.Code));

        // Oversize: NAK on its MSH-10, then resynchronise at the next frame.
        var big = MllpClient.Message("BIG00001", body: "OBX|1|TX|||" + new string('x', 4000) + "\r");
        var oversize = await client.SendAsync(big, timeout.Token);
        Assert.Equal(("BIG00001", AcknowledgmentCode.ApplicationReject), (oversize!.ControlId, oversize.Code));
        Assert.Contains("maximum frame size", oversize.Text, StringComparison.Ordinal);
        var afterOversize = await client.SendAsync(MllpClient.Message("GOOD0002"), timeout.Token);
        Assert.Equal(("GOOD0002", AcknowledgmentCode.ApplicationAccept), (afterOversize!.ControlId, afterOversize.Code));

        // MSH without a message type but with a control id: AR, not forwarded.
        var noType = await client.SendAsync(Encoding.ASCII.GetBytes("MSH|^~\\&|RIS|RAD|PACS|HOSP|20250101120000|||NOTYPE01|P|2.5.1\rPID|1\r"), timeout.Token);
        Assert.Equal(("NOTYPE01", AcknowledgmentCode.ApplicationReject), (noType!.ControlId, noType.Code));
        Assert.Contains("ERR|||101^", noType.Text, StringComparison.Ordinal);
        var afterNoType = await client.SendAsync(MllpClient.Message("GOOD0003"), timeout.Token);
        Assert.Equal(AcknowledgmentCode.ApplicationAccept, afterNoType!.Code);

        // No MSH at all: nothing to answer on, the proxy closes the connection.
        Assert.Null(await client.SendAsync("PID|1||123\r"u8.ToArray(), timeout.Token));

        // A new connection works, and the node saw only the good messages.
        await using var again = await MllpClient.ConnectAsync(port, timeout.Token);
        Assert.Equal(AcknowledgmentCode.ApplicationAccept, (await again.SendAsync(MllpClient.Message("GOOD0004"), timeout.Token))!.Code);
        Assert.Equal(["GOOD0001", "GOOD0002", "GOOD0003", "GOOD0004"], (await a.ReceivedAsync()).Select(r => r.ControlId));
    }

    private static byte[] Frame(byte[] before, byte[] message)
    {
        var frame = new System.Buffers.ArrayBufferWriter<byte>();
        System.Buffers.BuffersExtensions.Write(frame, before);
        MllpFrameWriter.Write(frame, message);
        return frame.WrittenSpan.ToArray();
    }
}
