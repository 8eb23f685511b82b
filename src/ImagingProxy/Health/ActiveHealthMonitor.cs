using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using ImagingProxy.Configuration;
using ImagingProxy.Telemetry;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Health;

/// <summary>
/// ImagingProxy's own active health monitor for every cluster of every protocol (yarp-notes.md §5). Each cluster
/// whose configuration says <c>HealthCheck:Active:Enabled</c> gets a probe loop with its <c>Interval</c> and
/// <c>Timeout</c>; the probe speaks the cluster's protocol; results go to YARP's <see cref="IDestinationHealthUpdater"/>
/// so routing and /status read one destination state.
/// A destination whose health is still Unknown takes the first result as it is; after that it needs
/// <c>ConsecutiveFailuresHealthPolicy.Threshold</c> failures in a row (default 2) to go down and
/// <c>ConsecutiveSuccessesHealthPolicy.Threshold</c> successes (default 1) to come back.
/// When a cluster stops being probed (a reload turns its active checks off, its protocol has no prober, its loop fails)
/// its destinations' active health goes back to Unknown once the loop has ended.
/// </summary>
public sealed partial class ActiveHealthMonitor : IClusterChangeListener, IHostedService, IDisposable
{
    private readonly Dictionary<ClusterProtocol, IDestinationProber> _probers = [];
    private readonly IDestinationHealthUpdater _updater;
    private readonly DestinationHealthTracker _tracker;
    private readonly TimeProvider _time;
    private readonly ILogger<ActiveHealthMonitor> _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _lock = new();
    private readonly Dictionary<string, (CancellationTokenSource Cancel, Task Loop)> _loops = new(StringComparer.OrdinalIgnoreCase);
    private readonly ConditionalWeakTable<DestinationState, Streak> _streaks = [];
    private int _disposed;

    public ActiveHealthMonitor(IEnumerable<IDestinationProber> probers, IDestinationHealthUpdater updater, DestinationHealthTracker tracker, TimeProvider time, ILogger<ActiveHealthMonitor> logger)
    {
        foreach (var prober in probers)
        {
            _probers[prober.Protocol] = prober;
        }

        _updater = updater;
        _tracker = tracker;
        _time = time;
        _logger = logger;
    }

    /// <summary>Raised after every probe: cluster, destination, protocol, result, duration.</summary>
    public event Action<ClusterState, DestinationState, ClusterProtocol, ProbeResult, TimeSpan>? ProbeCompleted;

    public void OnClusterAdded(ClusterState cluster) => Restart(cluster);

    public void OnClusterChanged(ClusterState cluster) => Restart(cluster);

    public void OnClusterRemoved(ClusterState cluster) => Stop(cluster.ClusterId);

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync();
        Task[] loops;
        lock (_lock)
        {
            loops = _loops.Values.Select(l => l.Loop).ToArray();
        }

        await Task.WhenAll(loops).WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    private void Restart(ClusterState cluster)
    {
        var previous = Stop(cluster.ClusterId);
        if (_stopping.IsCancellationRequested || (previous is null && !IsEnabled(cluster.Model.Config)))
        {
            return;
        }

        // A cluster that is no longer probed still gets a loop: it waits for the previous one and puts active health back to Unknown.
        var cancel = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
        lock (_lock)
        {
            _loops[cluster.ClusterId] = (cancel, Task.Run(() => RunAsync(cluster, previous, cancel.Token)));
        }
    }

    /// <summary>Cancels the cluster's loop; returns it (null when there was none) so the next one can wait for its end.</summary>
    private Task? Stop(string clusterId)
    {
        lock (_lock)
        {
            if (!_loops.Remove(clusterId, out var loop))
            {
                return null;
            }

            loop.Cancel.Cancel();
            loop.Cancel.Dispose();
            return loop.Loop;
        }
    }

    internal static bool IsEnabled(Yarp.ReverseProxy.Configuration.ClusterConfig config)
        => config.Metadata is not null
           && config.Metadata.TryGetValue(MetadataKeys.ActiveHealthCheckEnabled, out var value)
           && bool.TryParse(value, out var enabled) && enabled;

    private async Task RunAsync(ClusterState cluster, Task? previous, CancellationToken cancellationToken)
    {
        if (previous is not null)
        {
            // A round of the stopped loop may still be setting its results: they come before anything this loop does.
            await previous.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        var config = cluster.Model.Config;
        var protocol = ClusterProtocols.Of(config);
        if (!IsEnabled(config))
        {
            ResetToUnknown(cluster, cancellationToken);
            return;
        }

        if (!_probers.TryGetValue(protocol, out var prober))
        {
            Log.NoProber(_logger, cluster.ClusterId, protocol);
            ResetToUnknown(cluster, cancellationToken);
            return;
        }

        var interval = config.HealthCheck?.Active?.Interval ?? ProxyDefaults.ProbeInterval;
        var timeout = config.HealthCheck?.Active?.Timeout ?? ProxyDefaults.ProbeTimeout;
        var failuresToDown = ReadThreshold(config, MetadataKeys.ConsecutiveFailuresThreshold, ProxyDefaults.ConsecutiveFailuresThreshold);
        var successesToUp = ReadThreshold(config, MetadataKeys.ConsecutiveSuccessesThreshold, ProxyDefaults.ConsecutiveSuccessesThreshold);
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                var destinations = cluster.Destinations.Values.ToArray();
                var probes = new Task<ProbeResult>[destinations.Length];
                for (var i = 0; i < destinations.Length; i++)
                {
                    probes[i] = ProbeOneAsync(cluster, destinations[i], prober, protocol, timeout, cancellationToken);
                }

                var results = await Task.WhenAll(probes);
                cancellationToken.ThrowIfCancellationRequested();
                var updates = new List<NewActiveDestinationHealth>(destinations.Length);
                for (var i = 0; i < destinations.Length; i++)
                {
                    var next = NextHealth(destinations[i], results[i].Healthy, failuresToDown, successesToUp);
                    if (next == DestinationHealth.Unhealthy && destinations[i].Health.Active != DestinationHealth.Unhealthy)
                    {
                        // The transition line (event 300) says what changed; this one says why (probe details are Debug).
                        Log.ProbeFailedGoingDown(_logger, cluster.ClusterId, destinations[i].DestinationId, protocol, results[i].Detail);
                    }

                    updates.Add(new NewActiveDestinationHealth(destinations[i], next));
                }

                _updater.SetActive(cluster, updates);
                await Task.Delay(interval, _time, cancellationToken);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            Log.LoopFailed(_logger, cluster.ClusterId, ex);
            ResetToUnknown(cluster, cancellationToken);
        }
    }

    /// <summary>
    /// The cluster is no longer probed (active checks off, no prober for its protocol, its loop failed): its destinations'
    /// active health goes back to Unknown, as before a first probe, instead of showing the last result for ever (/status,
    /// the health gauge). Not when the loop was stopped: a new loop carries on from the current health, a removed cluster
    /// just goes, and the lock keeps a stop from coming between the check and the change.
    /// </summary>
    private void ResetToUnknown(ClusterState cluster, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                return;
            }

            var updates = cluster.Destinations.Values
                .Where(d => d.Health.Active != DestinationHealth.Unknown)
                .Select(d => new NewActiveDestinationHealth(d, DestinationHealth.Unknown))
                .ToList();
            if (updates.Count > 0)
            {
                _updater.SetActive(cluster, updates);
            }
        }
    }

    private async Task<ProbeResult> ProbeOneAsync(ClusterState cluster, DestinationState destination, IDestinationProber prober, ClusterProtocol protocol, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var probeTimeout = new CancellationTokenSource(timeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(probeTimeout.Token, cancellationToken);
        using var activity = StartProbeActivity(cluster, destination, protocol);
        var started = _time.GetTimestamp();
        ProbeResult result;
        try
        {
            result = await prober.ProbeAsync(cluster, destination, linked.Token);
        }
        catch (OperationCanceledException) when (probeTimeout.IsCancellationRequested)
        {
            result = ProbeResult.Failure("timeout");
        }
        catch (OperationCanceledException)
        {
            throw;
        }
        catch (Exception ex)
        {
            result = ProbeResult.Failure($"{ex.GetType().Name}: {ex.Message}");
        }

        if (!result.Healthy && cancellationToken.IsCancellationRequested && !probeTimeout.IsCancellationRequested)
        {
            // The loop was stopped (a reload, shutdown) under the probe, which failed for that (a socket closed under
            // it): not a result about the destination, so no failure is counted or logged.
            throw new OperationCanceledException(cancellationToken);
        }

        var elapsed = _time.GetElapsedTime(started);
        if (activity is not null)
        {
            activity.SetTag("result", result.Healthy ? "healthy" : "unhealthy");
            if (!result.Healthy)
            {
                activity.SetStatus(ActivityStatusCode.Error, result.Detail);
            }
        }

        Log.Probed(_logger, cluster.ClusterId, destination.DestinationId, protocol, result.Healthy, result.Detail, elapsed.TotalMilliseconds);
        ProbeCompleted?.Invoke(cluster, destination, protocol, result, elapsed);
        return result;
    }

    /// <summary>A <c>health.probe</c> activity (tags cluster, destination, protocol; result once known), only when someone listens.</summary>
    private static Activity? StartProbeActivity(ClusterState cluster, DestinationState destination, ClusterProtocol protocol)
    {
        var source = ImagingProxyTelemetry.ActivitySource;
        if (!source.HasListeners())
        {
            return null;
        }

        // A root activity per probe: probes belong to no request, whatever Activity.Current the loop inherited
        // (ProbeOneAsync is async, so clearing Current here stays inside that probe).
        Activity.Current = null;
        return source.StartActivity("health.probe", ActivityKind.Client, parentContext: default, tags:
        [
            new("cluster", cluster.ClusterId),
            new("destination", destination.DestinationId),
            new("protocol", HealthMetrics.ProtocolTag(protocol)),
        ]);
    }

    private DestinationHealth NextHealth(DestinationState destination, bool healthy, int failuresToDown, int successesToUp)
    {
        var streak = _streaks.GetValue(destination, _ => new Streak());
        lock (streak)
        {
            if (healthy)
            {
                streak.Successes++;
                streak.Failures = 0;
            }
            else
            {
                streak.Failures++;
                streak.Successes = 0;
            }

            var current = destination.Health.Active;
            return current switch
            {
                DestinationHealth.Unknown => healthy ? DestinationHealth.Healthy : DestinationHealth.Unhealthy,
                DestinationHealth.Healthy => streak.Failures >= failuresToDown ? DestinationHealth.Unhealthy : DestinationHealth.Healthy,
                _ => streak.Successes >= successesToUp ? DestinationHealth.Healthy : DestinationHealth.Unhealthy,
            };
        }
    }

    private static int ReadThreshold(Yarp.ReverseProxy.Configuration.ClusterConfig config, string key, int fallback)
        => config.Metadata is not null && config.Metadata.TryGetValue(key, out var text)
           && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value > 0
            ? value
            : fallback;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        _stopping.Cancel();
        lock (_lock)
        {
            foreach (var loop in _loops.Values)
            {
                loop.Cancel.Dispose();
            }

            _loops.Clear();
        }

        _stopping.Dispose();
    }

    private sealed class Streak
    {
        public int Failures;
        public int Successes;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 320, Level = LogLevel.Debug, Message = "Probe of '{Destination}' in cluster '{Cluster}' ({Protocol}): healthy={Healthy} {Detail} in {Milliseconds:F1} ms.")]
        public static partial void Probed(ILogger logger, string cluster, string destination, ClusterProtocol protocol, bool healthy, string detail, double milliseconds);

        [LoggerMessage(EventId = 323, Level = LogLevel.Warning, Message = "Destination '{Destination}' in cluster '{Cluster}' goes Unhealthy: its {Protocol} probe failed: {Detail}")]
        public static partial void ProbeFailedGoingDown(ILogger logger, string cluster, string destination, ClusterProtocol protocol, string detail);

        [LoggerMessage(EventId = 321, Level = LogLevel.Error, Message = "No active health prober for protocol {Protocol} (cluster '{Cluster}').")]
        public static partial void NoProber(ILogger logger, string cluster, ClusterProtocol protocol);

        [LoggerMessage(EventId = 322, Level = LogLevel.Error, Message = "Active health loop of cluster '{Cluster}' failed.")]
        public static partial void LoopFailed(ILogger logger, string cluster, Exception exception);
    }
}
