using System.Buffers;
using System.Runtime.CompilerServices;
using Yarp.ReverseProxy.LoadBalancing;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Balancing;

/// <summary>
/// YARP's load-balancing policies with each destination's share (<see cref="DestinationWeights"/>): DICOM associations
/// always, HTTP requests when the cluster has weights or slow start (<see cref="WeightedLoadBalancingPolicy"/>). The load
/// is <see cref="DestinationState.ConcurrentRequestCount"/> (open associations, requests in flight).
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item><c>LeastRequests</c>: the least load per unit of weight (ties: the earlier destination).</item>
/// <item><c>PowerOfTwoChoices</c>: two different destinations drawn by share, then the lesser load per unit of weight.</item>
/// <item><c>Random</c>: one draw weighted by share.</item>
/// <item><c>RoundRobin</c>: NGINX's smooth weighted round robin: with weights 3 and 1, a a b a, a a b a ...; with equal
/// weights, plain rotation.</item>
/// </list>
/// </remarks>
public sealed class WeightedPicker
{
    /// <summary>Above this many candidates the weights go to a rented array instead of the stack.</summary>
    private const int StackCandidates = 32;

    /// <summary>The random source's range for a weighted draw (shares as fine as a billionth of the total).</summary>
    private const int DrawResolution = 1 << 30;

    /// <summary>The load of a destination for DICOM and HTTP: its open associations or requests in flight.</summary>
    private static readonly Func<DestinationState, int> s_concurrentRequests = static d => d.ConcurrentRequestCount;

    private readonly Func<int, int> _random;
    private readonly ConditionalWeakTable<ClusterState, Lock> _rotationLocks = [];
    private readonly ConditionalWeakTable<DestinationState, StrongBox<double>> _rotation = [];

    public WeightedPicker(DestinationWeights weights)
        : this(weights, Random.Shared.Next)
    {
    }

    /// <summary>For tests: <paramref name="random"/> returns a value in [0, n).</summary>
    public WeightedPicker(DestinationWeights weights, Func<int, int> random)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(random);
        Weights = weights;
        _random = random;
    }

    public DestinationWeights Weights { get; }

    /// <summary>
    /// Picks one of <paramref name="candidates"/> (at least one) with <paramref name="policy"/>: <c>RoundRobin</c>,
    /// <c>Random</c>, <c>PowerOfTwoChoices</c>, else <c>LeastRequests</c>.
    /// </summary>
    public DestinationState Pick(string policy, ClusterState cluster, IReadOnlyList<DestinationState> candidates)
        => Pick(policy, cluster, candidates, s_concurrentRequests);

    /// <summary>
    /// As <see cref="Pick(string, ClusterState, IReadOnlyList{DestinationState})"/>, with each destination's load read by
    /// <paramref name="load"/> (HL7: the node connections rented to its address) for <c>LeastRequests</c> and
    /// <c>PowerOfTwoChoices</c>.
    /// </summary>
    public DestinationState Pick(string policy, ClusterState cluster, IReadOnlyList<DestinationState> candidates, Func<DestinationState, int> load)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        ArgumentNullException.ThrowIfNull(candidates);
        ArgumentNullException.ThrowIfNull(load);
        ArgumentOutOfRangeException.ThrowIfZero(candidates.Count);
        if (candidates.Count == 1)
        {
            return candidates[0];
        }

        double[]? rented = null;
        var weights = candidates.Count <= StackCandidates
            ? stackalloc double[candidates.Count]
            : (rented = ArrayPool<double>.Shared.Rent(candidates.Count)).AsSpan(0, candidates.Count);
        try
        {
            for (var i = 0; i < candidates.Count; i++)
            {
                weights[i] = Weights.Of(cluster, candidates[i]);
            }

            var index = Is(policy, LoadBalancingPolicies.RoundRobin) ? RoundRobin(cluster, candidates, weights)
                : Is(policy, LoadBalancingPolicies.Random) ? Draw(weights)
                : Is(policy, LoadBalancingPolicies.PowerOfTwoChoices) ? PowerOfTwo(candidates, weights, load)
                : LeastLoaded(candidates, weights, load);
            return candidates[index];
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<double>.Shared.Return(rented);
            }
        }
    }

    private static bool Is(string policy, string name) => string.Equals(policy, name, StringComparison.OrdinalIgnoreCase);

    private static int LeastLoaded(IReadOnlyList<DestinationState> candidates, ReadOnlySpan<double> weights, Func<DestinationState, int> load)
    {
        var best = 0;
        var bestLoad = load(candidates[0]) / weights[0];
        for (var i = 1; i < candidates.Count; i++)
        {
            var current = load(candidates[i]) / weights[i];
            if (current < bestLoad)
            {
                best = i;
                bestLoad = current;
            }
        }

        return best;
    }

    /// <summary>Two different destinations drawn by share (as YARP compares two different ones), then the lesser load per unit of weight.</summary>
    private int PowerOfTwo(IReadOnlyList<DestinationState> candidates, ReadOnlySpan<double> weights, Func<DestinationState, int> load)
    {
        var first = Draw(weights);
        var second = Draw(weights, excluded: first);
        return load(candidates[second]) / weights[second] < load(candidates[first]) / weights[first] ? second : first;
    }

    /// <summary>One draw, each index with the chance of its share among those not <paramref name="excluded"/>.</summary>
    private int Draw(ReadOnlySpan<double> weights, int excluded = -1)
    {
        var total = 0.0;
        for (var i = 0; i < weights.Length; i++)
        {
            total += i == excluded ? 0 : weights[i];
        }

        // The random source gives a whole number below DrawResolution; the point falls in one index's share.
        var point = _random(DrawResolution) / (double)DrawResolution * total;
        var last = -1;
        for (var i = 0; i < weights.Length; i++)
        {
            if (i == excluded)
            {
                continue;
            }

            last = i;
            point -= weights[i];
            if (point < 0)
            {
                return i;
            }
        }

        return last;
    }

    /// <summary>
    /// Smooth weighted round robin: each candidate's running score grows by its weight, the highest score is picked and
    /// loses the total. A destination out of the candidates keeps its score for when it is back.
    /// </summary>
    private int RoundRobin(ClusterState cluster, IReadOnlyList<DestinationState> candidates, ReadOnlySpan<double> weights)
    {
        lock (_rotationLocks.GetValue(cluster, static _ => new Lock()))
        {
            var total = 0.0;
            var best = 0;
            StrongBox<double>? bestScore = null;
            for (var i = 0; i < candidates.Count; i++)
            {
                var score = _rotation.GetValue(candidates[i], static _ => new StrongBox<double>());
                score.Value += weights[i];
                total += weights[i];
                if (bestScore is null || score.Value > bestScore.Value)
                {
                    best = i;
                    bestScore = score;
                }
            }

            bestScore!.Value -= total;
            return best;
        }
    }
}
