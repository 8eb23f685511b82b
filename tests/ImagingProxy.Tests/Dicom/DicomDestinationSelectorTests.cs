using ImagingProxy.Dicom;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Tests.Dicom;

public sealed class DicomDestinationSelectorTests
{
    private static ClusterState Cluster(string? policy)
        => new("c", new ClusterModel(new ClusterConfig { ClusterId = "c", LoadBalancingPolicy = policy }, new HttpMessageInvoker(new HttpClientHandler())));

    private static DestinationState Destination(string id, int open = 0, string? weight = null)
    {
        var config = new DestinationConfig { Address = "tcp://127.0.0.1:104", Metadata = weight is null ? null : new Dictionary<string, string> { ["Weight"] = weight } };
        return new DestinationState(id, new DestinationModel(config)) { ConcurrentRequestCount = open };
    }

    [Fact]
    public void Least_requests_is_the_default_and_picks_the_destination_with_fewest_open_associations()
    {
        var selector = new DicomDestinationSelector();

        Assert.Equal("b", selector.Pick(Cluster(null), [Destination("a", 3), Destination("b", 1), Destination("c", 2)])!.DestinationId);
    }

    [Fact]
    public void Least_requests_divides_by_weight()
    {
        var selector = new DicomDestinationSelector();

        Assert.Equal("a", selector.Pick(Cluster("LeastRequests"), [Destination("a", 3, "4"), Destination("b", 1)])!.DestinationId);
    }

    [Fact]
    public void Round_robin_cycles_through_the_destinations()
    {
        var selector = new DicomDestinationSelector();
        var cluster = Cluster("RoundRobin");
        DestinationState[] all = [Destination("a"), Destination("b"), Destination("c")];

        Assert.Equal(["a", "b", "c", "a"], Enumerable.Range(0, 4).Select(_ => selector.Pick(cluster, all)!.DestinationId));
    }

    [Fact]
    public void Round_robin_honours_weights()
    {
        var selector = new DicomDestinationSelector();
        var cluster = Cluster("RoundRobin");
        DestinationState[] all = [Destination("a", weight: "3"), Destination("b")];

        Assert.Equal("aabaaaba", string.Concat(Enumerable.Range(0, 8).Select(_ => selector.Pick(cluster, all)!.DestinationId)));
    }

    [Fact]
    public void First_alphabetical_picks_by_id()
    {
        Assert.Equal("a", new DicomDestinationSelector().Pick(Cluster("FirstAlphabetical"), [Destination("b"), Destination("a")])!.DestinationId);
    }

    [Fact]
    public void Random_honours_weights()
    {
        // The random source returns the last ticket: with weights 1 and 3 it falls to the second destination.
        var selector = new DicomDestinationSelector(n => n - 1);

        Assert.Equal("b", selector.Pick(Cluster("Random"), [Destination("a"), Destination("b", weight: "3")])!.DestinationId);
    }

    [Fact]
    public void Acquire_and_release_count_open_associations()
    {
        var selector = new DicomDestinationSelector();
        var destination = Destination("a");

        selector.Acquire(destination);
        selector.Acquire(destination);
        selector.Release(Cluster(null), destination);

        Assert.Equal(1, destination.ConcurrentRequestCount);
    }

    [Fact]
    public void No_candidates_gives_null()
    {
        Assert.Null(new DicomDestinationSelector().Pick(Cluster(null), []));
    }
}
