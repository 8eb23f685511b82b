using System.Runtime.CompilerServices;
using ImagingProxy.Balancing;
using ImagingProxy.Configuration;
using Yarp.ReverseProxy.LoadBalancing;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Dicom;

/// <summary>
/// Picks the node for an association among a cluster's available destinations with the cluster's
/// <c>LoadBalancingPolicy</c>, and counts open associations in <see cref="DestinationState.ConcurrentRequestCount"/>
/// so the least-loaded policies and <c>/status</c> see them. Destination metadata <c>Weight</c> (a positive number,
/// default 1) scales a node's share, and so does the cluster's <c>SlowStart</c> after a node came back (<see cref="WeightedPicker"/>).
/// </summary>
public sealed class DicomDestinationSelector
{
    private readonly ConditionalWeakTable<DestinationState, object> _locks = [];
    private readonly WeightedPicker _picker;
    private readonly DestinationLimits _limits;
    private readonly PlaceQueues _queues = new();

    /// <summary>Weights and limits only, without slow start or metrics (tests and components built without a host).</summary>
    public DicomDestinationSelector()
        : this(new WeightedPicker(DestinationWeights.WeightsOnly), DestinationLimits.Unmetered)
    {
    }

    /// <summary>For tests: <paramref name="random"/> returns a value in [0, n).</summary>
    public DicomDestinationSelector(Func<int, int> random)
        : this(new WeightedPicker(DestinationWeights.WeightsOnly, random), DestinationLimits.Unmetered)
    {
    }

    public DicomDestinationSelector(WeightedPicker picker, DestinationLimits limits)
    {
        ArgumentNullException.ThrowIfNull(picker);
        ArgumentNullException.ThrowIfNull(limits);
        _picker = picker;
        _limits = limits;
    }

    /// <summary>
    /// Picks one of <paramref name="candidates"/> that is below its <c>MaxConcurrent</c> and counts the association on it
    /// (<see cref="Acquire"/>, atomically with the limit check); null when there is none (all full, or no candidate).
    /// Each full destination passed over is counted (<c>imagingproxy.destination.limit_reached</c>) unless
    /// <paramref name="countFull"/> is false (an association waiting in the queue tries again and again).
    /// </summary>
    public DestinationState? PickAndAcquire(ClusterState cluster, IReadOnlyList<DestinationState> candidates, bool countFull = true)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        ArgumentNullException.ThrowIfNull(candidates);
        if (!_limits.IsLimited(cluster.Model.Config))
        {
            var picked = Pick(cluster, candidates);
            if (picked is not null)
            {
                Acquire(picked);
            }

            return picked;
        }

        var open = new List<DestinationState>(candidates.Count);
        for (var i = 0; i < candidates.Count; i++)
        {
            if (countFull ? !_limits.IsFull(cluster.Model.Config, candidates[i], candidates[i].ConcurrentRequestCount) : !_limits.AtLimit(candidates[i], candidates[i].ConcurrentRequestCount))
            {
                open.Add(candidates[i]);
            }
        }

        while (Pick(cluster, open) is { } destination)
        {
            if (TryAcquire(destination, _limits.Max(destination)))
            {
                return destination;
            }

            // Filled by another association since the check.
            if (countFull)
            {
                _limits.Reached(cluster.Model.Config, destination);
            }

            open.Remove(destination);
        }

        return null;
    }

    /// <summary>Picks one of <paramref name="candidates"/>, or null when there is none.</summary>
    public DestinationState? Pick(ClusterState cluster, IReadOnlyList<DestinationState> candidates)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        ArgumentNullException.ThrowIfNull(candidates);
        if (candidates.Count <= 1)
        {
            return candidates.Count == 0 ? null : candidates[0];
        }

        var policy = cluster.Model.Config.LoadBalancingPolicy ?? ClusterProtocols.DicomDefaultLoadBalancingPolicy;
        if (string.Equals(policy, "First", StringComparison.OrdinalIgnoreCase))
        {
            return candidates[0];
        }

        return string.Equals(policy, LoadBalancingPolicies.FirstAlphabetical, StringComparison.OrdinalIgnoreCase)
            ? candidates.MinBy(d => d.DestinationId, StringComparer.OrdinalIgnoreCase)
            : _picker.Pick(policy, cluster, candidates);
    }

    /// <summary>Counts an open association (or a connect attempt) on the destination.</summary>
    public void Acquire(DestinationState destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        lock (_locks.GetValue(destination, _ => new object()))
        {
            destination.ConcurrentRequestCount++;
        }
    }

    /// <summary>Counts an association on the destination unless it has <paramref name="max"/> already (0: no limit).</summary>
    private bool TryAcquire(DestinationState destination, int max)
    {
        lock (_locks.GetValue(destination, _ => new object()))
        {
            if (max > 0 && destination.ConcurrentRequestCount >= max)
            {
                return false;
            }

            destination.ConcurrentRequestCount++;
            return true;
        }
    }

    /// <summary>
    /// Undoes one <see cref="Acquire"/> on <paramref name="cluster"/>'s <paramref name="destination"/>, and wakes the
    /// association of the cluster that has waited longest for a place (<see cref="EnterQueue"/>).
    /// </summary>
    public void Release(ClusterState cluster, DestinationState destination)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        ArgumentNullException.ThrowIfNull(destination);
        lock (_locks.GetValue(destination, _ => new object()))
        {
            destination.ConcurrentRequestCount = Math.Max(0, destination.ConcurrentRequestCount - 1);
        }

        _queues.Released(cluster.ClusterId);
    }

    /// <summary>
    /// Puts an association that found every destination of <paramref name="cluster"/> full at the end of the cluster's
    /// queue: it takes <see cref="PlaceWaiter.Next"/> <em>before</em> each try of <see cref="PickAndAcquire"/>, so a
    /// place released in between is not missed. A release wakes the longest waiting association only; one that loses
    /// the place to a newcomer keeps its rank for the next.
    /// </summary>
    public PlaceWaiter EnterQueue(ClusterState cluster)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        return _queues.Enter(cluster.ClusterId);
    }
}
