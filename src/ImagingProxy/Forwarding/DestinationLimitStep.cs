using System.Globalization;
using ImagingProxy.Balancing;
using ImagingProxy.Telemetry;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Timeouts;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Forwarding;

/// <summary>
/// Destination <c>MaxConcurrent</c> on HTTP clusters (<see cref="DestinationLimits"/>): before the retry step, session
/// affinity and load balancing, the destinations with that many requests in flight are taken out of this request's
/// available ones (so a retry, too, only goes to a destination that had room when the request was routed), and the
/// request goes to another (an affinity to a full destination follows its cluster's <c>FailurePolicy</c>, as for an
/// unavailable one). When every one is full the request waits for a place up to the cluster's <c>QueueTimeout</c> (none
/// by default), then is answered 503 with <c>Retry-After</c> (a SOAP fault on the XDS endpoint), logged (event 418) and
/// counted. A cluster without limits costs one cached check.
/// </summary>
/// <remarks>
/// The count is YARP's requests in flight, read when the request is routed: requests routed at the same moment may
/// take a destination one or two past its limit, as NGINX's <c>max_conns</c> may across its workers. A queued request
/// waits among its cluster's available destinations, read again at each look (one that went down or was drained meanwhile
/// is not sent to). Queued requests are served in arrival order: a request of the cluster that ends wakes the one waiting
/// longest (<see cref="PlaceQueues"/>); each looks again at least every second.
/// </remarks>
internal sealed partial class DestinationLimitStep(DestinationLimits limits, HttpProxyMetrics metrics, TimeProvider time, IProxyStateLookup state, ILogger<DestinationLimitStep> logger)
{
    private readonly PlaceQueues _queues = new();

    public Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        var feature = context.GetReverseProxyFeature();
        var cluster = feature.Cluster.Config;
        if (!limits.IsLimited(cluster))
        {
            return next(context);
        }

        var open = Open(cluster, feature.AvailableDestinations, countFull: true);
        if (open is null)
        {
            return ForwardAsync(context, next, cluster.ClusterId);
        }

        if (open.Count == 0)
        {
            return PlaceQueues.QueueTimeout(cluster) is { } queueTimeout && feature.AvailableDestinations.Count > 0
                ? QueueAsync(context, next, feature, queueTimeout)
                : RefuseAsync(context, cluster.ClusterId, TimeSpan.Zero);
        }

        feature.AvailableDestinations = open.ToArray();
        return ForwardAsync(context, next, cluster.ClusterId);
    }

    /// <summary>A request to a limited cluster: when it ends, the request of the cluster waiting longest for a place looks again.</summary>
    private async Task ForwardAsync(HttpContext context, RequestDelegate next, string clusterId)
    {
        try
        {
            await next(context);
        }
        finally
        {
            _queues.Released(clusterId);
        }
    }

    /// <summary>
    /// Waits for a place at the request's cluster (every available destination at its <c>MaxConcurrent</c>), at most
    /// <paramref name="queueTimeout"/>: forwarded to those with room then, else answered 503. The cluster's available
    /// destinations are read again at each look: a destination that went down or was drained meanwhile is not sent to;
    /// when none is left the request is answered as one to a cluster with no healthy destination.
    /// The client leaving ends the wait; the route's <c>Timeout</c> ends it with 504 (<see cref="RequestTimeoutStep"/>).
    /// </summary>
    private async Task QueueAsync(HttpContext context, RequestDelegate next, IReverseProxyFeature feature, TimeSpan queueTimeout)
    {
        var cluster = feature.Cluster.Config;
        var available = feature.AvailableDestinations;
        var queuedAt = time.GetTimestamp();
        var result = QueueResults.Abandoned;
        List<DestinationState>? open = null;
        metrics.QueueEntered(cluster.ClusterId);
        var waiter = _queues.Enter(cluster.ClusterId);
        try
        {
            while (true)
            {
                // Taken before the look: a request that ends after it still wakes this wait.
                var released = waiter.Next();

                // The cluster's available destinations of now: one that went down or was drained while the request waited
                // is not sent to, a backup that took over or a destination back is.
                // (By the request's cluster, not its route's: the XDS step may have moved it to the repository cluster.)
                available = state.TryGetCluster(cluster.ClusterId, out var now) ? now.DestinationsState.AvailableDestinations : [];
                if (available.Count == 0)
                {
                    result = QueueResults.NoDestination;
                    break;
                }

                open = Open(cluster, available, countFull: false);
                if (open is null || open.Count > 0)
                {
                    result = QueueResults.Placed;
                    break;
                }

                var left = queueTimeout - time.GetElapsedTime(queuedAt);
                if (left <= TimeSpan.Zero)
                {
                    result = QueueResults.TimedOut;
                    break;
                }

                await PlaceQueues.WaitAsync(released, left, time, context.RequestAborted);
            }
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            if (context.Features.Get<IHttpRequestTimeoutFeature>()?.RequestTimeoutToken.IsCancellationRequested == true)
            {
                // The route's Timeout came first: the request timeout step answers 504 and logs it (event 411), counted
                // as every route timeout (error RequestTimeout, destination none: no server was asked).
                context.Items[RequestTimeoutStep.TimedOutInQueue] = true;
            }
            else
            {
                // The client left: nothing reaches it; counted with 400 as YARP counts a request its client cancelled
                // (not as the 200 a response never written would show).
                context.Response.StatusCode = StatusCodes.Status400BadRequest;
            }

            return;
        }
        finally
        {
            waiter.Dispose();
            metrics.QueueLeft(cluster.ClusterId, result, time.GetElapsedTime(queuedAt));
        }

        if (result == QueueResults.TimedOut)
        {
            await RefuseAsync(context, cluster.ClusterId, time.GetElapsedTime(queuedAt));
            return;
        }

        if (result == QueueResults.NoDestination && context.Items.TryGetValue(XdsRoutingStep.XdsTransactionItem, out var transaction) && transaction is XdsTransaction xds)
        {
            // As the XDS step answers a cluster without a healthy server (NoDestinationStep answers viewers).
            Log.NoDestinationLeft(logger, context.Request.Method, LoggedRequest.Path(context.Request), cluster.ClusterId);
            await XdsRoutingStep.NoHealthyServerAsync(context, cluster.ClusterId, xds);
            return;
        }

        // Placed: the destinations with room (all of them when none is full any more). No destination left: none, and
        // the request is answered as any to a cluster without a healthy destination (NoDestinationStep).
        feature.AvailableDestinations = result == QueueResults.NoDestination ? [] : open is not null ? open.ToArray() : available;

        await ForwardAsync(context, next, cluster.ClusterId);
    }

    /// <summary>
    /// The destinations of <paramref name="available"/> below their <c>MaxConcurrent</c>; null when none is full (the list
    /// stays as it is). Each full one is counted as passed over unless <paramref name="countFull"/> is false (a queued
    /// request looks again and again).
    /// </summary>
    private List<DestinationState>? Open(ClusterConfig cluster, IReadOnlyList<DestinationState> available, bool countFull)
    {
        List<DestinationState>? open = null;
        for (var i = 0; i < available.Count; i++)
        {
            var destination = available[i];
            if (countFull ? limits.IsFull(cluster, destination, destination.ConcurrentRequestCount) : limits.AtLimit(destination, destination.ConcurrentRequestCount))
            {
                if (open is null)
                {
                    open = new List<DestinationState>(available.Count);
                    for (var j = 0; j < i; j++)
                    {
                        open.Add(available[j]);
                    }
                }
            }
            else
            {
                open?.Add(destination);
            }
        }

        return open;
    }

    private async Task RefuseAsync(HttpContext context, string cluster, TimeSpan waited)
    {
        Log.AllAtLimit(logger, context.Request.Method, LoggedRequest.Path(context.Request), cluster, waited > TimeSpan.Zero ? string.Create(CultureInfo.InvariantCulture, $" (after {waited.TotalSeconds:0.###} s in the queue)") : string.Empty);
        context.Response.Headers.RetryAfter = "5";
        var message = $"Every server in cluster '{cluster}' is at its MaxConcurrent; retry later.";
        if (context.Items.TryGetValue(XdsRoutingStep.XdsTransactionItem, out var transaction) && transaction is XdsTransaction xds)
        {
            await SoapFault.WriteAsync(context, StatusCodes.Status503ServiceUnavailable, SoapFault.Code.Receiver, $"{message} ({XdsAction.TransactionId(xds)})");
            return;
        }

        context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        context.Response.ContentType = "text/plain; charset=utf-8";
        await context.Response.WriteAsync($"503 Service Unavailable: {message}\n", context.RequestAborted);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 418, Level = LogLevel.Warning, Message = "Request {Method} {Path} refused with 503: every destination in cluster '{Cluster}' is at its MaxConcurrent{Queued}.")]
        public static partial void AllAtLimit(ILogger logger, string method, string path, string cluster, string queued);

        [LoggerMessage(EventId = 420, Level = LogLevel.Warning, Message = "Request {Method} {Path} answered 503 (SOAP fault): no server of cluster '{Cluster}' was available any more when it left the queue.")]
        public static partial void NoDestinationLeft(ILogger logger, string method, string path, string cluster);
    }
}
