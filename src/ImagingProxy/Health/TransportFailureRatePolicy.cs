using System.Globalization;
using System.Runtime.CompilerServices;
using ImagingProxy.Configuration;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Health;

/// <summary>
/// Passive health of HTTP clusters, under the name of YARP's policy it replaces (<c>TransportFailureRate</c>, the
/// default): a destination goes out when the share of its requests that failed in transport over the last
/// <see cref="TransportFailureRateHealthPolicyOptions.DetectionWindowSize"/> (60 s) reaches the cluster's
/// <c>TransportFailureRateHealthPolicy.RateLimit</c> metadata (default 0.3), once at least
/// <see cref="TransportFailureRateHealthPolicyOptions.MinimalTotalCountThreshold"/> (10) requests were seen; as YARP's.
/// </summary>
/// <remarks>
/// <para>
/// Two differences. The destination comes back (Unknown) after the cluster's own <c>ReactivationPeriod</c>: YARP's never
/// brings it back sooner than its detection window, since the failures that took it out would still be in the window
/// and take it out again. Here the window is emptied when the destination goes out instead. And a destination that
/// comes back is on probation until one of its requests succeeds: its first transport failure takes it out again at
/// once, where YARP's (and an emptied window) would send it ten more requests, and their clients ten more 502s, before
/// judging it.
/// </para>
/// <para>
/// What counts as a failure is YARP's choice: the forwarder errors of the server's side (the request could not be sent,
/// timed out, or the server broke off the request or response body) of requests the client did not abandon. 5xx answers
/// do not, unless the cluster lists them in <c>TransportFailureRateHealthPolicy.FailureStatusCodes</c>
/// (<see cref="FailureStatusCodes"/>): a server whose storage or database is down answers every request with 500 or 503
/// at once, and stays in rotation otherwise. The client's own errors (a viewer abandoning a download) do not count; they
/// count as requests that did not fail, but only a success ends probation. Results of requests that end while the destination is out are ignored, and a verdict
/// and the health it sets are one step under the destination's lock (YARP's updater sets the health before it returns),
/// so a result judged on another thread meanwhile sees the destination out.
/// </para>
/// </remarks>
internal sealed partial class TransportFailureRatePolicy(
    IOptions<TransportFailureRateHealthPolicyOptions> options, IDestinationHealthUpdater updater, IServiceProvider services, TimeProvider time,
    ILogger<TransportFailureRatePolicy> logger)
    : IPassiveHealthCheckPolicy
{
    private readonly TransportFailureRateHealthPolicyOptions _options = options.Value;
    private readonly ConditionalWeakTable<DestinationState, History> _histories = [];
    private readonly ConditionalWeakTable<ClusterModel, ClusterSettings> _settings = [];

    // Resolved at the first moved request: YARP's state (its config manager) needs its config validator, which needs
    // the passive policies, this one among them; taken in the constructor, that cycle hangs the host's start.
    private IProxyStateLookup? _proxyState;

    public string Name => HealthCheckConstants.PassivePolicy.TransportFailureRate;

    public void RequestProxied(HttpContext context, ClusterState cluster, DestinationState destination)
    {
        cluster = ProxiedCluster(context, cluster);
        var error = context.Features.Get<IForwarderErrorFeature>();
        var settings = Settings(cluster.Model);
        var outcome = error is not null
            ? IsServerFailure(error) && !context.RequestAborted.IsCancellationRequested ? Outcome.Failure : Outcome.Other
            : settings.FailureStatusCodes?.Contains(context.Response.StatusCode) == true ? Outcome.Failure
            : Outcome.Success;
        var history = _histories.GetValue(destination, static _ => new History());
        var rateLimit = settings.RateLimit;
        var reactivation = cluster.Model.Config.HealthCheck?.Passive?.ReactivationPeriod ?? ProxyDefaults.ReactivationPeriod;

        // The verdict and the health it sets are one step per destination: a result judged meanwhile (a request that
        // ends while another takes the destination out) sees it out and is ignored, and updates arrive in order.
        lock (history)
        {
            var current = destination.Health.Passive;
            if (current == DestinationHealth.Unhealthy
                || history.Add(time.GetTimestamp(), time.TimestampFrequency, outcome, _options, rateLimit, out var verdict) is not { } health
                || health == current)
            {
                return;
            }

            if (health == DestinationHealth.Unhealthy)
            {
                if (verdict.OnProbation && error is not null)
                {
                    Log.OutAgain(logger, destination.DestinationId, cluster.ClusterId, error.Error, reactivation);
                }
                else if (verdict.OnProbation)
                {
                    Log.OutAgainOnStatus(logger, destination.DestinationId, cluster.ClusterId, context.Response.StatusCode, reactivation);
                }
                else
                {
                    Log.Out(logger, destination.DestinationId, cluster.ClusterId, verdict.Failed, verdict.Total, _options.DetectionWindowSize.TotalSeconds, rateLimit, reactivation);
                }
            }

            updater.SetPassive(cluster, destination, health, reactivation);
        }
    }

    /// <summary>
    /// True while <paramref name="destination"/> is on probation: taken out by this policy and not yet answered a request
    /// successfully since (for <c>/status</c>).
    /// </summary>
    public bool IsOnProbation(DestinationState destination)
    {
        if (!_histories.TryGetValue(destination, out var history))
        {
            return false;
        }

        lock (history)
        {
            return history.OnProbation;
        }
    }

    /// <summary>What took a destination out: the failures and requests counted, or its first failure on probation.</summary>
    private readonly record struct Verdict(long Failed, long Total, bool OnProbation);

    /// <summary>A proxied request as passive health sees it.</summary>
    private enum Outcome
    {
        /// <summary>No forwarder error.</summary>
        Success,

        /// <summary>A failure of the server's side (<see cref="IsServerFailure"/>) of a request the client did not abandon.</summary>
        Failure,

        /// <summary>Any other forwarder error (the client's own): counted as a request that did not fail, as YARP does, but it ends no probation.</summary>
        Other,
    }

    /// <summary>
    /// The failures passive health counts against a server (YARP 2.3's set), before the client's abort is looked at:
    /// YARP does not count a request the client abandoned, whatever error the forwarder gave it.
    /// </summary>
    internal static bool IsServerFailure(IForwarderErrorFeature? error) => error?.Error is ForwarderError.Request or ForwarderError.RequestTimedOut
        or ForwarderError.RequestBodyDestination or ForwarderError.ResponseBodyDestination
        or ForwarderError.UpgradeRequestDestination or ForwarderError.UpgradeResponseDestination;

    /// <summary>
    /// The cluster the request was sent to. YARP's passive middleware passes the route's cluster, also for a request a
    /// step moved to another (<c>ReassignProxyRequest</c>: the XDS step sends ITI-41/43 to the repository cluster on a
    /// route of the registry's): its destination is then the other cluster's, judged by that cluster's settings, and the
    /// health it gets must recompute that cluster's available destinations.
    /// </summary>
    private ClusterState ProxiedCluster(HttpContext context, ClusterState routeCluster)
        => context.Features.Get<IReverseProxyFeature>()?.Cluster is { } model && !ReferenceEquals(model, routeCluster.Model)
            && !string.Equals(model.Config.ClusterId, routeCluster.ClusterId, StringComparison.OrdinalIgnoreCase)
            && (_proxyState ??= services.GetRequiredService<IProxyStateLookup>()).TryGetCluster(model.Config.ClusterId, out var moved)
                ? moved
                : routeCluster;

    /// <summary>
    /// The cluster's <c>TransportFailureRateHealthPolicy.RateLimit</c> and <c>.FailureStatusCodes</c> (validated), read
    /// once per cluster configuration (looked up first: the factory closes over the options, and would be a new delegate
    /// on every request).
    /// </summary>
    private ClusterSettings Settings(ClusterModel model)
        => _settings.TryGetValue(model, out var known) ? known : _settings.GetValue(model, m =>
        {
            var metadata = m.Config.Metadata;
            var rateLimit = metadata?.GetValueOrDefault(TransportFailureRateHealthPolicyOptions.FailureRateLimitMetadataName) is { } text
                && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var limit)
                    ? limit
                    : _options.DefaultFailureRateLimit;
            // The validator refused a list that does not parse: a configuration that reached YARP has a good one, or none.
            var codes = FailureStatusCodes.TryParse(metadata?.GetValueOrDefault(MetadataKeys.PassiveFailureStatusCodes), out var parsed, out _) ? parsed : null;
            return new ClusterSettings(rateLimit, codes);
        });

    /// <summary>One cluster configuration's passive health settings.</summary>
    private sealed record ClusterSettings(double RateLimit, FailureStatusCodes? FailureStatusCodes);

    /// <summary>One destination's requests over the detection window, in one-second buckets (guarded by its own lock).</summary>
    private sealed class History
    {
        private readonly Queue<Bucket> _buckets = new();
        private Bucket? _current;
        private long _total;
        private long _failed;
        private bool _probation;

        /// <summary>Taken out, and no success since.</summary>
        public bool OnProbation => _probation;

        /// <summary>
        /// Counts one result and returns the health it gives, or null when it is ignored: a result that is neither a
        /// success nor a failure while the destination is on probation.
        /// </summary>
        public DestinationHealth? Add(long timestamp, long frequency, Outcome outcome, TransportFailureRateHealthPolicyOptions options, double rateLimit, out Verdict verdict)
        {
            verdict = default;

            var failed = outcome == Outcome.Failure;
            if (_probation)
            {
                if (failed)
                {
                    verdict = new Verdict(1, 1, OnProbation: true);
                    return DestinationHealth.Unhealthy;
                }

                if (outcome != Outcome.Success)
                {
                    return null;
                }

                _probation = false;
            }

            var second = timestamp / frequency;
            if (_current is null || _current.Second != second)
            {
                _current = new Bucket(second);
                _buckets.Enqueue(_current);
            }

            // The window is whole seconds (at least one), so the bucket just added (or counted into) never expires.
            var windowSeconds = Math.Max(1, (long)Math.Ceiling(options.DetectionWindowSize.TotalSeconds));
            while (_buckets.Peek().Second <= second - windowSeconds)
            {
                var expired = _buckets.Dequeue();
                _total -= expired.Total;
                _failed -= expired.Failed;
            }

            _current.Count(failed);
            _total++;
            _failed += failed ? 1 : 0;
            if (_total < options.MinimalTotalCountThreshold || (double)_failed / _total < rateLimit)
            {
                return DestinationHealth.Healthy;
            }

            // Out: the requests that took it out are forgotten, and it comes back on probation.
            verdict = new Verdict(_failed, _total, OnProbation: false);
            _buckets.Clear();
            _current = null;
            _total = 0;
            _failed = 0;
            _probation = true;
            return DestinationHealth.Unhealthy;
        }
    }

    private sealed class Bucket(long second)
    {
        public long Second { get; } = second;

        public long Total { get; private set; }

        public long Failed { get; private set; }

        public void Count(bool failed)
        {
            Total++;
            Failed += failed ? 1 : 0;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 325, Level = LogLevel.Warning, Message = "Passive health takes destination '{Destination}' of cluster '{Cluster}' out: {Failed} of its last {Total} requests (within {WindowSeconds} s) failed, the limit is {RateLimit}; back on probation in {Reactivation}.")]
        public static partial void Out(ILogger logger, string destination, string cluster, long failed, long total, double windowSeconds, double rateLimit, TimeSpan reactivation);

        [LoggerMessage(EventId = 326, Level = LogLevel.Warning, Message = "Passive health takes destination '{Destination}' of cluster '{Cluster}' out again: its first request since it came back failed ({Error}); back on probation in {Reactivation}.")]
        public static partial void OutAgain(ILogger logger, string destination, string cluster, ForwarderError error, TimeSpan reactivation);

        [LoggerMessage(EventId = 327, Level = LogLevel.Warning, Message = "Passive health takes destination '{Destination}' of cluster '{Cluster}' out again: its first request since it came back was answered {StatusCode}, a status in FailureStatusCodes; back on probation in {Reactivation}.")]
        public static partial void OutAgainOnStatus(ILogger logger, string destination, string cluster, int statusCode, TimeSpan reactivation);
    }
}
