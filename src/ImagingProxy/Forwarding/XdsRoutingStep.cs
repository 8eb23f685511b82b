using ImagingProxy.Configuration;
using ImagingProxy.Telemetry;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Forwarding;

/// <summary>
/// YARP proxy-pipeline step for the Xds endpoint: reads the SOAP action from the headers, sends ITI-18/42 to the
/// registry cluster and ITI-41/43 to the repository cluster, and answers SOAP 1.2 faults itself: 400
/// <c>env:Sender</c> for a missing or unknown action, 503 <c>env:Receiver</c> when the cluster has no healthy
/// destination, and <c>env:Receiver</c> with YARP's 502/504 when the destination fails under the forwarder
/// (<see cref="XdsForwarderFault"/>). A SOAP 1.1 client (<c>text/xml</c>) gets the same faults in SOAP 1.1, with 500
/// (<see cref="SoapFault.WriteAsync"/>). The body is never read here, so MTOM uploads of any size stream through.
/// </summary>
internal sealed partial class XdsRoutingStep(IProxyStateLookup state, ILogger<XdsRoutingStep> logger)
{
    /// <summary>A viewer's request passes straight through (no async level of its own); the Xds route's is routed here.</summary>
    public Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        var feature = context.GetReverseProxyFeature();
        var metadata = feature.Route.Config.Metadata;
        return metadata?.ContainsKey(MetadataKeys.XdsRoute) == true ? RouteAsync(context, feature, metadata, next) : next(context);
    }

    private async Task RouteAsync(HttpContext context, IReverseProxyFeature feature, IReadOnlyDictionary<string, string> metadata, RequestDelegate next)
    {
        // Recorded for the metrics step (imagingproxy.xds.transactions), refused requests included.
        var transaction = XdsAction.Classify(context.Request.ContentType, context.Request.Headers["SOAPAction"], out var action);
        context.Items[XdsTransactionItem] = transaction;
        if (!HttpMethods.IsPost(context.Request.Method))
        {
            // XDS.b is SOAP over HTTP POST (ITI TF-2); nothing else is forwarded.
            Log.BadMethod(logger, context.Request.Method, context.Connection.RemoteIpAddress?.ToString() ?? "?");
            context.Response.Headers.Allow = HttpMethods.Post;
            await SoapFault.WriteAsync(context, StatusCodes.Status405MethodNotAllowed, SoapFault.Code.Sender, $"Method {context.Request.Method} is not allowed: XDS.b transactions are SOAP requests sent with POST.");
            return;
        }

        if (transaction is XdsTransaction.Missing or XdsTransaction.Unknown or XdsTransaction.Conflicting)
        {
            // The client's text, with its control characters written out: a log line and an XML fault can hold it.
            action = action is null ? null : LogText.Printable(action);
            Log.BadAction(logger, transaction, action ?? "(none)", context.Connection.RemoteIpAddress?.ToString() ?? "?");
            var reason = transaction switch
            {
                XdsTransaction.Missing => "No SOAP action: send the action parameter of the Content-Type (application/soap+xml; action=\"urn:ihe:iti:2007:...\").",
                XdsTransaction.Conflicting => $"Two different SOAP actions in the Content-Type ('{action}'): send one.",
                _ => $"Unknown SOAP action '{action}': this endpoint serves ITI-18, ITI-41, ITI-42 and ITI-43.",
            };
            await SoapFault.WriteAsync(context, StatusCodes.Status400BadRequest, SoapFault.Code.Sender, reason);
            return;
        }

        // The cluster ids travel in the route's metadata (XdsRouteProvider), so a request never re-reads configuration.
        var clusterId = metadata.GetValueOrDefault(XdsAction.IsRegistry(transaction) ? MetadataKeys.XdsRegistryCluster : MetadataKeys.XdsRepositoryCluster);
        if (string.IsNullOrEmpty(clusterId) || !state.TryGetCluster(clusterId, out var cluster))
        {
            Log.NoCluster(logger, XdsAction.TransactionId(transaction), XdsAction.IsRegistry(transaction) ? "RegistryCluster" : "RepositoryCluster");
            await SoapFault.WriteAsync(context, StatusCodes.Status503ServiceUnavailable, SoapFault.Code.Receiver, $"No cluster is configured for {XdsAction.TransactionId(transaction)}.");
            return;
        }

        if (!ReferenceEquals(feature.Cluster, cluster.Model))
        {
            // YARP sets a new feature for the reassigned cluster (its available destinations with it).
            context.ReassignProxyRequest(cluster);
            feature = context.GetReverseProxyFeature();
        }

        if (feature.AvailableDestinations.Count == 0)
        {
            Log.NoDestination(logger, clusterId, XdsAction.TransactionId(transaction));
            await NoHealthyServerAsync(context, clusterId, transaction);
            return;
        }

        await next(context);

        // YARP answers its forwarder's failures (refused, closed, silent destination) with an empty 502/504; an XDS client
        // expects a SOAP fault. Once the answer has started (a download cut midway), YARP aborts it and nothing can be said.
        if (context.GetForwarderErrorFeature() is { } failure && !context.Response.HasStarted && !context.RequestAborted.IsCancellationRequested)
        {
            await WriteForwarderFaultAsync(context, transaction, clusterId, failure);
        }
    }

    private async Task WriteForwarderFaultAsync(HttpContext context, XdsTransaction transaction, string clusterId, IForwarderErrorFeature failure)
    {
        var statusCode = context.Response.StatusCode;
        var id = XdsAction.TransactionId(transaction);
        if (!XdsForwarderFault.TryDescribe(failure, statusCode, XdsAction.IsRegistry(transaction) ? "registry" : "repository", id, out var cause, out var reason))
        {
            return;
        }

        var destination = context.GetReverseProxyFeature().ProxiedDestination?.DestinationId ?? "(none)";
        // Logged before the answer is written (a client gone meanwhile loses the answer, not the line), with the status
        // it goes with: 500 for a SOAP 1.1 client's fault.
        Log.ForwarderFailed(logger, id, SoapFault.StatusCodeFor(SoapFault.VersionOf(context.Request.ContentType), statusCode), destination, clusterId, failure.Error, cause);
        await SoapFault.WriteAsync(context, statusCode, SoapFault.Code.Receiver, reason);
    }

    /// <summary>HttpContext.Items key holding the request's <see cref="XdsTransaction"/>.</summary>
    public const string XdsTransactionItem = "ImagingProxy.XdsTransaction";

    /// <summary>The answer to an XDS request whose cluster has no healthy server: 503 with <c>Retry-After</c>, a SOAP fault.</summary>
    internal static Task NoHealthyServerAsync(HttpContext context, string clusterId, XdsTransaction transaction)
    {
        context.Response.Headers.RetryAfter = "10";
        return SoapFault.WriteAsync(context, StatusCodes.Status503ServiceUnavailable, SoapFault.Code.Receiver, $"No healthy server in cluster '{clusterId}' for {XdsAction.TransactionId(transaction)}; retry later.");
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 400, Level = LogLevel.Warning, Message = "XDS request from {Client} refused: {Transaction} action '{Action}'.")]
        public static partial void BadAction(ILogger logger, XdsTransaction transaction, string action, string client);

        [LoggerMessage(EventId = 404, Level = LogLevel.Warning, Message = "XDS request from {Client} refused with 405: method {Method}; XDS.b takes POST.")]
        public static partial void BadMethod(ILogger logger, string method, string client);

        [LoggerMessage(EventId = 401, Level = LogLevel.Warning, Message = "XDS {Transaction} refused: no healthy destination in cluster '{Cluster}'.")]
        public static partial void NoDestination(ILogger logger, string cluster, string transaction);

        [LoggerMessage(EventId = 402, Level = LogLevel.Warning, Message = "XDS {Transaction} refused: no cluster serves it (ImagingProxy:Xds:{Key} is not set).")]
        public static partial void NoCluster(ILogger logger, string transaction, string key);

        [LoggerMessage(EventId = 403, Level = LogLevel.Warning, Message = "XDS {Transaction} answered {StatusCode} with a SOAP fault: destination '{Destination}' of cluster '{Cluster}' failed ({Error}, {Cause}).")]
        public static partial void ForwarderFailed(ILogger logger, string transaction, int statusCode, string destination, string cluster, ForwarderError error, string cause);
    }
}
