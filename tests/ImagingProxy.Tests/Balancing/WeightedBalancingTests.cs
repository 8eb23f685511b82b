using ImagingProxy.Balancing;
using ImagingProxy.Health;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.LoadBalancing;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Tests.Balancing;

public sealed class WeightedBalancingTests
{
    private static readonly HttpMessageInvoker s_invoker = new(new HttpClientHandler());
    private static readonly IServiceProvider s_services = new ServiceCollection().BuildServiceProvider();
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero));
    private readonly DestinationHealthTracker _tracker;
    private readonly DestinationWeights _weights;

    public WeightedBalancingTests()
    {
        _tracker = new DestinationHealthTracker(_time, NullLogger<DestinationHealthTracker>.Instance);
        _weights = new DestinationWeights(_tracker, _time);
    }

    /// <summary>A cluster whose destinations "a", "b" ... have the given Weight metadata (null: none).</summary>
    private static ClusterState Cluster(string? policy, string? slowStart, params string?[] weights)
    {
        var destinations = new Dictionary<string, DestinationConfig>();
        for (var i = 0; i < weights.Length; i++)
        {
            destinations[((char)('a' + i)).ToString()] = new DestinationConfig
            {
                Address = "http://127.0.0.1:9/",
                Metadata = weights[i] is { } w ? new Dictionary<string, string> { ["Weight"] = w } : null,
            };
        }

        var config = new ClusterConfig
        {
            ClusterId = "c",
            LoadBalancingPolicy = policy,
            Metadata = slowStart is null ? null : new Dictionary<string, string> { ["SlowStart"] = slowStart },
            Destinations = destinations,
        };
        var cluster = new ClusterState("c", new ClusterModel(config, s_invoker));
        foreach (var (id, destination) in destinations)
        {
            cluster.Destinations[id] = new DestinationState(id, new DestinationModel(destination));
        }

        // In the order of their ids, as YARP's would be in a rotation.
        DestinationState[] ordered = [.. cluster.Destinations.Values.OrderBy(d => d.DestinationId, StringComparer.Ordinal)];
        cluster.DestinationsState = new ClusterDestinationsState(ordered, ordered);
        return cluster;
    }

    private static IReadOnlyList<DestinationState> All(ClusterState cluster) => cluster.DestinationsState.AvailableDestinations;

    private static string Sequence(WeightedPicker picker, string policy, ClusterState cluster, int count)
        => string.Concat(Enumerable.Range(0, count).Select(_ => picker.Pick(policy, cluster, All(cluster)).DestinationId));

    /// <summary>The destination goes out (active health) and comes back, as the tracker observes it.</summary>
    private void OutAndBack(ClusterState cluster, DestinationState destination)
    {
        destination.Health.Active = DestinationHealth.Unhealthy;
        _tracker.Observe(cluster, destination);
        destination.Health.Active = DestinationHealth.Healthy;
        _tracker.Observe(cluster, destination);
    }

    [Fact]
    public void Round_robin_is_smooth_and_weighted()
    {
        var cluster = Cluster("RoundRobin", null, "3", null);

        Assert.Equal("aabaaaba", Sequence(new WeightedPicker(_weights), "RoundRobin", cluster, 8));
    }

    [Fact]
    public void Round_robin_with_equal_weights_rotates()
    {
        var cluster = Cluster("RoundRobin", null, null, null, null);

        Assert.Equal("abcabc", Sequence(new WeightedPicker(_weights), "RoundRobin", cluster, 6));
    }

    [Fact]
    public void Least_requests_divides_the_load_by_the_weight()
    {
        var cluster = Cluster("LeastRequests", null, "4", null);
        cluster.Destinations["a"].ConcurrentRequestCount = 3;
        cluster.Destinations["b"].ConcurrentRequestCount = 1;

        Assert.Equal("a", new WeightedPicker(_weights).Pick("LeastRequests", cluster, All(cluster)).DestinationId);
    }

    /// <summary>A random source that walks [0, n) in <paramref name="steps"/> even steps, round and round.</summary>
    private static Func<int, int> Walk(int steps)
    {
        var k = 0;
        return n => (int)((long)n * (k++ % steps) / steps);
    }

    [Fact]
    public void Random_draws_follow_the_weights_large_ones_too()
    {
        // a has a quarter of the shares: a quarter of the evenly spread draws.
        Assert.Equal(100, Sequence(new WeightedPicker(_weights, Walk(400)), "Random", Cluster("Random", null, null, "3"), 400).Count(c => c == 'a'));
        Assert.Equal(100, Sequence(new WeightedPicker(_weights, Walk(400)), "Random", Cluster("Random", null, "1000", "3000"), 400).Count(c => c == 'a'));
    }

    [Fact]
    public void Power_of_two_compares_two_different_destinations_drawn_by_share()
    {
        // Equal loads keep the first draw: a's quarter of the first draws.
        var cluster = Cluster("PowerOfTwoChoices", null, null, "3");
        Assert.Equal(100, Sequence(new WeightedPicker(_weights, Walk(800)), "PowerOfTwoChoices", cluster, 400).Count(c => c == 'a'));

        // A busy destination and an idle one: the two draws are always both, so the idle one wins every time (as in
        // YARP's own policy), whatever the shares.
        cluster.Destinations["b"].ConcurrentRequestCount = 50;
        Assert.DoesNotContain('b', Sequence(new WeightedPicker(_weights), "PowerOfTwoChoices", cluster, 1000));
    }

    [Fact]
    public void A_destination_back_from_unhealthy_ramps_from_a_tenth_to_its_whole_weight_over_slow_start()
    {
        var cluster = Cluster("RoundRobin", "00:01:40", "2", null);
        var a = cluster.Destinations["a"];
        Assert.Equal(2, _weights.Of(cluster, a));

        OutAndBack(cluster, a);
        Assert.Equal(0.2, _weights.Of(cluster, a), 6);

        _time.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal(2 * (0.1 + (0.9 * 0.05)), _weights.Of(cluster, a), 6); // linear from the start

        _time.Advance(TimeSpan.FromSeconds(45));
        Assert.Equal(2 * (0.1 + (0.9 * 0.5)), _weights.Of(cluster, a), 6);

        _time.Advance(TimeSpan.FromSeconds(50));
        Assert.Equal(2, _weights.Of(cluster, a));

        // b never went out: its whole weight throughout.
        Assert.Equal(1, _weights.Of(cluster, cluster.Destinations["b"]));
    }

    [Fact]
    public void Passive_health_starts_a_slow_start_too_but_a_first_health_does_not()
    {
        var cluster = Cluster("RoundRobin", "00:01:00", null, null);
        var a = cluster.Destinations["a"];
        var b = cluster.Destinations["b"];

        b.Health.Active = DestinationHealth.Healthy; // Unknown -> Healthy at start: not a return
        _tracker.Observe(cluster, b);
        a.Health.Passive = DestinationHealth.Unhealthy;
        _tracker.Observe(cluster, a);
        a.Health.Passive = DestinationHealth.Unknown; // YARP's reactivation
        _tracker.Observe(cluster, a);

        Assert.Equal(0.1, _weights.Of(cluster, a), 6);
        Assert.Equal(1, _weights.Of(cluster, b));
    }

    [Fact]
    public void Without_slow_start_a_return_keeps_the_whole_weight()
    {
        var cluster = Cluster("RoundRobin", null, "2", null);
        OutAndBack(cluster, cluster.Destinations["a"]);

        Assert.Equal(2, _weights.Of(cluster, cluster.Destinations["a"]));
    }

    [Fact]
    public void A_returned_destination_gets_a_small_share_of_a_rotation_then_its_whole_share()
    {
        var cluster = Cluster("RoundRobin", "00:00:10", null, null);
        var picker = new WeightedPicker(_weights);
        OutAndBack(cluster, cluster.Destinations["b"]);

        var early = Sequence(picker, "RoundRobin", cluster, 22);
        _time.Advance(TimeSpan.FromSeconds(10));
        var later = Sequence(picker, "RoundRobin", cluster, 22);

        Assert.InRange(early.Count(c => c == 'b'), 1, 3);
        Assert.InRange(later.Count(c => c == 'b'), 10, 12);
    }

    [Theory]
    [InlineData(null, null, null, false)]
    [InlineData(null, "1", "1", false)]
    [InlineData(null, "2", null, true)]
    [InlineData("00:00:30", null, null, true)]
    public void A_cluster_is_weighted_with_a_weight_other_than_one_or_a_slow_start(string? slowStart, string? a, string? b, bool weighted)
    {
        Assert.Equal(weighted, _weights.IsWeighted(Cluster(null, slowStart, a, b)));
    }

    [Fact]
    public void The_http_policy_is_yarps_own_for_a_cluster_without_weights_and_for_first_alphabetical()
    {
        var inner = new CountingPolicy("RoundRobin");
        var policy = new WeightedLoadBalancingPolicy(inner, new WeightedPicker(_weights), s_services);
        var plain = Cluster("RoundRobin", null, null, null);
        var weighted = Cluster("RoundRobin", null, "3", null);

        Assert.Equal("b", policy.PickDestination(new DefaultHttpContext(), plain, All(plain))!.DestinationId);
        Assert.Equal(1, inner.Calls);
        Assert.Equal("aaba", string.Concat(Enumerable.Range(0, 4).Select(_ => policy.PickDestination(new DefaultHttpContext(), weighted, All(weighted))!.DestinationId)));
        Assert.Equal(1, inner.Calls);

        var alphabetical = new CountingPolicy(LoadBalancingPolicies.FirstAlphabetical);
        new WeightedLoadBalancingPolicy(alphabetical, new WeightedPicker(_weights), s_services).PickDestination(new DefaultHttpContext(), weighted, All(weighted));
        Assert.Equal(1, alphabetical.Calls);
    }

    [Fact]
    public void Many_candidates_are_weighed_too()
    {
        // Above the stack's 32 candidates the weights go to a rented array.
        var weights = Enumerable.Repeat<string?>(null, 40).ToArray();
        weights[39] = "100";
        var cluster = Cluster("RoundRobin", null, weights);

        var picks = Sequence(new WeightedPicker(_weights), "RoundRobin", cluster, 139);

        Assert.Equal(100, picks.Count(c => c == (char)('a' + 39)));
    }

    /// <summary>Stands for one of YARP's policies: always the last destination, counted.</summary>
    private sealed class CountingPolicy(string name) : ILoadBalancingPolicy
    {
        public int Calls { get; private set; }

        public string Name => name;

        public DestinationState? PickDestination(HttpContext context, ClusterState cluster, IReadOnlyList<DestinationState> availableDestinations)
        {
            Calls++;
            return availableDestinations[^1];
        }
    }
}
