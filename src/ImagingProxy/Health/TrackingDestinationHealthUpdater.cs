using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Health;

/// <summary>Wraps YARP's <see cref="IDestinationHealthUpdater"/> so every change, active or passive, is tracked once.</summary>
internal sealed class TrackingDestinationHealthUpdater(IDestinationHealthUpdater inner, DestinationHealthTracker tracker) : IDestinationHealthUpdater
{
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
    }
}
