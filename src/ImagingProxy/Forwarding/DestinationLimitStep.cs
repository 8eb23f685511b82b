using ImagingProxy.Balancing;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Forwarding;

/// <summary>
/// Destination <c>MaxConcurrent</c> on HTTP clusters (<see cref="DestinationLimits"/>): before the retry step, session
/// affinity and load balancing, the destinations with that many requests in flight are taken out of this request's
/// available ones (so a retry, too, only goes to a destination that had room when the request was routed), and the
/// request goes to another (an affinity to a full destination follows its cluster's <c>FailurePolicy</c>, as for an
/// unavailable one). When every one is full the request is answered 503 with <c>Retry-After</c> (a SOAP fault on the
/// XDS endpoint), logged (event 418) and counted. A cluster without limits costs one cached check.
/// </summary>
/// <remarks>
/// The count is YARP's requests in flight, read when the request is routed: requests routed at the same moment may
/// take a destination one or two past its limit, as NGINX's <c>max_conns</c> may across its workers.
/// </remarks>
internal sealed partial class DestinationLimitStep(DestinationLimits limits, ILogger<DestinationLimitStep> logger)
{
    public Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        var feature = context.GetReverseProxyFeature();
        var cluster = feature.Cluster.Config;
        if (!limits.IsLimited(cluster))
        {
            return next(context);
        }

        var available = feature.AvailableDestinations;
        List<DestinationState>? open = null;
        for (var i = 0; i < available.Count; i++)
        {
            var destination = available[i];
            if (limits.IsFull(cluster, destination, destination.ConcurrentRequestCount))
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

        if (open is null)
        {
            return next(context);
        }

        if (open.Count == 0)
        {
            return RefuseAsync(context, cluster.ClusterId);
        }

        feature.AvailableDestinations = open.ToArray();
        return next(context);
    }

    private async Task RefuseAsync(HttpContext context, string cluster)
    {
        Log.AllAtLimit(logger, context.Request.Method, LoggedRequest.Path(context.Request), cluster);
        context.Response.Headers.RetryAfter = "5";
        var message = $"Every server in cluster '{cluster}' is at its MaxConcurrent; retry later.";
        if (context.Items.TryGetValue(XdsRoutingStep.XdsTransactionItem, out var transaction) && transaction is XdsTransaction xds)
        {
            await SoapFault.WriteAsync(context, StatusCodes.Status503ServiceUnavailable, SoapFault.Code.Receiver, $"{message} ({XdsAction.TransactionId(xds)})");
            return;
        }

        context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        await context.Response.WriteAsync($"503 Service Unavailable: {message}\n", context.RequestAborted);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 418, Level = LogLevel.Warning, Message = "Request {Method} {Path} refused with 503: every destination in cluster '{Cluster}' is at its MaxConcurrent.")]
        public static partial void AllAtLimit(ILogger logger, string method, string path, string cluster);
    }
}
