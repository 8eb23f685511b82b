using System.Globalization;
using System.Runtime.CompilerServices;
using ImagingProxy.Configuration;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Dicom;

/// <summary>
/// Picks the node for an association among a cluster's available destinations with the cluster's
/// <c>LoadBalancingPolicy</c>, and counts open associations in <see cref="DestinationState.ConcurrentRequestCount"/>
/// so the least-loaded policies and <c>/status</c> see them. Destination metadata <c>Weight</c> (a positive number,
/// default 1) scales a node's share for least-loaded, power-of-two and random picks.
/// </summary>
public sealed class DicomDestinationSelector
{
    /// <summary>Destination metadata key: relative capacity of a node.</summary>
    public const string WeightKey = MetadataKeys.Weight;

    private readonly ConditionalWeakTable<ClusterState, StrongBox<int>> _roundRobin = [];
    private readonly ConditionalWeakTable<DestinationState, object> _locks = [];
    private readonly Func<int, int> _random;

    public DicomDestinationSelector()
        : this(Random.Shared.Next)
    {
    }

    /// <summary>For tests: <paramref name="random"/> returns a value in [0, n).</summary>
    public DicomDestinationSelector(Func<int, int> random) => _random = random;

    /// <summary>Picks one of <paramref name="candidates"/>, or null when there is none.</summary>
    public DestinationState? Pick(ClusterState cluster, IReadOnlyList<DestinationState> candidates)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        ArgumentNullException.ThrowIfNull(candidates);
        if (candidates.Count <= 1)
        {
            return candidates.Count == 0 ? null : candidates[0];
        }

        return (cluster.Model.Config.LoadBalancingPolicy ?? "LeastRequests").ToUpperInvariant() switch
        {
            "FIRST" => candidates[0],
            "FIRSTALPHABETICAL" => candidates.MinBy(d => d.DestinationId, StringComparer.OrdinalIgnoreCase),
            "ROUNDROBIN" => RoundRobin(cluster, candidates),
            "RANDOM" => WeightedRandom(candidates),
            "POWEROFTWOCHOICES" => PowerOfTwo(candidates),
            _ => LeastLoaded(candidates),
        };
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

    /// <summary>The destination's <c>Weight</c> metadata, 1 when absent or not a positive number.</summary>
    public static double WeightOf(DestinationState destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var text = destination.Model.Config.Metadata?.GetValueOrDefault(WeightKey);
        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var weight) && weight > 0 && double.IsFinite(weight)
            ? weight
            : 1;
    }

    private static double Load(DestinationState destination) => destination.ConcurrentRequestCount / WeightOf(destination);

    private static DestinationState LeastLoaded(IReadOnlyList<DestinationState> candidates)
    {
        // Ties go to the earlier destination, so an idle cluster behaves predictably.
        var best = candidates[0];
        var bestLoad = Load(best);
        for (var i = 1; i < candidates.Count; i++)
        {
            var load = Load(candidates[i]);
            if (load < bestLoad)
            {
                best = candidates[i];
                bestLoad = load;
            }
        }

        return best;
    }

    private DestinationState RoundRobin(ClusterState cluster, IReadOnlyList<DestinationState> candidates)
    {
        var counter = _roundRobin.GetValue(cluster, _ => new StrongBox<int>(-1));
        var next = Interlocked.Increment(ref counter.Value) & int.MaxValue;
        return candidates[next % candidates.Count];
    }

    private DestinationState PowerOfTwo(IReadOnlyList<DestinationState> candidates)
    {
        var first = WeightedRandom(candidates);
        var second = WeightedRandom(candidates);
        return Load(second) < Load(first) ? second : first;
    }

    private DestinationState WeightedRandom(IReadOnlyList<DestinationState> candidates)
    {
        // Weights are scaled to integer tickets (1/1000 resolution) so the random source stays an int.
        var tickets = new int[candidates.Count];
        var total = 0;
        for (var i = 0; i < candidates.Count; i++)
        {
            tickets[i] = (int)Math.Clamp(Math.Round(WeightOf(candidates[i]) * 1000), 1, 1_000_000);
            total += tickets[i];
        }

        var draw = _random(total);
        for (var i = 0; i < candidates.Count; i++)
        {
            draw -= tickets[i];
            if (draw < 0)
            {
                return candidates[i];
            }
        }

        return candidates[^1];
    }
}
