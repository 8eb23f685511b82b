using System.Collections.Concurrent;
using System.Threading.Channels;
using ImagingProxy.Configuration;
using ImagingProxy.Health;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Tests.Health;

/// <summary>YARP cluster/destination state built by hand, a scripted prober and a recording health updater.</summary>
internal static class HealthFixtures
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(10);

    /// <summary>A cluster with the given destinations; <paramref name="activeFlag"/> sets ImagingProxy's active-health metadata flag.</summary>
    public static ClusterState Cluster(string id, bool activeFlag, bool passive = false, IReadOnlyDictionary<string, string>? metadata = null, params string[] destinations)
    {
        var meta = new Dictionary<string, string>(metadata ?? new Dictionary<string, string>());
        if (activeFlag)
        {
            meta[MetadataKeys.ActiveHealthCheckEnabled] = "true";
        }

        var config = new ClusterConfig
        {
            ClusterId = id,
            Metadata = meta,
            HealthCheck = new HealthCheckConfig
            {
                // A probe timeout far beyond the interval: the fake clock only moves between rounds.
                Active = new ActiveHealthCheckConfig { Enabled = activeFlag, Interval = Interval, Timeout = TimeSpan.FromHours(1) },
                Passive = passive ? new PassiveHealthCheckConfig { Enabled = true } : null,
            },
            Destinations = destinations.ToDictionary(d => d, _ => new DestinationConfig { Address = "http://127.0.0.1:9/" }),
        };
        var cluster = new ClusterState(id, new ClusterModel(config, s_invoker));
        foreach (var destination in destinations)
        {
            cluster.Destinations[destination] = new DestinationState(destination, new DestinationModel(config.Destinations[destination]));
        }

        cluster.DestinationsState = new ClusterDestinationsState([.. cluster.Destinations.Values], [.. cluster.Destinations.Values]);
        return cluster;
    }

    /// <summary>
    /// What a reload does to a cluster YARP keeps: a new model over the same destinations (YARP sets the model of the same
    /// <see cref="ClusterState"/>, which tests cannot, so the state is a new one sharing the destinations).
    /// </summary>
    public static ClusterState Reconfigured(ClusterState cluster, Func<ClusterConfig, ClusterConfig> change)
    {
        var changed = new ClusterState(cluster.ClusterId, new ClusterModel(change(cluster.Model.Config), s_invoker));
        foreach (var (id, destination) in cluster.Destinations)
        {
            changed.Destinations[id] = destination;
        }

        changed.DestinationsState = cluster.DestinationsState;
        return changed;
    }

    /// <summary>The configuration with ImagingProxy's active-health flag (and YARP's, which the filter keeps off anyway) set to <paramref name="enabled"/>.</summary>
    public static ClusterConfig WithActive(ClusterConfig config, bool enabled)
        => config with
        {
            Metadata = new Dictionary<string, string>(config.Metadata!) { [MetadataKeys.ActiveHealthCheckEnabled] = enabled ? "true" : "false" },
            HealthCheck = config.HealthCheck! with { Active = config.HealthCheck.Active! with { Enabled = enabled } },
        };

    public static DestinationState Destination(string id, DestinationHealth active = DestinationHealth.Unknown, DestinationHealth passive = DestinationHealth.Unknown)
    {
        var destination = new DestinationState(id, new DestinationModel(new DestinationConfig { Address = "http://127.0.0.1:9/" }));
        destination.Health.Active = active;
        destination.Health.Passive = passive;
        return destination;
    }

    private static readonly HttpMessageInvoker s_invoker = new(new SocketsHttpHandler());
}

/// <summary>Answers probes from a script (true = healthy); once the script is used up, probes wait until cancelled.</summary>
internal sealed class ScriptedProber(ClusterProtocol protocol, params bool[] script) : IDestinationProber
{
    private readonly ConcurrentQueue<bool> _script = new(script);

    public ClusterProtocol Protocol => protocol;

    public async Task<ProbeResult> ProbeAsync(ClusterState cluster, DestinationState destination, CancellationToken cancellationToken)
    {
        if (_script.TryDequeue(out var healthy))
        {
            return healthy ? ProbeResult.Success("scripted success") : ProbeResult.Failure("scripted failure");
        }

        await Task.Delay(Timeout.InfiniteTimeSpan, cancellationToken);
        throw new OperationCanceledException(cancellationToken);
    }
}

/// <summary>Applies active health like YARP's updater does and hands every round to the test, in order.</summary>
internal sealed class RecordingHealthUpdater : IDestinationHealthUpdater
{
    private readonly Channel<IReadOnlyList<(string Destination, DestinationHealth Health)>> _rounds = Channel.CreateUnbounded<IReadOnlyList<(string, DestinationHealth)>>();

    public void SetActive(ClusterState cluster, IEnumerable<NewActiveDestinationHealth> newHealthStates)
    {
        var round = new List<(string, DestinationHealth)>();
        foreach (var state in newHealthStates)
        {
            state.Destination.Health.Active = state.NewActiveHealth;
            round.Add((state.Destination.DestinationId, state.NewActiveHealth));
        }

        _rounds.Writer.TryWrite(round);
    }

    public void SetPassive(ClusterState cluster, DestinationState destination, DestinationHealth newHealth, TimeSpan reactivationPeriod)
        => destination.Health.Passive = newHealth;

    /// <summary>
    /// The next probe round: moves the fake clock one interval at a time until the monitor's delay fires (the delay
    /// may not be registered yet when the clock first moves), bounded by a real-time deadline.
    /// </summary>
    public async Task<IReadOnlyList<(string Destination, DestinationHealth Health)>> NextRoundAsync(FakeTimeProvider time, bool first)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        if (first)
        {
            return await _rounds.Reader.ReadAsync(deadline.Token);
        }

        while (true)
        {
            time.Advance(HealthFixtures.Interval);
            using var poll = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token);
            poll.CancelAfter(TimeSpan.FromMilliseconds(50));
            try
            {
                return await _rounds.Reader.ReadAsync(poll.Token);
            }
            catch (OperationCanceledException) when (!deadline.IsCancellationRequested)
            {
            }
        }
    }
}

/// <summary>An <see cref="ActiveHealthMonitor"/> on a fake clock with a scripted prober, fed through the tracking updater.</summary>
internal sealed class MonitorHarness : IAsyncDisposable
{
    public MonitorHarness(params bool[] script)
    {
        Tracker = new DestinationHealthTracker(Time, NullLogger<DestinationHealthTracker>.Instance);
        Monitor = new ActiveHealthMonitor(
            [new ScriptedProber(ClusterProtocol.Http, script)],
            new TrackingDestinationHealthUpdater(Updater, Tracker, Time),
            Tracker,
            Time,
            NullLogger<ActiveHealthMonitor>.Instance);
    }

    public FakeTimeProvider Time { get; } = new(new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero));

    public RecordingHealthUpdater Updater { get; } = new();

    public DestinationHealthTracker Tracker { get; }

    public ActiveHealthMonitor Monitor { get; }

    /// <summary>Starts probing <paramref name="cluster"/> and returns the health after each of <paramref name="rounds"/> rounds.</summary>
    public async Task<List<DestinationHealth>> RunAsync(ClusterState cluster, int rounds)
    {
        Monitor.OnClusterAdded(cluster);
        var seen = new List<DestinationHealth>();
        for (var i = 0; i < rounds; i++)
        {
            var round = await Updater.NextRoundAsync(Time, first: i == 0);
            seen.Add(Assert.Single(round).Health);
        }

        return seen;
    }

    public async ValueTask DisposeAsync()
    {
        await Monitor.StopAsync(CancellationToken.None);
        Monitor.Dispose();
    }
}
