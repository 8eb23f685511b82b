using System.Collections.Concurrent;
using System.Diagnostics;
using ImagingProxy.Configuration;
using ImagingProxy.Health;
using ImagingProxy.Telemetry;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Yarp.ReverseProxy.Model;
using static ImagingProxy.Tests.Health.HealthFixtures;

namespace ImagingProxy.Tests.Health;

public sealed class ActiveHealthMonitorTests
{
    private const DestinationHealth Up = DestinationHealth.Healthy;
    private const DestinationHealth Down = DestinationHealth.Unhealthy;

    [Fact(Timeout = 30_000)]
    public async Task Unknown_takes_the_first_failure_at_once()
    {
        await using var harness = new MonitorHarness(false);
        var cluster = Cluster("c", activeFlag: true, metadata: Thresholds(failures: 5, successes: 5), destinations: "n1");

        Assert.Equal([Down], await harness.RunAsync(cluster, 1));
    }

    [Fact(Timeout = 30_000)]
    public async Task Default_thresholds_are_two_failures_down_and_one_success_up()
    {
        await using var harness = new MonitorHarness(true, false, false, true);
        var cluster = Cluster("c", activeFlag: true, destinations: "n1");

        Assert.Equal([Up, Up, Down, Up], await harness.RunAsync(cluster, 4));
    }

    [Fact(Timeout = 30_000)]
    public async Task Metadata_thresholds_are_honoured_both_ways()
    {
        await using var harness = new MonitorHarness(true, false, false, false, true, true, false, true);
        var cluster = Cluster("c", activeFlag: true, metadata: Thresholds(failures: 3, successes: 2), destinations: "n1");

        // 3 failures in a row to go down; 2 successes in a row to come back; a success resets the failure streak.
        Assert.Equal([Up, Up, Up, Down, Down, Up, Up, Up], await harness.RunAsync(cluster, 8));
    }

    [Fact(Timeout = 30_000)]
    public async Task Invalid_thresholds_fall_back_to_the_defaults()
    {
        await using var harness = new MonitorHarness(true, false, false);
        var cluster = Cluster("c", activeFlag: true, metadata: Thresholds("zero", "-1"), destinations: "n1");

        Assert.Equal([Up, Up, Down], await harness.RunAsync(cluster, 3));
    }

    [Fact(Timeout = 30_000)]
    public async Task Transitions_reach_the_tracker_with_the_fake_clock_time()
    {
        await using var harness = new MonitorHarness(true, false, false);
        var cluster = Cluster("c", activeFlag: true, destinations: "n1");
        var started = harness.Time.GetUtcNow();

        await harness.RunAsync(cluster, 3);

        // The clock moves only between rounds (at least one interval each), so the last change is "now".
        var record = harness.Tracker.Observe(cluster, cluster.Destinations["n1"]);
        Assert.Equal(Down, record.Active);
        Assert.Equal(harness.Time.GetUtcNow(), record.Since);
        Assert.True(record.Since >= started + (2 * Interval));
    }

    [Fact]
    public void Clusters_without_the_flag_are_not_probed()
    {
        Assert.False(ActiveHealthMonitor.IsEnabled(Cluster("c", activeFlag: false, destinations: "n1").Model.Config));
        Assert.True(ActiveHealthMonitor.IsEnabled(Cluster("c", activeFlag: true, destinations: "n1").Model.Config));
    }

    [Fact(Timeout = 30_000)]
    public async Task Each_probe_is_a_health_probe_activity_with_its_result()
    {
        var clusterId = "activity-" + Guid.NewGuid().ToString("N");
        var stopped = new ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == ImagingProxyTelemetry.MeterName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                if (activity.OperationName == "health.probe" && (string?)activity.GetTagItem("cluster") == clusterId)
                {
                    stopped.Enqueue(activity);
                }
            },
        };
        ActivitySource.AddActivityListener(listener);
        await using var harness = new MonitorHarness(true, false);

        await harness.RunAsync(Cluster(clusterId, activeFlag: true, destinations: "n1"), 2);

        var activities = stopped.ToArray();
        Assert.Equal(2, activities.Length);
        Assert.All(activities, a =>
        {
            Assert.Equal("n1", a.GetTagItem("destination"));
            Assert.Equal("http", a.GetTagItem("protocol"));
            Assert.Equal(ActivityKind.Client, a.Kind);
            Assert.Null(a.Parent);
        });
        Assert.Equal("healthy", activities[0].GetTagItem("result"));
        Assert.Equal(ActivityStatusCode.Unset, activities[0].Status);
        Assert.Equal("unhealthy", activities[1].GetTagItem("result"));
        Assert.Equal(ActivityStatusCode.Error, activities[1].Status);
        Assert.Equal("scripted failure", activities[1].StatusDescription);
    }

    [Fact(Timeout = 30_000)]
    public async Task Turning_active_checks_off_puts_active_health_back_to_Unknown_once()
    {
        await using var harness = new MonitorHarness(false);
        var cluster = Cluster("c", activeFlag: true, destinations: "n1");
        var transitions = new ConcurrentQueue<(DestinationHealth From, DestinationHealth To)>();
        var reset = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        harness.Tracker.Transition += (_, _, _, from, to) =>
        {
            transitions.Enqueue((from, to));
            if (to == DestinationHealth.Unknown)
            {
                reset.TrySetResult();
            }
        };
        Assert.Equal([Down], await harness.RunAsync(cluster, 1));

        cluster = Reconfigured(cluster, c => WithActive(c, enabled: false));
        harness.Monitor.OnClusterChanged(cluster);

        // The loop was waiting for its next round, which never comes: the only update after the reload is the reset.
        Assert.Equal([("n1", DestinationHealth.Unknown)], await harness.Updater.NextRoundAsync(harness.Time, first: true));
        await reset.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var n1 = cluster.Destinations["n1"];
        Assert.Equal(DestinationHealth.Unknown, harness.Tracker.Observe(cluster, n1).Active);
        Assert.Equal([(DestinationHealth.Unknown, Down), (Down, DestinationHealth.Unknown)], transitions);
        Assert.True(AvailableDestinationsPolicies.IsAvailable(cluster.Model.Config, n1));
    }

    [Fact(Timeout = 30_000)]
    public async Task Turning_active_checks_back_on_starts_from_Unknown()
    {
        // From Unhealthy 3 successes would be needed; from Unknown the first one counts.
        await using var harness = new MonitorHarness(false, true);
        var cluster = Cluster("c", activeFlag: true, metadata: Thresholds(failures: 1, successes: 3), destinations: "n1");
        Assert.Equal([Down], await harness.RunAsync(cluster, 1));
        cluster = Reconfigured(cluster, c => WithActive(c, enabled: false));
        harness.Monitor.OnClusterChanged(cluster);
        Assert.Equal([("n1", DestinationHealth.Unknown)], await harness.Updater.NextRoundAsync(harness.Time, first: true));

        cluster = Reconfigured(cluster, c => WithActive(c, enabled: true));
        harness.Monitor.OnClusterChanged(cluster);

        Assert.Equal([("n1", Up)], await harness.Updater.NextRoundAsync(harness.Time, first: true));
    }

    [Fact(Timeout = 30_000)]
    public async Task A_protocol_without_a_prober_puts_active_health_back_to_Unknown()
    {
        await using var harness = new MonitorHarness(false);
        var cluster = Cluster("c", activeFlag: true, destinations: "n1");
        Assert.Equal([Down], await harness.RunAsync(cluster, 1));

        // The harness probes Http only: an Mllp cluster has no probe loop, as a protocol without a prober in the host.
        cluster = Reconfigured(cluster, c => c with { Metadata = new Dictionary<string, string>(c.Metadata!) { [MetadataKeys.Protocol] = "Mllp" } });
        harness.Monitor.OnClusterChanged(cluster);

        Assert.Equal([("n1", DestinationHealth.Unknown)], await harness.Updater.NextRoundAsync(harness.Time, first: true));
    }

    [Fact(Timeout = 30_000)]
    public async Task A_loop_that_fails_puts_active_health_back_to_Unknown()
    {
        await using var harness = new MonitorHarness(false, false);
        var cluster = Cluster("c", activeFlag: true, destinations: "n1");
        var probes = 0;
        harness.Monitor.ProbeCompleted += (_, _, _, _, _) =>
        {
            if (Interlocked.Increment(ref probes) == 2)
            {
                throw new InvalidOperationException("a listener failed");
            }
        };
        Assert.Equal([Down], await harness.RunAsync(cluster, 1));

        // The second round ends the loop (event 322): nothing probes the destination any more.
        Assert.Equal([("n1", DestinationHealth.Unknown)], await harness.Updater.NextRoundAsync(harness.Time, first: false));
    }

    [Fact(Timeout = 30_000)]
    public async Task A_probe_result_that_comes_after_active_checks_were_turned_off_is_not_kept()
    {
        var time = new FakeTimeProvider();
        var prober = new SecondProbeWaitsProber();
        var updater = new RecordingHealthUpdater();
        var tracker = new DestinationHealthTracker(time, NullLogger<DestinationHealthTracker>.Instance);
        using var monitor = new ActiveHealthMonitor([prober], new TrackingDestinationHealthUpdater(updater, tracker, time), tracker, time, NullLogger<ActiveHealthMonitor>.Instance);
        var cluster = Cluster("c", activeFlag: true, destinations: "n1");
        monitor.OnClusterAdded(cluster);
        Assert.Equal([("n1", Down)], await updater.NextRoundAsync(time, first: true));
        using (var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
        {
            // The second round starts once the fake clock has passed the interval (the delay may not be registered yet).
            while (!prober.SecondStarted.Task.IsCompleted)
            {
                time.Advance(Interval);
                await Task.WhenAny(prober.SecondStarted.Task, Task.Delay(50, deadline.Token));
            }
        }

        cluster = Reconfigured(cluster, c => WithActive(c, enabled: false));
        monitor.OnClusterChanged(cluster);
        prober.Release.SetResult();

        // The healthy result of the probe under way when the loop stopped never reaches the destination; the reset does.
        Assert.Equal([("n1", DestinationHealth.Unknown)], await updater.NextRoundAsync(time, first: true));
        await monitor.StopAsync(CancellationToken.None);
        Assert.Equal(DestinationHealth.Unknown, cluster.Destinations["n1"].Health.Active);
    }

    /// <summary>The first probe fails; the second one waits for <see cref="Release"/>, whatever its token says, then succeeds.</summary>
    private sealed class SecondProbeWaitsProber : IDestinationProber
    {
        private int _calls;

        public TaskCompletionSource SecondStarted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public ClusterProtocol Protocol => ClusterProtocol.Http;

        public async Task<ProbeResult> ProbeAsync(ClusterState cluster, DestinationState destination, CancellationToken cancellationToken)
        {
            if (Interlocked.Increment(ref _calls) == 1)
            {
                return ProbeResult.Failure("scripted failure");
            }

            SecondStarted.TrySetResult();
            await Release.Task;
            return ProbeResult.Success("late success");
        }
    }

    private static Dictionary<string, string> Thresholds(int failures, int successes)
        => Thresholds(failures.ToString(System.Globalization.CultureInfo.InvariantCulture), successes.ToString(System.Globalization.CultureInfo.InvariantCulture));

    private static Dictionary<string, string> Thresholds(string failures, string successes) => new()
    {
        [MetadataKeys.ConsecutiveFailuresThreshold] = failures,
        [MetadataKeys.ConsecutiveSuccessesThreshold] = successes,
    };

    [Fact(Timeout = 30_000)]
    public async Task A_probe_that_fails_because_the_loop_stopped_is_not_a_failure()
    {
        var time = new FakeTimeProvider();
        var prober = new FailsWhenCancelledProber();
        var tracker = new DestinationHealthTracker(time, NullLogger<DestinationHealthTracker>.Instance);
        using var monitor = new ActiveHealthMonitor([prober], new RecordingHealthUpdater(), tracker, time, NullLogger<ActiveHealthMonitor>.Instance);
        var completed = new ConcurrentQueue<ProbeResult>();
        monitor.ProbeCompleted += (_, _, _, result, _) => completed.Enqueue(result);
        var cluster = Cluster("c", activeFlag: true, destinations: "n1");

        monitor.OnClusterAdded(cluster);
        await prober.Started.Task;
        await monitor.StopAsync(CancellationToken.None);

        Assert.Empty(completed);
    }

    /// <summary>A probe that, when its loop is stopped, fails the way a socket closed under it does (not with a cancellation).</summary>
    private sealed class FailsWhenCancelledProber : IDestinationProber
    {
        public TaskCompletionSource Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public ClusterProtocol Protocol => ClusterProtocol.Http;

        public async Task<ProbeResult> ProbeAsync(ClusterState cluster, DestinationState destination, CancellationToken cancellationToken)
        {
            Started.TrySetResult();
            try
            {
                await Task.Delay(Timeout.InfiniteTimeSpan, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                throw new IOException("The socket was closed under the probe.");
            }

            return ProbeResult.Success("never");
        }
    }
}
