using System.Diagnostics;
using System.Diagnostics.Metrics;
using ImagingProxy.Forwarding;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Forwarder;

namespace ImagingProxy.Telemetry;

/// <summary>
/// HTTP proxy telemetry YARP 2.3 does not emit itself (it has no Meter): requests and their duration per route,
/// cluster and destination, forwarder errors, and XDS transactions by IHE transaction id. Recorded by a step
/// around YARP's forwarder.
/// </summary>
public sealed class HttpProxyMetrics : IDisposable
{
    // A TagList holds its values as objects: the status codes 100-599 are boxed once here, not once per request.
    private const int FirstCachedStatusCode = 100;
    private const int LastCachedStatusCode = 599;
    private static readonly object[] s_statusCodes = CreateStatusCodes();

    private readonly Meter _meter;
    private readonly Counter<long> _requests;
    private readonly Histogram<double> _duration;
    private readonly Counter<long> _xds;
    private readonly Counter<long> _retries;
    private readonly Counter<long> _unrouted;
    private readonly UpDownCounter<long> _queued;
    private readonly Histogram<double> _queueWaits;

    public HttpProxyMetrics(IMeterFactory meterFactory)
    {
        _meter = meterFactory.Create(ImagingProxyTelemetry.MeterName);
        _requests = _meter.CreateCounter<long>("imagingproxy.http.requests", "{request}", "Proxied HTTP requests by route, cluster, destination, status code and forwarder error.");
        _duration = _meter.CreateHistogram<double>("imagingproxy.http.request.duration", "s", "Time from routing to the end of the proxied response.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300] });
        _retries = _meter.CreateCounter<long>("imagingproxy.http.retries", "{attempt}", "GET/HEAD/OPTIONS requests sent to another destination after one failed before answering or answered a status in Retry.StatusCodes, by the destination that failed and its forwarder error (or StatusNNN).");
        _unrouted = _meter.CreateCounter<long>("imagingproxy.http.unrouted", "{request}", "Requests on a viewers' or XDS listener that no route takes, by listener and status code: 404 (no route matches the path) or 405 (only routes for other methods do).");
        _queued = _meter.CreateUpDownCounter<long>("imagingproxy.http.requests.queued", "{request}",
            "Requests waiting for a place because every available destination of their cluster is at its MaxConcurrent (cluster QueueTimeout).");
        _queueWaits = _meter.CreateHistogram<double>("imagingproxy.http.queue.wait.duration", "s",
            "Time requests spent waiting for a place (cluster QueueTimeout), by result: placed, timed_out, no_destination (no destination of the cluster was available any more), abandoned (the client left or the route's Timeout came).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] });
        _xds = _meter.CreateCounter<long>("imagingproxy.xds.transactions", "{transaction}", "XDS.b requests by IHE transaction (ITI-18/41/42/43, unknown, missing) and status code.");
    }

    private int _inFlight;

    /// <summary>Proxied HTTP requests under way now (routed, response not finished): what a drain deadline would cut.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>The proxy-pipeline step: wraps everything after routing.</summary>
    public async Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        var started = Stopwatch.GetTimestamp();
        Interlocked.Increment(ref _inFlight);
        try
        {
            await next(context);
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
            Record(context, Stopwatch.GetElapsedTime(started));
        }
    }

    private void Record(HttpContext context, TimeSpan elapsed)
    {
        var feature = context.GetReverseProxyFeature();
        var error = context.GetForwarderErrorFeature()?.Error ?? ForwarderError.None;
        var tags = new TagList
        {
            { "route", feature.Route.Config.RouteId },
            { "cluster", feature.Cluster.Config.ClusterId },
            { "destination", feature.ProxiedDestination?.DestinationId ?? "none" },
            { "http.response.status_code", StatusCodeTag(context.Response.StatusCode) },
            { "error", RequestTimeoutStep.TimedOut(context) ? "RequestTimeout" : error == ForwarderError.None ? "none" : error.ToString() },
        };
        _requests.Add(1, tags);
        _duration.Record(elapsed.TotalSeconds, tags);
        if (feature.Route.Config.RouteId == XdsRouteProvider.RouteId)
        {
            var transaction = context.Items.TryGetValue(XdsRoutingStep.XdsTransactionItem, out var value) && value is XdsTransaction t
                ? XdsAction.TransactionId(t)
                : XdsAction.TransactionId(XdsAction.Classify(context.Request.ContentType, context.Request.Headers["SOAPAction"], out _));
            _xds.Add(1, new TagList { { "transaction", transaction }, { "http.response.status_code", StatusCodeTag(context.Response.StatusCode) } });
        }
    }

    /// <summary>A request on <paramref name="listener"/> that no route takes, answered <paramref name="statusCode"/> (UnroutedRequestAnswer).</summary>
    public void Unrouted(string listener, int statusCode)
        => _unrouted.Add(1, new KeyValuePair<string, object?>("listener", listener), new KeyValuePair<string, object?>("http.response.status_code", StatusCodeTag(statusCode)));

    /// <summary>A request sent to another destination because <paramref name="destination"/> failed: <paramref name="error"/> is a forwarder error's name, or <c>Status503</c> and the like for an answer kept back (HttpRetryStep; Retry.StatusCodes).</summary>
    public void Retried(string cluster, string destination, string error)
        => _retries.Add(1, new TagList { { "cluster", cluster }, { "destination", destination }, { "error", error } });

    /// <summary>A request began waiting for a place at a full cluster.</summary>
    public void QueueEntered(string cluster) => _queued.Add(1, new KeyValuePair<string, object?>("cluster", cluster));

    /// <summary>A request's wait for a place ended with <paramref name="result"/> (<see cref="Balancing.QueueResults"/>) after <paramref name="waited"/>.</summary>
    public void QueueLeft(string cluster, string result, TimeSpan waited)
    {
        _queued.Add(-1, new KeyValuePair<string, object?>("cluster", cluster));
        _queueWaits.Record(waited.TotalSeconds, new KeyValuePair<string, object?>("cluster", cluster), new KeyValuePair<string, object?>("result", result));
    }

    public void Dispose() => _meter.Dispose();

    /// <summary>The status code as a tag value: a cached box for 100-599, a new one for anything else.</summary>
    private static object StatusCodeTag(int statusCode)
    {
        var index = statusCode - FirstCachedStatusCode;
        return (uint)index < (uint)s_statusCodes.Length ? s_statusCodes[index] : statusCode;
    }

    private static object[] CreateStatusCodes()
    {
        var boxes = new object[LastCachedStatusCode - FirstCachedStatusCode + 1];
        for (var i = 0; i < boxes.Length; i++)
        {
            boxes[i] = FirstCachedStatusCode + i;
        }

        return boxes;
    }
}
