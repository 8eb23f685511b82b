using ImagingProxy.Balancing;
using ImagingProxy.Testing;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Tests.Mllp;

/// <summary>
/// Destination MaxConcurrent and Backup in the HL7 forwarder, in-process: every way a delivery ends gives back the place
/// its pick reserved (a leaked place would make a node look full for good), and a connection stuck to a backup moves back.
/// </summary>
public sealed class MllpPlacesTests
{
    private static readonly Dictionary<string, string> s_one = new() { ["MaxConcurrent"] = "1" };

    [Fact]
    public async Task Refused_connects_leave_no_place_taken()
    {
        using var closed = new ClosedPort();
        var address = $"tcp://127.0.0.1:{closed.Port}";
        await using var harness = new MllpHandlerHarness([address], destinationMetadata: [s_one], limits: DestinationLimits.Unmetered);
        for (var i = 0; i < 3; i++)
        {
            await harness.SendAsync(MllpHandlerHarness.Message($"M{i}"));
            Assert.Contains("|AR|", await harness.ReplyAsync(), StringComparison.Ordinal);
            Assert.Equal(0, harness.Pool.LoadOf(address));
        }
    }

    [Fact]
    public async Task A_tls_settings_failure_leaves_no_place_taken()
    {
        const string Address = "tls://127.0.0.1:1";
        await using var harness = new MllpHandlerHarness([Address], destinationMetadata: [s_one], limits: DestinationLimits.Unmetered,
            clusterMetadata: new Dictionary<string, string> { ["Tls.CaPath"] = "/nonexistent/ca.pem" });
        for (var i = 0; i < 3; i++)
        {
            await harness.SendAsync(MllpHandlerHarness.Message($"M{i}"));
            Assert.Contains("|AR|", await harness.ReplyAsync(), StringComparison.Ordinal);
            Assert.Equal(0, harness.Pool.LoadOf(Address));
        }
    }

    [Fact]
    public async Task A_refusal_sent_on_to_another_node_and_the_sticky_connection_keep_the_counts_exact()
    {
        await using var accepting = new FakeHl7Node(ackCode: "CA");
        await using var rejecting = new FakeHl7Node(ackCode: "CR");
        await using var harness = new MllpHandlerHarness([accepting.Address, rejecting.Address], destinationMetadata: [s_one, s_one], limits: DestinationLimits.Unmetered,
            clusterMetadata: new Dictionary<string, string> { ["Mllp.RetryOnReject"] = "true" });
        for (var i = 1; i <= 3; i++)
        {
            await harness.SendAsync(MllpHandlerHarness.Message($"M{i}", extraMsh: "|||AL|NE"));
            Assert.Contains($"|CA|M{i}", await harness.ReplyAsync(), StringComparison.Ordinal);
            Assert.Equal(0, harness.Pool.LoadOf(rejecting.Address));
            Assert.Equal(1, harness.Pool.LoadOf(accepting.Address));
        }
    }

    [Fact]
    public async Task The_new_connection_after_a_stale_one_keeps_the_count_exact()
    {
        await using var node = new FakeHl7Node { CloseAfterAck = true };
        await using var harness = new MllpHandlerHarness([node.Address], destinationMetadata: [s_one], limits: DestinationLimits.Unmetered);
        for (var i = 1; i <= 3; i++)
        {
            await harness.SendAsync(MllpHandlerHarness.Message($"M{i}"));
            Assert.Contains($"|AA|M{i}", await harness.ReplyAsync(), StringComparison.Ordinal);
            await node.Closed.Reader.ReadAsync().AsTask().WaitAsync(MllpHandlerHarness.Timeout);
            Assert.Equal(1, harness.Pool.LoadOf(node.Address));
        }
    }

    [Fact]
    public async Task A_connection_stuck_to_the_backup_moves_to_the_primary_when_it_is_back()
    {
        await using var primary = new FakeHl7Node();
        await using var backup = new FakeHl7Node();
        await using var harness = new MllpHandlerHarness([primary.Address, backup.Address],
            destinationMetadata: [null, new Dictionary<string, string> { ["Backup"] = "true" }]);
        var all = harness.Cluster.DestinationsState.AllDestinations;
        harness.Cluster.DestinationsState = new ClusterDestinationsState(all, [all[1]]); // the primary is down

        await harness.SendAsync(MllpHandlerHarness.Message("M1"));
        Assert.Contains("|AA|M1", await harness.ReplyAsync(), StringComparison.Ordinal);
        Assert.Equal("M1", await backup.Received.Reader.ReadAsync().AsTask().WaitAsync(MllpHandlerHarness.Timeout));

        harness.Cluster.DestinationsState = new ClusterDestinationsState(all, [all[0]]); // back: the backup leaves
        await harness.SendAsync(MllpHandlerHarness.Message("M2"));
        Assert.Contains("|AA|M2", await harness.ReplyAsync(), StringComparison.Ordinal);
        Assert.Equal("M2", await primary.Received.Reader.ReadAsync().AsTask().WaitAsync(MllpHandlerHarness.Timeout));
        Assert.Equal(0, harness.Pool.RentedCount(backup.Address));
    }
}
