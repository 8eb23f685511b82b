using ImagingProxy.Balancing;
using ImagingProxy.Telemetry;
using ImagingProxy.Tests.Health;
using ImagingProxy.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Yarp.ReverseProxy.Model;
using static ImagingProxy.Tests.Health.HealthFixtures;

namespace ImagingProxy.Tests.Telemetry;

public sealed class HealthMetricsTests : IAsyncLifetime
{
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly System.Diagnostics.Metrics.IMeterFactory _factory;

    public HealthMetricsTests() => _factory = _services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>();

    [Fact(Timeout = 30_000)]
    public async Task Each_probe_is_counted_by_result_and_timed()
    {
        await using var harness = new MonitorHarness(true, false);
        var cluster = Cluster("pacs-web", activeFlag: true, metadata: new Dictionary<string, string> { ["ConsecutiveFailuresHealthPolicy.Threshold"] = "1" }, destinations: "orthanc-a");
        using var metrics = new HealthMetrics(_factory, harness.Monitor, harness.Tracker, new FixedProxyState(cluster));
        using var probes = Collector<long>("imagingproxy.health.probes");
        using var duration = Collector<double>("imagingproxy.health.probe.duration");

        await harness.RunAsync(cluster, 2);

        var counted = probes.GetMeasurementSnapshot();
        Assert.Equal(["healthy", "unhealthy"], counted.Select(m => m.Tags["result"]));
        Assert.All(counted, m =>
        {
            Assert.Equal(1, m.Value);
            Assert.Equal("pacs-web", m.Tags["cluster"]);
            Assert.Equal("orthanc-a", m.Tags["destination"]);
            Assert.Equal("http", m.Tags["protocol"]);
        });
        var timed = duration.GetMeasurementSnapshot();
        Assert.Equal(2, timed.Count);
        Assert.All(timed, m =>
        {
            Assert.Equal(0, m.Value); // the fake clock does not move during a probe
            Assert.False(m.Tags.ContainsKey("result"));
            Assert.Equal("orthanc-a", m.Tags["destination"]);
        });
    }

    [Fact(Timeout = 30_000)]
    public async Task Health_changes_are_counted_as_transitions()
    {
        await using var harness = new MonitorHarness(true, false, false, true);
        var cluster = Cluster("pacs", activeFlag: true, destinations: "n1");
        using var metrics = new HealthMetrics(_factory, harness.Monitor, harness.Tracker, new FixedProxyState(cluster));
        using var transitions = Collector<long>("imagingproxy.health.transitions");

        // Up, Up (1 of 2 failures), Down, Up: three changes.
        await harness.RunAsync(cluster, 4);

        var counted = transitions.GetMeasurementSnapshot();
        Assert.Equal(["Healthy", "Unhealthy", "Healthy"], counted.Select(m => m.Tags["health_state"]));
        Assert.All(counted, m =>
        {
            Assert.Equal("active", m.Tags["kind"]);
            Assert.Equal("pacs", m.Tags["cluster"]);
            Assert.Equal("n1", m.Tags["destination"]);
        });
    }

    [Fact]
    public async Task Gauges_show_health_availability_and_available_count_per_cluster()
    {
        await using var harness = new MonitorHarness();
        var cluster = Cluster("ris", activeFlag: true, passive: true, metadata: new Dictionary<string, string> { ["Protocol"] = "Mllp" }, destinations: ["n1", "n2"]);
        cluster.Destinations["n1"].Health.Active = DestinationHealth.Healthy;
        cluster.Destinations["n2"].Health.Active = DestinationHealth.Unhealthy;
        cluster.Destinations["n2"].Health.Passive = DestinationHealth.Unhealthy;
        cluster.DestinationsState = new ClusterDestinationsState([.. cluster.Destinations.Values], [cluster.Destinations["n1"]]);
        using var metrics = new HealthMetrics(_factory, harness.Monitor, harness.Tracker, new FixedProxyState(cluster));
        using var health = Collector<int>("imagingproxy.destination.health");
        using var available = Collector<int>("imagingproxy.destination.available");
        using var clusterAvailable = Collector<int>("imagingproxy.cluster.destinations.available");

        health.RecordObservableInstruments();
        available.RecordObservableInstruments();
        clusterAvailable.RecordObservableInstruments();

        var states = health.GetMeasurementSnapshot();
        Assert.Equal(4, states.Count);
        Assert.All(states, m =>
        {
            Assert.Equal(1, m.Value);
            Assert.Equal("mllp", m.Tags["protocol"]);
        });
        Assert.Contains(states, m => (string?)m.Tags["destination"] == "n1" && (string?)m.Tags["kind"] == "active" && (string?)m.Tags["health_state"] == "Healthy");
        Assert.Contains(states, m => (string?)m.Tags["destination"] == "n1" && (string?)m.Tags["kind"] == "passive" && (string?)m.Tags["health_state"] == "Unknown");
        Assert.Contains(states, m => (string?)m.Tags["destination"] == "n2" && (string?)m.Tags["kind"] == "passive" && (string?)m.Tags["health_state"] == "Unhealthy");

        var byDestination = available.GetMeasurementSnapshot().ToDictionary(m => (string)m.Tags["destination"]!, m => m.Value);
        Assert.Equal(1, byDestination["n1"]);
        Assert.Equal(0, byDestination["n2"]);

        var count = Assert.Single(clusterAvailable.GetMeasurementSnapshot());
        Assert.Equal(1, count.Value);
        Assert.Equal("ris", count.Tags["cluster"]);
    }

    [Fact]
    public async Task The_weight_gauge_shows_each_destinations_share_and_its_slow_start()
    {
        await using var harness = new MonitorHarness();
        var cluster = Cluster("pacs", activeFlag: true, metadata: new Dictionary<string, string> { ["SlowStart"] = "00:01:40" }, destinations: ["n1", "n2"]);
        var n1 = cluster.Destinations["n1"];
        n1.Health.Active = DestinationHealth.Unhealthy;
        harness.Tracker.Observe(cluster, n1);
        n1.Health.Active = DestinationHealth.Healthy;
        harness.Tracker.Observe(cluster, n1);
        harness.Time.Advance(TimeSpan.FromSeconds(50));
        using var metrics = new HealthMetrics(_factory, harness.Monitor, harness.Tracker, new FixedProxyState(cluster), new DestinationWeights(harness.Tracker, harness.Time));
        using var weight = Collector<double>("imagingproxy.destination.weight");

        weight.RecordObservableInstruments();

        var byDestination = weight.GetMeasurementSnapshot().ToDictionary(m => (string)m.Tags["destination"]!, m => m.Value);
        Assert.Equal(0.1 + (0.9 * 0.5), byDestination["n1"], 6);
        Assert.Equal(1, byDestination["n2"]);
    }

    [Fact]
    public async Task A_cluster_without_destinations_state_reports_zero_available()
    {
        await using var harness = new MonitorHarness();
        var cluster = Cluster("empty", activeFlag: false, destinations: "n1");
        cluster.DestinationsState = new ClusterDestinationsState([], []);
        using var metrics = new HealthMetrics(_factory, harness.Monitor, harness.Tracker, new FixedProxyState(cluster));
        using var clusterAvailable = Collector<int>("imagingproxy.cluster.destinations.available");

        clusterAvailable.RecordObservableInstruments();

        Assert.Equal(0, Assert.Single(clusterAvailable.GetMeasurementSnapshot()).Value);
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _services.DisposeAsync();

    private MetricCollector<T> Collector<T>(string instrument)
        where T : struct
        => new(_factory, ImagingProxyTelemetry.MeterName, instrument);
}
