using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Health;

/// <summary>
/// Remembers each destination's last seen active/passive health and since when, logs each transition once, and
/// tells listeners (metrics) about it. Fed by the health updater decorator, the probe monitor and /status reads,
/// so changes YARP makes on its own (passive reactivation) are seen too.
/// </summary>
public sealed partial class DestinationHealthTracker(TimeProvider time, ILogger<DestinationHealthTracker> logger)
{
    private readonly ConcurrentDictionary<(string Cluster, string Destination), HealthRecord> _records = new();
    private readonly ConditionalWeakTable<DestinationState, StrongBox<DateTimeOffset>> _returned = [];

    /// <summary>The destination objects observed here before (YARP's, while it keeps them).</summary>
    private readonly ConditionalWeakTable<DestinationState, DestinationState> _seen = [];
    private readonly Lock _gate = new();

    /// <summary>Raised once per observed change: cluster, destination, kind ("active"/"passive"), old, new.</summary>
    public event Action<string, string, string, DestinationHealth, DestinationHealth>? Transition;

    /// <summary>
    /// Records <paramref name="destination"/>'s health as it is now; a change from the last record is logged and raised
    /// once. Observers on several threads (probes, the health updater, /status reads) are taken one at a time, each
    /// reading the health only once it holds the lock: one that read it before a change another observer recorded would
    /// otherwise write the old value back, with a false transition. An unchanged health (every proxied HTTP request
    /// passes here when passive health is on) is answered without the lock.
    /// </summary>
    public HealthRecord Observe(ClusterState cluster, DestinationState destination)
    {
        var key = (cluster.ClusterId, destination.DestinationId);
        if (_records.TryGetValue(key, out var seen) && seen.Active == destination.Health.Active && seen.Passive == destination.Health.Passive)
        {
            return seen;
        }

        var now = time.GetUtcNow();
        lock (_gate)
        {
            var active = destination.Health.Active;
            var passive = destination.Health.Passive;

            // A destination starts Unknown/Unknown; its first observed health is its first transition.
            if (!_records.TryGetValue(key, out var previous))
            {
                previous = new HealthRecord(DestinationHealth.Unknown, DestinationHealth.Unknown, now);
                _records[key] = previous;
            }

            if (previous.Active == active && previous.Passive == passive)
            {
                return previous;
            }

            var updated = new HealthRecord(active, passive, now);
            _records[key] = updated;
            // A destination YARP made anew (removed by a reload, added again) is seen for the first time: not a return.
            if (IsOut(previous.Active, previous.Passive) && !IsOut(active, passive) && _seen.TryGetValue(destination, out _))
            {
                _returned.AddOrUpdate(destination, new StrongBox<DateTimeOffset>(now));
            }

            _seen.AddOrUpdate(destination, destination);
            if (previous.Active != active)
            {
                Log.HealthChanged(logger, LevelOf(active), "Active", cluster.ClusterId, destination.DestinationId, previous.Active, active);
                Transition?.Invoke(cluster.ClusterId, destination.DestinationId, "active", previous.Active, active);
            }

            if (previous.Passive != passive)
            {
                Log.HealthChanged(logger, LevelOf(passive), "Passive", cluster.ClusterId, destination.DestinationId, previous.Passive, passive);
                Transition?.Invoke(cluster.ClusterId, destination.DestinationId, "passive", previous.Passive, passive);
            }

            return updated;
        }
    }

    /// <summary>
    /// When <paramref name="destination"/> last came back from Unhealthy (active or passive) as observed here, the start
    /// of its slow start (<see cref="Balancing.DestinationWeights"/>); null when it was never seen out.
    /// </summary>
    public DateTimeOffset? ReturnedAt(DestinationState destination)
        => _returned.TryGetValue(destination, out var returned) ? returned.Value : null;

    /// <summary>
    /// A destination going Unhealthy is a warning; one becoming Healthy (each destination at start-up, each return) or
    /// Unknown again is information, as HAProxy logs a server DOWN louder than UP: a site that alerts on warnings is not
    /// paged at every start.
    /// </summary>
    private static LogLevel LevelOf(DestinationHealth now) => now == DestinationHealth.Unhealthy ? LogLevel.Warning : LogLevel.Information;

    private static bool IsOut(DestinationHealth active, DestinationHealth passive)
        => active == DestinationHealth.Unhealthy || passive == DestinationHealth.Unhealthy;

    /// <summary>A destination's health as last observed and when it last changed.</summary>
    public sealed record HealthRecord(DestinationHealth Active, DestinationHealth Passive, DateTimeOffset Since);

    private static partial class Log
    {
        [LoggerMessage(EventId = 324, Message = "{Kind} health of destination '{Destination}' in cluster '{Cluster}' changed from {Old} to {New}.")]
        public static partial void HealthChanged(ILogger logger, LogLevel level, string kind, string cluster, string destination, DestinationHealth old, DestinationHealth @new);
    }
}
