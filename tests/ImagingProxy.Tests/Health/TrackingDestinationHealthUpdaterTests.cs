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

    [Fact]
    public void A_passive_failure_while_the_watch_stops_after_a_reactivation_is_still_watched_to_its_own_reactivation()
    {
        // The watch sees the destination reactivated and stops; a passive failure on another thread (a message, an
        // association) takes it out again between the watch's look and its stop. That failure's reactivation must still
        // be seen when it happens (its log line, its transition, the start of a SlowStart), not at the next /status read.
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero));
        var services = new ServiceCollection().AddLogging().AddSingleton<TimeProvider>(time);
        services.AddReverseProxy();
        using var provider = services.BuildServiceProvider();
        var tracker = new DestinationHealthTracker(time, NullLogger<DestinationHealthTracker>.Instance);
        var transitions = new List<(string Kind, DestinationHealth From, DestinationHealth To)>();
        tracker.Transition += (_, _, kind, from, to) => transitions.Add((kind, from, to));
        var watchTimers = new StoppingTimers(time);
        var updater = new TrackingDestinationHealthUpdater(provider.GetRequiredService<IDestinationHealthUpdater>(), tracker, watchTimers);
        var cluster = Cluster("mllp", activeFlag: false, passive: true, destinations: "n1");
        var destination = cluster.Destinations["n1"];
        var period = TimeSpan.FromMinutes(1);

        updater.SetPassive(cluster, destination, DestinationHealth.Unhealthy, period);
        watchTimers.OnStop = () => updater.SetPassive(cluster, destination, DestinationHealth.Unhealthy, period);
        time.Advance(period);
        time.Advance(TrackingDestinationHealthUpdater.Recheck);
        Assert.Equal(DestinationHealth.Unhealthy, destination.Health.Passive);

        time.Advance(period);
        time.Advance(TrackingDestinationHealthUpdater.Recheck);

        Assert.Equal(DestinationHealth.Unknown, destination.Health.Passive);
        Assert.Equal(
            [
                ("passive", DestinationHealth.Unknown, DestinationHealth.Unhealthy), ("passive", DestinationHealth.Unhealthy, DestinationHealth.Unknown),
                ("passive", DestinationHealth.Unknown, DestinationHealth.Unhealthy), ("passive", DestinationHealth.Unhealthy, DestinationHealth.Unknown),
            ],
            transitions);
    }

    /// <summary>
    /// The watches' clock: the first time a watch stops its timer, <see cref="OnStop"/> runs just before the stop takes
    /// effect, as another thread's work landing between the watch's look at the health and its stop.
    /// </summary>
    private sealed class StoppingTimers(FakeTimeProvider inner) : TimeProvider
    {
        public Action? OnStop { get; set; }

        public override DateTimeOffset GetUtcNow() => inner.GetUtcNow();

        public override long GetTimestamp() => inner.GetTimestamp();

        public override long TimestampFrequency => inner.TimestampFrequency;

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
            => new Stopping(inner.CreateTimer(callback, state, dueTime, period), this);

        private sealed class Stopping(ITimer timer, StoppingTimers owner) : ITimer
        {
            public bool Change(TimeSpan dueTime, TimeSpan period)
            {
                if (dueTime == Timeout.InfiniteTimeSpan && owner.OnStop is { } onStop)
                {
                    owner.OnStop = null;
                    onStop();
                }

                return timer.Change(dueTime, period);
            }

            public void Dispose() => timer.Dispose();

            public ValueTask DisposeAsync() => timer.DisposeAsync();
        }
    }
}
