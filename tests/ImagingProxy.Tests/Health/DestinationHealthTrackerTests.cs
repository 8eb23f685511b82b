using ImagingProxy.Health;
using Microsoft.Extensions.Logging.Abstractions;
using Yarp.ReverseProxy.Model;
using static ImagingProxy.Tests.Health.HealthFixtures;

namespace ImagingProxy.Tests.Health;

public sealed class DestinationHealthTrackerTests
{
    [Fact]
    public void An_observer_that_read_the_health_before_a_change_another_observer_recorded_does_not_undo_it()
    {
        // The first observer is held between its start and its read of the clock; meanwhile the destination goes down
        // and a second observer (another thread: a probe, a /status read) records that.
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
        time.OnNextRead = () =>
        {
            destination.Health.Active = DestinationHealth.Unhealthy;
            Task.Run(() => tracker.Observe(cluster, destination)).Wait();
        };

        var record = tracker.Observe(cluster, destination);

        Assert.Equal(DestinationHealth.Unhealthy, record.Active);
        Assert.Equal(DestinationHealth.Unhealthy, tracker.Observe(cluster, destination).Active);
        Assert.Equal([(DestinationHealth.Unknown, DestinationHealth.Healthy), (DestinationHealth.Healthy, DestinationHealth.Unhealthy)], transitions);
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
}
