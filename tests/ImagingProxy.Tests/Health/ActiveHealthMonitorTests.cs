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
