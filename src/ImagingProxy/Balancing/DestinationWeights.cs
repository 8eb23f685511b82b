using System.Globalization;
using System.Runtime.CompilerServices;
using ImagingProxy.Configuration;
using ImagingProxy.Health;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Balancing;

/// <summary>
/// Each destination's share when a cluster picks among its available destinations, for every protocol: the destination's
/// <c>Weight</c> metadata (default 1), scaled down while the cluster's <c>SlowStart</c> runs after the destination came
/// back from Unhealthy (active or passive health), as HAProxy's <c>slowstart</c>, NGINX's <c>slow_start</c> and Envoy's
/// slow start do: a server back from an outage (cold caches, a database reconnecting) is not handed its whole share of
/// the cluster's load at once.
/// </summary>
/// <remarks>
/// <para>
/// The ramp is linear from <see cref="SlowStartFloor"/> of the weight at the return to the whole weight when
/// <c>SlowStart</c> has passed. It starts at a tenth, as Envoy's default, not at zero: the returned server is tried at
/// once, so a passive health probation ends (or retakes it) on real traffic.
/// </para>
/// <para>
/// Settings are parsed once per configuration object (a reload brings new ones), not per pick.
/// </para>
/// </remarks>
public sealed class DestinationWeights
{
    /// <summary>The share of its weight a destination has at the start of its slow start.</summary>
    public const double SlowStartFloor = 0.1;

    private readonly DestinationHealthTracker? _tracker;
    private readonly TimeProvider _time;
    private readonly ConditionalWeakTable<DestinationConfig, StrongBox<double>> _weights = [];
    private readonly ConditionalWeakTable<ClusterConfig, ClusterWeighting> _clusters = [];

    public DestinationWeights(DestinationHealthTracker tracker, TimeProvider time)
        : this(time, tracker)
    {
    }

    private DestinationWeights(TimeProvider time, DestinationHealthTracker? tracker)
    {
        _tracker = tracker;
        _time = time;
    }

    /// <summary><c>Weight</c> metadata only, without slow start (no health is tracked): for components built without a host.</summary>
    public static DestinationWeights WeightsOnly { get; } = new(TimeProvider.System, null);

    /// <summary>
    /// True when picks in <paramref name="cluster"/> need weights: a destination's <c>Weight</c> is not 1, or the cluster
    /// has <c>SlowStart</c>. False: every destination has the same share, and a policy may ignore weights.
    /// </summary>
    public bool IsWeighted(ClusterState cluster)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        return Weighting(cluster.Model.Config).IsWeighted;
    }

    /// <summary>The destination's share now: its <c>Weight</c>, times its slow-start ramp in <paramref name="cluster"/>.</summary>
    public double Of(ClusterState cluster, DestinationState destination)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        ArgumentNullException.ThrowIfNull(destination);
        var weight = Configured(destination.Model.Config);
        var slowStart = Weighting(cluster.Model.Config).SlowStart;
        return slowStart > TimeSpan.Zero ? weight * Ramp(destination, slowStart) : weight;
    }

    /// <summary>
    /// The share of its weight <paramref name="destination"/> has now: 1, or, while <paramref name="slowStart"/> has not
    /// passed since it came back, from <see cref="SlowStartFloor"/> at the return rising linearly to 1.
    /// </summary>
    public double Ramp(DestinationState destination, TimeSpan slowStart)
    {
        if (_tracker?.ReturnedAt(destination) is not { } returned)
        {
            return 1;
        }

        var elapsed = _time.GetUtcNow() - returned;
        return elapsed >= slowStart ? 1 : SlowStartFloor + ((1 - SlowStartFloor) * Math.Max(0, elapsed / slowStart));
    }

    /// <summary>The time a destination in this cluster ramps up after it came back (cluster metadata <c>SlowStart</c>); zero: none.</summary>
    public static TimeSpan SlowStartOf(ClusterConfig cluster)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        return TimeSpan.TryParse(cluster.Metadata?.GetValueOrDefault(MetadataKeys.SlowStart), CultureInfo.InvariantCulture, out var value) && value > TimeSpan.Zero
            ? value
            : TimeSpan.Zero;
    }

    /// <summary>A destination's <c>Weight</c> metadata: 1 when absent or not a positive number.</summary>
    public static double WeightOf(DestinationConfig destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var text = destination.Metadata?.GetValueOrDefault(MetadataKeys.Weight);
        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var weight) && weight > 0 && double.IsFinite(weight)
            ? weight
            : 1;
    }

    private double Configured(DestinationConfig destination)
        => _weights.GetValue(destination, static d => new StrongBox<double>(WeightOf(d))).Value;

    private ClusterWeighting Weighting(ClusterConfig cluster)
        => _clusters.GetValue(cluster, static c => ClusterWeighting.Of(c));

    private sealed record ClusterWeighting(TimeSpan SlowStart, bool IsWeighted)
    {
        public static ClusterWeighting Of(ClusterConfig cluster)
        {
            var slowStart = SlowStartOf(cluster);
            var weighted = slowStart > TimeSpan.Zero;
            foreach (var destination in cluster.Destinations?.Values ?? [])
            {
                weighted |= WeightOf(destination) != 1;
            }

            return new ClusterWeighting(slowStart, weighted);
        }
    }
}
