using ImagingProxy.Health;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Yarp.ReverseProxy.Model;
using static ImagingProxy.Tests.Health.HealthFixtures;

namespace ImagingProxy.Tests.Health;

public sealed class DestinationHealthTrackerTests
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero));
    private readonly List<(string Cluster, string Destination, string Kind, DestinationHealth From, DestinationHealth To)> _transitions = [];
    private readonly DestinationHealthTracker _tracker;

    public DestinationHealthTrackerTests()
    {
        _tracker = new DestinationHealthTracker(_time, NullLogger<DestinationHealthTracker>.Instance);
        _tracker.Transition += (c, d, k, f, t) => _transitions.Add((c, d, k, f, t));
    }

    [Fact]
    public void A_destination_still_unknown_has_no_transition()
    {
        var cluster = Cluster("pacs", activeFlag: true, destinations: "n1");

        var record = _tracker.Observe(cluster, cluster.Destinations["n1"]);

        Assert.Empty(_transitions);
        Assert.Equal(DestinationHealth.Unknown, record.Active);
        Assert.Equal(_time.GetUtcNow(), record.Since);
    }

    [Fact]
    public void The_first_health_is_a_transition_from_unknown()
    {
        var cluster = Cluster("pacs", activeFlag: true, destinations: "n1");
        var destination = cluster.Destinations["n1"];
        destination.Health.Active = DestinationHealth.Healthy;

        var record = _tracker.Observe(cluster, destination);

        Assert.Equal(("pacs", "n1", "active", DestinationHealth.Unknown, DestinationHealth.Healthy), Assert.Single(_transitions));
        Assert.Equal(DestinationHealth.Healthy, record.Active);
    }

    [Fact]
    public void Going_unhealthy_is_logged_as_a_warning_and_becoming_healthy_as_information()
    {
        var logger = new Microsoft.Extensions.Logging.Testing.FakeLogger<DestinationHealthTracker>();
        var tracker = new DestinationHealthTracker(_time, logger);
        var cluster = Cluster("pacs", activeFlag: true, destinations: "n1");
        var destination = cluster.Destinations["n1"];

        destination.Health.Active = DestinationHealth.Healthy; // each destination's first probe at start-up
        tracker.Observe(cluster, destination);
        destination.Health.Active = DestinationHealth.Unhealthy;
        tracker.Observe(cluster, destination);
        destination.Health.Active = DestinationHealth.Healthy;
        tracker.Observe(cluster, destination);

        Assert.Equal(
            [(324, Microsoft.Extensions.Logging.LogLevel.Information), (324, Microsoft.Extensions.Logging.LogLevel.Warning), (324, Microsoft.Extensions.Logging.LogLevel.Information)],
            logger.Collector.GetSnapshot().Select(r => (r.Id.Id, r.Level)));
    }

    [Fact]
    public void Since_moves_only_when_the_health_changes()
    {
        var cluster = Cluster("pacs", activeFlag: true, destinations: "n1");
        var destination = cluster.Destinations["n1"];
        destination.Health.Active = DestinationHealth.Healthy;
        var healthySince = _tracker.Observe(cluster, destination).Since;

        _time.Advance(TimeSpan.FromMinutes(5));
        Assert.Equal(healthySince, _tracker.Observe(cluster, destination).Since);
        Assert.Single(_transitions);

        _time.Advance(TimeSpan.FromMinutes(1));
        destination.Health.Active = DestinationHealth.Unhealthy;
        var down = _tracker.Observe(cluster, destination);

        Assert.Equal(healthySince + TimeSpan.FromMinutes(6), down.Since);
        Assert.Equal(("pacs", "n1", "active", DestinationHealth.Healthy, DestinationHealth.Unhealthy), _transitions[^1]);
    }

    [Fact]
    public void Active_and_passive_changes_are_separate_transitions()
    {
        var cluster = Cluster("ris", activeFlag: true, passive: true, destinations: "n1");
        var destination = cluster.Destinations["n1"];
        destination.Health.Active = DestinationHealth.Healthy;
        destination.Health.Passive = DestinationHealth.Unhealthy;

        _tracker.Observe(cluster, destination);

        Assert.Equal(2, _transitions.Count);
        Assert.Contains(("ris", "n1", "active", DestinationHealth.Unknown, DestinationHealth.Healthy), _transitions);
        Assert.Contains(("ris", "n1", "passive", DestinationHealth.Unknown, DestinationHealth.Unhealthy), _transitions);
    }

    [Fact]
    public void Destinations_are_tracked_per_cluster()
    {
        var a = Cluster("a", activeFlag: true, destinations: "n1");
        var b = Cluster("b", activeFlag: true, destinations: "n1");
        a.Destinations["n1"].Health.Active = DestinationHealth.Healthy;
        b.Destinations["n1"].Health.Active = DestinationHealth.Unhealthy;

        _tracker.Observe(a, a.Destinations["n1"]);
        _tracker.Observe(b, b.Destinations["n1"]);

        Assert.Equal(["a", "b"], _transitions.Select(t => t.Cluster));
    }

    [Fact]
    public void An_observer_records_the_health_as_it_is_when_it_records_not_as_it_was_when_it_started()
    {
        // The destination goes down, and back up while the observer that saw it down is held at its clock read; another
        // thread (a probe, a /status read) observes meanwhile. Nothing must record the down that no longer holds.
        var cluster = Cluster("pacs", activeFlag: true, destinations: "n1");
        var destination = cluster.Destinations["n1"];
        destination.Health.Active = DestinationHealth.Healthy;
        var time = new InterleavingTime();
        var tracker = new DestinationHealthTracker(time, NullLogger<DestinationHealthTracker>.Instance);
        var transitions = new List<(DestinationHealth From, DestinationHealth To)>();
        tracker.Transition += (_, _, _, from, to) =>
        {
            lock (transitions)
            {
                transitions.Add((from, to));
            }
        };
        tracker.Observe(cluster, destination);
        destination.Health.Active = DestinationHealth.Unhealthy;
        time.OnNextRead = () =>
        {
            destination.Health.Active = DestinationHealth.Healthy;
            Task.Run(() => tracker.Observe(cluster, destination)).Wait();
        };

        var record = tracker.Observe(cluster, destination);

        Assert.Equal(DestinationHealth.Healthy, record.Active);
        Assert.Equal(DestinationHealth.Healthy, tracker.Observe(cluster, destination).Active);
        Assert.Equal([(DestinationHealth.Unknown, DestinationHealth.Healthy)], transitions);
    }

    /// <summary>A clock that runs <see cref="OnNextRead"/> (once) when it is next read.</summary>
    private sealed class InterleavingTime : TimeProvider
    {
        public Action? OnNextRead { get; set; }

        public override DateTimeOffset GetUtcNow()
        {
            var hook = OnNextRead;
            OnNextRead = null;
            hook?.Invoke();
            return new DateTimeOffset(2026, 11, 28, 0, 0, 0, TimeSpan.Zero);
        }
    }

    [Fact]
    public void A_return_from_unhealthy_is_remembered_with_its_time_and_a_first_health_is_not()
    {
        var cluster = Cluster("pacs", activeFlag: true, destinations: ["n1", "n2"]);
        var n1 = cluster.Destinations["n1"];
        var n2 = cluster.Destinations["n2"];
        n1.Health.Active = DestinationHealth.Healthy;
        n2.Health.Active = DestinationHealth.Healthy;
        _tracker.Observe(cluster, n1);
        _tracker.Observe(cluster, n2);

        n1.Health.Active = DestinationHealth.Unhealthy;
        _tracker.Observe(cluster, n1);
        _time.Advance(TimeSpan.FromSeconds(7));
        Assert.Null(_tracker.ReturnedAt(n1));
        n1.Health.Active = DestinationHealth.Healthy;
        _tracker.Observe(cluster, n1);

        Assert.Equal(_time.GetUtcNow(), _tracker.ReturnedAt(n1));
        Assert.Null(_tracker.ReturnedAt(n2));

        // Still out passively: not back yet.
        n2.Health.Passive = DestinationHealth.Unhealthy;
        _tracker.Observe(cluster, n2);
        n2.Health.Active = DestinationHealth.Unhealthy;
        _tracker.Observe(cluster, n2);
        n2.Health.Active = DestinationHealth.Healthy;
        _tracker.Observe(cluster, n2);
        Assert.Null(_tracker.ReturnedAt(n2));
    }

    [Fact]
    public void A_destination_removed_while_unhealthy_and_added_again_healthy_has_not_returned()
    {
        var cluster = Cluster("pacs", activeFlag: true, destinations: "n1");
        var old = cluster.Destinations["n1"];
        old.Health.Active = DestinationHealth.Unhealthy;
        _tracker.Observe(cluster, old);

        // A reload removes n1, a later one adds it again: YARP makes a new state, whose first probe is Healthy.
        _time.Advance(TimeSpan.FromHours(1));
        var added = new DestinationState("n1", old.Model) { Health = { Active = DestinationHealth.Healthy } };
        _tracker.Observe(cluster, added);

        Assert.Null(_tracker.ReturnedAt(added));
    }
}
