using System.Runtime.CompilerServices;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Health;

/// <summary>Wraps YARP's <see cref="IDestinationHealthUpdater"/> so every change, active or passive, is tracked once.</summary>
/// <remarks>
/// YARP ends a passive Unhealthy on its own timer (after the reactivation period it sets Unknown directly, not through
/// this updater). A watch per destination looks again from then on, so the recovery is logged and counted when it
/// happens, not at the next /status read or probe.
/// </remarks>
internal sealed class TrackingDestinationHealthUpdater(IDestinationHealthUpdater inner, DestinationHealthTracker tracker, TimeProvider time) : IDestinationHealthUpdater
{
    /// <summary>How often a watch looks again once the reactivation period is over, until YARP reactivated the destination.</summary>
    internal static readonly TimeSpan Recheck = TimeSpan.FromMilliseconds(250);

    private const int MaxChecks = 40;

    private readonly ConditionalWeakTable<DestinationState, ReactivationWatch> _watches = [];

    public void SetActive(ClusterState cluster, IEnumerable<NewActiveDestinationHealth> newHealthStates)
    {
        var states = newHealthStates as IReadOnlyCollection<NewActiveDestinationHealth> ?? newHealthStates.ToList();
        inner.SetActive(cluster, states);
        foreach (var state in states)
        {
            tracker.Observe(cluster, state.Destination);
        }
    }

    public void SetPassive(ClusterState cluster, DestinationState destination, DestinationHealth newHealth, TimeSpan reactivationPeriod)
    {
        inner.SetPassive(cluster, destination, newHealth, reactivationPeriod);
        tracker.Observe(cluster, destination);
        if (newHealth == DestinationHealth.Unhealthy)
        {
            _watches.GetValue(destination, d => new ReactivationWatch(time, tracker, cluster, d)).Arm(reactivationPeriod);
        }
    }

    /// <summary>Observes one destination from its reactivation time on, every <see cref="Recheck"/>, until it is no longer passively Unhealthy (bounded).</summary>
    private sealed class ReactivationWatch
    {
        private readonly DestinationHealthTracker _tracker;
        private readonly ClusterState _cluster;
        private readonly DestinationState _destination;
        private readonly TimeProvider _time;
        private readonly ITimer _timer;
        private int _checks;

        /// <summary>Counts <see cref="Arm"/> calls: a stop that an arming overtook is undone.</summary>
        private int _armings;

        /// <summary>When the latest <see cref="Arm"/> wants the first look (a timestamp).</summary>
        private long _firstCheckAt;

        public ReactivationWatch(TimeProvider time, DestinationHealthTracker tracker, ClusterState cluster, DestinationState destination)
        {
            _tracker = tracker;
            _cluster = cluster;
            _destination = destination;
            _time = time;
            _timer = time.CreateTimer(static state => ((ReactivationWatch)state!).Check(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        }

        public void Arm(TimeSpan reactivationPeriod)
        {
            Volatile.Write(ref _checks, 0);
            Volatile.Write(ref _firstCheckAt, _time.GetTimestamp() + (long)(reactivationPeriod.TotalSeconds * _time.TimestampFrequency));
            Interlocked.Increment(ref _armings);
            _timer.Change(reactivationPeriod, Recheck);
        }

        private void Check()
        {
            var armings = Volatile.Read(ref _armings);
            _tracker.Observe(_cluster, _destination);
            if (_destination.Health.Passive != DestinationHealth.Unhealthy || Interlocked.Increment(ref _checks) >= MaxChecks)
            {
                _timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
                if (Volatile.Read(ref _armings) != armings)
                {
                    // A passive failure armed the watch again (another thread) after this look and before the stop: the
                    // stop undid its arming, which is put back, so that failure's reactivation is seen when it happens.
                    var left = _time.GetElapsedTime(_time.GetTimestamp(), Volatile.Read(ref _firstCheckAt));
                    _timer.Change(left > TimeSpan.Zero ? left : TimeSpan.Zero, Recheck);
                }
            }
        }
    }
}
