using System.Runtime.CompilerServices;
using ImagingProxy.Balancing;
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

    /// <summary>Weights only, without slow start (tests and components built without a host).</summary>
    public DicomDestinationSelector()
        : this(new WeightedPicker(DestinationWeights.WeightsOnly))
    {
    }

    /// <summary>For tests: <paramref name="random"/> returns a value in [0, n).</summary>
    public DicomDestinationSelector(Func<int, int> random)
        : this(new WeightedPicker(DestinationWeights.WeightsOnly, random))
    {
    }

    public DicomDestinationSelector(WeightedPicker picker)
    {
        ArgumentNullException.ThrowIfNull(picker);
        _picker = picker;
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

        var policy = cluster.Model.Config.LoadBalancingPolicy ?? "LeastRequests";
        if (string.Equals(policy, "First", StringComparison.OrdinalIgnoreCase))
        {
            return candidates[0];
        }

        return string.Equals(policy, "FirstAlphabetical", StringComparison.OrdinalIgnoreCase)
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

    /// <summary>Undoes one <see cref="Acquire"/>.</summary>
    public void Release(DestinationState destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        lock (_locks.GetValue(destination, _ => new object()))
        {
            destination.ConcurrentRequestCount = Math.Max(0, destination.ConcurrentRequestCount - 1);
        }
    }
}
