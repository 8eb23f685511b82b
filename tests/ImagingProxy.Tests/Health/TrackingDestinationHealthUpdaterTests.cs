using ImagingProxy.Health;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;
using static ImagingProxy.Tests.Health.HealthFixtures;

namespace ImagingProxy.Tests.Health;

public sealed class TrackingDestinationHealthUpdaterTests
{
    [Fact]
    public void Yarps_own_passive_reactivation_is_logged_when_it_happens()
    {
        // YARP's real updater, on the same fake clock: it reactivates the destination itself, not through the decorator.
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero));
        var services = new ServiceCollection().AddLogging().AddSingleton<TimeProvider>(time);
        services.AddReverseProxy();
        using var provider = services.BuildServiceProvider();
        var tracker = new DestinationHealthTracker(time, NullLogger<DestinationHealthTracker>.Instance);
        var transitions = new List<(string Kind, DestinationHealth From, DestinationHealth To, DateTimeOffset At)>();
        tracker.Transition += (_, _, kind, from, to) => transitions.Add((kind, from, to, time.GetUtcNow()));
        var updater = new TrackingDestinationHealthUpdater(provider.GetRequiredService<IDestinationHealthUpdater>(), tracker, time);
        var cluster = Cluster("mllp", activeFlag: false, passive: true, destinations: "n1");
        var destination = cluster.Destinations["n1"];

        updater.SetPassive(cluster, destination, DestinationHealth.Unhealthy, TimeSpan.FromMinutes(1));
        var down = time.GetUtcNow();
        time.Advance(TimeSpan.FromMinutes(1));
        time.Advance(TrackingDestinationHealthUpdater.Recheck);

        Assert.Equal(DestinationHealth.Unknown, destination.Health.Passive);
        Assert.Equal(
            [("passive", DestinationHealth.Unknown, DestinationHealth.Unhealthy), ("passive", DestinationHealth.Unhealthy, DestinationHealth.Unknown)],
            transitions.Select(t => (t.Kind, t.From, t.To)));
        Assert.InRange(transitions[1].At, down + TimeSpan.FromMinutes(1), down + TimeSpan.FromMinutes(1) + TrackingDestinationHealthUpdater.Recheck);
    }
}
